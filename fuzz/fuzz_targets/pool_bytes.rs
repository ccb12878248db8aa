//! Arbitrary pool-file bytes through plex-store's checker.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plex_fuzz::pool_bytes::run(data));
