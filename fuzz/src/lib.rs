//! The checks behind plex's fuzz targets.
//!
//! The targets in `fuzz_targets/` are thin wrappers around [`decoder::run`],
//! [`session::run`], [`pair_ops::run`], [`pool_bytes::run`], [`rpc_decode::run`] and [`protomux_decode::run`]. Each module also documents its input format and
//! builds inputs in it, so that `examples/gen_corpus.rs` writes seeds the
//! targets parse.

pub mod decoder;
pub mod pair_ops;
pub mod pool_bytes;
pub mod protomux_decode;
pub mod rpc_decode;
pub mod session;
