//! CPU time: what a throughput figure cost, which stays steady on a noisy
//! machine where wall-clock throughput does not.

use std::time::Duration;

use rustix::time::{clock_gettime, ClockId};

/// User plus system CPU time this process has used so far, every thread.
pub(crate) fn process_time() -> Duration {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// CPU seconds per gigabyte (10^9 bytes) when moving `bytes` took `cpu`.
pub(crate) fn seconds_per_gb(cpu: Duration, bytes: u64) -> f64 {
    cpu.as_secs_f64() / (bytes as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_time_counts_work_done() {
        let before = process_time();
        let mut x = 0u64;
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(process_time() > before, "{x}");
    }

    #[test]
    fn seconds_per_gb_scales_by_bytes() {
        assert_eq!(
            seconds_per_gb(Duration::from_millis(500), 2_000_000_000),
            0.25
        );
    }
}
