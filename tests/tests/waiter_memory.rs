//! V7: a waiting future polled again and again holds one waker, not one per
//! poll. Measured with a counting allocator, in a binary of its own so that
//! no other test allocates meanwhile.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

use plex_runtime::Config;
use plex_tests::Rt;

#[global_allocator]
static ALLOCATOR: plex_tests::Counting = plex_tests::Counting;

const POLLS: usize = 1_000_000;

#[test]
fn polling_closed_a_million_times_holds_constant_memory() {
    for rt in Rt::ALL {
        rt.block_on(async {
            let (client, _server) = rt.pair(Config::default(), Config::default()).await;
            let mut closed = pin!(client.closed());
            let mut cx = Context::from_waker(Waker::noop());
            assert!(closed.as_mut().poll(&mut cx).is_pending());
            let before = plex_tests::live_bytes();
            for _ in 0..POLLS {
                assert!(closed.as_mut().poll(&mut cx).is_pending());
            }
            let grown = plex_tests::live_bytes() - before;
            // One waker per poll was 16 MiB; idle connection tasks
            // allocate next to nothing.
            assert!(
                grown < 1 << 20,
                "{rt:?}: {grown} bytes more after {POLLS} polls"
            );
        });
    }
}
