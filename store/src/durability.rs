//! `Durability::Flush`: group commit across threads and processes.
//! See `FORMAT.md` §8.

use std::sync::atomic::{fence, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::failpoint;
use crate::header;
use crate::pool::Pool;

/// How long a follower waits for a sync leader before presuming it dead
/// and syncing itself (correct either way: syncs are idempotent).
const LEADER_PATIENCE: Duration = Duration::from_secs(1);

impl Pool {
    /// Returns once every seq up to `seq` is on stable storage.
    ///
    /// One appender (the leader, which flips `SYNC_STATE` to odd) syncs
    /// everything published so far; the others wait on the futex and find
    /// their seq covered. A failed sync is never recorded in `SYNCED`.
    pub(crate) fn sync_through(&self, seq: u64) -> Result<()> {
        let state = self.map.u32_mut(header::SYNC_STATE);
        let waiters = self.map.u32_mut(header::SYNC_WAITERS);
        loop {
            if self.sync_failed.load(Ordering::Acquire) {
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
                        self.map.wake(header::SYNC_STATE);
                    }
                    result?;
                }
                continue;
            }
            waiters.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if state.load(Ordering::SeqCst) == s {
                self.map.wait(header::SYNC_STATE, s, LEADER_PATIENCE);
            }
            waiters.fetch_sub(1, Ordering::SeqCst);
            if state.load(Ordering::Acquire) == s
                && self.load(header::SYNCED, Ordering::Acquire) < seq
            {
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
        if let Err(e) = self.map.flush() {
            // The kernel may have dropped the pages: later syncs on this
            // descriptor could "succeed" without them.
            self.sync_failed.store(true, Ordering::Release);
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

    /// The error for a `Flush` append after a failed sync.
    pub(crate) fn sync_poisoned(&self) -> Error {
        Error::Io {
            path: self.path.clone(),
            source: std::io::Error::other(
                "an earlier sync of this pool failed; reopen it before appending with Flush",
            ),
        }
    }
}
