//! Cross-process wake-ups: a futex word in the mapping and a bitmap of
//! registered followers (`crate::waiters`), so a writer pays nothing but a
//! fence and a load of one cache line when nobody waits. See `FORMAT.md` §7.

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use crate::header;
use crate::map::Mapping;
use crate::pool::Pool;

/// Writer side, after publishing: wakes every follower in every process.
pub(crate) fn wake_followers(pool: &Pool) {
    // Dekker with the follower: either it sees our NEWEST, or we see its
    // registration in the bitmap.
    fence(Ordering::SeqCst);
    if !pool.has_waiters() {
        return;
    }
    pool.map
        .u32_mut(header::NOTIFY)
        .fetch_add(1, Ordering::SeqCst);
    let _ = pool.map.wake(header::NOTIFY);
}

/// Follower side: blocks until NEWEST reaches `seq` or `deadline` passes,
/// sleeping at most `poll` between checks. Returns whether it was reached.
pub(crate) fn wait_until(pool: &Pool, seq: u64, deadline: Instant, poll: Duration) -> bool {
    loop {
        if newest(&pool.map) >= seq {
            return true;
        }
        let now = Instant::now();
        let Some(left) = deadline
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
        else {
            return false;
        };
        wait_once(pool, seq, left.min(poll));
    }
}

/// One sleep of a follower: registers (`crate::waiters`), then sleeps on
/// the futex unless NEWEST already reached `seq`, until a wake-up or
/// `timeout`.
///
/// A handle that cannot register (a file without write access) sleeps on
/// the same futex word, so it is woken whenever a writer wakes registered
/// followers, and otherwise re-checks after `timeout` (the caller's bounded
/// poll).
pub(crate) fn wait_once(pool: &Pool, seq: u64, timeout: Duration) {
    let map = &pool.map;
    let registration = pool.register();
    let seen = map.load_u32(header::NOTIFY);
    fence(Ordering::SeqCst);
    if newest(map) < seq {
        // Returns at once if a writer bumped the word since `seen`.
        map.wait(header::NOTIFY, seen, timeout);
    }
    drop(registration);
}

/// Wakes every follower of the pool without publishing anything. Through a
/// read-only mapping the word cannot be bumped, so a follower that has not
/// yet gone to sleep misses the wake-up and re-checks after its poll.
pub(crate) fn poke(map: &Mapping) {
    if map.coordination_writable() {
        map.u32_mut(header::NOTIFY).fetch_add(1, Ordering::SeqCst);
    }
    let _ = map.wake(header::NOTIFY);
}

/// The newest published seq; callers order it with their own fences.
fn newest(map: &Mapping) -> u64 {
    map.load(header::NEWEST, Ordering::Acquire)
}
