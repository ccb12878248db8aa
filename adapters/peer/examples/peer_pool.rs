//! A peer pool over TCP on tokio: three servers expose replicas of one
//! store, a client spreads calls over them round-robin, and one server is
//! killed mid-run. Every call still succeeds, through the other two.
//!
//! `peer_pool` runs everything on loopback, prints per-member counts and
//! the pool's stats and events, and exits 0 only if every call succeeded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use plex_peer::pool::{BalancerConfig, PoolEvent};
use plex_peer::store::StoreFuture;
use plex_peer::{
    expose_store_port, Caps, Entries, MemberInfo, MemoryStore, Peer, PeerPool, PoolConfig, Range,
    StorePort,
};
use plex_runtime::{Config, ErrorCode, Session};
use tokio::sync::Notify;

/// The store id every server exposes.
const STORE_ID: &str = "example-store";
/// Calls the client makes.
const CALLS: usize = 300;
/// Calls in flight at once.
const WORKERS: usize = 6;
/// The server killed, and after how many calls.
const VICTIM: usize = 1;
const KILL_AFTER: usize = 100;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The replicas share one store, so any of them can answer any read.
    let replicated = MemoryStore::new();
    let pool = PeerPool::new(PoolConfig {
        balancer: BalancerConfig {
            event_capacity: 4 * CALLS,
            ..BalancerConfig::default()
        },
        ..PoolConfig::default()
    });
    let mut servers = Vec::new();
    for index in 0..3 {
        let server = Server::start(index, replicated.clone()).await?;
        let session = plex_tokio::connect(&server.url, Config::default()).await?;
        let member = pool.add(Arc::new(Peer::new(session)), MemberInfo::new());
        println!("server {index} on {} is {member}", server.url);
        servers.push(server);
    }

    let store = pool.store(STORE_ID);
    let next = Arc::new(AtomicUsize::new(0));
    let succeeded = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (store, next) = (store.clone(), next.clone());
        let (succeeded, failed) = (succeeded.clone(), failed.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= CALLS {
                    return;
                }
                match call(&store, i).await {
                    Ok(()) => succeeded.fetch_add(1, Ordering::SeqCst),
                    Err(e) => {
                        println!("call {i} failed: {e}");
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        });
    }
    let finished = || succeeded.load(Ordering::SeqCst) + failed.load(Ordering::SeqCst);
    let run = async {
        while finished() < KILL_AFTER {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        println!("-- killing server {VICTIM} after {} calls --", finished());
        servers[VICTIM].kill();
        while let Some(worker) = workers.join_next().await {
            worker?;
        }
        Ok::<_, BoxError>(())
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .map_err(|_| "the run did not finish within a minute")??;

    println!();
    println!("calls served by each server:");
    for server in &servers {
        println!(
            "  server {}: {}",
            server.index,
            server.served.load(Ordering::SeqCst)
        );
    }
    println!("members, as the pool sees them:");
    for stats in pool.stats() {
        let cooling = if stats.cooling_until.is_some() {
            "cooling down"
        } else {
            "eligible"
        };
        println!(
            "  {}: {} answered, {} failed, {} cancelled, latency ewma {:?}, {cooling}",
            stats.member, stats.calls, stats.failures, stats.cancelled, stats.latency_ewma
        );
    }
    println!("pool totals: {:?}", pool.totals());
    let mut completed = BTreeMap::new();
    println!("events other than completed calls:");
    while let Some(event) = pool.poll_event() {
        match event {
            PoolEvent::CallComplete { member, .. } => *completed.entry(member).or_insert(0) += 1,
            other => println!("  {other:?}"),
        }
    }
    for (member, n) in completed {
        println!("  ({member}: {n} CallComplete events)");
    }

    let (succeeded, failed) = (
        succeeded.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst),
    );
    println!("{succeeded} of {CALLS} calls succeeded, {failed} failed");
    if succeeded != CALLS {
        return Err(format!("{failed} calls failed").into());
    }
    Ok(())
}

/// Call `i`: a write, and every third call a read of an earlier write.
async fn call(store: &impl StorePort, i: usize) -> Result<(), BoxError> {
    if i % 3 == 2 {
        let key = Bytes::from(format!("order/{:04}", i - 2));
        // The earlier write may still be in flight in another worker.
        store.get(key, Bytes::new()).await?;
    } else {
        let key = Bytes::from(format!("order/{i:04}"));
        store
            .put(key, format!("item {i}").into(), Bytes::new())
            .await?;
    }
    Ok(())
}

/// A store-port server on loopback that can be killed.
struct Server {
    index: usize,
    url: String,
    served: Arc<AtomicU64>,
    killed: Arc<Notify>,
}

impl Server {
    async fn start(index: usize, store: MemoryStore) -> Result<Server, BoxError> {
        let listener = plex_tokio::listen("tcp://127.0.0.1:0", Config::default()).await?;
        let url = listener.local_endpoint().to_string();
        let served = Arc::new(AtomicU64::new(0));
        let killed = Arc::new(Notify::new());
        let port = Counted {
            store,
            served: served.clone(),
        };
        let on_kill = killed.clone();
        tokio::spawn(async move {
            let Ok((session, _)) = listener.accept().await else {
                return;
            };
            // No more connections once this one is accepted or killed.
            drop(listener);
            serve(session, port, &on_kill).await;
        });
        Ok(Server {
            index,
            url,
            served,
            killed,
        })
    }

    fn kill(&self) {
        self.killed.notify_one();
    }
}

/// Serves `port` until the session closes or the server is killed, which
/// drops the connection at once, calls in flight and all.
async fn serve(session: Session, port: Counted, killed: &Notify) {
    let peer = Peer::new(session);
    let _serving = expose_store_port(&peer, STORE_ID, "rpc", port);
    tokio::select! {
        _ = peer.session().expect("plex/1").closed() => {}
        () = killed.notified() => {
            // An error code closes without draining, as a crash would.
            let _ = peer.session().expect("plex/1").go_away(ErrorCode::INTERNAL_ERROR);
        }
    }
}

/// A replica: the shared store, counting the calls this server serves.
struct Counted {
    store: MemoryStore,
    served: Arc<AtomicU64>,
}

impl Counted {
    fn count<'a, T>(&'a self, call: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        self.served.fetch_add(1, Ordering::SeqCst);
        call
    }
}

impl StorePort for Counted {
    fn get(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, Option<Bytes>> {
        self.count(self.store.get(key, caps))
    }
    fn put(&self, key: Bytes, value: Bytes, caps: Caps) -> StoreFuture<'_, ()> {
        self.count(self.store.put(key, value, caps))
    }
    fn del(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, ()> {
        self.count(self.store.del(key, caps))
    }
    fn append(&self, value: Bytes, caps: Caps) -> StoreFuture<'_, Bytes> {
        self.count(self.store.append(value, caps))
    }
    fn scan(&self, range: Range, caps: Caps) -> StoreFuture<'_, Entries> {
        self.count(self.store.scan(range, caps))
    }
}
