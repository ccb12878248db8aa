use std::time::Duration;

use super::*;
use crate::ErrorCode;

#[test]
fn handshake_settles_and_measures_rtt() {
    let mut p = pair();
    assert!(p.drive());
    assert!(matches!(
        drain(&mut p.client).as_slice(),
        [Event::Pong { .. }]
    ));
    assert!(p.client.rtt().is_some());
    assert!(!p.client.is_closed() && !p.server.is_closed());
}

#[test]
fn named_open_with_handshakes_then_data_both_ways() {
    let mut p = connected();
    let opts = OpenOptions::new("echo", "chan-1").handshake("hi server");
    let id = p.client.open(opts).unwrap();
    p.client.write(id, b"hello").unwrap();
    p.client.finish(id).unwrap();
    assert!(p.drive());
    let ev = events(&mut p.server);
    assert_eq!(
        ev,
        vec![Event::Incoming {
            stream: id,
            protocol: Bytes::from_static(b"echo"),
            id: Bytes::from_static(b"chan-1"),
            handshake: Bytes::from_static(b"hi server"),
        }]
    );
    p.server.accept(id, "hi client").unwrap();
    let ev = events(&mut p.server);
    assert_eq!(
        ev,
        vec![
            Event::RemoteOpen {
                stream: id,
                handshake: Bytes::from_static(b"hi server")
            },
            Event::Readable { stream: id },
            Event::Finished { stream: id },
        ]
    );
    let mut got = Vec::new();
    assert!(read_available(&mut p.server, id, &mut got));
    assert_eq!(got, b"hello");
    p.server.write(id, b"world").unwrap();
    p.server.finish(id).unwrap();
    assert!(p.drive());
    let ev = events(&mut p.client);
    assert_eq!(
        ev,
        vec![
            Event::RemoteOpen {
                stream: id,
                handshake: Bytes::from_static(b"hi client")
            },
            Event::Readable { stream: id },
            Event::Finished { stream: id },
        ]
    );
    let mut got = Vec::new();
    assert!(read_available(&mut p.client, id, &mut got));
    assert_eq!(got, b"world");
    assert_eq!(p.client.stats().active_streams, 0);
    assert_eq!(p.server.stats().active_streams, 0);
    let _ = ErrorCode::NO_ERROR;
}

#[test]
fn ids_are_odd_for_client_even_for_server_and_increase() {
    let mut p = connected();
    let c: Vec<u32> = (0..3)
        .map(|_| p.client.open(OpenOptions::default()).unwrap().value())
        .collect();
    let s: Vec<u32> = (0..3)
        .map(|_| p.server.open(OpenOptions::default()).unwrap().value())
        .collect();
    assert_eq!(c, [1, 3, 5]);
    assert_eq!(s, [2, 4, 6]);
}

#[test]
fn data_written_before_remote_open_arrives_in_order() {
    let mut p = connected();
    let id = p.client.open(OpenOptions::new("log", "a")).unwrap();
    let mut sent = Vec::new();
    for i in 0..50u8 {
        let chunk = vec![i; 1000];
        assert_eq!(p.client.write(id, &chunk), Ok(1000));
        sent.extend_from_slice(&chunk);
        p.step();
    }
    p.client.finish(id).unwrap();
    assert!(p.drive());
    // Everything is buffered on the server but not yet visible.
    assert!(matches!(
        events(&mut p.server).as_slice(),
        [Event::Incoming { .. }]
    ));
    assert!(matches!(
        p.server.read(id, &mut [0; 8]),
        Err(ReadError::Local(crate::LocalError::NotAccepted(_)))
    ));
    p.server.accept(id, Bytes::new()).unwrap();
    let mut got = Vec::new();
    assert!(read_available(&mut p.server, id, &mut got));
    assert_eq!(got, sent);
}

#[test]
fn refused_stream_drops_buffered_data_and_resets_opener() {
    let mut p = connected();
    let id = p.client.open(OpenOptions::new("x", "y")).unwrap();
    p.client.write(id, &[7; 30_000]).unwrap();
    assert!(p.drive());
    assert!(matches!(
        events(&mut p.server).as_slice(),
        [Event::Incoming { .. }]
    ));
    let before = p.server.stats().connection_window;
    p.server.refuse(id).unwrap();
    assert!(p.drive());
    assert_eq!(
        events(&mut p.client),
        vec![Event::Reset {
            stream: id,
            reason: crate::ResetReason::Remote(ErrorCode::REFUSED_STREAM)
        }]
    );
    assert_eq!(p.server.stats().active_streams, 0);
    assert_eq!(p.server.stats().connection_window, before);
    assert!(matches!(
        p.client.write(id, b"x"),
        Err(crate::WriteError::Local(crate::LocalError::UnknownStream(
            _
        )))
    ));
    // The refused data gave the connection credit back: a new stream flows.
    let id2 = open_pair(&mut p, OpenOptions::default());
    p.client.write(id2, &[1; 60_000]).unwrap();
    assert!(p.drive());
    let mut got = Vec::new();
    read_available(&mut p.server, id2, &mut got);
    assert_eq!(got.len(), 60_000);
}

#[test]
fn listen_pairs_only_matching_streams_when_accept_any_is_off() {
    let mut p = connected();
    p.server.set_accept_any(false);
    p.server.listen("rpc", "node-7");
    let good = p
        .client
        .open(OpenOptions::new("rpc", "node-7").handshake("v1"))
        .unwrap();
    let bad = p.client.open(OpenOptions::new("rpc", "node-8")).unwrap();
    assert!(p.drive());
    let ev = events(&mut p.server);
    assert!(
        matches!(ev.as_slice(), [Event::Incoming { stream, .. }] if *stream == good),
        "{ev:?}"
    );
    assert_eq!(
        events(&mut p.client),
        vec![Event::Reset {
            stream: bad,
            reason: crate::ResetReason::Remote(ErrorCode::REFUSED_STREAM)
        }]
    );
    p.server.unlisten(b"rpc", b"node-7");
    let again = p.client.open(OpenOptions::new("rpc", "node-7")).unwrap();
    assert!(p.drive());
    assert!(events(&mut p.server).is_empty());
    assert!(
        matches!(events(&mut p.client).as_slice(), [Event::Reset { stream, .. }] if *stream == again)
    );
}

#[test]
fn an_open_waits_for_a_listener_within_the_claim_grace() {
    let mut p = connected();
    p.server.set_accept_any(false);
    p.server.set_claim_grace(Some(Duration::from_secs(1)));
    // The peer opens and writes before this side listens.
    let early = p.client.open(OpenOptions::new("rpc", "late")).unwrap();
    p.client.write(early, b"hello").unwrap();
    p.client.finish(early).unwrap();
    assert!(p.drive());
    assert!(events(&mut p.server).is_empty(), "nobody listens yet");
    assert!(
        events(&mut p.client).is_empty(),
        "not refused within the grace"
    );
    assert!(p.advance(Duration::from_millis(500)));
    p.server.listen("rpc", "late");
    let ev = events(&mut p.server);
    assert!(
        matches!(ev.as_slice(), [Event::Incoming { stream, .. }] if *stream == early),
        "{ev:?}"
    );
    p.server.accept(early, "").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(p.server.read(early, &mut buf).unwrap(), Some(5));
    assert_eq!(&buf[..5], b"hello");
    // Past the grace nothing is refused: it was claimed.
    p.advance(Duration::from_secs(2));
    assert!(events(&mut p.client)
        .iter()
        .all(|e| !matches!(e, Event::Reset { .. })));
}

#[test]
fn an_open_nobody_claims_is_refused_when_the_grace_ends() {
    let mut p = connected();
    p.server.set_accept_any(false);
    p.server.set_claim_grace(Some(Duration::from_secs(1)));
    let start = p.now();
    let orphan = p.client.open(OpenOptions::new("rpc", "nobody")).unwrap();
    assert!(p.drive());
    assert!(p.server.poll_timeout() <= Some(start + Duration::from_secs(1)));
    p.advance(Duration::from_millis(999));
    assert!(events(&mut p.client).is_empty());
    p.advance(Duration::from_millis(2));
    assert_eq!(
        events(&mut p.client),
        vec![Event::Reset {
            stream: orphan,
            reason: crate::ResetReason::Remote(ErrorCode::REFUSED_STREAM)
        }]
    );
    assert_eq!(p.server.stats().active_streams, 0);
    // A listener made later does not see it.
    p.server.listen("rpc", "nobody");
    assert!(events(&mut p.server).is_empty());
}

#[test]
fn a_parked_open_reset_by_the_peer_is_forgotten() {
    let mut p = connected();
    p.server.set_accept_any(false);
    p.server.set_claim_grace(Some(Duration::from_secs(1)));
    let gone = p.client.open(OpenOptions::new("rpc", "x")).unwrap();
    assert!(p.drive());
    p.client.reset(gone, ErrorCode::CANCEL).unwrap();
    assert!(p.drive());
    p.server.listen("rpc", "x");
    assert!(events(&mut p.server)
        .iter()
        .all(|e| !matches!(e, Event::Incoming { .. })));
    assert_eq!(p.server.stats().active_streams, 0);
    // Turning the grace off refuses what still waits.
    let waiting = p.client.open(OpenOptions::new("rpc", "y")).unwrap();
    assert!(p.drive());
    p.server.set_claim_grace(None);
    assert!(p.drive());
    assert!(events(&mut p.client).contains(&Event::Reset {
        stream: waiting,
        reason: crate::ResetReason::Remote(ErrorCode::REFUSED_STREAM)
    }));
}

#[test]
fn remote_open_fires_once_per_side() {
    let mut p = connected();
    let id = p
        .client
        .open(OpenOptions::new("p", "i").handshake("c"))
        .unwrap();
    assert!(p.drive());
    events(&mut p.server);
    p.server.accept(id, "s").unwrap();
    assert!(p.drive());
    let count = |ev: Vec<Event>| {
        ev.iter()
            .filter(|e| matches!(e, Event::RemoteOpen { .. }))
            .count()
    };
    assert_eq!(count(events(&mut p.server)), 1);
    assert_eq!(count(events(&mut p.client)), 1);
    p.client.write(id, b"more").unwrap();
    p.server.write(id, b"more").unwrap();
    assert!(p.drive());
    assert_eq!(count(events(&mut p.server)), 0);
    assert_eq!(count(events(&mut p.client)), 0);
}

#[test]
fn half_close_each_direction_independently() {
    let mut p = connected();
    let id = open_pair(&mut p, OpenOptions::default());
    events(&mut p.client);
    p.client.finish(id).unwrap();
    assert!(p.drive());
    let mut got = Vec::new();
    assert!(read_available(&mut p.server, id, &mut got));
    // The server can still send after the client finished.
    p.server.write(id, b"late reply").unwrap();
    assert!(p.drive());
    got.clear();
    assert!(!read_available(&mut p.client, id, &mut got));
    assert_eq!(got, b"late reply");
    assert_eq!(p.client.stats().active_streams, 1);
    p.server.finish(id).unwrap();
    assert!(p.drive());
    assert!(read_available(&mut p.client, id, &mut got));
    assert_eq!(
        (
            p.client.stats().active_streams,
            p.server.stats().active_streams
        ),
        (0, 0)
    );
}

#[test]
fn reset_carries_its_code_and_drops_the_stream() {
    let mut p = connected();
    let id = open_pair(&mut p, OpenOptions::default());
    events(&mut p.server);
    p.server.write(id, &[1; 1000]).unwrap();
    assert!(p.drive());
    p.client.reset(id, ErrorCode::CANCEL).unwrap();
    assert!(p.drive());
    assert_eq!(
        events(&mut p.server),
        vec![Event::Reset {
            stream: id,
            reason: crate::ResetReason::Remote(ErrorCode::CANCEL)
        }]
    );
    assert_eq!(
        (
            p.client.stats().active_streams,
            p.server.stats().active_streams
        ),
        (0, 0)
    );
    // The client's unread 1000 bytes went back to the connection window.
    assert!(p.client.write(id, b"x").is_err());
}

#[test]
fn local_opens_beyond_peer_limit_fail_until_a_stream_closes() {
    let server = Config {
        max_concurrent_streams: 2,
        ..Config::default()
    };
    let mut p = Pair::new(Config::default(), server, origin()).unwrap();
    assert!(p.drive());
    let a = p.client.open(OpenOptions::default()).unwrap();
    let _b = p.client.open(OpenOptions::default()).unwrap();
    assert_eq!(
        p.client.open(OpenOptions::default()),
        Err(crate::LocalError::StreamLimit)
    );
    p.client.reset(a, ErrorCode::CANCEL).unwrap();
    assert!(p.client.open(OpenOptions::default()).is_ok());
}

#[test]
fn opens_past_max_concurrent_streams_are_refused() {
    // The peer has not seen our SETTINGS yet, so it assumes 100 and
    // over-opens: the extra streams are refused, and retryable.
    let server = Config {
        max_concurrent_streams: 2,
        ..Config::default()
    };
    let mut p = Pair::new(Config::default(), server, origin()).unwrap();
    let ids: Vec<StreamId> = (0..4)
        .map(|_| p.client.open(OpenOptions::default()).unwrap())
        .collect();
    assert!(p.drive());
    let incoming = events(&mut p.server)
        .iter()
        .filter(|e| matches!(e, Event::Incoming { .. }))
        .count();
    assert_eq!(incoming, 2);
    let refused: Vec<StreamId> = events(&mut p.client)
        .into_iter()
        .filter_map(|e| match e {
            Event::Reset {
                stream,
                reason: crate::ResetReason::Remote(ErrorCode::REFUSED_STREAM),
            } => Some(stream),
            _ => None,
        })
        .collect();
    assert_eq!(refused, ids[2..]);
}

#[test]
fn local_misuse_is_a_typed_error_and_changes_nothing() {
    use crate::{LocalError, WriteError};
    let mut p = connected();
    let ghost = StreamId::new(99);
    assert_eq!(
        p.client.write(ghost, b"x"),
        Err(WriteError::Local(LocalError::UnknownStream(ghost)))
    );
    assert_eq!(
        p.client.finish(ghost),
        Err(LocalError::UnknownStream(ghost))
    );
    assert_eq!(
        p.client.reset(ghost, ErrorCode::CANCEL),
        Err(LocalError::UnknownStream(ghost))
    );
    assert_eq!(
        p.client.accept(ghost, Bytes::new()),
        Err(LocalError::UnknownStream(ghost))
    );
    let id = open_pair(&mut p, OpenOptions::default());
    assert_eq!(
        p.server.accept(id, Bytes::new()),
        Err(LocalError::NotPending(id))
    );
    assert_eq!(p.server.refuse(id), Err(LocalError::NotPending(id)));
    p.client.finish(id).unwrap();
    assert_eq!(p.client.finish(id), Err(LocalError::Finished(id)));
    assert_eq!(
        p.client.write(id, b"x"),
        Err(WriteError::Local(LocalError::Finished(id)))
    );
    assert_eq!(
        p.client.open(OpenOptions::new(vec![0u8; 256], "")),
        Err(LocalError::NameTooLong)
    );
    assert!(matches!(
        p.client
            .open(OpenOptions::default().handshake(vec![0u8; 20_000])),
        Err(LocalError::OpenTooLarge { .. })
    ));
    let pending = p.client.open(OpenOptions::default()).unwrap();
    assert!(p.drive());
    assert_eq!(
        p.server.write(pending, b"x"),
        Err(WriteError::Local(LocalError::NotAccepted(pending)))
    );
    // Nothing above disturbed the connection.
    assert!(!p.client.is_closed() && !p.server.is_closed());
    assert!(p.drive());
    assert!(!events(&mut p.client)
        .iter()
        .any(|e| matches!(e, Event::Closed { .. })));
}

#[test]
fn stats_count_streams_frames_and_bytes() {
    let mut p = connected();
    let id = open_pair(&mut p, OpenOptions::default());
    p.client.write(id, &[0; 5000]).unwrap();
    p.client.finish(id).unwrap();
    p.server.finish(id).unwrap();
    assert!(p.drive());
    let mut got = Vec::new();
    assert!(read_available(&mut p.server, id, &mut got));
    assert!(read_available(&mut p.client, id, &mut got));
    let (c, s) = (p.client.stats(), p.server.stats());
    assert_eq!(
        (c.streams_opened, c.streams_closed, c.active_streams),
        (1, 1, 0)
    );
    assert_eq!(
        (s.streams_opened, s.streams_closed, s.active_streams),
        (1, 1, 0)
    );
    assert_eq!(c.bytes_sent, s.bytes_received);
    assert_eq!(s.bytes_sent, c.bytes_received);
    assert_eq!(c.frames_sent, s.frames_received);
    assert!(c.bytes_sent > 5000);
    assert!(c.last_rtt.is_some());
    assert_eq!(c.connection_window, Config::default().connection_window);
    assert!(c.remote_window > 0);
}

#[test]
fn wants_transmit_tracks_pending_output() {
    let mut p = connected();
    assert!(!p.client.wants_transmit());
    let id = open_pair(&mut p, OpenOptions::default());
    assert!(!p.client.wants_transmit());
    p.client.write(id, &[0; 40_000]).unwrap();
    assert!(p.client.wants_transmit());
    assert!(p.drive());
    assert!(!p.client.wants_transmit());
    // A small read returns no credit; reading past half the window does.
    let mut buf = vec![0; 40_000];
    p.server.read(id, &mut buf[..100]).unwrap();
    assert!(!p.server.wants_transmit());
    p.server.read(id, &mut buf).unwrap();
    assert!(p.server.wants_transmit());
}

#[test]
fn read_chunk_takes_one_chunk_and_loses_nothing() {
    // Found by the `session` fuzz target: read_chunk kept only the last of
    // several buffered chunks.
    let mut p = connected();
    let id = open_pair(&mut p, OpenOptions::default());
    for part in [&b"first "[..], b"second ", b"third"] {
        p.client.write(id, part).unwrap();
        assert!(p.drive());
    }
    let mut got = Vec::new();
    while let Ok(Some(chunk)) = p.server.read_chunk(id, 1000) {
        assert!(!chunk.is_empty());
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, b"first second third");
    // A chunk larger than `max` is split, not dropped.
    p.client.write(id, b"0123456789").unwrap();
    assert!(p.drive());
    assert_eq!(&p.server.read_chunk(id, 4).unwrap().unwrap()[..], b"0123");
    assert_eq!(
        &p.server.read_chunk(id, 100).unwrap().unwrap()[..],
        b"456789"
    );
}

#[test]
fn an_empty_read_is_not_end_of_stream_while_data_is_buffered() {
    // Found by the `pair_ops` fuzz target in CI's smoke run: a read into an
    // empty buffer, with data and END_STREAM both buffered, reported the end
    // of the stream and lost the data.
    let mut p = connected();
    let id = open_pair(&mut p, OpenOptions::default());
    p.client.write(id, b"kept").unwrap();
    p.client.finish(id).unwrap();
    assert!(p.drive());
    assert_eq!(p.server.read(id, &mut []), Ok(Some(0)));
    assert_eq!(
        p.server.read_chunk(id, 0).map(|c| c.map(|c| c.len())),
        Ok(Some(0))
    );
    let mut got = Vec::new();
    assert!(read_available(&mut p.server, id, &mut got));
    assert_eq!(got, b"kept");
}
