//! Token buckets that bound how fast a peer may make us work.

use std::time::Instant;

use crate::config::Rate;

const NANOS: u64 = 1_000_000_000;

/// One token bucket. Levels are kept in nanotokens so refills stay exact.
#[derive(Debug)]
pub(crate) struct Bucket {
    level: u64,
    capacity: u64,
    per_second: u64,
    last: Instant,
}

impl Bucket {
    pub(crate) fn new(rate: Rate, now: Instant) -> Bucket {
        let capacity = u64::from(rate.burst) * NANOS;
        Bucket {
            level: capacity,
            capacity,
            per_second: u64::from(rate.per_second),
            last: now,
        }
    }

    /// Takes one token; false when the bucket is empty.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        let refill = elapsed.saturating_mul(u128::from(self.per_second));
        self.level = u64::try_from(u128::from(self.level).saturating_add(refill))
            .unwrap_or(u64::MAX)
            .min(self.capacity);
        self.last = self.last.max(now);
        match self.level.checked_sub(NANOS) {
            Some(level) => {
                self.level = level;
                true
            }
            None => false,
        }
    }
}

/// The rate budgets of [`FloodLimits`](crate::FloodLimits).
#[derive(Debug)]
pub(crate) struct Budgets {
    pub(crate) resets: Bucket,
    pub(crate) local_resets: Bucket,
    pub(crate) empty_data: Bucket,
    pub(crate) settings: Bucket,
    pub(crate) pings: Bucket,
    pub(crate) ignored: Bucket,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let t0 = crate::sim::origin();
        let mut b = Bucket::new(Rate::new(3, 2), t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        // Half a second at 2/s earns exactly one token.
        let t1 = t0 + Duration::from_millis(500);
        assert!(b.take(t1));
        assert!(!b.take(t1));
        // A long pause refills only up to the burst.
        let t2 = t1 + Duration::from_secs(3600);
        assert!(b.take(t2) && b.take(t2) && b.take(t2));
        assert!(!b.take(t2));
    }
}
