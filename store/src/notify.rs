//! Cross-process wake-ups: a futex word in the mapping with a waiter count,
//! so a writer pays nothing but a fence and a load when nobody waits.
//! See `FORMAT.md` §7.

use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::header;
use crate::map::Mapping;

/// Writer side, after publishing: wakes every follower in every process.
pub(crate) fn wake_followers(map: &Mapping) {
    // Dekker with the follower: either it sees our NEWEST, or we see its
    // registration in WAITERS.
    fence(Ordering::SeqCst);
    if map.u32_at(header::WAITERS).load(Ordering::Relaxed) == 0 {
        return;
    }
    let word = map.u32_at(header::NOTIFY);
    word.fetch_add(1, Ordering::SeqCst);
    wake_all(word);
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
pub(crate) fn wait_once(map: &Mapping, seq: u64, timeout: Duration) {
    let waiters = map.u32_at(header::WAITERS);
    let word = map.u32_at(header::NOTIFY);
    waiters.fetch_add(1, Ordering::SeqCst);
    let seen = word.load(Ordering::SeqCst);
    fence(Ordering::SeqCst);
    if newest(map) < seq {
        // Returns at once if a writer bumped the word since `seen`.
        wait_on(word, seen, timeout);
    }
    waiters.fetch_sub(1, Ordering::SeqCst);
}

/// Wakes every follower of the pool without publishing anything.
pub(crate) fn poke(map: &Mapping) {
    let word = map.u32_at(header::NOTIFY);
    word.fetch_add(1, Ordering::SeqCst);
    wake_all(word);
}

/// The newest published seq.
fn newest(map: &Mapping) -> u64 {
    u64::from_le(map.u64_at(header::NEWEST).load(Ordering::SeqCst))
}

/// Wakes every waiter on `word`, in any process.
pub(crate) fn wake_all(word: &AtomicU32) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::thread::futex;
        // Errors only mean nobody could be woken.
        let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = word;
}

/// Sleeps while `word == expected`, for at most `timeout`.
pub(crate) fn wait_on(word: &AtomicU32, expected: u32, timeout: Duration) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::thread::futex;
        let ts = futex::Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        // EAGAIN (value changed), ETIMEDOUT and EINTR all mean "re-check".
        let _ = futex::wait(word, futex::Flags::empty(), expected, Some(&ts));
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        // No cross-process futex here: bounded polling only.
        if word.load(Ordering::SeqCst) == expected {
            std::thread::sleep(timeout.min(Duration::from_millis(1)));
        }
    }
}
