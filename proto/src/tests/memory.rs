//! Memory and work a peer can cause without flow control: small payloads
//! are compacted, full frames stay zero-copy, ignored frames are budgeted.

use super::*;
use crate::{CloseReason, ErrorCode, Flood, ProtocolError};

/// A server that accepted stream 1 from a hand-made client.
fn server_with_stream() -> (Session, std::time::Instant, StreamId) {
    let t0 = origin();
    let id = StreamId::new(1);
    let mut s = Session::server(Config::default(), t0).unwrap();
    s.handle_input(
        t0,
        raw_peer(&[Frame::Open {
            stream: id,
            protocol: Bytes::new(),
            id: Bytes::new(),
            handshake: Bytes::new(),
        }]),
    );
    s.accept(id, Bytes::new()).unwrap();
    sent_frames(&mut s, t0);
    drain(&mut s);
    (s, t0, id)
}

fn data(stream: StreamId, payload: Bytes) -> Bytes {
    let mut wire = BytesMut::new();
    Frame::Data {
        stream,
        end_stream: false,
        payload,
    }
    .encode(&mut wire);
    wire.freeze()
}

fn closed_with(s: &mut Session) -> Option<ProtocolError> {
    drain(s).into_iter().find_map(|e| match e {
        Event::Closed {
            reason: CloseReason::Violation(v),
        } => Some(v),
        _ => None,
    })
}

#[test]
fn small_payloads_share_one_buffer_and_full_frames_stay_zero_copy() {
    let (mut s, t0, id) = server_with_stream();
    for part in [&b"ab"[..], b"cde", b"f"] {
        s.handle_input(t0, data(id, Bytes::copy_from_slice(part)));
    }
    // Three frames, one contiguous chunk: they were copied together.
    assert_eq!(
        s.read_chunk(id, 100).unwrap(),
        Some(Bytes::from_static(b"abcdef"))
    );
    let wire = data(
        id,
        Bytes::from(vec![9u8; crate::MIN_MAX_FRAME_SIZE as usize]),
    );
    let range = wire.as_ptr_range();
    s.handle_input(t0, wire);
    let chunk = s.read_chunk(id, 1 << 20).unwrap().unwrap();
    assert_eq!(chunk.len(), crate::MIN_MAX_FRAME_SIZE as usize);
    assert!(range.contains(&chunk.as_ptr()), "a full frame was copied");
}

#[test]
fn small_and_large_payloads_keep_their_order() {
    let (mut s, t0, id) = server_with_stream();
    let big = crate::MIN_MAX_FRAME_SIZE as usize;
    let mut expected = Vec::new();
    for (k, len) in [3, big, 5, 1, big - 1, big, 2].into_iter().enumerate() {
        let payload = vec![k as u8; len];
        expected.extend_from_slice(&payload);
        s.handle_input(t0, data(id, Bytes::from(payload)));
    }
    let mut got = Vec::new();
    assert!(!read_available(&mut s, id, &mut got));
    assert_eq!(got, expected);
}

#[test]
fn unknown_frames_past_the_budget_get_enhance_your_calm() {
    let (mut s, t0, _) = server_with_stream();
    let burst = Config::default().limits.ignored.burst as usize;
    let unknown = |n: usize| {
        let mut wire = BytesMut::new();
        for _ in 0..n {
            Frame::Unknown {
                ty: 0xfe,
                stream: StreamId::CONNECTION,
            }
            .encode(&mut wire);
        }
        wire.freeze()
    };
    s.handle_input(t0, unknown(burst));
    assert!(!s.is_closed(), "the burst is allowed");
    s.handle_input(t0, unknown(1));
    assert_eq!(
        closed_with(&mut s),
        Some(ProtocolError::Flood(Flood::Ignored))
    );
    let t = s.poll_transmit(t0).expect("GOAWAY");
    let mut wire = t.head;
    let goaway = crate::Decoder::new(crate::MIN_MAX_FRAME_SIZE).decode(&mut wire);
    assert!(matches!(
        goaway,
        Ok(Some(Frame::GoAway {
            code: ErrorCode::ENHANCE_YOUR_CALM,
            ..
        }))
    ));
}

#[test]
fn unmatched_ping_acks_are_budgeted() {
    let (mut s, t0, _) = server_with_stream();
    let mut wire = BytesMut::new();
    for k in 0..5000u64 {
        Frame::Ping {
            ack: true,
            payload: (k + 1000).to_be_bytes(),
        }
        .encode(&mut wire);
    }
    s.handle_input(t0, wire.freeze());
    assert_eq!(
        closed_with(&mut s),
        Some(ProtocolError::Flood(Flood::Ignored))
    );
}

#[test]
fn small_data_on_closed_streams_is_budgeted() {
    let (mut s, t0, id) = server_with_stream();
    let mut wire = BytesMut::new();
    Frame::RstStream {
        stream: id,
        code: ErrorCode::CANCEL,
    }
    .encode(&mut wire);
    s.handle_input(t0, wire.freeze());
    assert!(!s.is_closed());
    for _ in 0..5000 {
        s.handle_input(t0, data(id, Bytes::from_static(b"x")));
    }
    assert_eq!(
        closed_with(&mut s),
        Some(ProtocolError::Flood(Flood::Ignored))
    );
}
