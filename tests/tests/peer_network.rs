//! Store ports and the peer pool over real sessions (loopback TCP), on
//! every runtime: the backend suite through the network, and a pool whose
//! members are peers on separate sessions, one of which is killed mid-run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use plex_peer::pool::{BalancerConfig, PoolEvent};
use plex_peer::store::StoreFuture;
use plex_peer::{
    connect_store_port, expose_store_port, Caps, Entries, Error, MemberId, MemberInfo, MemoryStore,
    Peer, PeerPool, Policy, PoolConfig, Range, Serving, StorePort,
};
use plex_ports::{PoolStore, RedbStore};
use plex_runtime::{Config, Runtime};
use plex_store::{Options, Pool};
use plex_tests::{store_suite, Proxy, Rt};

/// Bounds every wait: a hang is a failure, not a stuck CI run.
const LIMIT: Duration = Duration::from_secs(30);
/// The store id every server exposes.
const STORE: &str = "s";
/// The lane it is exposed on.
const LANE: &str = "rpc";
/// A pool large enough for everything `append_only` appends.
const POOL_SIZE: u64 = 64 << 20;

plex_tests::on_every_runtime!(
    a_remote_memory_store_conforms,
    a_remote_redb_store_conforms,
    a_remote_pool_store_conforms_as_an_append_only_port,
    a_pool_of_one_peer_conforms,
    round_robin_visits_the_servers_in_turn,
    a_killed_peer_is_failed_over_and_cools_down,
    p2c_moves_load_away_from_a_slow_server,
    sticky_sends_a_key_to_the_same_server,
    a_pool_without_members_has_no_peers,
);

fn a_remote_memory_store_conforms(rt: Rt) {
    rt.block_on(async {
        let (client, server) = peers(rt).await;
        let _serving = expose_store_port(&server, STORE, LANE, MemoryStore::new());
        store_suite::conformance(&connect_store_port(&client, STORE, LANE)).await;
    });
}

fn a_remote_redb_store_conforms(rt: Rt) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(dir.path().join("kv.redb")).expect("open redb");
    rt.block_on(async {
        let (client, server) = peers(rt).await;
        let _serving = expose_store_port(&server, STORE, LANE, store);
        store_suite::conformance(&connect_store_port(&client, STORE, LANE)).await;
    });
}

fn a_remote_pool_store_conforms_as_an_append_only_port(rt: Rt) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = Pool::create(dir.path().join("log.pool"), POOL_SIZE, Options::new()).expect("pool");
    rt.block_on(async {
        let (client, server) = peers(rt).await;
        let _serving = expose_store_port(&server, STORE, LANE, PoolStore::new(pool));
        store_suite::append_only(&connect_store_port(&client, STORE, LANE)).await;
    });
}

/// A pool whose one member is a remote peer is still the same store.
fn a_pool_of_one_peer_conforms(rt: Rt) {
    rt.block_on(async {
        let (client, server) = peers(rt).await;
        let _serving = expose_store_port(&server, STORE, LANE, MemoryStore::new());
        let pool = PeerPool::new(PoolConfig::default());
        pool.add(Arc::new(client), MemberInfo::new());
        store_suite::conformance(&pool.store(STORE)).await;
        let totals = pool.totals();
        assert_eq!((totals.failures, totals.no_peer), (0, 0));
    });
}

fn round_robin_visits_the_servers_in_turn(rt: Rt) {
    rt.block_on(async {
        let cluster = Cluster::start(rt, Policy::RoundRobin, None).await;
        let store = cluster.pool.store(STORE);
        for i in 0..9 {
            let key = Bytes::from(format!("k{i}"));
            store
                .put(key.clone(), key, Bytes::new())
                .await
                .expect("put");
        }
        assert_eq!(cluster.log(), [0, 1, 2, 0, 1, 2, 0, 1, 2]);
        // Each key went to one server only: a get goes on with the rotation.
        let got = store.get("k0".into(), Bytes::new()).await.expect("get");
        assert_eq!(got.as_deref(), Some(&b"k0"[..]), "k0 was put on server 0");
        for server in [1, 2] {
            let got = store.get("k0".into(), Bytes::new()).await.expect("get");
            assert_eq!(got, None, "server {server} never saw k0");
        }
        assert_eq!(cluster.log()[9..], [0, 1, 2]);
        for stats in cluster.pool.stats() {
            assert_eq!((stats.calls, stats.failures, stats.in_flight), (4, 0, 0));
        }
    });
}

/// 200 calls, four at a time; after 50, one server's connection is cut.
fn a_killed_peer_is_failed_over_and_cools_down(rt: Rt) {
    const WORKERS: usize = 4;
    const PER_WORKER: usize = 50;
    rt.block_on(async {
        let cluster = Cluster::start(rt, Policy::RoundRobin, None).await;
        let store = cluster.pool.store(STORE);
        let done = AtomicUsize::new(0);
        let workers = (0..WORKERS).map(|w| {
            let (store, done) = (&store, &done);
            async move {
                for i in 0..PER_WORKER {
                    let key = Bytes::from(format!("w{w}/{i}"));
                    let call = store.put(key.clone(), key, Bytes::new());
                    let result = rt.within(LIMIT, call).await.expect("the call hung");
                    result.unwrap_or_else(|e| panic!("call w{w}/{i} failed: {e}"));
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let kill = async {
            rt.until(LIMIT, "50 calls done", || done.load(Ordering::SeqCst) >= 50)
                .await;
            cluster.proxies[1].cut();
        };
        smol::future::zip(futures_util::future::join_all(workers), kill).await;
        assert_eq!(done.load(Ordering::SeqCst), WORKERS * PER_WORKER);

        let stats = cluster.pool.stats();
        let dead = &stats[1];
        assert!(dead.calls > 0, "server 1 answered before it died");
        assert!(dead.failures > 0, "its failures are counted");
        assert!(dead.cooling_until.is_some(), "it cools down: {dead:?}");
        for live in [&stats[0], &stats[2]] {
            assert_eq!(live.failures, 0, "{live:?}");
            assert!(live.cooling_until.is_none(), "{live:?}");
        }
        let answered: u64 = stats.iter().map(|s| s.calls).sum();
        assert_eq!(
            answered,
            (WORKERS * PER_WORKER) as u64,
            "one answer per call"
        );
        assert!(stats.iter().all(|s| s.in_flight == 0));
        let totals = cluster.pool.totals();
        assert_eq!(totals.calls, answered);
        assert_eq!(totals.failures, dead.failures);
        assert_eq!((totals.no_peer, totals.events_dropped), (0, 0));

        let mut errors = 0;
        while let Some(event) = cluster.pool.poll_event() {
            if let PoolEvent::CallError {
                member, failures, ..
            } = event
            {
                assert_eq!(member, dead.member, "only server 1 failed");
                errors += 1;
                assert_eq!(failures, errors, "its failures so far");
            }
        }
        assert_eq!(errors, dead.failures, "one event per failure");
        // The survivors took everything after the cut: the log of calls
        // served is complete for them.
        let log = cluster.log();
        let served_by = |i| log.iter().filter(|&&s| s == i).count() as u64;
        assert_eq!(served_by(0), stats[0].calls);
        assert_eq!(served_by(2), stats[2].calls);
        assert!(
            served_by(1) >= dead.calls,
            "server 1 served what it answered"
        );
    });
}

/// Server 0 takes 20 ms per call; P2C learns it and sends it few calls
/// (with the cluster's short decay it still probes it now and then).
fn p2c_moves_load_away_from_a_slow_server(rt: Rt) {
    const WORKERS: usize = 4;
    const PER_WORKER: usize = 50;
    rt.block_on(async {
        let slow = Duration::from_millis(20);
        let cluster = Cluster::start(rt, Policy::P2c, Some(slow)).await;
        let store = cluster.pool.store(STORE);
        let workers = (0..WORKERS).map(|w| {
            let store = &store;
            async move {
                for i in 0..PER_WORKER {
                    let call = store.get(format!("w{w}/{i}").into(), Bytes::new());
                    let result = rt.within(LIMIT, call).await.expect("the call hung");
                    assert_eq!(result.expect("get"), None);
                }
            }
        });
        futures_util::future::join_all(workers).await;
        let log = cluster.log();
        assert_eq!(log.len(), WORKERS * PER_WORKER);
        let counts: Vec<usize> = (0..3)
            .map(|i| log.iter().filter(|&&s| s == i).count())
            .collect();
        // A fair share would be a third (66); P2C gives it far less.
        assert!(
            counts[0] * 4 < log.len(),
            "the slow server got {} of {} calls: {counts:?}\n{:#?}",
            counts[0],
            log.len(),
            cluster.pool.stats()
        );
        let stats = cluster.pool.stats();
        assert!(
            stats[0].peak_ewma > stats[1].peak_ewma && stats[0].peak_ewma > stats[2].peak_ewma,
            "the slow server looks slowest: {stats:?}"
        );
    });
}

fn sticky_sends_a_key_to_the_same_server(rt: Rt) {
    rt.block_on(async {
        let cluster = Cluster::start(rt, Policy::Sticky, None).await;
        let store = cluster.pool.store(STORE);
        let keys: Vec<String> = (0..12).map(|i| format!("user/{i}")).collect();
        for round in 0..5 {
            for key in &keys {
                let value = Bytes::from(format!("{key}@{round}"));
                store
                    .put(key.clone().into(), value.clone(), Bytes::new())
                    .await
                    .expect("put");
                let got = store.get(key.clone().into(), Bytes::new()).await;
                assert_eq!(got.expect("get"), Some(value), "read back from its server");
            }
        }
        let log = cluster.log();
        let mut seen = [false; 3];
        for (call, &server) in log.iter().enumerate() {
            // Two calls (put, get) per key, keys in order, round after round.
            let key = &keys[(call / 2) % keys.len()];
            let expected = plex_peer::pool::djb2(key.as_bytes()) as usize % 3;
            assert_eq!(server, expected, "{key} went to server {server}");
            seen[server] = true;
        }
        assert_eq!(log.len(), keys.len() * 2 * 5);
        assert_eq!(seen, [true; 3], "the keys spread over every server");
    });
}

fn a_pool_without_members_has_no_peers(rt: Rt) {
    rt.block_on(async {
        let pool = PeerPool::new(PoolConfig::default());
        let store = pool.store(STORE);
        let result = rt.within(LIMIT, store.get("k".into(), Bytes::new())).await;
        assert!(
            matches!(result.expect("no hang"), Err(Error::NoPeers)),
            "an empty pool"
        );
        // A member that joins and leaves leaves the pool empty again.
        let (client, _server) = peers(rt).await;
        let member = pool.add(Arc::new(client), MemberInfo::new());
        assert!(pool.remove(member));
        let result = rt
            .within(LIMIT, store.append("v".into(), Bytes::new()))
            .await;
        assert!(matches!(result.expect("no hang"), Err(Error::NoPeers)));
        assert_eq!(pool.totals().no_peer, 2);
        let events: Vec<_> = std::iter::from_fn(|| pool.poll_event()).collect();
        assert_eq!(
            events,
            [
                PoolEvent::NoPeer,
                PoolEvent::PeerAdded { member },
                PoolEvent::PeerRemoved { member },
                PoolEvent::NoPeer,
            ]
        );
    });
}

/// A client and a server peer joined over loopback TCP.
async fn peers(rt: Rt) -> (Peer, Peer) {
    let (client, server) = rt.pair(Config::default(), Config::default()).await;
    (Peer::new(client), Peer::new(server))
}

/// Three servers, each on its own session through a [`Proxy`] and each
/// exposing its own store, and a client pool whose members are the three
/// client-side peers, in server order.
struct Cluster {
    pool: PeerPool,
    proxies: Vec<Proxy>,
    /// The index of the server of each call, in the order calls arrived.
    log: Arc<Mutex<Vec<usize>>>,
    _servers: Vec<(Peer, Serving)>,
}

impl Cluster {
    /// `slow`: how long server 0 takes per call.
    async fn start(rt: Rt, policy: Policy, slow: Option<Duration>) -> Cluster {
        let pool = PeerPool::new(PoolConfig {
            policy,
            lane: LANE.to_owned(),
            balancer: BalancerConfig {
                // Long enough that a dead member is still cooling at the end.
                cooldown: Duration::from_secs(600),
                // Short, so that a scheduling hiccup on a busy machine,
                // which peak-EWMA takes at once, fades within the test.
                decay: Duration::from_millis(250),
                event_capacity: 1024,
                ..BalancerConfig::default()
            },
            ..PoolConfig::default()
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let (mut proxies, mut servers) = (Vec::new(), Vec::new());
        for index in 0..3 {
            let (client, server, proxy) = rt
                .pair_via_proxy(Config::default(), Config::default())
                .await;
            let (client, server) = (Peer::new(client), Peer::new(server));
            let port = Tracked {
                index,
                log: log.clone(),
                store: MemoryStore::new(),
                delay: slow.filter(|_| index == 0),
                runtime: rt.runtime(),
            };
            let serving = expose_store_port(&server, STORE, LANE, port);
            let id: MemberId = pool.add(Arc::new(client), MemberInfo::new());
            assert_eq!(id.get(), index as u64 + 1, "members in server order");
            proxies.push(proxy);
            servers.push((server, serving));
        }
        // Only the calls count from here on.
        while pool.poll_event().is_some() {}
        Cluster {
            pool,
            proxies,
            log,
            _servers: servers,
        }
    }

    fn log(&self) -> Vec<usize> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A server's store: notes its index in the shared log on every call,
/// optionally waits, then asks its own memory store.
struct Tracked {
    index: usize,
    log: Arc<Mutex<Vec<usize>>>,
    store: MemoryStore,
    delay: Option<Duration>,
    runtime: Arc<dyn Runtime>,
}

impl Tracked {
    fn serve<'a, T: Send + 'a>(&'a self, call: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.index);
        Box::pin(async move {
            if let Some(delay) = self.delay {
                self.runtime.sleep_until(self.runtime.now() + delay).await;
            }
            call.await
        })
    }
}

impl StorePort for Tracked {
    fn get(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, Option<Bytes>> {
        self.serve(self.store.get(key, caps))
    }
    fn put(&self, key: Bytes, value: Bytes, caps: Caps) -> StoreFuture<'_, ()> {
        self.serve(self.store.put(key, value, caps))
    }
    fn del(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, ()> {
        self.serve(self.store.del(key, caps))
    }
    fn append(&self, value: Bytes, caps: Caps) -> StoreFuture<'_, Bytes> {
        self.serve(self.store.append(value, caps))
    }
    fn scan(&self, range: Range, caps: Caps) -> StoreFuture<'_, Entries> {
        self.serve(self.store.scan(range, caps))
    }
}

/// Store ports over WebSocket, on tokio and smol and across them: the
/// layer is the same on any transport.
#[test]
fn store_ports_work_over_websocket_on_tokio_smol_and_across() {
    across("ws://127.0.0.1:0/plex");
}

/// And over TCP with client and server on different runtimes and threads.
#[test]
fn store_ports_work_over_tcp_across_runtimes() {
    across("tcp://127.0.0.1:0");
}

fn across(listen: &'static str) {
    for (client_rt, server_rt) in [
        (Rt::Tokio, Rt::Tokio),
        (Rt::Smol, Rt::Smol),
        (Rt::Tokio, Rt::Smol),
        (Rt::Smol, Rt::Tokio),
    ] {
        let (bound, address) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            server_rt.block_on(async move {
                let session = server_rt.accept_one(listen, Config::default(), bound).await;
                let peer = Peer::new(session);
                let _serving = expose_store_port(&peer, "ws-store", "rpc", MemoryStore::new());
                // Served until the client closes the session.
                peer.session().expect("plex/1").closed().await;
            })
        });
        let url = address.recv().expect("server address");
        client_rt.block_on(async move {
            let session = client_rt
                .connect(&url, Config::default())
                .await
                .expect("connect");
            let peer = Peer::new(session);
            // Called at once: the first call races the server's setup, and
            // the claim grace covers it.
            let store = connect_store_port(&peer, "ws-store", "rpc");
            let suite = store_suite::conformance(&store);
            client_rt.within(LIMIT, suite).await.expect("no hang");
            peer.session()
                .expect("plex/1")
                .close()
                .await
                .expect("graceful close");
        });
        server.join().expect("server thread");
    }
}
