//! The balancer core: membership, selection and call accounting. Pure: no
//! clock (time comes in as `now`), no IO, randomness from a seeded RNG.

use std::time::{Duration, Instant};

use super::event::{EventQueue, PoolEvent};
use super::policy::{djb2, weighted_share, MemberInfo, Policy, Selector};
use super::stats::{millis, MemberState, MemberStats, Outcome, PoolTotals};

/// How a [`Balancer`] weighs its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalancerConfig {
    /// How long a member is skipped after a failure (neonplex: 2 s).
    pub cooldown: Duration,
    /// The peak-EWMA time constant `tau` (default 10 s).
    pub decay: Duration,
    /// How long failures weigh on a member's [`Policy::Weighted`] share:
    /// its failure count decays by a factor e every `failure_memory`
    /// (default 60 s), so a member that recovered wins its share back.
    /// neonplex counts failures forever.
    pub failure_memory: Duration,
    /// Both latency estimates before the first sample (neonplex: 1 ms).
    pub initial_latency: Duration,
    /// The seed of the RNG behind [`Policy::Weighted`] and [`Policy::P2c`];
    /// the same seed and the same inputs give the same choices. The default
    /// is a fixed constant.
    pub seed: u64,
    /// How many events wait for [`Balancer::poll_event`] before the oldest
    /// is dropped (default 256).
    pub event_capacity: usize,
}

impl Default for BalancerConfig {
    fn default() -> BalancerConfig {
        BalancerConfig {
            cooldown: Duration::from_secs(2),
            decay: Duration::from_secs(10),
            failure_memory: Duration::from_secs(60),
            initial_latency: Duration::from_millis(1),
            seed: 0x706c_6578_706f_6f6c,
            event_capacity: 256,
        }
    }
}

/// No member is eligible for the call: there is none, every one is cooling
/// down, or the call already tried every other one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no peers available")]
pub struct NoPeers;

/// Chooses which member takes each call, and keeps each member's health.
///
/// `K` identifies a member (the pool uses [`MemberId`](super::MemberId)).
/// Members keep the order in which they were added; round-robin and sticky
/// selection follow it.
///
/// - Getters: [`len`](Self::len), [`contains`](Self::contains),
///   [`stats`](Self::stats), [`totals`](Self::totals).
/// - Mutators: [`add`](Self::add), [`remove`](Self::remove).
/// - Calls: [`select`](Self::select) a member, [`start`](Self::start) the
///   call on it, [`finish`](Self::finish) it with its [`Outcome`]. Every
///   `start` must be matched by exactly one `finish`, with
///   [`Outcome::Cancelled`] for a call dropped on the way.
/// - Output: [`poll_event`](Self::poll_event) until it returns `None`.
///
/// A member that failed cools down for [`BalancerConfig::cooldown`] and is
/// not eligible meanwhile. When every member is cooling down, selection
/// fails with [`NoPeers`] (neonplex: "no peers available") rather than
/// picking a member that just failed: the caller learns at once, and the
/// first cooldown to end makes the pool usable again.
///
/// `now` should not go backwards; if it does, cooldowns and estimates
/// treat the earlier instant as no time elapsed.
#[derive(Debug)]
pub struct Balancer<K> {
    config: BalancerConfig,
    members: Vec<Slot<K>>,
    next_order: u64,
    /// The order of the member round-robin picked last.
    last_turn: Option<u64>,
    rng: fastrand::Rng,
    events: EventQueue<K>,
    totals: PoolTotals,
}

#[derive(Debug)]
struct Slot<K> {
    /// When it was added, relative to the others.
    order: u64,
    state: MemberState<K>,
}

impl<K: Clone + Eq> Balancer<K> {
    /// An empty balancer.
    pub fn new(config: BalancerConfig) -> Balancer<K> {
        Balancer {
            config,
            members: Vec::new(),
            next_order: 0,
            last_turn: None,
            rng: fastrand::Rng::with_seed(config.seed),
            events: EventQueue::new(config.event_capacity),
            totals: PoolTotals::default(),
        }
    }

    /// How many members it has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether it has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether `member` is a member.
    pub fn contains(&self, member: &K) -> bool {
        self.position(member).is_some()
    }

    /// Each member's numbers at `now`, in the order they were added.
    pub fn stats(&self, now: Instant) -> Vec<MemberStats<K>> {
        self.members
            .iter()
            .map(|slot| slot.state.stats(now, self.config.decay))
            .collect()
    }

    /// The pool-wide counters.
    pub fn totals(&self) -> PoolTotals {
        PoolTotals {
            events_dropped: self.events.dropped,
            ..self.totals
        }
    }

    /// Adds `member` with `info`, after the existing members. If it is a
    /// member already, only its info changes; returns whether it is new.
    pub fn add(&mut self, member: K, info: MemberInfo) -> bool {
        if let Some(i) = self.position(&member) {
            self.members[i].state.info = info;
            return false;
        }
        let initial = millis(self.config.initial_latency);
        self.members.push(Slot {
            order: self.next_order,
            state: MemberState::new(member.clone(), info, initial),
        });
        self.next_order += 1;
        self.events.push(PoolEvent::PeerAdded { member });
        true
    }

    /// Removes `member`; returns whether it was one. Calls in flight on it
    /// may still [`finish`](Self::finish): they count in the totals only.
    pub fn remove(&mut self, member: &K) -> bool {
        let Some(i) = self.position(member) else {
            return false;
        };
        let slot = self.members.remove(i);
        self.events.push(PoolEvent::PeerRemoved {
            member: slot.state.key,
        });
        true
    }

    /// Picks the member for a call at `now`, among the members that are not
    /// cooling down and not in `selector.exclude`.
    pub fn select(&mut self, now: Instant, selector: &Selector<'_, K>) -> Result<K, NoPeers> {
        let candidates: Vec<usize> = (0..self.members.len())
            .filter(|&i| {
                let state = &self.members[i].state;
                state.is_eligible(now) && !selector.exclude.contains(&state.key)
            })
            .collect();
        if candidates.is_empty() {
            if selector.exclude.is_empty() {
                self.totals.no_peer += 1;
                self.events.push(PoolEvent::NoPeer);
            }
            return Err(NoPeers);
        }
        let i = match selector.policy {
            Policy::RoundRobin => self.round_robin(&candidates),
            Policy::Weighted { prefer_local } => self.weighted(now, &candidates, prefer_local),
            Policy::Sticky => match selector.key {
                Some(key) if !key.is_empty() => {
                    // u32 → usize is lossless on every target Plex builds for.
                    candidates[djb2(key) as usize % candidates.len()]
                }
                _ => self.round_robin(&candidates),
            },
            Policy::P2c => self.p2c(now, &candidates),
        };
        Ok(self.members[i].state.key.clone())
    }

    /// Counts a call started on `member`; returns whether it is a member.
    pub fn start(&mut self, member: &K) -> bool {
        let Some(i) = self.position(member) else {
            return false;
        };
        self.members[i].state.in_flight += 1;
        true
    }

    /// Records the end of a call [`start`](Self::start)ed on `member`;
    /// returns whether it is still a member.
    pub fn finish(&mut self, now: Instant, member: &K, outcome: Outcome) -> bool {
        match outcome {
            Outcome::Answered { .. } => self.totals.calls += 1,
            Outcome::Failed { .. } => self.totals.failures += 1,
            Outcome::Cancelled => self.totals.cancelled += 1,
        }
        let Some(i) = self.position(member) else {
            return false;
        };
        let state = &mut self.members[i].state;
        state.finish(now, outcome, &self.config);
        let event = match outcome {
            Outcome::Answered { latency } => PoolEvent::CallComplete {
                member: member.clone(),
                latency,
            },
            Outcome::Failed { latency } => PoolEvent::CallError {
                member: member.clone(),
                latency,
                failures: state.failures,
                cooling_until: state.cooling_until,
            },
            Outcome::Cancelled => return true,
        };
        self.events.push(event);
        true
    }

    /// The next event, oldest first.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<PoolEvent<K>> {
        self.events.pop()
    }

    /// Whether an event waits for [`poll_event`](Self::poll_event).
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    fn position(&self, member: &K) -> Option<usize> {
        self.members
            .iter()
            .position(|slot| slot.state.key == *member)
    }

    /// The first candidate added after the last member round-robin picked,
    /// wrapping around: removing or adding members leaves the turn of the
    /// others as it was.
    fn round_robin(&mut self, candidates: &[usize]) -> usize {
        let after_last = |&&i: &&usize| {
            self.last_turn
                .is_none_or(|last| self.members[i].order > last)
        };
        let i = *candidates.iter().find(after_last).unwrap_or(&candidates[0]);
        self.last_turn = Some(self.members[i].order);
        i
    }

    /// neonplex's `pickWeighted`: walk the shares down a uniform draw.
    fn weighted(&mut self, now: Instant, candidates: &[usize], prefer_local: bool) -> usize {
        let memory = self.config.failure_memory;
        let shares: Vec<f64> = candidates
            .iter()
            .map(|&i| {
                let s = &self.members[i].state;
                let failures = s.recent_failures.value(now, memory);
                weighted_share(&s.info, prefer_local, failures, s.latency_ewma)
            })
            .collect();
        let mut r = self.rng.f64() * shares.iter().sum::<f64>();
        for (&i, share) in candidates.iter().zip(&shares) {
            r -= share;
            if r <= 0.0 {
                return i;
            }
        }
        // Rounding can leave a sliver after the last share.
        candidates[candidates.len() - 1]
    }

    /// Two distinct candidates at random; the lower
    /// `peak_ewma × (in_flight + 1)` wins, the first drawn on a tie.
    fn p2c(&mut self, now: Instant, candidates: &[usize]) -> usize {
        let n = candidates.len();
        if n == 1 {
            return candidates[0];
        }
        let a = self.rng.usize(0..n);
        let mut b = self.rng.usize(0..n - 1);
        if b >= a {
            b += 1;
        }
        let (a, b) = (candidates[a], candidates[b]);
        // An estimate nobody sampled yet decays from its first comparison,
        // as tower's starts decaying when the endpoint is created: a new
        // member among fast ones is tried soon, not shunned for ever.
        for i in [a, b] {
            self.members[i].state.peak.start(now);
        }
        let cost = |i: usize| {
            let s = &self.members[i].state;
            // u64 → f64 rounds only past 2^53 calls in flight.
            #[allow(clippy::cast_precision_loss)]
            let load = (s.in_flight + 1) as f64;
            s.peak.estimate(now, self.config.decay) * load
        };
        if cost(a) <= cost(b) {
            a
        } else {
            b
        }
    }
}
