//! Latency histograms, shared by the suites that time single operations.

use std::time::Duration;

use hdrhistogram::{CreationError, Histogram};

/// Latencies from 1 ns to a minute, to three significant digits.
pub(crate) fn histogram() -> Result<Histogram<u64>, CreationError> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3)
}

/// A duration as whole nanoseconds, saturating.
pub(crate) fn nanos(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// Nanoseconds as fractional microseconds, for the report.
pub(crate) fn micros(nanos: u64) -> f64 {
    nanos as f64 / 1e3
}
