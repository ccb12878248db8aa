//! Differential decoding: whole versus split input, and re-encoding.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plex_fuzz::decoder::run(data));
