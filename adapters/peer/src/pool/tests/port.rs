//! `PoolPort` over fake members: failover, cooldown, errors that are not
//! the member's fault, appends, scans and calls dropped on the way.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use smol::future::{block_on, poll_once};

use crate::pool::{Member, MemberId, MemberInfo, PeerPool, Policy, PoolConfig, PoolEvent};
use crate::store::{Caps, Entries, Entry, StoreFuture};
use crate::{Code, Error, MemoryStore, Range, StorePort};

/// A member that always reaches the same port.
struct Fixed(Arc<dyn StorePort>);

impl Member for Fixed {
    fn store_port(&self, _id: &Bytes, _lane: &str) -> Arc<dyn StorePort> {
        Arc::clone(&self.0)
    }
}

fn member(port: impl StorePort + 'static) -> Arc<dyn Member> {
    Arc::new(Fixed(Arc::new(port)))
}

/// A port whose every call fails with `error`, counting the calls.
struct Failing {
    error: Error,
    calls: Arc<AtomicUsize>,
}

impl Failing {
    fn new(error: Error) -> (Failing, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let port = Failing {
            error,
            calls: Arc::clone(&calls),
        };
        (port, calls)
    }

    fn fail<T: Send + 'static>(&self) -> StoreFuture<'_, T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let error = self.error.clone();
        Box::pin(async move { Err(error) })
    }
}

impl StorePort for Failing {
    fn get(&self, _key: Bytes, _caps: Caps) -> StoreFuture<'_, Option<Bytes>> {
        self.fail()
    }
    fn put(&self, _key: Bytes, _value: Bytes, _caps: Caps) -> StoreFuture<'_, ()> {
        self.fail()
    }
    fn del(&self, _key: Bytes, _caps: Caps) -> StoreFuture<'_, ()> {
        self.fail()
    }
    fn append(&self, _value: Bytes, _caps: Caps) -> StoreFuture<'_, Bytes> {
        self.fail()
    }
    fn scan(&self, _range: Range, _caps: Caps) -> StoreFuture<'_, Entries> {
        self.fail()
    }
}

/// A port whose calls never resolve.
struct Stalled;

impl StorePort for Stalled {
    fn get(&self, _key: Bytes, _caps: Caps) -> StoreFuture<'_, Option<Bytes>> {
        Box::pin(std::future::pending())
    }
    fn put(&self, _key: Bytes, _value: Bytes, _caps: Caps) -> StoreFuture<'_, ()> {
        Box::pin(std::future::pending())
    }
    fn del(&self, _key: Bytes, _caps: Caps) -> StoreFuture<'_, ()> {
        Box::pin(std::future::pending())
    }
    fn append(&self, _value: Bytes, _caps: Caps) -> StoreFuture<'_, Bytes> {
        Box::pin(std::future::pending())
    }
    fn scan(&self, _range: Range, _caps: Caps) -> StoreFuture<'_, Entries> {
        Box::pin(std::future::pending())
    }
}

/// A port whose scans yield `entries` and then `error`.
struct BreaksMidScan {
    entries: Vec<Entry>,
    error: Error,
}

impl StorePort for BreaksMidScan {
    fn get(&self, _key: Bytes, _caps: Caps) -> StoreFuture<'_, Option<Bytes>> {
        Box::pin(async { Ok(None) })
    }
    fn put(&self, _key: Bytes, _value: Bytes, _caps: Caps) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
    fn del(&self, _key: Bytes, _caps: Caps) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
    fn append(&self, _value: Bytes, _caps: Caps) -> StoreFuture<'_, Bytes> {
        Box::pin(async { Ok(Bytes::new()) })
    }
    fn scan(&self, _range: Range, _caps: Caps) -> StoreFuture<'_, Entries> {
        let mut items: Vec<Result<Entry, Error>> = self.entries.iter().cloned().map(Ok).collect();
        items.push(Err(self.error.clone()));
        Box::pin(async move { Ok(Entries::new(smol::stream::iter(items))) })
    }
}

fn peer_failure() -> Error {
    Error::Timeout {
        after: Duration::from_millis(50),
    }
}

fn no_caps() -> Caps {
    Bytes::new()
}

fn stats_of(pool: &PeerPool, id: MemberId) -> crate::pool::MemberStats<MemberId> {
    pool.stats()
        .into_iter()
        .find(|s| s.member == id)
        .expect("a member")
}

#[test]
fn calls_fail_over_from_a_failing_member_which_then_cools_down() {
    let pool = PeerPool::new(PoolConfig::default());
    let (broken, broken_calls) = Failing::new(peer_failure());
    let bad = pool.add(member(broken), MemberInfo::new());
    // Two replicas of one store.
    let replica = MemoryStore::new();
    let good1 = pool.add(member(replica.clone()), MemberInfo::new());
    let good2 = pool.add(member(replica.clone()), MemberInfo::new());
    let store = pool.store("s");

    block_on(async {
        for i in 0..10u8 {
            let key = Bytes::from(vec![b'k', i]);
            store
                .put(key.clone(), Bytes::from(vec![i]), no_caps())
                .await
                .unwrap();
            assert_eq!(
                store.get(key, no_caps()).await.unwrap(),
                Some(Bytes::from(vec![i]))
            );
        }
    });
    assert_eq!(replica.len(), 10);
    // Tried once; its cooldown (2 s) outlasts the test's calls.
    assert_eq!(broken_calls.load(Ordering::SeqCst), 1);
    let bad_stats = stats_of(&pool, bad);
    assert_eq!(bad_stats.failures, 1);
    assert!(bad_stats.cooling_until.is_some());
    assert_eq!(bad_stats.in_flight, 0);
    let answered = stats_of(&pool, good1).calls + stats_of(&pool, good2).calls;
    assert_eq!(answered, 20);
    assert_eq!(pool.totals().failures, 1);
    let mut saw_error = false;
    while let Some(event) = pool.poll_event() {
        if let PoolEvent::CallError { member, .. } = event {
            assert_eq!(member, bad);
            saw_error = true;
        }
    }
    assert!(saw_error);
}

#[test]
fn all_members_failing_ends_in_the_last_failure_then_no_peers() {
    let pool = PeerPool::new(PoolConfig::default());
    let (a, a_calls) = Failing::new(peer_failure());
    let (b, b_calls) = Failing::new(Error::Unavailable);
    pool.add(member(a), MemberInfo::new());
    pool.add(member(b), MemberInfo::new());
    let store = pool.store("s");

    let first = block_on(store.get("k".into(), no_caps()));
    assert!(matches!(first, Err(Error::Unavailable)), "{first:?}");
    assert_eq!(
        (
            a_calls.load(Ordering::SeqCst),
            b_calls.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
    // Both cool down: the next call fails at once, touching neither.
    let second = block_on(store.get("k".into(), no_caps()));
    assert!(matches!(second, Err(Error::NoPeers)), "{second:?}");
    assert_eq!(
        (
            a_calls.load(Ordering::SeqCst),
            b_calls.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
    assert_eq!(pool.totals().no_peer, 1);
}

#[test]
fn an_empty_pool_has_no_peers() {
    let pool = PeerPool::new(PoolConfig::default());
    let store = pool.store("s");
    let got = block_on(store.put("k".into(), "v".into(), no_caps()));
    assert!(matches!(got, Err(Error::NoPeers)), "{got:?}");
    assert_eq!(pool.poll_event(), Some(PoolEvent::NoPeer));
    let scan = block_on(store.scan(Range::all(), no_caps()));
    assert!(matches!(scan, Err(Error::NoPeers)), "{scan:?}");
}

#[test]
fn max_attempts_bounds_the_failover() {
    let pool = PeerPool::new(PoolConfig {
        max_attempts: Some(2),
        ..PoolConfig::default()
    });
    let mut counters = Vec::new();
    for _ in 0..3 {
        let (port, calls) = Failing::new(peer_failure());
        pool.add(member(port), MemberInfo::new());
        counters.push(calls);
    }
    let third = pool.add(member(MemoryStore::new()), MemberInfo::new());
    let got = block_on(pool.store("s").del("k".into(), no_caps()));
    assert!(matches!(got, Err(Error::Timeout { .. })), "{got:?}");
    let tried: usize = counters.iter().map(|c| c.load(Ordering::SeqCst)).sum();
    assert_eq!(tried, 2);
    assert_eq!(stats_of(&pool, third).calls, 0);
}

#[test]
fn an_error_about_the_request_is_returned_and_not_held_against_the_member() {
    let pool = PeerPool::new(PoolConfig::default());
    let (refuses, refused) = Failing::new(Error::failed(Code::BadArg, "no"));
    let first = pool.add(member(refuses), MemberInfo::new());
    let other = MemoryStore::new();
    pool.add(member(other.clone()), MemberInfo::new());

    let got = block_on(pool.store("s").put("k".into(), "v".into(), no_caps()));
    assert!(
        matches!(
            &got,
            Err(Error::Failed {
                code: Code::BadArg,
                ..
            })
        ),
        "{got:?}"
    );
    assert_eq!(refused.load(Ordering::SeqCst), 1);
    assert!(other.is_empty());
    let stats = stats_of(&pool, first);
    assert_eq!(
        (stats.calls, stats.failures, stats.cooling_until),
        (1, 0, None)
    );
}

#[test]
fn an_append_is_retried_only_when_it_was_not_delivered() {
    // A timeout: the append may have happened, so it is not repeated.
    let pool = PeerPool::new(PoolConfig::default());
    let (slow, _) = Failing::new(peer_failure());
    pool.add(member(slow), MemberInfo::new());
    let other = MemoryStore::new();
    pool.add(member(other.clone()), MemberInfo::new());
    let got = block_on(pool.store("s").append("x".into(), no_caps()));
    assert!(matches!(got, Err(Error::Timeout { .. })), "{got:?}");
    assert!(other.is_empty());

    // Nobody served the lane: it never arrived, so another member takes it.
    let pool = PeerPool::new(PoolConfig::default());
    let (absent, _) = Failing::new(Error::Unavailable);
    let absent = pool.add(member(absent), MemberInfo::new());
    let other = MemoryStore::new();
    pool.add(member(other.clone()), MemberInfo::new());
    let key = block_on(pool.store("s").append("x".into(), no_caps())).unwrap();
    assert_eq!(
        block_on(other.get(key, no_caps())).unwrap(),
        Some("x".into())
    );
    assert_eq!(stats_of(&pool, absent).failures, 1);
}

#[test]
fn a_scan_fails_over_before_its_first_entry_only() {
    let pool = PeerPool::new(PoolConfig::default());
    let (broken, _) = Failing::new(peer_failure());
    pool.add(member(broken), MemberInfo::new());
    let replica = MemoryStore::new();
    for k in ["a/1", "a/2", "b/1"] {
        block_on(replica.put(k.into(), "v".into(), no_caps())).unwrap();
    }
    let good = pool.add(member(replica), MemberInfo::new());
    let entries = block_on(async {
        let entries = pool.store("s").scan(Range::prefix("a/"), no_caps()).await?;
        entries.collect().await
    })
    .unwrap();
    let keys: Vec<Bytes> = entries.into_iter().map(|e| e.key).collect();
    assert_eq!(keys, [Bytes::from("a/1"), Bytes::from("a/2")]);
    let stats = stats_of(&pool, good);
    assert_eq!((stats.calls, stats.in_flight), (1, 0));

    // Once an entry came, a failure ends the scan: no retry elsewhere.
    let pool = PeerPool::new(PoolConfig::default());
    let one = Entry {
        key: "a/1".into(),
        value: "v".into(),
    };
    let breaks = pool.add(
        member(BreaksMidScan {
            entries: vec![one.clone()],
            error: peer_failure(),
        }),
        MemberInfo::new(),
    );
    let spare = pool.add(member(MemoryStore::new()), MemberInfo::new());
    block_on(async {
        let mut entries = pool.store("s").scan(Range::all(), no_caps()).await.unwrap();
        assert_eq!(entries.next().await.unwrap().unwrap(), one);
        assert!(matches!(
            entries.next().await,
            Some(Err(Error::Timeout { .. }))
        ));
        assert!(entries.next().await.is_none());
    });
    let stats = stats_of(&pool, breaks);
    assert_eq!((stats.failures, stats.in_flight), (1, 0));
    assert!(stats.cooling_until.is_some());
    assert_eq!(stats_of(&pool, spare).calls, 0);
}

#[test]
fn a_call_dropped_on_the_way_leaves_nothing_in_flight() {
    let pool = PeerPool::new(PoolConfig::default());
    let stalled = pool.add(member(Stalled), MemberInfo::new());
    let store = pool.store("s");

    let mut get = store.get("k".into(), no_caps());
    assert!(block_on(poll_once(&mut get)).is_none());
    let mut put = store.put("k".into(), "v".into(), no_caps());
    assert!(block_on(poll_once(&mut put)).is_none());
    assert_eq!(stats_of(&pool, stalled).in_flight, 2);

    drop(get);
    assert_eq!(stats_of(&pool, stalled).in_flight, 1);
    drop(put);
    let stats = stats_of(&pool, stalled);
    assert_eq!(
        (
            stats.in_flight,
            stats.cancelled,
            stats.failures,
            stats.calls
        ),
        (0, 2, 0, 0)
    );
    assert_eq!(stats.cooling_until, None);
}

#[test]
fn a_scan_stays_in_flight_until_its_entries_are_dropped() {
    let pool = PeerPool::new(PoolConfig::default());
    let replica = MemoryStore::new();
    for k in ["a", "b", "c"] {
        block_on(replica.put(k.into(), "v".into(), no_caps())).unwrap();
    }
    let m = pool.add(member(replica), MemberInfo::new());
    let store = pool.store("s");
    let mut entries = block_on(store.scan(Range::all(), no_caps())).unwrap();
    assert_eq!(block_on(entries.next()).unwrap().unwrap().key, "a");
    assert_eq!(stats_of(&pool, m).in_flight, 1);
    // The member answered: stopping early is not a cancellation.
    drop(entries);
    let stats = stats_of(&pool, m);
    assert_eq!((stats.in_flight, stats.calls, stats.cancelled), (0, 1, 0));
}

#[test]
fn sticky_ports_send_each_key_to_one_member() {
    let pool = PeerPool::new(PoolConfig {
        policy: Policy::Sticky,
        ..PoolConfig::default()
    });
    let stores: Vec<MemoryStore> = (0..3).map(|_| MemoryStore::new()).collect();
    for s in &stores {
        pool.add(member(s.clone()), MemberInfo::new());
    }
    let store = pool.store("s");
    block_on(async {
        for _ in 0..5 {
            // djb2 264808764 mod 3 = 0 and 264808765 mod 3 = 1.
            store
                .put("key-a".into(), "1".into(), no_caps())
                .await
                .unwrap();
            store
                .put("key-b".into(), "2".into(), no_caps())
                .await
                .unwrap();
        }
        assert_eq!(
            store.get("key-a".into(), no_caps()).await.unwrap(),
            Some("1".into())
        );
    });
    let lens: Vec<usize> = stores.iter().map(MemoryStore::len).collect();
    assert_eq!(lens, [1, 1, 0]);
    assert_eq!(
        block_on(stores[0].get("key-a".into(), no_caps())).unwrap(),
        Some("1".into())
    );

    // A round-robin port over the same pool spreads appends over all three.
    let rr = pool.store("s").with_policy(Policy::RoundRobin);
    block_on(async {
        for _ in 0..3 {
            rr.append("x".into(), no_caps()).await.unwrap();
        }
    });
    let lens: Vec<usize> = stores.iter().map(MemoryStore::len).collect();
    assert_eq!(lens, [2, 2, 1]);
}

#[test]
fn pool_ports_are_send_and_sync_and_usable_as_dyn_ports() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<PeerPool>();
    assert_send_sync::<crate::PoolPort>();
    let pool = PeerPool::new(PoolConfig::default());
    pool.add(member(MemoryStore::new()), MemberInfo::new());
    let port: Arc<dyn StorePort> = Arc::new(pool.store("s"));
    block_on(port.put("k".into(), "v".into(), no_caps())).unwrap();
    assert_eq!(
        block_on(port.get("k".into(), no_caps())).unwrap(),
        Some("v".into())
    );
    let removed = pool.stats()[0].member;
    assert!(pool.remove(removed));
    assert!(pool.is_empty());
    assert!(matches!(
        block_on(port.get("k".into(), no_caps())),
        Err(Error::NoPeers)
    ));
}

/// Counts its wake-ups.
struct Wakes(AtomicUsize);

impl std::task::Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Two tasks waiting for events are both woken by the mutation that queues
/// one, and each event goes to one of them.
#[test]
fn tasks_waiting_for_events_are_woken_and_each_event_goes_to_one() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    let pool = PeerPool::new(PoolConfig::default());
    let (a, b) = (pool.clone(), pool.clone());
    let mut first = Box::pin(async move { a.next_event().await });
    let mut second = Box::pin(async move { b.next_event().await });
    let wakes = [
        Arc::new(Wakes(AtomicUsize::new(0))),
        Arc::new(Wakes(AtomicUsize::new(0))),
    ];
    let wakers: Vec<Waker> = wakes.iter().map(|w| Waker::from(w.clone())).collect();
    let (mut cx1, mut cx2) = (
        Context::from_waker(&wakers[0]),
        Context::from_waker(&wakers[1]),
    );
    assert!(first.as_mut().poll(&mut cx1).is_pending());
    assert!(second.as_mut().poll(&mut cx2).is_pending());
    // Polling again does not register twice.
    assert!(first.as_mut().poll(&mut cx1).is_pending());

    let one = pool.add(member(MemoryStore::new()), MemberInfo::new());
    assert_eq!(wakes.each_ref().map(|w| w.0.load(Ordering::SeqCst)), [1, 1]);
    let Poll::Ready(PoolEvent::PeerAdded { member: got }) = second.as_mut().poll(&mut cx2) else {
        panic!("the second waiter gets the first event");
    };
    assert_eq!(got, one);
    // The first finds the queue empty again and waits on.
    assert!(first.as_mut().poll(&mut cx1).is_pending());
    let two = pool.add(member(MemoryStore::new()), MemberInfo::new());
    assert_eq!(wakes[0].0.load(Ordering::SeqCst), 2);
    let Poll::Ready(PoolEvent::PeerAdded { member: got }) = first.as_mut().poll(&mut cx1) else {
        panic!("the first waiter gets the second event");
    };
    assert_eq!(got, two);
    assert!(pool.poll_event().is_none());
}
