//! The Protomux session on arbitrary peer bytes after a valid OPEN.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plex_fuzz::protomux_session::run(data));
