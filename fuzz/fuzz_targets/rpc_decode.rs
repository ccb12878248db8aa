//! neonplex RPC frames, envelopes and store bodies: decode, re-encode, decode.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plex_fuzz::rpc_decode::run(data));
