//! What goes out when a connection ends on an error (SPEC §1, §10, §11):
//! the preface and our SETTINGS first, then the replies the peer caused
//! before the error, then GOAWAY, last.

use super::hostile::{attack, closed_with, encode, goaway_code, open, raw_header};
use super::*;
use crate::{ErrorCode, Flood, FrameType, ProtocolError};

/// A fresh server that has not transmitted anything, fed `wire`.
fn early(wire: &[u8]) -> (Vec<Event>, Vec<Frame>) {
    let t0 = origin();
    let mut s = Session::server(Config::default(), t0).unwrap();
    s.handle_input(t0, Bytes::copy_from_slice(wire));
    (drain(&mut s), sent_frames(&mut s, t0))
}

#[test]
fn an_early_failure_still_sends_settings_before_goaway() {
    let preface = crate::PREFACE.to_vec();
    let settings = encode(&[Frame::Settings(Default::default())]).to_vec();
    let cases: Vec<(Vec<u8>, ErrorCode)> = vec![
        (b"GET / HTTP/1.1\r\n".to_vec(), ErrorCode::PROTOCOL_ERROR),
        (b"PLEX\r\n\x00\x02".to_vec(), ErrorCode::PROTOCOL_ERROR),
        (
            [preface.clone(), encode(&[Frame::SettingsAck]).to_vec()].concat(),
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            [preface.clone(), raw_header(20_000, 4, 0, 0)].concat(),
            ErrorCode::FRAME_SIZE_ERROR,
        ),
        (
            [preface.clone(), raw_header(5, 4, 0, 0), vec![0; 5]].concat(),
            ErrorCode::FRAME_SIZE_ERROR,
        ),
        (
            [
                preface.clone(),
                raw_header(6, 4, 0, 0),
                vec![0, 4, 0, 0, 0, 1],
            ]
            .concat(),
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            [preface.clone(), raw_header(0, 0x42, 0, 0)].concat(),
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            [preface.clone(), settings.clone(), raw_header(0, 0, 0, 0)].concat(),
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            [preface, settings, encode(&[open(2)]).to_vec()].concat(),
            ErrorCode::PROTOCOL_ERROR,
        ),
    ];
    for (wire, code) in cases {
        let (ev, frames) = early(&wire);
        assert!(closed_with(&ev).is_some(), "{ev:?}");
        // Our SETTINGS, possibly the SETTINGS ACK the peer earned, GOAWAY.
        assert!(
            matches!(frames.first(), Some(Frame::Settings(_))),
            "{wire:02x?}: {frames:?}"
        );
        assert!(
            matches!(frames.last(), Some(Frame::GoAway { code: c, .. }) if *c == code),
            "{wire:02x?}: {frames:?}"
        );
        assert!(frames[1..frames.len() - 1]
            .iter()
            .all(|f| matches!(f, Frame::SettingsAck)));
    }
}

#[test]
fn pings_within_the_budget_are_answered_before_the_flood_goaway() {
    let frames: Vec<Frame> = (0..1000u64)
        .map(|n| Frame::Ping {
            ack: false,
            payload: n.to_be_bytes(),
        })
        .collect();
    let (ev, sent) = attack(Config::default(), encode(&frames));
    assert_eq!(closed_with(&ev), Some(&ProtocolError::Flood(Flood::Pings)));
    let acks: Vec<u64> = sent
        .iter()
        .filter_map(|f| match f {
            Frame::Ping { ack: true, payload } => Some(u64::from_be_bytes(*payload)),
            _ => None,
        })
        .collect();
    assert_eq!(acks, (0..64).collect::<Vec<_>>(), "the 64 within budget");
    assert!(matches!(
        sent.last(),
        Some(Frame::GoAway {
            code: ErrorCode::ENHANCE_YOUR_CALM,
            ..
        })
    ));
}

#[test]
fn queued_refusals_stop_at_the_reply_bound_and_still_go_out() {
    // §11: 512 replies, and RST_STREAM up to MAX_CONCURRENT_STREAMS (100)
    // more: 612 replies wait, the next one is a flood. The handshake's
    // SETTINGS ACK is one of them.
    let config = Config {
        max_pending_accepts: 0,
        ..Config::default()
    };
    let frames: Vec<Frame> = (0..700u32).map(|n| open(2 * n + 1)).collect();
    let t0 = origin();
    let mut s = Session::server(config, t0).unwrap();
    s.handle_input(t0, raw_peer(&frames));
    let ev = drain(&mut s);
    assert_eq!(
        closed_with(&ev),
        Some(&ProtocolError::Flood(Flood::ControlQueue("RST_STREAM")))
    );
    let sent = sent_frames(&mut s, t0);
    let replies = sent
        .iter()
        .filter(|f| matches!(f, Frame::SettingsAck | Frame::RstStream { .. }))
        .count();
    assert_eq!(replies, 612, "{:?}", &sent[..3]);
    assert_eq!(goaway_code(&sent), Some(ErrorCode::ENHANCE_YOUR_CALM));
    assert!(matches!(sent.last(), Some(Frame::GoAway { .. })));
}

#[test]
fn debug_strings_name_what_happened() {
    let first_ack = ProtocolError::MissingSettings {
        ty: FrameType::Settings,
        ack: true,
    };
    assert_eq!(
        first_ack.to_string(),
        "first frame after the preface was SETTINGS ACK, not SETTINGS"
    );
    let unknown = ProtocolError::MissingSettings {
        ty: FrameType::Unknown(0x42),
        ack: true,
    };
    assert_eq!(
        unknown.to_string(),
        "first frame after the preface was unknown type 0x42, not SETTINGS"
    );
    let (ev, _) = early(
        &[
            crate::PREFACE.to_vec(),
            encode(&[Frame::SettingsAck]).to_vec(),
        ]
        .concat(),
    );
    assert_eq!(closed_with(&ev), Some(&first_ack));

    // A SETTINGS that raises INITIAL_WINDOW_SIZE past what stream 1's
    // window can hold names the setting and the stream.
    let settings = |window| {
        Frame::Settings(crate::SettingsFrame {
            initial_window_size: Some(window),
            ..Default::default()
        })
    };
    let wire = encode(&[
        open(1),
        Frame::WindowUpdate {
            stream: StreamId::new(1),
            increment: crate::MAX_WINDOW - 65_536,
        },
        settings(65_537),
    ]);
    let (ev, sent) = attack(Config::default(), wire);
    let error = ProtocolError::InitialWindowOverflow(StreamId::new(1));
    assert_eq!(closed_with(&ev), Some(&error));
    assert_eq!(
        error.to_string(),
        "SETTINGS INITIAL_WINDOW_SIZE overflows the send window of stream 1"
    );
    assert_eq!(goaway_code(&sent), Some(ErrorCode::FLOW_CONTROL_ERROR));
}

#[test]
fn close_and_reset_reasons_read_as_sentences() {
    use crate::{CloseReason, ResetReason};
    let cases: Vec<(String, &str)> = vec![
        (
            CloseReason::TransportClosed.to_string(),
            "the transport closed before the session ended",
        ),
        (
            CloseReason::Drained.to_string(),
            "the connection drained after a graceful GOAWAY",
        ),
        (
            CloseReason::IdleTimeout.to_string(),
            "nothing was received from the peer for the idle timeout",
        ),
        (
            CloseReason::Local(ErrorCode::INTERNAL_ERROR).to_string(),
            "we closed the connection with INTERNAL_ERROR",
        ),
        (
            CloseReason::Remote {
                code: ErrorCode::ENHANCE_YOUR_CALM,
                debug: Bytes::from_static(b"calm\n"),
            }
            .to_string(),
            "the peer closed the connection with ENHANCE_YOUR_CALM: \"calm\\n\"",
        ),
        (
            CloseReason::Remote {
                code: ErrorCode::new(0x42),
                debug: Bytes::new(),
            }
            .to_string(),
            "the peer closed the connection with ErrorCode(0x42)",
        ),
        (
            CloseReason::Violation(ProtocolError::Flood(Flood::Pings)).to_string(),
            "the peer broke the protocol (peer flooded: too many PING frames); \
             we closed the connection with ENHANCE_YOUR_CALM",
        ),
        (
            ResetReason::Remote(ErrorCode::CANCEL).to_string(),
            "the peer reset the stream with CANCEL",
        ),
        (
            ResetReason::Remote(ErrorCode::REFUSED_STREAM).to_string(),
            "the peer refused the stream (REFUSED_STREAM; safe to retry)",
        ),
        (
            ResetReason::Violation(ProtocolError::DataAfterEnd(StreamId::new(3))).to_string(),
            "the peer broke the protocol on the stream (DATA after END_STREAM on \
             stream 3); we reset it with STREAM_CLOSED",
        ),
        (
            ResetReason::GoneAway.to_string(),
            "the peer's GOAWAY says it never processed the stream (safe to retry)",
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
    // A long debug payload is cut.
    let long = CloseReason::Remote {
        code: ErrorCode::PROTOCOL_ERROR,
        debug: Bytes::from(vec![b'a'; 10_000]),
    };
    assert!(long.to_string().len() < 400);
}
