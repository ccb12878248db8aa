//! The connection-pooling Manager, on tokio over loopback TCP.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use plex_runtime::{
    BoxIo, BoxResult, Config, Endpoint, Error, Manager, ManagerConfig, Transport, TransportListener,
};
use plex_tests::echo_server;
use plex_tokio::{Stream, TokioRuntime, TokioTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

const LIMIT: Duration = Duration::from_secs(30);

/// An echo server accepting any number of connections; returns its URL.
async fn echo_endpoint() -> String {
    let server = plex_tokio::listen("tcp://127.0.0.1:0", Config::default())
        .await
        .unwrap();
    let url = server.local_endpoint().to_string();
    tokio::spawn(async move {
        while let Ok((session, _)) = server.accept().await {
            tokio::spawn(echo_server(session, TokioRuntime::current()));
        }
    });
    url
}

async fn round_trip(stream: plex_runtime::Stream, msg: &[u8]) {
    let mut s = Stream::from(stream);
    s.write_all(msg).await.unwrap();
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(back, msg);
}

fn config(max_connections: usize, per_connection: usize) -> ManagerConfig {
    let mut c = ManagerConfig::default();
    c.max_connections = max_connections;
    c.max_streams_per_connection = per_connection;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_connection_makes_the_manager_dial_another() {
    let url = echo_endpoint().await;
    let manager = plex_tokio::manager(config(10, 2));
    let a = manager.get_stream(&url).await.unwrap();
    let b = manager.get_stream(&url).await.unwrap();
    assert_eq!(manager.stats().connections_created, 1);
    let c = manager.get_stream(&url).await.unwrap();
    let stats = manager.stats();
    assert_eq!((stats.connections_created, stats.total_connections), (2, 2));
    assert_eq!(
        (
            stats.active_streams,
            stats.total_streams,
            stats.active_connections
        ),
        (3, 3, 2)
    );
    for s in [a, b, c] {
        round_trip(s, b"pooled").await;
    }
    let stats = manager.stats();
    assert_eq!(stats.active_streams, 0);
    assert!(stats.bytes_sent > 0 && stats.bytes_received > 0);
    // A freed slot is reused rather than dialling again.
    let d = manager.get_stream(&url).await.unwrap();
    assert_eq!(manager.stats().connections_created, 2);
    round_trip(d, b"again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_get_stream_waits_for_a_free_slot() {
    let url = echo_endpoint().await;
    let manager = plex_tokio::manager(config(1, 1));
    let first = manager.get_stream(&url).await.unwrap();
    let waiting = tokio::spawn({
        let (manager, url) = (manager.clone(), url.clone());
        async move { manager.get_stream(&url).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "a second stream needs a free slot");
    round_trip(first, b"done").await;
    let second = tokio::time::timeout(LIMIT, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    round_trip(second, b"next").await;
    assert_eq!(manager.stats().connections_created, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let url = echo_endpoint().await;
    let mut c = config(10, 100);
    c.idle_timeout = Duration::from_millis(200);
    let manager = plex_tokio::manager(c);
    round_trip(manager.get_stream(&url).await.unwrap(), b"x").await;
    assert_eq!(manager.stats().total_connections, 1);
    tokio::time::timeout(LIMIT, async {
        while manager.stats().total_connections > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the idle connection stayed open");
    // The next stream dials a fresh connection.
    round_trip(manager.get_stream(&url).await.unwrap(), b"y").await;
    assert_eq!(manager.stats().connections_created, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_failures_are_clear_and_counted() {
    let manager = plex_tokio::manager(ManagerConfig::default());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = manager
        .get_stream(&format!("tcp://127.0.0.1:{port}"))
        .await
        .unwrap_err();
    let io: std::io::Error = refused.into();
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(matches!(
        manager.get_stream("127.0.0.1:80").await,
        Err(Error::Endpoint(plex_runtime::EndpointError::MissingScheme(
            _
        )))
    ));
    assert!(matches!(
        manager.get_stream("quic://127.0.0.1:80").await,
        Err(Error::Endpoint(
            plex_runtime::EndpointError::UnsupportedScheme(_)
        ))
    ));
    // Only the dial that reached the network counts as a connection error.
    assert_eq!(manager.stats().connection_errors, 1);
    assert_eq!(manager.stats().connections_created, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_closes_everything_and_refuses_new_streams() {
    let url = echo_endpoint().await;
    let manager = plex_tokio::manager(config(10, 1));
    for _ in 0..3 {
        round_trip(manager.get_stream(&url).await.unwrap(), b"z").await;
    }
    assert!(manager.stats().total_connections >= 1);
    tokio::time::timeout(LIMIT, manager.close()).await.unwrap();
    assert_eq!(manager.stats().total_connections, 0);
    assert!(manager.get_stream(&url).await.is_err());
}

/// A user transport: TCP that counts its dials.
struct Counting {
    inner: TokioTransport,
    dials: AtomicUsize,
}

impl Transport for Counting {
    fn dial<'a>(&'a self, endpoint: &'a Endpoint) -> BoxResult<'a, BoxIo> {
        self.dials.fetch_add(1, Ordering::Relaxed);
        self.inner.dial(endpoint)
    }

    fn listen<'a>(&'a self, endpoint: &'a Endpoint) -> BoxResult<'a, Box<dyn TransportListener>> {
        self.inner.listen(endpoint)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_transport_plugs_in() {
    let url = echo_endpoint().await;
    let transport = Arc::new(Counting {
        inner: TokioTransport::default(),
        dials: AtomicUsize::new(0),
    });
    let manager = Manager::new(transport.clone(), TokioRuntime::current(), config(10, 1));
    let (a, b) = (
        manager.get_stream(&url).await.unwrap(),
        manager.get_stream(&url).await.unwrap(),
    );
    round_trip(a, b"one").await;
    round_trip(b, b"two").await;
    assert_eq!(transport.dials.load(Ordering::Relaxed), 2);
}

/// TCP whose first dial never completes.
struct StallsFirst {
    inner: TokioTransport,
    dials: AtomicUsize,
    stalled: Notify,
}

impl Transport for StallsFirst {
    fn dial<'a>(&'a self, endpoint: &'a Endpoint) -> BoxResult<'a, BoxIo> {
        if self.dials.fetch_add(1, Ordering::Relaxed) == 0 {
            self.stalled.notify_one();
            return Box::pin(std::future::pending());
        }
        self.inner.dial(endpoint)
    }

    fn listen<'a>(&'a self, endpoint: &'a Endpoint) -> BoxResult<'a, Box<dyn TransportListener>> {
        self.inner.listen(endpoint)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_stream_dropped_mid_dial_releases_its_reservation() {
    // V9: the dropped future kept its dial reserved, and with one
    // connection allowed, nothing ever dialled again.
    let url = echo_endpoint().await;
    let transport = Arc::new(StallsFirst {
        inner: TokioTransport::default(),
        dials: AtomicUsize::new(0),
        stalled: Notify::new(),
    });
    let manager = Manager::new(transport.clone(), TokioRuntime::current(), config(1, 100));
    tokio::select! {
        _ = manager.get_stream(&url) => panic!("the stalled dial completed"),
        // Dropping `get_stream` here, mid-dial.
        () = transport.stalled.notified() => {}
    }
    let stream = tokio::time::timeout(LIMIT, manager.get_stream(&url))
        .await
        .expect("the endpoint is wedged")
        .unwrap();
    round_trip(stream, b"after the stall").await;
    assert_eq!(transport.dials.load(Ordering::Relaxed), 2);
}

/// One manager pools connections to `tcp://`, `ws://` and `tls://`
/// endpoints side by side, on every runtime (`relay://` in relay.rs).
#[test]
fn one_manager_serves_every_scheme_on_every_runtime() {
    use plex_tests::Rt;
    for rt in Rt::ALL {
        rt.block_on(async {
            let transport = rt.transport();
            let mut urls = Vec::new();
            for base in [
                "tcp://127.0.0.1:0",
                "ws://127.0.0.1:0/plex",
                "tls://127.0.0.1:0",
            ] {
                let server =
                    plex_runtime::listen(&*transport, rt.runtime(), base, Config::default())
                        .await
                        .unwrap();
                urls.push(server.local_endpoint().to_string());
                let runtime = rt.runtime();
                rt.runtime().spawn(Box::pin(async move {
                    while let Ok((session, _)) = server.accept().await {
                        runtime.spawn(Box::pin(echo_server(session, runtime.clone())));
                    }
                }));
            }
            let manager = Manager::new(transport, rt.runtime(), config(10, 4));
            for url in &urls {
                for _ in 0..3 {
                    let mut stream = manager.get_stream(url).await.expect(url);
                    smol::io::AsyncWriteExt::write_all(&mut stream, url.as_bytes())
                        .await
                        .unwrap();
                    let mut back = vec![0; url.len()];
                    smol::io::AsyncReadExt::read_exact(&mut stream, &mut back)
                        .await
                        .unwrap();
                    assert_eq!(back, url.as_bytes(), "{rt:?}");
                }
            }
            let stats = manager.stats();
            // One connection per endpoint, three streams through each.
            assert_eq!(stats.connections_created, 3, "{rt:?}: {stats:?}");
            assert_eq!(stats.total_streams, 9, "{rt:?}: {stats:?}");
            assert_eq!(stats.connection_errors, 0, "{rt:?}: {stats:?}");
            assert!(stats.bytes_sent > 0 && stats.bytes_received > 0);
            manager.close().await;
        });
    }
}
