//! A hostile or broken peer: every violation maps to its code and scope,
//! nothing panics, and every budget bounds what the peer can make us do.

use super::*;
use crate::{CloseReason, ErrorCode, Flood, FrameType, ProtocolError, Rate, ResetReason};

pub(super) fn open(id: u32) -> Frame {
    Frame::Open {
        stream: StreamId::new(id),
        protocol: Bytes::new(),
        id: Bytes::new(),
        handshake: Bytes::new(),
    }
}

pub(super) fn encode(frames: &[Frame]) -> Bytes {
    let mut wire = BytesMut::new();
    frames.iter().for_each(|f| f.encode(&mut wire));
    wire.freeze()
}

/// A server that has seen a valid preface and SETTINGS and flushed its output.
pub(super) fn server(config: Config) -> (Session, std::time::Instant) {
    let t0 = origin();
    let mut s = Session::server(config, t0).unwrap();
    s.handle_input(t0, raw_peer(&[]));
    sent_frames(&mut s, t0);
    drain(&mut s);
    (s, t0)
}

pub(super) fn out(s: &mut Session, now: std::time::Instant) -> Vec<Frame> {
    let mut decoder = crate::Decoder::new(crate::MAX_MAX_FRAME_SIZE);
    let mut frames = Vec::new();
    while let Some(t) = s.poll_transmit(now) {
        for mut b in [t.head, t.payload] {
            while let Some(f) = decoder.decode(&mut b).unwrap() {
                frames.push(f);
            }
        }
    }
    frames
}

pub(super) fn goaway_code(frames: &[Frame]) -> Option<ErrorCode> {
    frames.iter().find_map(|f| match f {
        Frame::GoAway { code, .. } => Some(*code),
        _ => None,
    })
}

/// Raw bytes after a valid handshake; returns the events and frames sent.
pub(super) fn attack(config: Config, wire: Bytes) -> (Vec<Event>, Vec<Frame>) {
    let (mut s, t0) = server(config);
    s.handle_input(t0, wire);
    (drain(&mut s), out(&mut s, t0))
}

pub(super) fn closed_with(ev: &[Event]) -> Option<&ProtocolError> {
    ev.iter().find_map(|e| match e {
        Event::Closed {
            reason: CloseReason::Violation(v),
        } => Some(v),
        _ => None,
    })
}

pub(super) fn raw_header(len: u32, ty: u8, flags: u8, stream: u32) -> Vec<u8> {
    let mut v = Vec::new();
    crate::FrameHeader {
        len,
        ty: FrameType::from_byte(ty),
        flags,
        stream: StreamId::new(stream),
    }
    .encode(&mut v);
    v
}

#[test]
fn every_connection_violation_maps_to_its_code() {
    let cases: Vec<(Bytes, ProtocolError, ErrorCode)> = vec![
        (
            Bytes::from(raw_header(20_000, 0, 0, 1)),
            ProtocolError::FrameTooLarge {
                len: 20_000,
                max: 16_384,
            },
            ErrorCode::FRAME_SIZE_ERROR,
        ),
        (
            Bytes::from([raw_header(3, 3, 0, 1), vec![0; 3]].concat()),
            ProtocolError::BadFrameSize {
                ty: FrameType::RstStream,
                len: 3,
            },
            ErrorCode::FRAME_SIZE_ERROR,
        ),
        (
            Bytes::from([raw_header(7, 6, 0, 0), vec![0; 7]].concat()),
            ProtocolError::BadFrameSize {
                ty: FrameType::Ping,
                len: 7,
            },
            ErrorCode::FRAME_SIZE_ERROR,
        ),
        (
            Bytes::from([raw_header(0, 0, 0, 0)].concat()),
            ProtocolError::BadStreamId {
                ty: FrameType::Data,
                stream: StreamId::CONNECTION,
            },
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            Bytes::from([raw_header(8, 6, 0, 5), vec![0; 8]].concat()),
            ProtocolError::BadStreamId {
                ty: FrameType::Ping,
                stream: StreamId::new(5),
            },
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            Bytes::from([raw_header(6, 4, 0, 0), vec![0, 5, 0, 0, 0, 1]].concat()),
            ProtocolError::InvalidSetting { id: 5, value: 1 },
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            Bytes::from([raw_header(3, 1, 0, 1), vec![5, b'a', b'b']].concat()),
            ProtocolError::MalformedOpen(StreamId::new(1)),
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            encode(&[open(2)]),
            ProtocolError::BadOpenId(StreamId::new(2)),
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            encode(&[open(5), open(3)]),
            ProtocolError::BadOpenId(StreamId::new(3)),
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            encode(&[open(1), open(1)]),
            ProtocolError::BadOpenId(StreamId::new(1)),
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            encode(&[Frame::Data {
                stream: StreamId::new(7),
                end_stream: false,
                payload: Bytes::from_static(b"x"),
            }]),
            ProtocolError::IdleStream {
                ty: FrameType::Data,
                stream: StreamId::new(7),
            },
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            encode(&[Frame::RstStream {
                stream: StreamId::new(9),
                code: ErrorCode::CANCEL,
            }]),
            ProtocolError::IdleStream {
                ty: FrameType::RstStream,
                stream: StreamId::new(9),
            },
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            encode(&[Frame::OpenAck {
                stream: StreamId::new(1),
                handshake: Bytes::new(),
            }]),
            ProtocolError::UnexpectedOpenAck(StreamId::new(1)),
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            encode(&[Frame::OpenAck {
                stream: StreamId::new(2),
                handshake: Bytes::new(),
            }]),
            ProtocolError::UnexpectedOpenAck(StreamId::new(2)),
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            encode(&[Frame::SettingsAck, Frame::SettingsAck]),
            ProtocolError::UnexpectedSettingsAck,
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            encode(&[Frame::WindowUpdate {
                stream: StreamId::CONNECTION,
                increment: 0,
            }]),
            ProtocolError::ZeroWindowIncrement(StreamId::CONNECTION),
            ErrorCode::PROTOCOL_ERROR,
        ),
    ];
    for (wire, error, code) in cases {
        let (ev, frames) = attack(Config::default(), wire);
        assert_eq!(closed_with(&ev), Some(&error), "{ev:?}");
        assert_eq!(error.code(), code);
        assert!(error.is_connection_error());
        assert_eq!(goaway_code(&frames), Some(code), "{error}: {frames:?}");
        // The GOAWAY is the last frame; nothing follows a connection error.
        assert!(matches!(frames.last(), Some(Frame::GoAway { .. })));
    }
}

#[test]
fn every_stream_violation_resets_only_that_stream() {
    let s1 = StreamId::new(1);
    let cases: Vec<(Vec<Frame>, ProtocolError, ErrorCode)> = vec![
        (
            vec![
                open(1),
                Frame::Data {
                    stream: s1,
                    end_stream: true,
                    payload: Bytes::from_static(b"a"),
                },
                Frame::Data {
                    stream: s1,
                    end_stream: false,
                    payload: Bytes::from_static(b"b"),
                },
            ],
            ProtocolError::DataAfterEnd(s1),
            ErrorCode::STREAM_CLOSED,
        ),
        (
            vec![
                open(1),
                Frame::WindowUpdate {
                    stream: s1,
                    increment: 0,
                },
            ],
            ProtocolError::ZeroWindowIncrement(s1),
            ErrorCode::PROTOCOL_ERROR,
        ),
        (
            vec![
                open(1),
                Frame::WindowUpdate {
                    stream: s1,
                    increment: crate::MAX_WINDOW,
                },
            ],
            ProtocolError::WindowOverflow(s1),
            ErrorCode::FLOW_CONTROL_ERROR,
        ),
    ];
    for (frames, error, code) in cases {
        let (ev, sent) = attack(Config::default(), encode(&frames));
        assert!(!error.is_connection_error());
        assert!(
            ev.contains(&Event::Reset {
                stream: s1,
                reason: ResetReason::Violation(error.clone())
            }),
            "{ev:?}"
        );
        assert!(closed_with(&ev).is_none());
        assert!(
            sent.contains(&Frame::RstStream { stream: s1, code }),
            "{sent:?}"
        );
        assert_eq!(goaway_code(&sent), None);
    }
}

#[test]
fn unknown_frame_types_and_flags_are_ignored() {
    let wire = Bytes::from(
        [
            raw_header(4, 0x42, 0xff, 0),
            vec![1, 2, 3, 4],
            raw_header(0, 0xee, 0, 77),
        ]
        .concat(),
    );
    let (ev, sent) = attack(Config::default(), wire);
    assert!(ev.is_empty(), "{ev:?}");
    assert!(sent.is_empty(), "{sent:?}");
}

#[test]
fn late_frames_for_a_reset_stream_are_ignored() {
    let (mut s, t0) = server(Config::default());
    s.handle_input(t0, encode(&[open(1)]));
    drain(&mut s);
    s.reset(StreamId::new(1), ErrorCode::CANCEL).unwrap();
    out(&mut s, t0);
    let before = s.stats().connection_window;
    s.handle_input(
        t0,
        encode(&[
            Frame::Data {
                stream: StreamId::new(1),
                end_stream: false,
                payload: Bytes::from(vec![0; 1000]),
            },
            Frame::WindowUpdate {
                stream: StreamId::new(1),
                increment: 10,
            },
            Frame::RstStream {
                stream: StreamId::new(1),
                code: ErrorCode::CANCEL,
            },
        ]),
    );
    assert!(drain(&mut s).is_empty());
    assert!(!s.is_closed());
    assert_eq!(s.stats().connection_window, before);
}

#[test]
fn open_backlog_is_bounded() {
    let c = Config {
        max_pending_accepts: 4,
        ..Config::default()
    };
    let frames: Vec<Frame> = (0..10).map(|n| open(2 * n + 1)).collect();
    let (ev, sent) = attack(c, encode(&frames));
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::Incoming { .. }))
            .count(),
        4
    );
    let refused = sent
        .iter()
        .filter(|f| {
            matches!(
                f,
                Frame::RstStream {
                    code: ErrorCode::REFUSED_STREAM,
                    ..
                }
            )
        })
        .count();
    assert_eq!(refused, 6);
}

#[test]
fn rapid_reset_gets_enhance_your_calm() {
    // CVE-2023-44487: open and cancel streams as fast as possible.
    let frames: Vec<Frame> = (0..2000u32)
        .flat_map(|n| {
            let id = 2 * n + 1;
            [
                open(id),
                Frame::RstStream {
                    stream: StreamId::new(id),
                    code: ErrorCode::CANCEL,
                },
            ]
        })
        .collect();
    let (ev, sent) = attack(Config::default(), encode(&frames));
    assert_eq!(closed_with(&ev), Some(&ProtocolError::Flood(Flood::Resets)));
    assert_eq!(goaway_code(&sent), Some(ErrorCode::ENHANCE_YOUR_CALM));
    let incoming = ev
        .iter()
        .filter(|e| matches!(e, Event::Incoming { .. }))
        .count();
    assert!(
        incoming <= 300,
        "{incoming} streams reached the application"
    );
}

#[test]
fn resets_at_a_sustainable_rate_are_fine() {
    let (mut s, t0) = server(Config::default());
    for n in 0..3000u32 {
        let id = 2 * n + 1;
        let now = t0 + std::time::Duration::from_millis(u64::from(n) * 5);
        s.handle_input(
            now,
            encode(&[
                open(id),
                Frame::RstStream {
                    stream: StreamId::new(id),
                    code: ErrorCode::CANCEL,
                },
            ]),
        );
        out(&mut s, now);
    }
    assert!(!s.is_closed());
}

#[test]
fn empty_data_flood_gets_enhance_your_calm() {
    let mut frames = vec![open(1)];
    frames.extend((0..1000).map(|_| Frame::Data {
        stream: StreamId::new(1),
        end_stream: false,
        payload: Bytes::new(),
    }));
    let (ev, sent) = attack(Config::default(), encode(&frames));
    assert_eq!(
        closed_with(&ev),
        Some(&ProtocolError::Flood(Flood::EmptyData))
    );
    assert_eq!(goaway_code(&sent), Some(ErrorCode::ENHANCE_YOUR_CALM));
}

#[test]
fn settings_flood_gets_enhance_your_calm() {
    let frames: Vec<Frame> = (0..1000)
        .map(|_| Frame::Settings(Default::default()))
        .collect();
    let (ev, sent) = attack(Config::default(), encode(&frames));
    assert_eq!(
        closed_with(&ev),
        Some(&ProtocolError::Flood(Flood::Settings))
    );
    assert_eq!(goaway_code(&sent), Some(ErrorCode::ENHANCE_YOUR_CALM));
    // The 31 SETTINGS within the budget (32, one spent on the handshake)
    // are still acknowledged, before the GOAWAY (§10).
    let acks = sent.iter().filter(|f| matches!(f, Frame::SettingsAck));
    assert_eq!(acks.count(), 31);
    assert!(matches!(sent.last(), Some(Frame::GoAway { .. })));
}

#[test]
fn ping_flood_gets_enhance_your_calm() {
    let frames: Vec<Frame> = (0..1000)
        .map(|_| Frame::Ping {
            ack: false,
            payload: [1; 8],
        })
        .collect();
    let (ev, sent) = attack(Config::default(), encode(&frames));
    assert_eq!(closed_with(&ev), Some(&ProtocolError::Flood(Flood::Pings)));
    assert_eq!(goaway_code(&sent), Some(ErrorCode::ENHANCE_YOUR_CALM));
}

/// A config whose rate budgets never run out, to test the queue bounds alone.
fn unmetered(max_queued_replies: u32) -> Config {
    let lots = Rate::new(1_000_000, 1_000_000);
    Config {
        limits: crate::FloodLimits {
            pings: lots,
            settings: lots,
            resets: lots,
            max_queued_replies,
            ..Default::default()
        },
        max_pending_accepts: 0,
        ..Config::default()
    }
}

#[test]
fn pong_queue_is_bounded_when_the_peer_does_not_read() {
    let frames: Vec<Frame> = (0..9)
        .map(|_| Frame::Ping {
            ack: false,
            payload: [2; 8],
        })
        .collect();
    let (ev, sent) = attack(unmetered(8), encode(&frames));
    assert_eq!(
        closed_with(&ev),
        Some(&ProtocolError::Flood(Flood::ControlQueue("PING ACK")))
    );
    assert_eq!(goaway_code(&sent), Some(ErrorCode::ENHANCE_YOUR_CALM));
    // Eight answered pings in one go are fine.
    let (ev, sent) = attack(unmetered(8), encode(&frames[..8]));
    assert!(ev.is_empty());
    assert_eq!(
        sent.iter()
            .filter(|f| matches!(f, Frame::Ping { ack: true, .. }))
            .count(),
        8
    );
}

#[test]
fn settings_ack_queue_is_bounded() {
    let frames: Vec<Frame> = (0..9)
        .map(|_| Frame::Settings(Default::default()))
        .collect();
    let (ev, _) = attack(unmetered(8), encode(&frames));
    assert_eq!(
        closed_with(&ev),
        Some(&ProtocolError::Flood(Flood::ControlQueue("SETTINGS ACK")))
    );
}

#[test]
fn rst_queue_is_bounded() {
    // Every open is refused (no backlog), and each refusal queues an RST:
    // up to the reply limit plus one per stream the peer may have open.
    let mut config = unmetered(8);
    config.max_concurrent_streams = 1;
    let frames: Vec<Frame> = (0..10u32).map(|n| open(2 * n + 1)).collect();
    let (ev, sent) = attack(config.clone(), encode(&frames[..9]));
    assert!(closed_with(&ev).is_none(), "{ev:?}");
    assert_eq!(sent.len(), 9);
    let (ev, _) = attack(config, encode(&frames));
    assert_eq!(
        closed_with(&ev),
        Some(&ProtocolError::Flood(Flood::ControlQueue("RST_STREAM")))
    );
}

#[test]
fn a_burst_of_opens_within_the_stream_limit_is_refused_not_punished() {
    // Found by the mux benchmark: 20,000 allowed streams, a backlog of 128,
    // and a peer that opens them all before reading anything.
    let config = Config {
        max_concurrent_streams: 20_000,
        ..Config::default()
    };
    let frames: Vec<Frame> = (0..20_000u32).map(|n| open(2 * n + 1)).collect();
    let (ev, sent) = attack(config, encode(&frames));
    assert!(closed_with(&ev).is_none());
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::Incoming { .. }))
            .count(),
        128
    );
    let refused = sent.iter().filter(|f| {
        matches!(
            f,
            Frame::RstStream {
                code: ErrorCode::REFUSED_STREAM,
                ..
            }
        )
    });
    assert_eq!(refused.count(), 20_000 - 128);
}

#[test]
fn oversized_frame_fails_before_buffering() {
    let (mut s, t0) = server(Config::default());
    // Only the header of a frame announcing 10 MiB.
    s.handle_input(t0, Bytes::from(raw_header(10 << 20, 0, 0, 1)));
    assert_eq!(
        closed_with(&drain(&mut s)),
        Some(&ProtocolError::FrameTooLarge {
            len: 10 << 20,
            max: 16_384
        })
    );
}

#[test]
fn garbage_after_the_handshake_never_panics() {
    // A deterministic sweep; the fuzz targets go much further.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        let mut junk = vec![0u8; 64];
        for b in &mut junk {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        // Keep lengths small so most headers parse and payloads are exercised.
        junk[0] = 0;
        junk[1] = 0;
        let (_ev, _sent) = attack(Config::default(), Bytes::from(junk));
    }
}

#[test]
fn data_before_open_ack_is_a_protocol_error() {
    let t0 = origin();
    let mut s = Session::client(Config::default(), t0).unwrap();
    let id = s.open(OpenOptions::default()).unwrap();
    s.handle_input(
        t0,
        raw_peer(&[Frame::Data {
            stream: id,
            end_stream: false,
            payload: Bytes::from_static(b"early"),
        }]),
    );
    assert_eq!(
        closed_with(&drain(&mut s)),
        Some(&ProtocolError::DataBeforeAck(id))
    );
    assert!(matches!(
        sent_frames(&mut s, t0).last(),
        Some(Frame::GoAway {
            code: ErrorCode::PROTOCOL_ERROR,
            ..
        })
    ));
}

#[test]
fn resets_the_peer_makes_us_send_are_budgeted() {
    // "MadeYouReset": each OPEN + WINDOW_UPDATE(0) is a stream error that
    // makes us send RST_STREAM. 20,000 cycles at one instant, with the peer
    // reading everything (so the reply queue never fills).
    let (mut s, t0) = server(Config::default());
    let mut resets = 0;
    for n in 0..20_000u32 {
        let id = StreamId::new(2 * n + 1);
        let wire = encode(&[
            open(id.value()),
            Frame::WindowUpdate {
                stream: id,
                increment: 0,
            },
        ]);
        s.handle_input(t0, wire);
        let sent = out(&mut s, t0);
        resets += sent
            .iter()
            .filter(|f| matches!(f, Frame::RstStream { .. }))
            .count();
        if s.is_closed() {
            assert_eq!(goaway_code(&sent), Some(ErrorCode::ENHANCE_YOUR_CALM));
            break;
        }
    }
    assert!(s.is_closed(), "{resets} resets and still open");
    assert_eq!(resets, 256, "the burst of FloodLimits::local_resets");
    let ev = drain(&mut s);
    assert_eq!(
        closed_with(&ev),
        Some(&ProtocolError::Flood(Flood::LocalResets))
    );
}

#[test]
fn stream_errors_at_a_sustainable_rate_are_fine() {
    let (mut s, t0) = server(Config::default());
    for n in 0..3000u32 {
        let id = StreamId::new(2 * n + 1);
        let now = t0 + std::time::Duration::from_millis(u64::from(n) * 5);
        let wire = encode(&[
            open(id.value()),
            Frame::WindowUpdate {
                stream: id,
                increment: 0,
            },
        ]);
        s.handle_input(now, wire);
        out(&mut s, now);
        drain(&mut s);
    }
    assert!(!s.is_closed());
}
