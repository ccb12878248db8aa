//! Two sessions under random operations; the model checker's invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plex_fuzz::pair_ops::run(data));
