//! JSON handling on raw bytes: validation without building a value, and
//! compaction that keeps every token byte for byte (numbers are never
//! rounded, key order and duplicates are kept). Shared with `plex serve`,
//! so that a message reads the same from a pool file and over HTTP.

pub(crate) use plex_serve::wire::{base64_into, compact_into, validate};
