//! Per-member health: in-flight calls, counters, the latency EWMA and the
//! peak-EWMA estimate, and the cooldown.

use std::time::{Duration, Instant};

use super::balancer::BalancerConfig;
use super::policy::MemberInfo;

/// How a call on a member ended, as [`Balancer::finish`](super::Balancer::finish) records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The member answered after `latency`: with a result, or with an
    /// error about the request itself (not
    /// [`is_peer_failure`](crate::Error::is_peer_failure)). Both latency
    /// estimates take the sample.
    Answered {
        /// From the call's start to its answer.
        latency: Duration,
    },
    /// The member or the path to it failed after `latency`: the failure is
    /// counted and the member cools down. Latency estimates are left alone;
    /// the failure count and the cooldown already steer calls away.
    Failed {
        /// From the call's start to the failure.
        latency: Duration,
    },
    /// The caller gave up before an answer: only the in-flight count
    /// changes, the member is not penalized.
    Cancelled,
}

/// One member's numbers, as [`Balancer::stats`](super::Balancer::stats) reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberStats<K> {
    /// The member.
    pub member: K,
    /// Its metadata.
    pub info: MemberInfo,
    /// Calls it answered.
    pub calls: u64,
    /// Calls that failed on it.
    pub failures: u64,
    /// Calls the caller gave up on before it answered.
    pub cancelled: u64,
    /// Calls started on it and not yet finished.
    pub in_flight: u64,
    /// neonplex's latency EWMA (α 0.2, from 1 ms).
    pub latency_ewma: Duration,
    /// The peak-EWMA latency estimate, decayed to the time of the report.
    pub peak_ewma: Duration,
    /// Until when it is skipped, if it is cooling down now.
    pub cooling_until: Option<Instant>,
}

/// Counters over the whole pool, including members since removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolTotals {
    /// Calls answered.
    pub calls: u64,
    /// Calls that failed on a member.
    pub failures: u64,
    /// Calls given up before an answer.
    pub cancelled: u64,
    /// Selections that found no eligible member.
    pub no_peer: u64,
    /// Events dropped because the event queue was full.
    pub events_dropped: u64,
}

/// neonplex's latency EWMA weight of a new sample.
const EWMA_ALPHA: f64 = 0.2;

/// The balancer's record of one member.
#[derive(Debug)]
pub(crate) struct MemberState<K> {
    pub(crate) key: K,
    pub(crate) info: MemberInfo,
    pub(crate) in_flight: u64,
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    /// The failures that still weigh on its weighted share.
    pub(crate) recent_failures: DecayingCount,
    pub(crate) cancelled: u64,
    /// Milliseconds.
    pub(crate) latency_ewma: f64,
    pub(crate) peak: PeakEwma,
    pub(crate) cooling_until: Option<Instant>,
}

impl<K: Clone> MemberState<K> {
    pub(crate) fn new(key: K, info: MemberInfo, initial_ms: f64) -> MemberState<K> {
        MemberState {
            key,
            info,
            in_flight: 0,
            calls: 0,
            failures: 0,
            recent_failures: DecayingCount::default(),
            cancelled: 0,
            latency_ewma: initial_ms,
            peak: PeakEwma::new(initial_ms),
            cooling_until: None,
        }
    }

    /// Whether it may take a call at `now`.
    pub(crate) fn is_eligible(&self, now: Instant) -> bool {
        self.cooling_until.is_none_or(|until| now >= until)
    }

    /// Records a finished call.
    pub(crate) fn finish(&mut self, now: Instant, outcome: Outcome, config: &BalancerConfig) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match outcome {
            Outcome::Answered { latency } => {
                let ms = millis(latency);
                self.calls += 1;
                self.latency_ewma = self.latency_ewma * (1.0 - EWMA_ALPHA) + ms * EWMA_ALPHA;
                self.peak.observe(now, ms, config.decay);
            }
            Outcome::Failed { .. } => {
                self.failures += 1;
                self.recent_failures.add(now, config.failure_memory);
                self.cooling_until = now.checked_add(config.cooldown);
            }
            Outcome::Cancelled => self.cancelled += 1,
        }
    }

    pub(crate) fn stats(&self, now: Instant, tau: Duration) -> MemberStats<K> {
        MemberStats {
            member: self.key.clone(),
            info: self.info,
            calls: self.calls,
            failures: self.failures,
            cancelled: self.cancelled,
            in_flight: self.in_flight,
            latency_ewma: duration(self.latency_ewma),
            peak_ewma: duration(self.peak.estimate(now, tau)),
            cooling_until: self.cooling_until.filter(|&until| now < until),
        }
    }
}

/// A count whose units fade: each decays by a factor e every `memory`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct DecayingCount {
    value: f64,
    /// When `value` was last brought up to date.
    at: Option<Instant>,
}

impl DecayingCount {
    /// The count at `now` (never earlier than the last update).
    pub(crate) fn value(&self, now: Instant, memory: Duration) -> f64 {
        let Some(at) = self.at else {
            return 0.0;
        };
        let elapsed = now.saturating_duration_since(at).as_secs_f64();
        let memory = memory.as_secs_f64();
        match memory > 0.0 {
            true => self.value * (-elapsed / memory).exp(),
            false => 0.0,
        }
    }

    /// Counts one more at `now`.
    pub(crate) fn add(&mut self, now: Instant, memory: Duration) {
        let at = self.at.map_or(now, |at| at.max(now));
        self.value = self.value(at, memory) + 1.0;
        self.at = Some(at);
    }
}

/// A peak-sensitive latency estimate in milliseconds (tower's and
/// Finagle's `PeakEwma`).
///
/// A sample above the estimate replaces it at once; a sample below pulls it
/// down with weight `1 − w`, `w = exp(−elapsed / tau)`, `elapsed` being the
/// time since the last sample. Between samples, the estimate read for a
/// decision decays towards zero by the same `w`, so a member that gets no
/// calls because it looked slow is tried again after a while and can prove
/// it recovered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeakEwma {
    estimate: f64,
    /// The time of the last sample (or of [`start`](PeakEwma::start));
    /// before either the estimate does not decay.
    at: Option<Instant>,
}

impl PeakEwma {
    fn new(initial_ms: f64) -> PeakEwma {
        PeakEwma {
            estimate: initial_ms,
            at: None,
        }
    }

    /// Starts the decay of an estimate nobody has sampled yet.
    pub(crate) fn start(&mut self, now: Instant) {
        self.at.get_or_insert(now);
    }

    /// The estimate at `now`, decayed since the last sample.
    pub(crate) fn estimate(&self, now: Instant, tau: Duration) -> f64 {
        self.estimate * self.weight(now, tau)
    }

    fn observe(&mut self, now: Instant, sample_ms: f64, tau: Duration) {
        if sample_ms > self.estimate {
            self.estimate = sample_ms;
        } else {
            let w = self.weight(now, tau);
            self.estimate = self.estimate * w + sample_ms * (1.0 - w);
        }
        // Time never goes back for the estimate, even if `now` does.
        self.at = Some(self.at.map_or(now, |at| at.max(now)));
    }

    /// `exp(−elapsed / tau)`; 1 before it started, 0 for a zero `tau`.
    fn weight(&self, now: Instant, tau: Duration) -> f64 {
        let Some(at) = self.at else { return 1.0 };
        let elapsed = now.saturating_duration_since(at).as_secs_f64();
        if tau.is_zero() {
            return if elapsed > 0.0 { 0.0 } else { 1.0 };
        }
        (-elapsed / tau.as_secs_f64()).exp()
    }
}

/// A duration in milliseconds, as the formulas use it.
pub(crate) fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Milliseconds back to a duration (negative or non-finite become zero or
/// the largest duration).
fn duration(ms: f64) -> Duration {
    Duration::try_from_secs_f64(ms.max(0.0) / 1000.0).unwrap_or(Duration::MAX)
}
