//! Cross-process wake-ups: a futex word in the mapping with a waiter count,
//! so a writer pays nothing but a fence and a load when nobody waits.
//! See `FORMAT.md` §7.

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use crate::header;
use crate::map::Mapping;

/// Writer side, after publishing: wakes every follower in every process.
pub(crate) fn wake_followers(map: &Mapping) {
    // Dekker with the follower: either it sees our NEWEST, or we see its
    // registration in WAITERS.
    fence(Ordering::SeqCst);
    if map.load_u32(header::WAITERS) == 0 {
        return;
    }
    map.u32_mut(header::NOTIFY).fetch_add(1, Ordering::SeqCst);
    let _ = map.wake(header::NOTIFY);
}

/// Follower side: blocks until NEWEST reaches `seq` or `deadline` passes,
/// sleeping at most `poll` between checks. Returns whether it was reached.
pub(crate) fn wait_until(map: &Mapping, seq: u64, deadline: Instant, poll: Duration) -> bool {
    loop {
        if newest(map) >= seq {
            return true;
        }
        let now = Instant::now();
        let Some(left) = deadline
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
        else {
            return false;
        };
        wait_once(map, seq, left.min(poll));
    }
}

/// One sleep of a follower: registers in WAITERS, then sleeps on the futex
/// unless NEWEST already reached `seq`, until a wake-up or `timeout`.
///
/// A read-only mapping cannot register: it sleeps on the same futex word,
/// so it is woken whenever a writer wakes registered followers, and
/// otherwise re-checks after `timeout` (the caller's bounded poll).
pub(crate) fn wait_once(map: &Mapping, seq: u64, timeout: Duration) {
    let registered = map.is_writable();
    if registered {
        map.u32_mut(header::WAITERS).fetch_add(1, Ordering::SeqCst);
    }
    let seen = map.load_u32(header::NOTIFY);
    fence(Ordering::SeqCst);
    if newest(map) < seq {
        // Returns at once if a writer bumped the word since `seen`.
        map.wait(header::NOTIFY, seen, timeout);
    }
    if registered {
        map.u32_mut(header::WAITERS).fetch_sub(1, Ordering::SeqCst);
    }
}

/// Wakes every follower of the pool without publishing anything. Through a
/// read-only mapping the word cannot be bumped, so a follower that has not
/// yet gone to sleep misses the wake-up and re-checks after its poll.
pub(crate) fn poke(map: &Mapping) {
    if map.is_writable() {
        map.u32_mut(header::NOTIFY).fetch_add(1, Ordering::SeqCst);
    }
    let _ = map.wake(header::NOTIFY);
}

/// The newest published seq; callers order it with their own fences.
fn newest(map: &Mapping) -> u64 {
    map.load(header::NEWEST, Ordering::Acquire)
}
