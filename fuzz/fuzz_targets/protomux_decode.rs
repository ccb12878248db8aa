//! Protomux messages and their u32LE framing: decode, re-encode, decode; any chunking.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plex_fuzz::protomux_decode::run(data));
