//! The store-port suite on every backend and runtime, the redb writer's
//! group commit, and crash tests: a child process writing through a port
//! is SIGKILLed, and everything it saw acknowledged must be there after a
//! reopen, with append seqs continuing without reuse.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use plex_peer::store::{parse_append_key, StoreFuture};
use plex_peer::{MemoryStore, Range, StorePort};
use plex_ports::{PoolStore, RedbStore};
use plex_store::{Options, Pool};
use plex_tests::{store_suite, Rt};

plex_tests::on_every_runtime!(
    memory_store_conforms,
    redb_store_conforms,
    redb_store_conforms_as_a_dyn_port,
    pool_store_conforms_as_an_append_only_port,
    a_value_larger_than_the_pool_takes_is_payload_too_large,
    concurrent_redb_writes_share_commits,
    writers_beyond_the_queue_wait_for_room,
);

/// A pool large enough for every message the tests append.
const POOL_SIZE: u64 = 64 << 20;
/// Set in a crash test's child: the store file it writes to.
const CHILD_PATH: &str = "PLEX_TESTS_CRASH_CHILD_PATH";
/// Acknowledgements the parent reads before it kills the child.
const ACKS_BEFORE_KILL: usize = 300;
/// Threads writing concurrently in a crash test's child.
const CHILD_WRITERS: usize = 4;

fn memory_store_conforms(rt: Rt) {
    rt.block_on(store_suite::conformance(&MemoryStore::new()));
}

fn redb_store_conforms(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("kv.redb")).unwrap();
    rt.block_on(store_suite::conformance(&store));
}

fn redb_store_conforms_as_a_dyn_port(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let port: Arc<dyn StorePort> = Arc::new(RedbStore::open(dir.path().join("kv.redb")).unwrap());
    rt.block_on(store_suite::conformance(&*port));
}

fn pool_store_conforms_as_an_append_only_port(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::create(dir.path().join("log.pool"), POOL_SIZE, Options::new()).unwrap();
    rt.block_on(store_suite::append_only(&PoolStore::new(pool)));
}

fn a_value_larger_than_the_pool_takes_is_payload_too_large(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::create(dir.path().join("small.pool"), 1 << 20, Options::new()).unwrap();
    let too_big = Bytes::from(vec![0u8; 2 << 20]);
    let port = PoolStore::new(pool);
    let result = rt.block_on(port.append(too_big, Bytes::new()));
    assert!(
        matches!(
            &result,
            Err(plex_peer::Error::Failed {
                code: plex_peer::Code::PayloadTooLarge,
                ..
            })
        ),
        "{result:?}"
    );
    // The pool is unharmed.
    let key = rt
        .block_on(port.append(Bytes::from_static(b"fits"), Bytes::new()))
        .unwrap();
    assert_eq!(parse_append_key(&key), Some(1));
}

/// 64 puts in flight at once are all acknowledged and readable, and the
/// writer thread committed them in fewer transactions than writes.
fn concurrent_redb_writes_share_commits(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("kv.redb")).unwrap();
    rt.block_on(async {
        let puts = (0..64)
            .map(|i| {
                store.put(
                    format!("k{i:02}").into(),
                    format!("v{i}").into(),
                    Bytes::new(),
                )
            })
            .collect();
        for result in join_all(puts).await {
            result.unwrap();
        }
        for i in 0..64 {
            let value = store
                .get(format!("k{i:02}").into(), Bytes::new())
                .await
                .unwrap();
            assert_eq!(value, Some(Bytes::from(format!("v{i}"))));
        }
    });
    let stats = store.stats();
    assert_eq!(stats.writes, 64);
    assert!(stats.commits < stats.writes, "{stats:?}");
}

/// Four queues' worth of writes at once: those that find the queue full
/// wait (and are counted), and every one is committed.
fn writers_beyond_the_queue_wait_for_room(rt: Rt) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("kv.redb")).unwrap();
    let writes = 4 * RedbStore::QUEUE;
    rt.block_on(async {
        let appends = (0..writes)
            .map(|i| store.append(format!("{i}").into(), Bytes::new()))
            .collect();
        let keys: Vec<Bytes> = join_all(appends)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        // Concurrent appends get every seq once, in no particular order.
        let mut seqs: Vec<u64> = keys.iter().filter_map(|k| parse_append_key(k)).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=writes as u64).collect::<Vec<_>>());
        let log = store
            .scan(Range::prefix("log/"), Bytes::new())
            .await
            .unwrap();
        assert_eq!(log.collect().await.unwrap().len(), writes);
    });
    let stats = store.stats();
    assert_eq!(stats.writes, writes as u64);
    assert!(stats.waited > 0, "{stats:?}");
}

/// A child puts and appends through a `RedbStore` on several threads and
/// is SIGKILLed mid-run: every write it saw acknowledged is in the file,
/// and the append counter continues after the highest acknowledged seq.
#[test]
fn redb_keeps_every_acknowledged_write_across_sigkill() {
    if let Ok(path) = std::env::var(CHILD_PATH) {
        let store = RedbStore::open(path).unwrap();
        return write_until_killed(store, true);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.redb");
    let acks = run_child_and_kill("redb_keeps_every_acknowledged_write_across_sigkill", &path);

    let store = RedbStore::open(&path).unwrap();
    smol::block_on(async {
        check_acknowledged(&store, &acks).await;
        let highest = highest_seq(&acks);
        assert!(store.appended().await.unwrap() >= highest);
        let next = store.append("after".into(), Bytes::new()).await.unwrap();
        assert_continues(&store, &next).await;
    });
}

/// The same with a `PoolStore`: a child appends on several threads and
/// is SIGKILLed; the reopened pool (recovered) holds every acknowledged
/// append, and the next append gets a fresh seq.
#[test]
fn pool_keeps_every_acknowledged_append_across_sigkill() {
    if let Ok(path) = std::env::var(CHILD_PATH) {
        let store = PoolStore::new(Pool::open(path).unwrap());
        return write_until_killed(store, false);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.pool");
    drop(Pool::create(&path, POOL_SIZE, Options::new()).unwrap());
    let acks = run_child_and_kill("pool_keeps_every_acknowledged_append_across_sigkill", &path);

    let store = PoolStore::new(Pool::open(&path).unwrap());
    smol::block_on(async {
        check_acknowledged(&store, &acks).await;
        let next = store.append("after".into(), Bytes::new()).await.unwrap();
        assert_continues(&store, &next).await;
    });
}

/// One acknowledged write, as the child printed it.
#[derive(Debug)]
struct Ack {
    key: Bytes,
    value: Bytes,
}

/// The child: `CHILD_WRITERS` threads write forever (puts too if `puts`),
/// printing `key value` after each write is acknowledged.
fn write_until_killed<P: StorePort + Clone + 'static>(store: P, puts: bool) {
    let writers: Vec<_> = (0..CHILD_WRITERS)
        .map(|writer| {
            let store = store.clone();
            std::thread::spawn(move || {
                smol::block_on(async {
                    for i in 0u64.. {
                        let value = format!("w{writer}-{i}");
                        if puts {
                            let key = format!("put/{writer}/{i}");
                            store
                                .put(key.clone().into(), value.clone().into(), Bytes::new())
                                .await
                                .unwrap();
                            println!("{key} {value}");
                        }
                        let key = store.append(value.clone().into(), Bytes::new()).await;
                        println!(
                            "{} {value}",
                            String::from_utf8(key.unwrap().to_vec()).unwrap()
                        );
                    }
                })
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
}

/// Runs test `name` as a child writing to `path`, kills it after
/// [`ACKS_BEFORE_KILL`] acknowledgements, and returns every one it printed.
fn run_child_and_kill(name: &str, path: &Path) -> Vec<Ack> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_PATH, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut acks = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if acks.len() == ACKS_BEFORE_KILL {
            // SIGKILL, mid-run: the writers are still going.
            child.kill().unwrap();
        }
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        // Only a complete line was acknowledged; the harness's own lines
        // have no slash-separated key.
        let Some((key, value)) = line.strip_suffix('\n').and_then(|l| l.split_once(' ')) else {
            continue;
        };
        if key.contains('/') && value.starts_with('w') {
            acks.push(Ack {
                key: Bytes::copy_from_slice(key.as_bytes()),
                value: Bytes::copy_from_slice(value.as_bytes()),
            });
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child ended by itself: {status}");
    assert!(acks.len() >= ACKS_BEFORE_KILL, "{} acks", acks.len());
    acks
}

async fn check_acknowledged<P: StorePort>(store: &P, acks: &[Ack]) {
    let mut seqs: Vec<u64> = acks
        .iter()
        .filter_map(|a| parse_append_key(&a.key))
        .collect();
    let appends = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), appends, "an append seq was acknowledged twice");
    for ack in acks {
        let value = store.get(ack.key.clone(), Bytes::new()).await.unwrap();
        assert_eq!(value.as_ref(), Some(&ack.value), "{:?}", ack.key);
    }
}

fn highest_seq(acks: &[Ack]) -> u64 {
    acks.iter()
        .filter_map(|a| parse_append_key(&a.key))
        .max()
        .unwrap()
}

/// `next`, appended after the reopen, sorts after every append key in the
/// store: no seq was handed out twice.
async fn assert_continues<P: StorePort>(store: &P, next: &Bytes) {
    let newest = store
        .scan(Range::prefix("log/").reverse(), Bytes::new())
        .await
        .unwrap();
    let newest: Vec<_> = newest.collect().await.unwrap();
    assert_eq!(newest.first().map(|e| &e.key), Some(next));
    assert_eq!(newest.first().map(|e| &e.value[..]), Some(&b"after"[..]));
}

/// Polls every future at once and returns their outputs in order.
struct JoinAll<'a, T> {
    pending: Vec<Option<StoreFuture<'a, T>>>,
    outputs: Vec<Option<Result<T, plex_peer::Error>>>,
}

fn join_all<T>(futures: Vec<StoreFuture<'_, T>>) -> JoinAll<'_, T> {
    JoinAll {
        outputs: futures.iter().map(|_| None).collect(),
        pending: futures.into_iter().map(Some).collect(),
    }
}

impl<T: Unpin> Future for JoinAll<'_, T> {
    type Output = Vec<Result<T, plex_peer::Error>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        for (slot, output) in this.pending.iter_mut().zip(&mut this.outputs) {
            if let Some(future) = slot {
                if let Poll::Ready(result) = future.as_mut().poll(cx) {
                    *output = Some(result);
                    *slot = None;
                }
            }
        }
        if this.pending.iter().any(Option::is_some) {
            return Poll::Pending;
        }
        Poll::Ready(this.outputs.iter_mut().filter_map(Option::take).collect())
    }
}
