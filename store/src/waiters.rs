//! Follower registrations that die with their process (`FORMAT.md` §7).
//!
//! A follower registers on the `NOTIFY` futex by setting its bit in the
//! waiter bitmap, so that writers, which load the bitmap after publishing,
//! know someone sleeps. The bit belongs to a waiter slot, and a pool handle
//! owns a slot by holding an open-file-description lock on the slot's lock
//! byte, which the kernel releases when the process dies. A set bit whose
//! lock nobody holds was left by a dead follower: it is not counted, and is
//! cleared by whoever takes the lock next (a new follower claiming the
//! slot, a writable open, or [`crate::Pool::info`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::header::{WAITER_BITS, WAITER_LOCKS, WAITER_SLOTS};
use crate::map::{lock_byte, ByteLock};
use crate::pool::Pool;

/// A handle's waiter slot, shared by its threads.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    inner: Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    /// The slot this handle owns, once claimed.
    owned: Option<u64>,
    /// Whether a claim failed (every slot taken, or no locks): do not retry
    /// on every wait.
    unavailable: bool,
    /// Threads of this handle registered right now.
    active: u32,
}

/// A registration; dropping it unregisters.
pub(crate) struct Registration<'a> {
    pool: &'a Pool,
}

impl Pool {
    /// Registers this thread as a follower, claiming a waiter slot for the
    /// handle on first use. `None` when the handle cannot register (a file
    /// opened without write access, all slots taken, no OFD locks): the
    /// caller then sleeps unregistered and relies on its poll interval.
    pub(crate) fn register(&self) -> Option<Registration<'_>> {
        if !self.map.coordination_writable() {
            return None;
        }
        let mut slot = self
            .waiters
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.owned.is_none() && !slot.unavailable {
            slot.owned = self.claim_slot();
            slot.unavailable = slot.owned.is_none();
        }
        let i = slot.owned?;
        slot.active += 1;
        if slot.active == 1 {
            let (word, bit) = bit_of(i);
            self.bitmap_word(word)
                .fetch_or(bit.to_le(), Ordering::SeqCst);
        }
        Some(Registration { pool: self })
    }

    /// Followers registered right now, across processes: set bits whose
    /// slot is owned by a live handle. Clears the bits of dead owners when
    /// the mapping allows it.
    pub(crate) fn live_waiters(&self) -> u32 {
        // Held throughout, so that no thread of this handle claims a slot
        // meanwhile: our own lock would not stop `reap` from taking it.
        let slot = self
            .waiters
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut live = 0;
        for i in 0..WAITER_SLOTS {
            let (word, bit) = bit_of(i);
            if self.map.load(WAITER_BITS + 8 * word, Ordering::Acquire) & bit == 0 {
                continue;
            }
            if slot.owned == Some(i) || !self.reap(i) {
                live += 1;
            }
        }
        live
    }

    /// Clears every bit left by a dead follower (at a writable open).
    pub(crate) fn reap_waiters(&self) {
        let _ = self.live_waiters();
    }

    /// Whether any follower is registered: what a writer checks after
    /// publishing. Eight loads of one cache line.
    pub(crate) fn has_waiters(&self) -> bool {
        (0..WAITER_SLOTS / 64).any(|w| self.map.load(WAITER_BITS + 8 * w, Ordering::Relaxed) != 0)
    }

    /// If slot `i` has no live owner, clears its bit (taking its lock for
    /// the time, so that no new owner's bit is cleared) and returns true.
    fn reap(&self, i: u64) -> bool {
        let lock = WAITER_LOCKS + i;
        if !self.map.coordination_writable() {
            return !lock_byte(&self.file, lock, ByteLock::Probe).unwrap_or(true);
        }
        if !lock_byte(&self.file, lock, ByteLock::Try).unwrap_or(false) {
            return false;
        }
        let (word, bit) = bit_of(i);
        self.bitmap_word(word)
            .fetch_and(!bit.to_le(), Ordering::SeqCst);
        let _ = lock_byte(&self.file, lock, ByteLock::Release);
        true
    }

    /// Takes the lock of the first free slot and clears the bit a dead
    /// owner may have left there.
    fn claim_slot(&self) -> Option<u64> {
        for i in 0..WAITER_SLOTS {
            if lock_byte(&self.file, WAITER_LOCKS + i, ByteLock::Try).ok()? {
                let (word, bit) = bit_of(i);
                self.bitmap_word(word)
                    .fetch_and(!bit.to_le(), Ordering::SeqCst);
                return Some(i);
            }
        }
        None
    }

    /// Word `word` of the bitmap, for writing.
    fn bitmap_word(&self, word: u64) -> &AtomicU64 {
        self.map.u64_mut(WAITER_BITS + 8 * word)
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let pool = self.pool;
        let mut slot = pool
            .waiters
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.active -= 1;
        if let (0, Some(i)) = (slot.active, slot.owned) {
            let (word, bit) = bit_of(i);
            pool.bitmap_word(word)
                .fetch_and(!bit.to_le(), Ordering::SeqCst);
        }
    }
}

/// The bitmap word and bit of slot `i`.
fn bit_of(i: u64) -> (u64, u64) {
    (i / 64, 1 << (i % 64))
}
