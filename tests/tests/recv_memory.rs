//! Memory held for a peer is bounded by what flow control allows.
//!
//! A DATA payload can be a zero-copy slice of the caller's read buffer; if
//! tiny frames each kept their whole buffer alive, 2,000 one-byte frames
//! (2,000 bytes of credit) would hold 128 MiB. This binary counts live heap
//! bytes with the counting global allocator, so it holds this one test only.

use bytes::{Bytes, BytesMut};
use plex_proto::{Config, Event, Frame, Session, SettingsFrame, StreamId, PREFACE};

#[global_allocator]
static ALLOCATOR: plex_tests::Counting = plex_tests::Counting;

/// The runtime's read buffer (`READ_CHUNK` in plex-runtime's driver).
const READ_BUFFER: usize = 64 * 1024;
const STREAMS: u32 = 4;
const FRAMES: usize = 2_000;

/// `wire` as the runtime hands it over: the filled front of a fresh
/// `READ_BUFFER`-byte allocation, which the slice keeps alive.
fn as_read(wire: &[u8]) -> Bytes {
    let mut buf = BytesMut::zeroed(READ_BUFFER);
    buf[..wire.len()].copy_from_slice(wire);
    buf.split_to(wire.len()).freeze()
}

fn encode(frame: Frame) -> BytesMut {
    let mut wire = BytesMut::new();
    frame.encode(&mut wire);
    wire
}

#[test]
fn tiny_frames_do_not_pin_read_buffers() {
    let now = std::time::Instant::now();
    let mut server = Session::server(Config::default(), now).expect("config");
    let mut hello = BytesMut::from(&PREFACE[..]);
    hello.extend_from_slice(&encode(Frame::Settings(SettingsFrame::default())));
    for i in 0..STREAMS {
        hello.extend_from_slice(&encode(Frame::Open {
            stream: StreamId::new(2 * i + 1),
            protocol: Bytes::new(),
            id: Bytes::new(),
            handshake: Bytes::new(),
        }));
    }
    server.handle_input(now, hello.freeze());
    let incoming: Vec<StreamId> = std::iter::from_fn(|| server.poll_event())
        .filter_map(|e| match e {
            Event::Incoming { stream, .. } => Some(stream),
            _ => None,
        })
        .collect();
    for &id in &incoming {
        server.accept(id, Bytes::new()).expect("accept");
    }
    while server.poll_transmit(now).is_some() {}
    while server.poll_event().is_some() {}
    // The frames, encoded before measuring; each is then fed as its own read.
    let frames: Vec<BytesMut> = (0..FRAMES)
        .map(|k| {
            encode(Frame::Data {
                stream: incoming[k % incoming.len()],
                end_stream: false,
                payload: Bytes::from_static(b"x"),
            })
        })
        .collect();

    let before = plex_tests::live_bytes();
    for frame in &frames {
        server.handle_input(now, as_read(frame));
    }
    let held = plex_tests::live_bytes() - before;

    assert!(!server.is_closed(), "a peer within its windows is served");
    let buffered = FRAMES as isize;
    // The bound of SPEC.md §11: at most 4x the buffered bytes, plus 32 KiB
    // per stream holding data, plus a little for events.
    let bound = 4 * buffered + STREAMS as isize * 32 * 1024 + 16 * 1024;
    assert!(
        held <= bound,
        "{held} bytes held for {buffered} buffered (bound {bound})"
    );
    // Everything is still there, in order.
    for &id in &incoming {
        let mut buf = [0u8; FRAMES];
        let n = server.read(id, &mut buf).expect("read").expect("data");
        assert_eq!(n, FRAMES / incoming.len());
        assert!(buf[..n].iter().all(|&b| b == b'x'));
    }
}
