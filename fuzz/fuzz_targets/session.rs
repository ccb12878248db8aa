//! One session fed hostile bytes and time; checks the promises of its API.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plex_fuzz::session::run(data));
