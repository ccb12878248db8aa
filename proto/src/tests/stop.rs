//! STOP_SENDING: a side that stops reading tells its peer, which ends its
//! side; the stream closes on both sides and nothing it wrote before is lost.

use std::time::Duration;

use super::*;
use crate::{ErrorCode, WriteError};

#[test]
fn after_stop_the_peer_sends_at_most_one_window_then_finishes() {
    let mut p = connected().with_latency(Duration::from_millis(10));
    let id = open_pair(&mut p, OpenOptions::default());
    // The client writes, then drops the stream as the runtime does: finish
    // what was written, stop reading.
    p.client.write(id, b"before the drop").unwrap();
    p.client.finish(id).unwrap();
    p.client.stop(id, ErrorCode::CANCEL).unwrap();
    // The server keeps writing until told to stop.
    let window = u64::from(Config::default().initial_window);
    let received = p.client.stats().bytes_received;
    let mut accepted = 0u64;
    let mut rounds = 0;
    let code = loop {
        match p.server.write(id, &[3; 65_536]) {
            Ok(n) => accepted += n as u64,
            Err(WriteError::Blocked) => assert!(p.step() || p.drive()),
            Err(WriteError::Stopped(code)) => break code,
            Err(e) => panic!("{e}"),
        }
        rounds += 1;
        assert!(
            accepted <= 16 * window && rounds < 10_000,
            "the peer was never stopped ({accepted} bytes taken)"
        );
    };
    assert_eq!(code, ErrorCode::CANCEL);
    assert!(events(&mut p.server).contains(&Event::Stopped {
        stream: id,
        code: ErrorCode::CANCEL
    }));
    assert!(p.drive());
    // At most one window of data (plus frame headers) reached the client.
    let data = p.client.stats().bytes_received - received;
    assert!(data <= window + 1024, "{data} bytes after stop");
    // What the client wrote before stopping arrived whole.
    let mut got = Vec::new();
    assert!(read_available(&mut p.server, id, &mut got));
    assert_eq!(got, b"before the drop");
    assert_eq!(
        (
            p.client.stats().active_streams,
            p.server.stats().active_streams
        ),
        (0, 0)
    );
}

#[test]
fn stop_sending_before_accept_waits_for_the_accept() {
    let mut p = connected();
    let id = p.client.open(OpenOptions::default()).unwrap();
    p.client.stop(id, ErrorCode::CANCEL).unwrap();
    p.client.finish(id).unwrap();
    assert!(p.drive());
    // The server has not accepted: it must not send END_STREAM before its
    // OPEN ACK, so nothing happens yet and the connection stays up.
    assert!(!p.client.is_closed() && !p.server.is_closed());
    p.server.accept(id, Bytes::new()).unwrap();
    assert!(events(&mut p.server).contains(&Event::Stopped {
        stream: id,
        code: ErrorCode::CANCEL
    }));
    assert!(p.drive());
    let mut got = Vec::new();
    assert!(read_available(&mut p.server, id, &mut got));
    assert!(!p.client.is_closed() && !p.server.is_closed());
    assert_eq!(
        (
            p.client.stats().active_streams,
            p.server.stats().active_streams
        ),
        (0, 0)
    );
}

#[test]
fn stop_sending_on_an_idle_stream_is_a_protocol_error() {
    let t0 = origin();
    let mut s = Session::server(Config::default(), t0).unwrap();
    s.handle_input(
        t0,
        raw_peer(&[Frame::StopSending {
            stream: StreamId::new(7),
            code: ErrorCode::CANCEL,
        }]),
    );
    assert!(drain(&mut s).iter().any(|e| matches!(
        e,
        Event::Closed {
            reason: crate::CloseReason::Violation(crate::ProtocolError::IdleStream { .. })
        }
    )));
}
