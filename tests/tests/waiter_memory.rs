//! V7: a waiting future polled again and again holds one waker, not one per
//! poll. Measured with a counting allocator, in a binary of its own so that
//! no other test allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::task::{Context, Waker};

use plex_runtime::Config;
use plex_tests::Rt;

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const POLLS: usize = 1_000_000;

#[test]
fn polling_closed_a_million_times_holds_constant_memory() {
    for rt in Rt::ALL {
        rt.block_on(async {
            let (client, _server) = rt.pair(Config::default(), Config::default()).await;
            let mut closed = pin!(client.closed());
            let mut cx = Context::from_waker(Waker::noop());
            assert!(closed.as_mut().poll(&mut cx).is_pending());
            let before = LIVE.load(Ordering::Relaxed);
            for _ in 0..POLLS {
                assert!(closed.as_mut().poll(&mut cx).is_pending());
            }
            let grown = LIVE.load(Ordering::Relaxed) - before;
            // One waker per poll was 16 MiB; idle connection tasks
            // allocate next to nothing.
            assert!(
                grown < 1 << 20,
                "{rt:?}: {grown} bytes more after {POLLS} polls"
            );
        });
    }
}
