//! Rust Plex against the JavaScript test peer (`tests/js`, the npm
//! `protomux` neonplex uses), both ways, over TCP and WebSocket: the JS
//! client's scenarios against the Rust test services (on tokio and smol),
//! and the Rust client's checks against the JS server. Needs `node` and
//! `npm` (the packages are installed on first use); fails without them.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use plex_peer::{connect_store_port, Code, Error as PeerError, Peer, PeerConfig, Range, StorePort};
use plex_proto::rpc::{Body, ClientConfig, Method};
use plex_runtime::mux::{Mux, MuxConfig};
use plex_runtime::Error;
use plex_tests::js::{
    run_js_client, serve_test_services, JsServer, BASE, BATCH, CLOSE, COUNT, ECHO, REJECT,
    SCENARIOS, SINK, STORE_ID,
};
use sha2::{Digest, Sha256};

/// Every wait of a Rust-side check.
const LIMIT: Duration = Duration::from_secs(30);
/// A whole `peer.js client` run (its `rpc` scenario alone waits ~5 s).
const CLIENT_LIMIT: Duration = Duration::from_secs(120);

async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {LIMIT:?}"))
}

/// Asserts that a client run passed every scenario of the README.
fn assert_all_passed(run: &plex_tests::js::ClientRun, server: &str) {
    assert!(
        run.failures().is_empty() && run.status.success(),
        "JS client against the Rust server ({server}) failed ({}):\n{}{}",
        run.status,
        run.stdout,
        run.stderr
    );
    assert_eq!(run.passed(), SCENARIOS, "{server}: scenarios run");
}

// ---- JS client → Rust server ----------------------------------------------

async fn js_client_against_tokio_server(listen: &str) {
    let server = plex_tokio::listen_mux(listen, MuxConfig::default())
        .await
        .unwrap();
    let url = server.local_endpoint().to_string();
    let accepting = tokio::spawn(async move {
        while let Ok((mux, _)) = server.accept().await {
            tokio::spawn(serve_test_services(mux, BASE, STORE_ID));
        }
    });
    let target = url.clone();
    let run = tokio::task::spawn_blocking(move || run_js_client(&target, &[], CLIENT_LIMIT))
        .await
        .unwrap();
    accepting.abort();
    assert_all_passed(&run, &format!("tokio, {url}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_rust_server_tokio_tcp() {
    js_client_against_tokio_server("tcp://127.0.0.1:0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_rust_server_tokio_ws() {
    js_client_against_tokio_server("ws://127.0.0.1:0/plex").await;
}

#[test]
fn js_client_rust_server_smol_tcp() {
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let (tx, rx) = std::sync::mpsc::channel();
    let serving = std::thread::spawn(move || {
        smol::block_on(async move {
            let server = plex_smol::listen_mux("tcp://127.0.0.1:0", MuxConfig::default())
                .await
                .unwrap();
            tx.send(server.local_endpoint().to_string()).unwrap();
            let accepting = async {
                while let Ok((mux, _)) = server.accept().await {
                    smol::spawn(serve_test_services(mux, BASE, STORE_ID)).detach();
                }
            };
            smol::future::or(accepting, async {
                let _ = stopped.recv().await;
            })
            .await;
        });
    });
    let url = rx.recv_timeout(LIMIT).expect("the smol server listens");
    let run = run_js_client(&url, &[], CLIENT_LIMIT);
    drop(stop);
    serving.join().unwrap();
    assert_all_passed(&run, &format!("smol, {url}"));
}

// ---- Rust client → JS server ----------------------------------------------

/// A JS server on `listen` and a Rust connection to it.
async fn js_server(listen: &str) -> (JsServer, Mux) {
    let listen = listen.to_owned();
    let server = tokio::task::spawn_blocking(move || JsServer::spawn(&listen))
        .await
        .unwrap();
    let mux = bounded(
        "connect",
        plex_tokio::connect_mux(server.url(), MuxConfig::default()),
    )
    .await
    .unwrap();
    (server, mux)
}

async fn recv(channel: &plex_runtime::mux::MuxChannel, what: &str) -> Option<Bytes> {
    bounded(what, channel.recv()).await.unwrap()
}

/// Runs each check against a JS server of its own, over TCP and over
/// WebSocket, as `tcp::NAME` and `ws::NAME`.
macro_rules! against_js_server {
    ($($check:ident),* $(,)?) => {
        mod tcp {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (_server, mux) = super::js_server("tcp://127.0.0.1:0").await;
                super::$check(mux).await;
            })*
        }
        mod ws {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (_server, mux) = super::js_server("ws://127.0.0.1:0/plex").await;
                super::$check(mux).await;
            })*
        }
    };
}

against_js_server!(
    echo_with_handshake,
    sixteen_channels_at_once,
    reject,
    close_after_first_message,
    batch_both_ways,
    thousand_in_order,
    count,
    one_mib_to_sink,
    early_data,
    store_port,
    store_port_server_limit,
);

async fn echo_with_handshake(mux: Mux) {
    let channel = mux.open(ECHO, "e1", "cli-hs").unwrap();
    assert_eq!(
        bounded("opened", channel.opened()).await.unwrap(),
        "srv:cli-hs"
    );
    for i in 0..10 {
        channel.send(format!("hi#{i}").into()).await.unwrap();
    }
    for i in 0..10 {
        assert_eq!(recv(&channel, "echo").await.unwrap(), format!("hi#{i}"));
    }
}

async fn sixteen_channels_at_once(mux: Mux) {
    let channels: Vec<_> = (0..16)
        .map(|i| {
            mux.open(ECHO, format!("many-{i}"), format!("h{i}"))
                .unwrap()
        })
        .collect();
    let handshakes = bounded("16 opens", join_all(channels.iter().map(|c| c.opened()))).await;
    for (i, handshake) in handshakes.into_iter().enumerate() {
        assert_eq!(handshake.unwrap(), format!("srv:h{i}"));
    }
    for round in 0..10 {
        for (i, channel) in channels.iter().enumerate() {
            channel.send(format!("c{i}-r{round}").into()).await.unwrap();
        }
    }
    for round in 0..10 {
        for (i, channel) in channels.iter().enumerate() {
            assert_eq!(
                recv(channel, "echo").await.unwrap(),
                format!("c{i}-r{round}")
            );
        }
    }
}

async fn reject(mux: Mux) {
    let channel = mux.open(REJECT, "r1", "").unwrap();
    let opened = bounded("reject", channel.opened()).await;
    assert!(matches!(opened, Err(Error::Rejected)), "{opened:?}");
}

async fn close_after_first_message(mux: Mux) {
    let channel = mux.open(CLOSE, "c1", "").unwrap();
    assert_eq!(bounded("opened", channel.opened()).await.unwrap(), "");
    channel.send(Bytes::from_static(b"bye")).await.unwrap();
    assert_eq!(recv(&channel, "echo").await.unwrap(), "bye");
    assert_eq!(recv(&channel, "close").await, None);
}

async fn batch_both_ways(mux: Mux) {
    let channel = {
        let _cork = mux.cork();
        let channel = mux.open(BATCH, "b1", "").unwrap();
        channel.send(Bytes::from_static(b"x1")).await.unwrap();
        channel.send(Bytes::from_static(b"x2")).await.unwrap();
        channel
    };
    assert_eq!(bounded("opened", channel.opened()).await.unwrap(), "");
    for want in ["b1", "b2", "b3", "x1", "x2"] {
        assert_eq!(recv(&channel, "batch").await.unwrap(), want);
    }
}

async fn thousand_in_order(mux: Mux) {
    let channel = mux.open(ECHO, "o1", "").unwrap();
    let message = |i: usize| -> Bytes {
        let mut m = format!("{i:04}").into_bytes();
        m.extend((0..=i % 97).map(|j| (i * 31 + j) as u8));
        m.into()
    };
    for i in 0..1000 {
        channel.send(message(i)).await.unwrap();
    }
    for i in 0..1000 {
        assert_eq!(recv(&channel, "order").await.unwrap(), message(i), "{i}");
    }
}

async fn count(mux: Mux) {
    let channel = mux.open(COUNT, "n1", "1000").unwrap();
    for i in 0..1000 {
        assert_eq!(recv(&channel, "count").await.unwrap(), format!("m{i}"));
    }
    assert_eq!(recv(&channel, "close after count").await, None);
}

async fn one_mib_to_sink(mux: Mux) {
    let channel = mux.open(SINK, "s1", "").unwrap();
    let blob: Bytes = (0..1usize << 20).map(|i| (i * 7 + i / 251) as u8).collect();
    channel.send(blob.clone()).await.unwrap();
    let hex: String = Sha256::digest(&blob)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let want = format!("{} {hex}", blob.len());
    assert_eq!(recv(&channel, "sink").await.unwrap(), want);
}

async fn early_data(mux: Mux) {
    let channel = mux.open(ECHO, "early", "eh").unwrap();
    for i in 0..3 {
        channel.send(format!("early-{i}").into()).await.unwrap();
    }
    assert_eq!(bounded("opened", channel.opened()).await.unwrap(), "srv:eh");
    for i in 0..3 {
        assert_eq!(recv(&channel, "early").await.unwrap(), format!("early-{i}"));
    }
}

fn none() -> Bytes {
    Bytes::new()
}

async fn entries(store: &impl StorePort, range: Range) -> Vec<(Bytes, Bytes)> {
    let entries = bounded("scan", store.scan(range, none())).await.unwrap();
    bounded("scan entries", entries.collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect()
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(Bytes, Bytes)> {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                Bytes::copy_from_slice(k.as_bytes()),
                Bytes::copy_from_slice(v.as_bytes()),
            )
        })
        .collect()
}

async fn store_port(mux: Mux) {
    let peer = Peer::over_protomux(mux.clone());
    let store = connect_store_port(&peer, STORE_ID, "rpc");
    let b = |s: &'static str| Bytes::from_static(s.as_bytes());

    bounded("put", store.put(b("k"), b("v"), none()))
        .await
        .unwrap();
    assert_eq!(
        bounded("get", store.get(b("k"), none())).await.unwrap(),
        Some(b("v"))
    );
    bounded("del", store.del(b("k"), none())).await.unwrap();
    assert_eq!(
        bounded("get", store.get(b("k"), none())).await.unwrap(),
        None
    );
    assert_eq!(
        bounded("miss", store.get(b("never"), none()))
            .await
            .unwrap(),
        None
    );
    // The JS server pads append keys to 8 digits, as neonplex's example does.
    let key = bounded("append", store.append(b("a1"), none()))
        .await
        .unwrap();
    assert_eq!(key, "log/00000001");

    for k in ["m/1", "m/2", "m/3", "n/1"] {
        let value = Bytes::from(format!("v{k}"));
        bounded("put", store.put(Bytes::from(k), value, none()))
            .await
            .unwrap();
    }
    assert_eq!(
        entries(&store, Range::prefix("log/")).await,
        kv(&[("log/00000001", "a1")])
    );
    assert_eq!(
        entries(&store, Range::prefix("m/").reverse()).await,
        kv(&[("m/3", "vm/3"), ("m/2", "vm/2"), ("m/1", "vm/1")])
    );
    assert_eq!(
        entries(&store, Range::all().gte("m/2").lt("n/1")).await,
        kv(&[("m/2", "vm/2"), ("m/3", "vm/3")])
    );

    let failed = bounded("fail", store.get(b("example/fail"), none())).await;
    match failed {
        Err(PeerError::Failed {
            code: Code::BadArg,
            message,
        }) => assert_eq!(message, "forced error"),
        other => panic!("example/fail: {other:?}"),
    }
    let denied = bounded("deny", store.get(b("m/1"), b("deny"))).await;
    match denied {
        Err(PeerError::Failed {
            code: Code::CapabilityDenied,
            message,
        }) => {
            assert_eq!(message, "denied")
        }
        other => panic!("caps deny: {other:?}"),
    }

    for i in 0..64 {
        let (k, v) = (format!("c/{i}"), format!("val-{i}"));
        bounded("put", store.put(k.into(), v.into(), none()))
            .await
            .unwrap();
    }
    let gets = join_all((0..64).map(|i| store.get(format!("c/{i}").into(), none())));
    for (i, got) in bounded("64 gets", gets).await.into_iter().enumerate() {
        assert_eq!(got.unwrap(), Some(Bytes::from(format!("val-{i}"))));
    }

    let slow = Body::Get {
        key: b("example/slow"),
        caps: none(),
    };
    let timed_out = bounded(
        "slow get",
        store.client().call_with_timeout(
            Method::GET,
            slow.to_bytes(),
            Some(Duration::from_millis(100)),
        ),
    )
    .await;
    assert!(
        matches!(timed_out, Err(PeerError::Timeout { .. })),
        "{timed_out:?}"
    );
    // The lane still works after the cancel.
    assert_eq!(
        bounded("get", store.get(b("m/2"), none())).await.unwrap(),
        Some(b("vm/2"))
    );

    // 300 KiB: refused by our own client limit (256 KiB) before sending.
    let big = Bytes::from(vec![7u8; 300 * 1024]);
    let refused = bounded("big put", store.put(b("big"), big, none())).await;
    assert!(
        matches!(
            refused,
            Err(PeerError::PayloadTooLarge { max: 262_144, .. })
        ),
        "{refused:?}"
    );
    assert_eq!(
        bounded("get", store.get(b("big"), none())).await.unwrap(),
        None
    );
}

/// A client whose request limit is over the server's sends a 300 KiB PUT,
/// and the JS server refuses it.
async fn store_port_server_limit(mux: Mux) {
    let client = ClientConfig {
        max_request_bytes: 1 << 20,
        ..ClientConfig::default()
    };
    let peer = Peer::protomux_with_config(mux, PeerConfig::default().client(client)).unwrap();
    let store = connect_store_port(&peer, STORE_ID, "rpc");
    let big = Bytes::from(vec![7u8; 300 * 1024]);
    let refused = bounded(
        "big put",
        store.put(Bytes::from_static(b"big"), big, none()),
    )
    .await;
    match refused {
        Err(PeerError::Failed {
            code: Code::PayloadTooLarge,
            message,
        }) => assert_eq!(message, "Request payload exceeds limit"),
        other => panic!("server limit: {other:?}"),
    }
    let after = bounded("get", store.get(Bytes::from_static(b"big"), none())).await;
    assert_eq!(after.unwrap(), None);
}

// ---- A Rust peer pool over JS store ports ---------------------------------

/// Three JavaScript store ports behind one Rust `PeerPool` over Protomux:
/// calls spread over them, and when one JS process goes away its calls fail
/// over to the others and it cools down, as on `plex/1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_pool_of_javascript_store_ports_fails_over() {
    use plex_peer::{MemberInfo, PeerPool, PoolConfig};
    use std::sync::Arc;

    let mut servers = Vec::new();
    let pool = PeerPool::new(PoolConfig::default());
    for _ in 0..3 {
        let (server, mux) = js_server("tcp://127.0.0.1:0").await;
        pool.add(Arc::new(Peer::over_protomux(mux)), MemberInfo::new());
        servers.push(server);
    }
    let store = pool.store(STORE_ID);
    for i in 0..60 {
        let key = Bytes::from(format!("k{i}"));
        bounded("pooled put", store.put(key.clone(), key, none()))
            .await
            .unwrap_or_else(|e| panic!("put k{i}: {e}"));
    }
    let stats = pool.stats();
    assert!(
        stats.iter().all(|s| s.calls >= 15),
        "round-robin spreads the calls: {stats:?}"
    );
    // The second JS peer exits: its connection ends under the pool.
    drop(servers.remove(1));
    for i in 0..60 {
        bounded("pooled get", store.get(format!("k{i}").into(), none()))
            .await
            .unwrap_or_else(|e| panic!("get k{i} after a peer died: {e}"));
    }
    let stats = pool.stats();
    assert!(
        stats[1].failures > 0,
        "the dead peer's failure is counted: {:?}",
        stats[1]
    );
    assert!(
        stats[1].cooling_until.is_some(),
        "and it cools down: {:?}",
        stats[1]
    );
    for live in [&stats[0], &stats[2]] {
        assert_eq!(live.failures, 0, "{live:?}");
    }
}
