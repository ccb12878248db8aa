//! Syncthing relay frames and session-join answers: whole and chunked agree.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plex_fuzz::relay_decode::run(data));
