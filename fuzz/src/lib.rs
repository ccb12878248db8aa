//! The checks behind plex's fuzz targets.
//!
//! The targets in `fuzz_targets/` are thin wrappers around [`decoder::run`],
//! [`session::run`], [`pair_ops::run`], [`pool_bytes::run`], [`rpc_decode::run`], [`protomux_decode::run`], [`protomux_session::run`], [`relay_decode::run`] and [`pools_decode::run`]. Each module also documents its input format and
//! builds inputs in it, so that `examples/gen_corpus.rs` writes seeds the
//! targets parse.

pub mod decoder;
pub mod pair_ops;
pub mod pool_bytes;
pub mod pools_decode;
pub mod protomux_decode;
pub mod protomux_session;
pub mod relay_decode;
pub mod rpc_decode;
pub mod session;

/// The bytes a hex string spells (pairs that are not hex are skipped).
fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// A vector's name as a seed file name.
fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}
