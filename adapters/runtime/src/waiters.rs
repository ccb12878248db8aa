//! Sets of tasks waiting for one kind of event.
//!
//! A waiting future takes a key once, registers its waker under that key on
//! each pending poll (replacing, not adding) and deregisters when it is
//! dropped. A set therefore holds at most one waker per live future: polling
//! a future a million times costs nothing, and every waiter can be woken.

use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;

/// Keys are unique across every set in the process.
static NEXT_KEY: AtomicU64 = AtomicU64::new(0);

/// A fresh key for one waiting future.
pub(crate) fn key() -> u64 {
    NEXT_KEY.fetch_add(1, Ordering::Relaxed)
}

/// The tasks waiting for one kind of event.
///
/// A vector: sets are small (a stream's has none or one waiter), an empty
/// one allocates nothing, and every stream has one.
#[derive(Default)]
pub(crate) struct Waiters {
    wakers: Vec<(u64, Waker)>,
}

impl Waiters {
    /// Registers or refreshes the waker of the future holding `key`.
    pub(crate) fn register(&mut self, key: u64, waker: &Waker) {
        match self.wakers.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) if old.will_wake(waker) => {}
            Some((_, old)) => old.clone_from(waker),
            None => self.wakers.push((key, waker.clone())),
        }
    }

    /// Deregisters the future holding `key`, if it is registered.
    pub(crate) fn remove(&mut self, key: u64) {
        if let Some(pos) = self.wakers.iter().position(|(k, _)| *k == key) {
            self.wakers.swap_remove(pos);
        }
    }

    /// Takes every waker, to wake once the lock is released. A woken future
    /// that still has to wait registers again when polled.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Waker> + '_ {
        self.wakers.drain(..).map(|(_, waker)| waker)
    }

    /// How many futures are registered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.wakers.len()
    }
}
