//! The JSON records plex prints on stdout, one per line: feed receipts and
//! pool descriptions. Message envelopes and times are `plex serve`'s
//! ([`plex_serve::wire`]), so that they print the same everywhere.

use std::path::Path;

use plex_store::Info;
use serde::Serialize;

pub(crate) use plex_serve::wire::rfc3339;

/// What `plex feed` prints for each message it appended.
#[derive(Debug, Serialize)]
pub(crate) struct Receipt<'a> {
    /// The message's seq.
    pub(crate) seq: u64,
    /// Its stored append time.
    pub(crate) time: &'a str,
    /// Its tags.
    pub(crate) tags: &'a [String],
}

/// What `plex pool info` and `plex pool list` print for a pool.
#[derive(Debug, Serialize)]
pub(crate) struct PoolRecord {
    /// The pool's name, when it was named rather than given by path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// The pool file.
    pub(crate) path: String,
    /// File length in bytes.
    pub(crate) size: u64,
    /// Ring length in bytes: what messages share.
    pub(crate) ring_size: u64,
    /// Number of index slots.
    pub(crate) index_capacity: u64,
    /// The largest message the pool accepts, frame header and tags included.
    pub(crate) max_message: u64,
    /// Messages held.
    pub(crate) messages: u64,
    /// The oldest seq held (`newest + 1` when empty).
    pub(crate) oldest: u64,
    /// The newest seq (0 before the first append).
    pub(crate) newest: u64,
    /// Every seq up to this one is on stable storage.
    pub(crate) synced: u64,
    /// Followers waiting for wake-ups, across processes.
    pub(crate) waiters: u32,
    /// A sync of this pool failed once: `synced` no longer rises, and
    /// appends with `--durability flush` fail with Io.
    pub(crate) sync_failed: bool,
    /// Messages held whose stored frames fail validation (reads of them
    /// fail with Corrupt); only `plex pool info` validates them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) damaged: Option<u64>,
}

impl PoolRecord {
    /// Describes a pool from its info snapshot.
    pub(crate) fn new(name: Option<&str>, info: &Info) -> PoolRecord {
        PoolRecord {
            name: name.map(str::to_owned),
            path: display(&info.path),
            size: info.file_len,
            ring_size: info.ring_len,
            index_capacity: info.index_slots,
            max_message: info.max_frame,
            messages: info.len(),
            oldest: info.oldest.get(),
            newest: info.newest.get(),
            synced: info.synced.get(),
            waiters: info.waiters,
            sync_failed: info.sync_failed,
            damaged: None,
        }
    }
}

/// A path as JSON text (lossy for non-UTF-8 names).
pub(crate) fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
