//! One scripted test per question SPEC.md answers explicitly (issue 7, §2):
//! each names the section it pins down.

use std::time::{Duration, Instant};

use super::hostile::{closed_with, encode, goaway_code, open, out, raw_header};
use super::*;
use crate::{CloseReason, ErrorCode, FrameType, ProtocolError, ResetReason};

/// A server that saw a valid preface, SETTINGS and a SETTINGS ACK from a
/// hand-made client, with its own output flushed.
fn handshake(config: Config) -> (Session, Instant) {
    let t0 = origin();
    let mut s = Session::server(config, t0).unwrap();
    s.handle_input(t0, raw_peer(&[Frame::SettingsAck]));
    out(&mut s, t0);
    drain(&mut s);
    (s, t0)
}

fn data(stream: u32, end_stream: bool, len: usize) -> Frame {
    Frame::Data {
        stream: StreamId::new(stream),
        end_stream,
        payload: Bytes::from(vec![b'x'; len]),
    }
}

fn updates(frames: &[Frame], stream: u32) -> Vec<u32> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::WindowUpdate {
                stream: s,
                increment,
            } if s.value() == stream => Some(*increment),
            _ => None,
        })
        .collect()
}

/// Runs `s`'s timers up to `until`.
fn run_timers(s: &mut Session, until: Instant) {
    while let Some(at) = s.poll_timeout().filter(|at| *at <= until) {
        s.handle_timeout(at);
    }
}

#[test]
fn s1_an_unknown_frame_type_first_is_a_protocol_error() {
    let t0 = origin();
    let mut s = Session::server(Config::default(), t0).unwrap();
    let wire = [crate::PREFACE.to_vec(), raw_header(0, 0x42, 0, 0)].concat();
    s.handle_input(t0, Bytes::from(wire));
    assert_eq!(
        closed_with(&drain(&mut s)),
        Some(&ProtocolError::MissingSettings {
            ty: FrameType::Unknown(0x42),
            ack: false
        })
    );
}

#[test]
fn s3_framing_checks_come_before_the_first_frame_rule_and_stream_state() {
    // A PING on stream 1 with 7 bytes, as the very first frame: the stream
    // id is checked before the length, and both before "first is SETTINGS".
    let t0 = origin();
    let mut s = Session::server(Config::default(), t0).unwrap();
    let wire = [crate::PREFACE.to_vec(), raw_header(7, 6, 0, 1), vec![0; 7]].concat();
    s.handle_input(t0, Bytes::from(wire));
    assert_eq!(
        closed_with(&drain(&mut s)),
        Some(&ProtocolError::BadStreamId {
            ty: FrameType::Ping,
            stream: StreamId::new(1)
        })
    );
    // DATA over both windows, and DATA over the connection window on an
    // idle stream: the connection window is checked first.
    let config = Config {
        connection_window: 65_536,
        max_connection_window: 65_536,
        max_frame_size: 1 << 20,
        ..Config::default()
    };
    for frames in [
        vec![open(1), data(1, false, 70_000)],
        vec![data(9, false, 70_000)],
    ] {
        let (mut s, t0) = handshake(config.clone());
        s.handle_input(t0, encode(&frames));
        let ev = drain(&mut s);
        assert_eq!(
            closed_with(&ev),
            Some(&ProtocolError::WindowExceeded(StreamId::CONNECTION))
        );
        assert_eq!(
            goaway_code(&out(&mut s, t0)),
            Some(ErrorCode::FLOW_CONTROL_ERROR)
        );
    }
}

#[test]
fn s4_ids_skipped_by_an_open_are_closed_not_idle() {
    let (mut s, t0) = handshake(Config::default());
    let three = StreamId::new(3);
    s.handle_input(
        t0,
        encode(&[
            open(1),
            open(5),
            data(3, false, 10),
            Frame::WindowUpdate {
                stream: three,
                increment: 1,
            },
            Frame::RstStream {
                stream: three,
                code: ErrorCode::CANCEL,
            },
        ]),
    );
    assert!(!s.is_closed());
    assert!(out(&mut s, t0).is_empty());
    // And it can no longer be opened.
    s.handle_input(t0, encode(&[open(3)]));
    assert_eq!(
        closed_with(&drain(&mut s)),
        Some(&ProtocolError::BadOpenId(three))
    );
}

#[test]
fn s4_data_on_a_stream_closed_by_end_stream_both_ways_is_ignored() {
    let (mut s, t0) = handshake(Config::default());
    let one = StreamId::new(1);
    s.handle_input(t0, encode(&[open(1), data(1, true, 3)]));
    s.accept(one, Bytes::new()).unwrap();
    s.finish(one).unwrap();
    out(&mut s, t0);
    drain(&mut s);
    // Closed on the wire; the application has not read the 3 bytes yet.
    s.handle_input(t0, encode(&[data(1, false, 5)]));
    assert!(drain(&mut s).is_empty(), "no reset, no event");
    assert!(out(&mut s, t0).is_empty(), "no RST_STREAM");
    let mut got = Vec::new();
    assert!(read_available(&mut s, one, &mut got));
    assert_eq!(got, b"xxx");
    // Forgotten now; still ignored.
    s.handle_input(t0, encode(&[data(1, false, 5)]));
    assert!(drain(&mut s).is_empty() && out(&mut s, t0).is_empty());
}

#[test]
fn s4_credit_of_ignored_data_returns_with_the_usual_batching() {
    let config = Config {
        connection_window: 65_536,
        max_connection_window: 65_536,
        ..Config::default()
    };
    let (mut s, t0) = handshake(config);
    s.handle_input(t0, encode(&[open(1)]));
    s.reset(StreamId::new(1), ErrorCode::CANCEL).unwrap();
    out(&mut s, t0);
    // 32,767 bytes: just under half the connection window, no update yet.
    s.handle_input(
        t0,
        encode(&[data(1, false, 16_384), data(1, false, 16_383)]),
    );
    assert!(updates(&out(&mut s, t0), 0).is_empty());
    s.handle_input(t0, encode(&[data(1, false, 1)]));
    assert_eq!(updates(&out(&mut s, t0), 0), vec![32_768]);
}

#[test]
fn s7_late_or_duplicate_open_acks() {
    let t0 = origin();
    let client = |frames: &[Frame]| {
        let mut c = Session::client(Config::default(), t0).unwrap();
        let id = c.open(OpenOptions::default()).unwrap();
        c.handle_input(t0, raw_peer(&[Frame::SettingsAck]));
        out(&mut c, t0);
        drain(&mut c);
        (c, id, encode(frames))
    };
    let ack = |id: u32| Frame::OpenAck {
        stream: StreamId::new(id),
        handshake: Bytes::new(),
    };
    // After we reset it: ignored.
    let (mut c, id, wire) = client(&[ack(1)]);
    c.reset(id, ErrorCode::CANCEL).unwrap();
    c.handle_input(t0, wire);
    assert!(drain(&mut c).is_empty() && !c.is_closed());
    // A duplicate while the stream is live: PROTOCOL_ERROR.
    let (mut c, id, wire) = client(&[ack(1), ack(1)]);
    c.handle_input(t0, wire);
    assert_eq!(
        closed_with(&drain(&mut c)),
        Some(&ProtocolError::UnexpectedOpenAck(id))
    );
    // A duplicate after END_STREAM crossed both ways: closed, ignored.
    let (mut c, id, wire) = client(&[ack(1), data(1, true, 0)]);
    c.finish(id).unwrap();
    out(&mut c, t0);
    c.handle_input(t0, wire);
    drain(&mut c);
    c.handle_input(t0, encode(&[ack(1)]));
    assert!(drain(&mut c).is_empty() && !c.is_closed());
}

#[test]
fn s6_settings_bind_from_sending_and_early_opens_are_refused() {
    // Our MAX_CONCURRENT_STREAMS of 1 applies before the peer has seen it:
    // its second open is refused, not punished.
    let config = Config {
        max_concurrent_streams: 1,
        ..Config::default()
    };
    let t0 = origin();
    let mut s = Session::server(config, t0).unwrap();
    s.handle_input(t0, raw_peer(&[open(1), open(3)]));
    let ev = drain(&mut s);
    assert!(closed_with(&ev).is_none());
    assert!(sent_frames(&mut s, t0).contains(&Frame::RstStream {
        stream: StreamId::new(3),
        code: ErrorCode::REFUSED_STREAM
    }));
}

#[test]
fn s8_data_that_causes_a_stream_error_still_uses_connection_credit() {
    let config = Config {
        connection_window: 65_536,
        max_connection_window: 65_536,
        ..Config::default()
    };
    let (mut s, t0) = handshake(config);
    s.handle_input(
        t0,
        encode(&[
            open(1),
            data(1, true, 1),
            data(1, false, 16_384),
            data(1, false, 16_383),
        ]),
    );
    let ev = drain(&mut s);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Reset {
            reason: ResetReason::Violation(ProtocolError::DataAfterEnd(_)),
            ..
        }
    )));
    // The reset returns the 1 unread byte, and the 32,767 bytes of the bad
    // frames were counted and consumed at once: half the window, together.
    assert_eq!(updates(&out(&mut s, t0), 0), vec![32_768]);
}

#[test]
fn s8_credit_returns_at_half_the_current_auto_tuned_window() {
    let config = Config {
        connection_window: 16 << 20,
        max_connection_window: 16 << 20,
        max_stream_window: 1 << 20,
        ..Config::default()
    };
    let t0 = origin();
    let mut s = Session::server(config, t0).unwrap();
    s.handle_input(t0, raw_peer(&[Frame::SettingsAck, open(1)]));
    out(&mut s, t0); // sends our first PING, token 0
    let one = StreamId::new(1);
    s.accept(one, Bytes::new()).unwrap();
    let t1 = t0 + Duration::from_millis(100);
    s.handle_input(
        t1,
        encode(&[Frame::Ping {
            ack: true,
            payload: [0; 8],
        }]),
    );
    assert_eq!(s.rtt(), Some(Duration::from_millis(100)));
    let mut sink = Vec::new();
    let mut feed = |s: &mut Session, at: Instant| {
        s.handle_input(
            at,
            encode(&[data(1, false, 16_384), data(1, false, 16_384)]),
        );
        read_available(s, one, &mut sink);
        updates(&out(s, at), 1)
    };
    // Half of 64 KiB within two RTTs: the window doubles to 128 KiB.
    assert_eq!(feed(&mut s, t1), vec![32_768 + 65_536]);
    // Half of the *initial* window again, but not half of the current one.
    let t2 = t0 + Duration::from_secs(10);
    assert_eq!(feed(&mut s, t2), Vec::<u32>::new());
    assert_eq!(feed(&mut s, t2), vec![65_536]);
}

#[test]
fn s9_after_a_graceful_goaway_both_sides_close_and_only_the_sender_sends_goaway() {
    let mut p = connected();
    let id = open_pair(&mut p, OpenOptions::default());
    p.server.go_away(ErrorCode::NO_ERROR).unwrap();
    assert!(p.drive());
    p.client.finish(id).unwrap();
    p.server.finish(id).unwrap();
    let client_frames = p.client.stats().frames_sent;
    assert!(p.drive());
    // The client sent only its END_STREAM after the GOAWAY: no GOAWAY.
    assert_eq!(p.client.stats().frames_sent, client_frames + 1);
    for s in [&mut p.client, &mut p.server] {
        assert_eq!(
            drain(s).last(),
            Some(&Event::Closed {
                reason: CloseReason::Drained
            })
        );
    }
}

#[test]
fn s9_goaway_last_id_counts_refused_streams_and_never_grows() {
    let config = Config {
        max_pending_accepts: 1,
        ..Config::default()
    };
    let (mut s, t0) = handshake(config);
    s.handle_input(t0, encode(&[open(1), open(3)])); // 3 is refused
    s.go_away(ErrorCode::NO_ERROR).unwrap();
    let last = |frames: &[Frame]| {
        frames.iter().find_map(|f| match f {
            Frame::GoAway { last_stream, .. } => Some(last_stream.value()),
            _ => None,
        })
    };
    assert_eq!(last(&out(&mut s, t0)), Some(3));
    // Opens after the GOAWAY are refused, and a later GOAWAY (here for a
    // connection error) does not raise the id.
    s.handle_input(t0, encode(&[open(5)]));
    s.handle_input(t0, Bytes::from(raw_header(0, 0, 0, 0)));
    let sent = out(&mut s, t0);
    assert_eq!(goaway_code(&sent), Some(ErrorCode::PROTOCOL_ERROR));
    assert_eq!(last(&sent), Some(3));
}

#[test]
fn s12_idle_timeout_closes_without_goaway() {
    let (mut s, t0) = handshake(Config::default());
    run_timers(&mut s, t0 + Duration::from_secs(91));
    assert_eq!(
        drain(&mut s).last(),
        Some(&Event::Closed {
            reason: CloseReason::IdleTimeout
        })
    );
    assert_eq!(goaway_code(&out(&mut s, t0)), None);
}

#[test]
fn s11_a_peer_within_the_minimum_budgets_is_never_punished() {
    // §11's minimums: PING 16 then 1/s, SETTINGS 4 then 1/s, empty DATA
    // 16 then 16/s, RST_STREAM 128 then 128/s; here for 60 s.
    let (mut s, t0) = handshake(Config::default());
    let ping = Frame::Ping {
        ack: false,
        payload: [9; 8],
    };
    let settings = Frame::Settings(Default::default());
    let empty = data(1, false, 0);
    let mut next_id = 3;
    let mut burst = |count_ping, count_settings, count_empty, count_rst| {
        let mut frames = vec![ping.clone(); count_ping];
        frames.extend(vec![settings.clone(); count_settings]);
        frames.extend(vec![empty.clone(); count_empty]);
        for _ in 0..count_rst {
            frames.push(open(next_id));
            frames.push(Frame::RstStream {
                stream: StreamId::new(next_id),
                code: ErrorCode::CANCEL,
            });
            next_id += 2;
        }
        encode(&frames)
    };
    s.handle_input(t0, encode(&[open(1)]));
    s.handle_input(t0, burst(16, 4, 16, 128));
    for second in 1..=60 {
        let now = t0 + Duration::from_secs(second);
        s.handle_input(now, burst(1, 1, 16, 128));
        out(&mut s, now);
        run_timers(&mut s, now);
        assert!(closed_with(&drain(&mut s)).is_none(), "at {second} s");
    }
    assert!(!s.is_closed());
}

#[test]
fn s12_a_slow_drip_of_one_frame_is_cut_at_the_frame_timeout() {
    let (mut s, t0) = handshake(Config::default());
    // One byte of a PING every 25 s: the idle timeout never fires.
    let mut wire = encode(&[Frame::Ping {
        ack: false,
        payload: [1; 8],
    }]);
    let mut now = t0;
    for _ in 0..4 {
        now += Duration::from_secs(25);
        run_timers(&mut s, now);
        if s.is_closed() {
            break;
        }
        s.handle_input(now, wire.split_to(1));
        out(&mut s, now);
    }
    let ev = drain(&mut s);
    assert_eq!(
        closed_with(&ev),
        Some(&ProtocolError::FrameTimeout),
        "{ev:?}"
    );
    // The first byte came at 25 s; the deadline was 30 s later.
    assert_eq!(now, t0 + Duration::from_secs(75));
}

#[test]
fn s12_frames_that_keep_completing_are_never_cut() {
    // Each frame takes 20 s (under the 30 s timeout), forever.
    let (mut s, t0) = handshake(Config::default());
    let mut now = t0;
    for _ in 0..20 {
        let mut wire = encode(&[Frame::Ping {
            ack: false,
            payload: [1; 8],
        }]);
        while !wire.is_empty() {
            now += Duration::from_secs(20) / 17;
            run_timers(&mut s, now);
            s.handle_input(now, wire.split_to(1));
            out(&mut s, now);
        }
    }
    assert!(closed_with(&drain(&mut s)).is_none());
    assert!(!s.is_closed());
    // A frame timeout below the minimum of §12 is refused.
    let short = Config {
        frame_timeout: Some(Duration::from_secs(5)),
        ..Config::default()
    };
    assert!(Session::server(short, t0).is_err());
}

#[test]
fn s4_a_settings_change_leaves_closed_streams_alone() {
    // Stream 1 is closed on the wire but keeps unread data; its send window
    // is at the maximum. A larger INITIAL_WINDOW_SIZE must not overflow it.
    let (mut s, t0) = handshake(Config::default());
    let one = StreamId::new(1);
    s.handle_input(
        t0,
        encode(&[
            open(1),
            Frame::WindowUpdate {
                stream: one,
                increment: crate::MAX_WINDOW - 65_536,
            },
            data(1, true, 3),
        ]),
    );
    s.accept(one, Bytes::new()).unwrap();
    s.finish(one).unwrap();
    out(&mut s, t0);
    drain(&mut s);
    s.handle_input(
        t0,
        encode(&[Frame::Settings(crate::SettingsFrame {
            initial_window_size: Some(65_537),
            ..Default::default()
        })]),
    );
    assert!(closed_with(&drain(&mut s)).is_none());
    let mut got = Vec::new();
    assert!(read_available(&mut s, one, &mut got));
    assert_eq!(got, b"xxx");
}
