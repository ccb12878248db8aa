//! Remote-pool requests and records: decoded ones re-encode to themselves.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plex_fuzz::pools_decode::run(data));
