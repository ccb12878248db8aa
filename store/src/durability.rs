//! `Durability::Flush`: group commit across threads and processes.
//! See `FORMAT.md` §8.

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::failpoint;
use crate::header;
use crate::pool::Pool;

/// How long a follower waits for a sync leader before presuming it dead
/// and syncing itself (correct either way: syncs are idempotent). Unit
/// tests wait longer, so that a loaded machine cannot fake a dead leader.
const LEADER_PATIENCE: Duration = if cfg!(test) {
    Duration::from_secs(60)
} else {
    Duration::from_secs(1)
};

/// Unit tests only: makes every sync of this process fail with `EIO`.
#[cfg(test)]
pub(crate) static FAIL_SYNCS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

impl Pool {
    /// Returns once every seq up to `seq` is on stable storage.
    ///
    /// One appender (the leader, which flips `SYNC_STATE` to odd) syncs
    /// everything published so far; the others wait on the futex and find
    /// their seq covered. A failed sync is never recorded in `SYNCED`; it
    /// sets `SYNC_FAILED` in the header for good instead.
    pub(crate) fn sync_through(&self, seq: u64) -> Result<()> {
        let state = self.map.u32_mut(header::SYNC_STATE);
        let waiters = self.map.u32_mut(header::SYNC_WAITERS);
        loop {
            if self.sync_failed() {
                return Err(self.sync_poisoned());
            }
            if self.load(header::SYNCED, Ordering::Acquire) >= seq {
                return Ok(());
            }
            let s = state.load(Ordering::Acquire);
            if s % 2 == 0 {
                if state
                    .compare_exchange(s, s.wrapping_add(1), Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    let result = self.lead_sync();
                    // Only ends our own round: a follower that presumed us
                    // dead may have started another.
                    let _ = state.compare_exchange(
                        s.wrapping_add(1),
                        s.wrapping_add(2),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    );
                    fence(Ordering::SeqCst);
                    if waiters.load(Ordering::Relaxed) > 0 {
                        let _ = self.map.wake(header::SYNC_STATE);
                    }
                    result?;
                }
                continue;
            }
            waiters.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            // A wake-up proves nothing (signals, spurious wakes, a wake
            // meant for a round that already ended): only the state moving
            // on, or the leader's time running out, ends the wait.
            let deadline = Instant::now() + LEADER_PATIENCE;
            let stuck = loop {
                if state.load(Ordering::SeqCst) != s {
                    break false;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break true;
                }
                self.map.wait(header::SYNC_STATE, s, left);
            };
            waiters.fetch_sub(1, Ordering::SeqCst);
            if stuck && self.load(header::SYNCED, Ordering::Acquire) < seq {
                // The leader is stuck or dead: end its round so that someone
                // (maybe us) leads the next.
                let _ = state.compare_exchange(
                    s,
                    s.wrapping_add(1),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Syncs the whole mapping and records the newest seq it covered.
    fn lead_sync(&self) -> Result<()> {
        // Everything up to `target` was published before this load, so the
        // msync below writes it out.
        let target = self.load(header::NEWEST, Ordering::Acquire);
        failpoint::hit("before_sync");
        if let Err(e) = self.flush() {
            // The kernel may have marked the pages clean without writing
            // them: a later sync, by any process, would "succeed" without
            // them and claim seqs that are not on disk. Recorded in the
            // file, so that no handle ever raises SYNCED again.
            self.map
                .u64_mut(header::SYNC_FAILED)
                .fetch_or(1u64.to_le(), Ordering::SeqCst);
            return Err(Error::io(&self.path, e));
        }
        failpoint::hit("mid_sync");
        let word = self.map.u64_mut(header::SYNCED);
        let mut cur = word.load(Ordering::Acquire);
        while u64::from_le(cur) < target {
            match word.compare_exchange(cur, target.to_le(), Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        Ok(())
    }

    /// Whether a sync of this pool ever failed, in any process
    /// (`SYNC_FAILED`, `FORMAT.md` §8).
    pub(crate) fn sync_failed(&self) -> bool {
        self.load(header::SYNC_FAILED, Ordering::Acquire) != 0
    }

    /// The error for a `Flush` append after a failed sync.
    pub(crate) fn sync_poisoned(&self) -> Error {
        Error::SyncFailed {
            path: self.path.clone(),
        }
    }

    /// `msync(MS_SYNC)` of the whole mapping.
    fn flush(&self) -> std::io::Result<()> {
        #[cfg(test)]
        if FAIL_SYNCS.load(Ordering::Relaxed) {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        self.map.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{Durability, ErrorKind, Options, Pool, Seq};

    /// A `Flush` appender waits while a leader (here: the test, holding
    /// `SYNC_STATE` odd) syncs. Wake-ups that change nothing, as signals and
    /// spurious wakes do, must send it back to sleep; it used to take them
    /// for the leader's death, end its round and start a second sync.
    #[test]
    fn a_spurious_wake_does_not_start_another_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.pool");
        let pool = Pool::create(&path, 1 << 16, Options::new()).unwrap();
        let seq = pool.append(&[], b"unsynced").unwrap();
        let state = pool.map.u32_mut(header::SYNC_STATE);
        state.store(1, Ordering::SeqCst);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| pool.sync_through(seq.0));
            for _ in 0..3 {
                // Wait for the appender to be asleep on the futex, then
                // wake it for nothing.
                let give_up = Instant::now() + Duration::from_secs(30);
                while pool.map.wake(header::SYNC_STATE) == 0 {
                    assert!(
                        Instant::now() < give_up,
                        "the appender stopped waiting: state {}, synced {}",
                        state.load(Ordering::SeqCst),
                        pool.load(header::SYNCED, Ordering::SeqCst)
                    );
                    std::thread::yield_now();
                }
            }
            assert_eq!(state.load(Ordering::SeqCst), 1, "our round was ended");
            assert_eq!(pool.load(header::SYNCED, Ordering::SeqCst), 0);
            // The leader finishes: the appender finds its seq covered.
            pool.store(header::SYNCED, seq.0, Ordering::SeqCst);
            state.store(2, Ordering::SeqCst);
            let _ = pool.map.wake(header::SYNC_STATE);
            waiter.join().unwrap().unwrap();
        });
    }

    /// A failed sync is recorded in the file: another handle (another
    /// process alike) must not sync later and mark the seqs whose pages the
    /// kernel may have dropped as durable.
    #[test]
    fn a_failed_sync_poisons_every_handle_and_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.pool");
        let flush = Options::new().durability(Durability::Flush);
        let a = Pool::create(&path, 1 << 16, flush.clone()).unwrap();
        let b = Pool::open_with(&path, flush.clone()).unwrap();
        assert_eq!(a.append(&[], b"one").unwrap(), Seq(1));
        assert_eq!(a.info().synced, Seq(1));

        FAIL_SYNCS.store(true, Ordering::Relaxed);
        let err = a.append(&[], b"two").unwrap_err();
        FAIL_SYNCS.store(false, Ordering::Relaxed);
        assert_eq!(err.kind(), ErrorKind::Io, "{err}");

        let err = b.append(&[], b"three").unwrap_err();
        assert!(matches!(err, Error::SyncFailed { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::Io);
        assert_eq!(b.info().synced, Seq(1), "seq 2 claimed as synced");
        assert!(b.info().sync_failed);
        // Fast appends promise no durability and go on.
        let fast = Pool::open(&path).unwrap();
        assert_eq!(fast.append(&[], b"three").unwrap(), Seq(3));
        drop((a, b, fast));
        let c = Pool::open_with(&path, flush).unwrap();
        assert!(matches!(
            c.append(&[], b"five"),
            Err(Error::SyncFailed { .. })
        ));
        let report = crate::check_bytes(&std::fs::read(&path).unwrap()).unwrap();
        assert!(report.sync_failed);
    }

    /// A `Fast` handle syncs on request: one append at a time with
    /// `append_receipt_with`, or everything published so far with `sync`.
    #[test]
    fn per_append_flush_and_sync_on_a_fast_handle() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::create(dir.path().join("s.pool"), 1 << 16, Options::new()).unwrap();
        assert_eq!(pool.sync().unwrap(), Seq(0));
        pool.append(&[], b"fast").unwrap();
        assert_eq!(pool.info().synced, Seq(0));
        let receipt = pool
            .append_receipt_with(&["t"], b"flushed", Durability::Flush)
            .unwrap();
        assert_eq!(receipt.seq, Seq(2));
        assert_eq!(pool.info().synced, Seq(2));
        assert_eq!(pool.get(Seq(2)).unwrap().time, receipt.time);
        pool.append_receipt_with(&[], b"fast again", Durability::Fast)
            .unwrap();
        assert_eq!(pool.info().synced, Seq(2));
        assert_eq!(pool.sync().unwrap(), Seq(3));
        assert_eq!(pool.info().synced, Seq(3));
        let reader = Pool::open_read_only(pool.path()).unwrap();
        assert!(matches!(reader.sync(), Err(Error::ReadOnly { .. })));
    }
}
