//! The send side is bounded locally, not only by the peer's windows.

use super::*;
use crate::WriteError;

/// A pair whose server grants 256 MiB per stream and never reads.
fn generous_peer() -> Pair {
    let server = Config {
        initial_window: 256 << 20,
        max_stream_window: 256 << 20,
        ..Config::default()
    };
    let mut p = Pair::new(Config::default(), server, origin()).unwrap();
    assert!(p.drive());
    drain(&mut p.client);
    drain(&mut p.server);
    p
}

fn writables(s: &mut Session) -> Vec<StreamId> {
    drain(s)
        .into_iter()
        .filter_map(|e| match e {
            Event::Writable { stream } => Some(stream),
            _ => None,
        })
        .collect()
}

#[test]
fn a_stream_buffers_at_most_its_cap_whatever_the_peer_grants() {
    let mut p = generous_peer();
    let id = open_pair(&mut p, OpenOptions::default());
    let cap = Config::default().stream_send_buffer;
    let big = vec![5u8; 8 << 20];
    assert_eq!(p.client.write(id, &big), Ok(cap));
    assert_eq!(p.client.write(id, &big), Err(WriteError::Blocked));
    assert_eq!(p.client.stats().send_buffered, cap as u64);
    // Frames leave within the connection window; the writer hears of it.
    assert!(p.drive());
    assert_eq!(writables(&mut p.client), vec![id]);
    let sent = cap as u64 - p.client.stats().send_buffered;
    assert!(sent > 0);
    assert_eq!(p.client.write(id, &big), Ok(sent as usize));
}

#[test]
fn the_connection_cap_blocks_streams_and_wakes_them_in_order() {
    let mut p = generous_peer();
    let ids: Vec<StreamId> = (0..8)
        .map(|_| open_pair(&mut p, OpenOptions::default()))
        .collect();
    drain(&mut p.client);
    let config = Config::default();
    let (per_stream, total) = (config.stream_send_buffer, config.connection_send_buffer);
    let chunk = vec![1u8; per_stream];
    let mut taken = 0;
    for &id in &ids {
        match p.client.write(id, &chunk) {
            Ok(n) => taken += n,
            Err(WriteError::Blocked) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        taken, total,
        "the connection cap, not the windows, stops writes"
    );
    assert_eq!(p.client.stats().send_buffered, total as u64);
    let blocked: Vec<StreamId> = ids[total / per_stream..].to_vec();
    for &id in &blocked {
        assert_eq!(p.client.write(id, &chunk), Err(WriteError::Blocked));
    }
    // The server reads nothing: only its connection window (1 MiB) leaves,
    // and the streams that waited for the connection are woken first come,
    // first served, as far as the returned room goes.
    assert!(p.drive());
    let woken = writables(&mut p.client);
    assert!(!woken.is_empty());
    let waiters: Vec<StreamId> = woken
        .iter()
        .filter(|id| blocked.contains(id))
        .copied()
        .collect();
    assert_eq!(waiters, blocked[..waiters.len()].to_vec());
    assert!(!waiters.is_empty());
    let room = total as u64 - p.client.stats().send_buffered;
    assert_eq!(p.client.write(blocked[0], &chunk), Ok(room as usize));
    assert!(p.client.stats().send_buffered <= total as u64);
}

#[test]
fn send_buffers_must_be_positive() {
    let config = Config {
        connection_send_buffer: 0,
        ..Config::default()
    };
    assert!(Session::client(config, origin()).is_err());
}
