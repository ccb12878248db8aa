use std::time::Duration;

use super::*;
use crate::{CloseReason, ErrorCode, LocalError, ProtocolError, ResetReason};

#[test]
fn ping_reports_the_round_trip_time() {
    let mut p = pair().with_latency(Duration::from_millis(20));
    assert!(p.drive());
    drain(&mut p.client);
    p.client.ping().unwrap();
    assert!(p.drive());
    assert_eq!(
        drain(&mut p.client),
        vec![Event::Pong {
            rtt: Duration::from_millis(40)
        }]
    );
    assert_eq!(p.client.stats().last_rtt, Some(Duration::from_millis(40)));
}

#[test]
fn pings_in_flight_are_bounded() {
    let mut p = connected();
    p.partition();
    let sent = (0..100).take_while(|_| p.client.ping().is_ok()).count();
    assert_eq!(sent, 16);
    assert_eq!(p.client.ping(), Err(LocalError::PingsInFlight));
}

#[test]
fn keep_alive_pings_a_quiet_peer_and_keeps_the_connection() {
    let mut p = connected();
    let deadline = p.client.poll_timeout().unwrap();
    assert_eq!(deadline, p.now() + Duration::from_secs(30));
    let frames_before = p.client.stats().frames_sent;
    // Ten quiet minutes: keep-alives flow, nobody times out.
    assert!(p.advance(Duration::from_secs(600)));
    assert!(!p.client.is_closed() && !p.server.is_closed());
    assert!(p.client.stats().frames_sent >= frames_before + 10);
    assert!(drain(&mut p.client)
        .iter()
        .any(|e| matches!(e, Event::Pong { .. })));
}

#[test]
fn keep_alive_closes_a_dead_peer_after_the_idle_timeout() {
    let mut p = connected();
    let id = open_pair(&mut p, OpenOptions::default());
    events(&mut p.client);
    p.partition();
    let start = p.now();
    assert!(p.advance(Duration::from_secs(89)));
    assert!(!p.client.is_closed());
    assert!(p.advance(Duration::from_secs(2)));
    assert_eq!(
        drain(&mut p.client).last(),
        Some(&Event::Closed {
            reason: CloseReason::IdleTimeout
        })
    );
    assert_eq!(p.client.poll_timeout(), None);
    assert_eq!(
        p.client.write(id, b"x"),
        Err(crate::WriteError::Local(LocalError::Closed))
    );
    assert!(p.now() - start >= Duration::from_secs(90));
}

#[test]
fn goaway_lets_active_streams_finish_and_refuses_new_ones() {
    let mut p = connected();
    let active = open_pair(&mut p, OpenOptions::default());
    p.client.write(active, b"in flight").unwrap();
    p.server.go_away(ErrorCode::NO_ERROR).unwrap();
    // A stream the server has not seen yet crosses the GOAWAY.
    let late = p.client.open(OpenOptions::default()).unwrap();
    assert!(p.drive());
    let ev = events(&mut p.client);
    assert!(
        ev.contains(&Event::GoAway {
            last_stream: active,
            code: ErrorCode::NO_ERROR,
            debug: Bytes::new(),
        }),
        "{ev:?}"
    );
    assert!(
        ev.contains(&Event::Reset {
            stream: late,
            reason: ResetReason::GoneAway
        }),
        "{ev:?}"
    );
    assert_eq!(
        p.client.open(OpenOptions::default()),
        Err(LocalError::GoingAway)
    );
    assert_eq!(
        p.server.open(OpenOptions::default()),
        Err(LocalError::GoingAway)
    );
    // The active stream still works both ways.
    let mut got = Vec::new();
    read_available(&mut p.server, active, &mut got);
    assert_eq!(got, b"in flight");
    p.server.write(active, b"reply").unwrap();
    p.server.finish(active).unwrap();
    p.client.finish(active).unwrap();
    assert!(p.drive());
    got.clear();
    assert!(read_available(&mut p.client, active, &mut got));
    assert_eq!(got, b"reply");
    assert!(read_available(&mut p.server, active, &mut got));
    let closed = |ev: Vec<Event>| {
        ev.contains(&Event::Closed {
            reason: CloseReason::Drained,
        })
    };
    assert!(closed(events(&mut p.client)));
    assert!(closed(events(&mut p.server)));
}

#[test]
fn goaway_with_an_error_closes_both_sides_at_once() {
    let mut p = connected();
    let id = open_pair(&mut p, OpenOptions::default());
    p.client.go_away(ErrorCode::INTERNAL_ERROR).unwrap();
    assert!(p.client.is_closed());
    assert!(events(&mut p.client).contains(&Event::Closed {
        reason: CloseReason::Local(ErrorCode::INTERNAL_ERROR)
    }));
    assert!(p.drive());
    let ev = events(&mut p.server);
    assert!(
        ev.contains(&Event::Closed {
            reason: CloseReason::Remote {
                code: ErrorCode::INTERNAL_ERROR,
                debug: Bytes::new()
            },
        }),
        "{ev:?}"
    );
    assert_eq!(
        p.server.write(id, b"x"),
        Err(crate::WriteError::Local(LocalError::Closed))
    );
}

#[test]
fn transport_eof_fails_everything() {
    let mut p = connected();
    let id = open_pair(&mut p, OpenOptions::default());
    events(&mut p.client);
    let now = p.now();
    p.client.handle_eof(now);
    assert_eq!(
        events(&mut p.client),
        vec![Event::Closed {
            reason: CloseReason::TransportClosed
        }]
    );
    assert_eq!(
        p.client.read(id, &mut [0; 4]),
        Err(crate::ReadError::Local(LocalError::UnknownStream(id)))
    );
    assert_eq!(
        p.client.open(OpenOptions::default()),
        Err(LocalError::Closed)
    );
}

#[test]
fn a_response_that_fully_arrived_stays_readable_after_the_close() {
    // Closed by the transport's EOF, then by the peer's error GOAWAY.
    for by_goaway in [false, true] {
        let mut p = connected();
        let done = open_pair(&mut p, OpenOptions::default());
        let open = open_pair(&mut p, OpenOptions::default());
        let response = vec![7u8; 50_000];
        assert_eq!(p.server.write(done, &response), Ok(response.len()));
        p.server.finish(done).unwrap();
        assert_eq!(p.server.write(open, b"partial"), Ok(7));
        assert!(p.drive());
        if by_goaway {
            p.server.go_away(ErrorCode::INTERNAL_ERROR).unwrap();
            assert!(p.drive());
        } else {
            let now = p.now();
            p.client.handle_eof(now);
        }
        assert!(p.client.is_closed());
        // Everything the finished stream will ever get is here: readable.
        let mut got = Vec::new();
        assert!(read_available(&mut p.client, done, &mut got));
        assert!(got == response, "{} of 50000 bytes", got.len());
        // Read to its end, it is forgotten; nothing went out for it.
        assert_eq!(
            p.client.read(done, &mut [0; 4]),
            Err(crate::ReadError::Local(LocalError::UnknownStream(done)))
        );
        assert_eq!(p.client.poll_transmit(p.now()), None);
        // A stream still open at the close fails, its partial data dropped.
        assert_eq!(
            p.client.read(open, &mut [0; 4]),
            Err(crate::ReadError::Local(LocalError::UnknownStream(open)))
        );
        assert_eq!(p.client.stats().active_streams, 0);
    }
}

#[test]
fn unacknowledged_settings_time_out() {
    let t0 = origin();
    let mut s = Session::client(Config::default(), t0).unwrap();
    // The peer sends its preface and SETTINGS but never acknowledges ours.
    s.handle_input(t0, raw_peer(&[]));
    let deadline = s.poll_timeout().unwrap();
    assert_eq!(deadline, t0 + Duration::from_secs(10));
    s.handle_timeout(deadline);
    assert!(drain(&mut s).contains(&Event::Closed {
        reason: CloseReason::Violation(ProtocolError::SettingsTimeout),
    }));
    assert!(matches!(
        sent_frames(&mut s, deadline).last(),
        Some(Frame::GoAway {
            code: ErrorCode::SETTINGS_TIMEOUT,
            ..
        })
    ));
}

#[test]
fn settings_ack_stops_the_settings_timer() {
    let p = connected();
    // Only keep-alive and idle deadlines remain, both far off.
    assert!(p.client.poll_timeout().unwrap() >= p.now() + Duration::from_secs(30));
}

fn feed_server(bytes: &[u8]) -> Vec<Event> {
    let t0 = origin();
    let mut s = Session::server(Config::default(), t0).unwrap();
    s.handle_input(t0, Bytes::copy_from_slice(bytes));
    drain(&mut s)
}

#[test]
fn a_peer_that_is_not_plex_fails_fast() {
    let ev = feed_server(b"GET / HTTP/1.1\r\n");
    assert_eq!(
        ev,
        vec![Event::Closed {
            reason: CloseReason::Violation(ProtocolError::NotPlex)
        }]
    );
    // Even one wrong byte is enough.
    assert_eq!(feed_server(b"X"), ev);
}

#[test]
fn a_peer_of_another_version_gets_a_clear_error() {
    let ev = feed_server(b"PLEX\r\n\x00\x02");
    assert_eq!(
        ev,
        vec![Event::Closed {
            reason: CloseReason::Violation(ProtocolError::UnsupportedVersion(2))
        }]
    );
}

#[test]
fn the_first_frame_must_be_settings() {
    let mut wire = BytesMut::from(&crate::PREFACE[..]);
    Frame::Ping {
        ack: false,
        payload: [0; 8],
    }
    .encode(&mut wire);
    assert_eq!(
        feed_server(&wire),
        vec![Event::Closed {
            reason: CloseReason::Violation(ProtocolError::MissingSettings {
                ty: crate::FrameType::Ping,
                ack: false
            }),
        }]
    );
}

#[test]
fn bad_config_values_are_refused() {
    let bad = Config {
        max_frame_size: 1000,
        ..Config::default()
    };
    assert!(Session::client(bad, origin()).is_err());
    let bad = Config {
        initial_window: 1,
        ..Config::default()
    };
    assert!(Session::client(bad, origin()).is_err());
    let bad = Config {
        idle_timeout: Some(Duration::ZERO),
        ..Config::default()
    };
    assert!(Session::client(bad, origin()).is_err());
}

#[test]
fn closed_is_the_last_event_even_when_a_goaway_resets_the_last_stream() {
    // Found by the `session` fuzz target: a GOAWAY that refuses our only
    // stream drains the session; its Reset must come before Closed.
    let t0 = origin();
    let mut s = Session::server(Config::default(), t0).unwrap();
    let id = s.open(OpenOptions::default()).unwrap();
    s.handle_input(
        t0,
        raw_peer(&[Frame::GoAway {
            last_stream: StreamId::CONNECTION,
            code: ErrorCode::NO_ERROR,
            debug: Bytes::new(),
        }]),
    );
    let ev = events(&mut s);
    assert_eq!(
        ev[ev.len() - 2..],
        [
            Event::Reset {
                stream: id,
                reason: ResetReason::GoneAway
            },
            Event::Closed {
                reason: CloseReason::Drained
            },
        ]
    );
}
