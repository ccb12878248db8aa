//! The peer pool (neonplex's `pool.js`): one store port spread over many
//! peers, with a choice of [`Policy`], per-member health, cooldown after a
//! failure and failover to another member.
//!
//! The [`Balancer`] is the pure core: it chooses members and keeps their
//! numbers, with time passed in and a seeded RNG. [`PeerPool`] wraps it for
//! async use: [`PeerPool::store`] gives a [`PoolPort`], a [`StorePort`]
//! whose every call goes through the balancer.

mod balancer;
mod event;
mod policy;
mod port;
mod stats;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};
use std::time::Instant;

use bytes::Bytes;

pub use balancer::{Balancer, BalancerConfig, NoPeers};
pub use event::PoolEvent;
pub use policy::{djb2, weighted_share, Locality, MemberInfo, Policy, Selector, WEIGHT_FLOOR};
pub use port::PoolPort;
pub use stats::{MemberStats, Outcome, PoolTotals};

use crate::StorePort;

/// A pool member: something that reaches a store port by id and lane,
/// such as a peer (whose ports are cached per `id::lane`).
pub trait Member: Send + Sync + 'static {
    /// The port serving store `id` on `lane`. The pool calls it for every
    /// call it routes to this member, so it should be cheap (cached).
    fn store_port(&self, id: &Bytes, lane: &str) -> Arc<dyn StorePort>;
}

/// A member of one [`PeerPool`]; never reused within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(u64);

impl MemberId {
    /// Its number: members are numbered from 1 in the order they joined.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "member {}", self.0)
    }
}

/// How a [`PeerPool`] routes calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// The policy of its ports (a port can override it); default round-robin.
    pub policy: Policy,
    /// The lane ports are reached on (neonplex's default `rpc`).
    pub lane: String,
    /// How many members one call tries at most, failover included; `None`
    /// (the default) tries each member at most once. A call never tries
    /// the same member twice either way.
    pub max_attempts: Option<usize>,
    /// Cooldown, latency estimates, RNG seed and event queue.
    pub balancer: BalancerConfig,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            policy: Policy::RoundRobin,
            lane: "rpc".to_owned(),
            max_attempts: None,
            balancer: BalancerConfig::default(),
        }
    }
}

/// Peers serving the same stores, used as one: cheap to clone, clones
/// share the members and their numbers.
///
/// Time is the process clock; the [`Balancer`] inside is the same logic on
/// any clock.
///
/// ```
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use plex_peer::pool::{Member, MemberInfo, PeerPool, PoolConfig, Policy};
/// use plex_peer::{MemoryStore, StorePort};
///
/// // A member reaches a store port by id and lane; a peer opens an RPC
/// // lane, this one holds a store in memory.
/// struct Replica(MemoryStore);
/// impl Member for Replica {
///     fn store_port(&self, _id: &Bytes, _lane: &str) -> Arc<dyn StorePort> {
///         Arc::new(self.0.clone())
///     }
/// }
///
/// let pool = PeerPool::new(PoolConfig { policy: Policy::P2c, ..PoolConfig::default() });
/// let shared = MemoryStore::new();
/// pool.add(Arc::new(Replica(shared.clone())), MemberInfo::new());
/// pool.add(Arc::new(Replica(shared)), MemberInfo::new());
///
/// let store = pool.store("example-store");
/// smol::block_on(async {
///     store.put("k".into(), "v".into(), Bytes::new()).await?;
///     assert_eq!(store.get("k".into(), Bytes::new()).await?, Some("v".into()));
///     Ok::<_, plex_peer::Error>(())
/// })?;
/// assert_eq!(pool.totals().calls, 2);
/// # Ok::<_, plex_peer::Error>(())
/// ```
#[derive(Clone)]
pub struct PeerPool {
    shared: Arc<Shared>,
}

struct Shared {
    policy: Policy,
    lane: Arc<str>,
    max_attempts: Option<usize>,
    state: Mutex<State>,
}

struct State {
    balancer: Balancer<MemberId>,
    members: Vec<(MemberId, Arc<dyn Member>)>,
    next_id: u64,
    /// Tasks in [`PeerPool::next_event`], woken when an event is queued.
    event_waiters: Vec<Waker>,
}

impl PeerPool {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> PeerPool {
        PeerPool {
            shared: Arc::new(Shared {
                policy: config.policy,
                lane: config.lane.into(),
                max_attempts: config.max_attempts,
                state: Mutex::new(State {
                    balancer: Balancer::new(config.balancer),
                    members: Vec::new(),
                    next_id: 1,
                    event_waiters: Vec::new(),
                }),
            }),
        }
    }

    /// Adds `member` after the others.
    pub fn add(&self, member: Arc<dyn Member>, info: MemberInfo) -> MemberId {
        self.shared.with(|state| {
            let id = MemberId(state.next_id);
            state.next_id += 1;
            state.balancer.add(id, info);
            state.members.push((id, member));
            id
        })
    }

    /// Removes a member; returns whether it was one. Its calls in flight
    /// run to their end.
    pub fn remove(&self, id: MemberId) -> bool {
        self.shared.with(|state| {
            state.members.retain(|(m, _)| *m != id);
            state.balancer.remove(&id)
        })
    }

    /// How many members it has.
    pub fn len(&self) -> usize {
        self.shared.with(|state| state.members.len())
    }

    /// Whether it has no member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Store `id` on the pool's lane, through the pool.
    pub fn store(&self, id: impl Into<Bytes>) -> PoolPort {
        PoolPort::new(self.clone(), id.into(), Arc::clone(&self.shared.lane))
    }

    /// Store `id` on `lane`, through the pool.
    pub fn store_on(&self, id: impl Into<Bytes>, lane: &str) -> PoolPort {
        PoolPort::new(self.clone(), id.into(), lane.into())
    }

    /// Each member's numbers now, in the order they joined.
    pub fn stats(&self) -> Vec<MemberStats<MemberId>> {
        self.shared
            .with(|state| state.balancer.stats(Instant::now()))
    }

    /// The pool-wide counters.
    pub fn totals(&self) -> PoolTotals {
        self.shared.with(|state| state.balancer.totals())
    }

    /// The next event, oldest first; the queue holds
    /// [`BalancerConfig::event_capacity`] and drops the oldest beyond.
    #[must_use]
    pub fn poll_event(&self) -> Option<PoolEvent<MemberId>> {
        self.shared.with(|state| state.balancer.poll_event())
    }

    /// Waits for the next event, oldest first. Any number of tasks may
    /// wait; each event goes to one of them.
    pub async fn next_event(&self) -> PoolEvent<MemberId> {
        poll_fn(|cx| {
            self.shared.with(|state| match state.balancer.poll_event() {
                Some(event) => Poll::Ready(event),
                None => {
                    if !state.event_waiters.iter().any(|w| w.will_wake(cx.waker())) {
                        state.event_waiters.push(cx.waker().clone());
                    }
                    Poll::Pending
                }
            })
        })
        .await
    }

    /// The default policy of its ports.
    fn policy(&self) -> Policy {
        self.shared.policy
    }

    fn max_attempts(&self) -> Option<usize> {
        self.shared.max_attempts
    }

    /// Selects a member and starts a call on it, in one step.
    fn begin(
        &self,
        selector: &Selector<'_, MemberId>,
    ) -> Result<(MemberId, Arc<dyn Member>), NoPeers> {
        self.shared.with(|state| {
            let id = state.balancer.select(Instant::now(), selector)?;
            let member = state
                .members
                .iter()
                .find(|(m, _)| *m == id)
                .map(|(_, member)| Arc::clone(member))
                // The balancer and the list change together under the lock.
                .ok_or(NoPeers)?;
            state.balancer.start(&id);
            Ok((id, member))
        })
    }

    fn finish(&self, id: MemberId, outcome: Outcome) {
        self.shared
            .with(|state| state.balancer.finish(Instant::now(), &id, outcome));
    }
}

impl fmt::Debug for PeerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerPool")
            .field("policy", &self.shared.policy)
            .field("lane", &self.shared.lane)
            .field("members", &self.len())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Runs `f` on the state, then wakes the tasks waiting for an event if
    /// one is queued.
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // Nothing panics while holding the lock; the state stays consistent.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let out = f(&mut state);
        let wake = match state.balancer.has_events() {
            true => std::mem::take(&mut state.event_waiters),
            false => Vec::new(),
        };
        drop(state);
        wake.into_iter().for_each(Waker::wake);
        out
    }
}
