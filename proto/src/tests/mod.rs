//! Scripted tests on the simulated clock: set up, act, drive, assert on events.

mod closing;
mod flow;
mod hostile;
mod liveness;
mod memory;
mod props;
mod send_buffer;
mod spec;
mod stop;
mod streams;
mod vectors;

use bytes::{Bytes, BytesMut};

use crate::sim::{origin, Pair};
use crate::{Config, Event, Frame, OpenOptions, ReadError, Session, StreamId};

pub(crate) fn pair() -> Pair {
    Pair::new(Config::default(), Config::default(), origin()).expect("default config is valid")
}

/// A pair that has exchanged prefaces and SETTINGS, with events drained.
pub(crate) fn connected() -> Pair {
    let mut p = pair();
    assert!(p.drive());
    drain(&mut p.client);
    drain(&mut p.server);
    p
}

pub(crate) fn drain(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Drains events, dropping pongs from the automatic first PING.
pub(crate) fn events(s: &mut Session) -> Vec<Event> {
    drain(s)
        .into_iter()
        .filter(|e| !matches!(e, Event::Pong { .. }))
        .collect()
}

/// Opens a stream from the client, accepts it on the server; returns its id.
pub(crate) fn open_pair(p: &mut Pair, options: OpenOptions) -> StreamId {
    let id = p.client.open(options).expect("open");
    assert!(p.drive());
    let incoming = events(&mut p.server);
    assert!(
        incoming
            .iter()
            .any(|e| matches!(e, Event::Incoming { stream, .. } if *stream == id)),
        "{incoming:?}"
    );
    p.server.accept(id, Bytes::new()).expect("accept");
    assert!(p.drive());
    events(&mut p.server);
    id
}

/// Reads everything buffered; `true` if end-of-stream was reached.
pub(crate) fn read_available(s: &mut Session, id: StreamId, out: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(id, &mut buf) {
            Ok(Some(n)) => out.extend_from_slice(&buf[..n]),
            Ok(None) => return true,
            Err(ReadError::Blocked) => return false,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// Encodes frames after a valid preface and SETTINGS, as a hand-made peer.
pub(crate) fn raw_peer(frames: &[Frame]) -> Bytes {
    let mut wire = BytesMut::new();
    wire.extend_from_slice(&crate::PREFACE);
    Frame::Settings(Default::default()).encode(&mut wire);
    for f in frames {
        f.encode(&mut wire);
    }
    wire.freeze()
}

/// Decodes everything a session transmits.
pub(crate) fn sent_frames(s: &mut Session, now: std::time::Instant) -> Vec<Frame> {
    let mut wire = BytesMut::new();
    while let Some(t) = s.poll_transmit(now) {
        wire.extend_from_slice(&t.head);
        wire.extend_from_slice(&t.payload);
    }
    let mut decoder = crate::Decoder::with_preface(crate::MAX_MAX_FRAME_SIZE);
    let mut input = wire.freeze();
    let mut frames = Vec::new();
    while let Some(f) = decoder.decode(&mut input).expect("session output decodes") {
        frames.push(f);
    }
    frames
}
