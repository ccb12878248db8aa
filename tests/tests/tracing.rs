//! The runtime's log events: a span per connection, and events for streams
//! the peer opens, resets, GOAWAY and the close, for a subscriber the
//! application installs (`plex serve` does, filtered by `RUST_LOG`).

use std::io::Write;
use std::sync::{Arc, Mutex};

use std::time::Duration;

use plex_runtime::{Config, ErrorCode};
use plex_tests::{open_pair, Rt};

/// Bounds every wait: a hang is a failure.
const LIMIT: Duration = Duration::from_secs(30);

/// Everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn connections_log_their_streams_and_their_close() {
    let captured = Captured::default();
    let writer = captured.clone();
    // Global: the connection tasks run on the runtime's own threads. This
    // file holds one test, so nothing else sees the subscriber.
    tracing_subscriber::fmt()
        .with_env_filter("plex_runtime=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let rt = Rt::Tokio;
    rt.block_on(async {
        let (client, server) = rt.pair(Config::default(), Config::default()).await;
        let (mut a, b) = open_pair(&client, &server).await;
        a.reset(ErrorCode::CANCEL);
        drop((a, b));
        rt.within(LIMIT, client.close())
            .await
            .expect("no hang")
            .expect("close");
        rt.within(LIMIT, server.closed()).await.expect("no hang");
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // Both ends close; events of the connection task carry its span.
    assert_eq!(text.matches("connection closed").count(), 2, "{text}");
    for expected in [
        "plex_connection{role=Server}",
        "the peer opened a stream",
        "stream reset",
        "the peer is going away (GOAWAY)",
        "connection closed",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
}
