//! Crash hooks for tests. With the `failpoints` feature,
//! `PLEX_STORE_FAILPOINT=<name>:<n>` SIGKILLs the process the n-th time the
//! named point is reached. Without the feature every hook compiles to nothing.

/// Marks a point where a test may kill the process.
#[cfg(feature = "failpoints")]
pub(crate) fn hit(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let target = TARGET.get_or_init(|| {
        let spec = std::env::var("PLEX_STORE_FAILPOINT").ok()?;
        let (point, n) = spec.split_once(':')?;
        Some((point.to_owned(), n.parse().ok()?))
    });
    if let Some((point, n)) = target {
        if point == name && HITS.fetch_add(1, Ordering::Relaxed) + 1 == *n {
            // A real SIGKILL: no unwinding, no destructors, no flushing.
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
        }
    }
}

/// Marks a point where a test may kill the process.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn hit(_name: &str) {}
