//! Two sessions joined by the simulated network, driven by a scenario the
//! fuzzer builds (`plex_proto::sim::Scenario`: windows, latency, chunking,
//! and a list of operations), held to the model's invariants by
//! `plex_proto::sim::check`: no window exceeded, every byte delivered once
//! and in order or the stream reported reset, events consistent with what
//! the peer did, `Closed` last, no stream left behind, no panic. The
//! proptest model test in `plex-proto` runs the same checker.

use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use plex_proto::sim::{check, Scenario};

/// Operations run per input, so that each execution stays fast.
pub const MAX_OPS: usize = 256;

/// Builds a scenario from `data` and checks it; panics on a broken
/// invariant, with the scenario that broke it.
pub fn run(data: &[u8]) {
    let Ok(mut scenario) = Scenario::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    scenario.ops.truncate(MAX_OPS);
    if let Err(broken) = check(&scenario, origin()) {
        panic!("{broken}\n{scenario:#?}");
    }
}

/// Seeds: any bytes make a scenario, so pseudo-random inputs of a few
/// lengths give short and long runs to start from.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    [64usize, 256, 1024, 4096, 16_384]
        .into_iter()
        .map(|len| {
            let bytes = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            (format!("random-{len}"), bytes)
        })
        .collect()
}

/// The simulated clock's origin; any instant will do.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}
