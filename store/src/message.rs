//! The envelope every read returns, and its sequence number.

use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A message's sequence number: 1 for the first append, +1 for each after.
///
/// Seqs are never reused within a pool, so a seq names one message forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seq(pub u64);

impl Seq {
    /// The raw number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for Seq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u64> for Seq {
    fn from(v: u64) -> Seq {
        Seq(v)
    }
}

/// One message read back from a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its seq.
    pub seq: Seq,
    /// When it was appended (the appender's wall clock).
    pub time: SystemTime,
    /// Its tags, in append order.
    pub tags: Vec<String>,
    /// Its payload.
    pub data: Vec<u8>,
}

/// What an append of one message returns: its seq and stored time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The message's seq.
    pub seq: Seq,
    /// The time stored in it, as reads of it return it.
    pub time: SystemTime,
}

/// What an append of a batch returns: its seqs and their stored time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReceipt {
    /// The batch's seqs, in order (empty for an empty batch).
    pub seqs: Range<Seq>,
    /// The time stored in every message of the batch.
    pub time: SystemTime,
}

impl BatchReceipt {
    /// The receipt of each message of the batch, in order.
    pub fn receipts(&self) -> impl Iterator<Item = Receipt> + '_ {
        (self.seqs.start.0..self.seqs.end.0).map(|seq| Receipt {
            seq: Seq(seq),
            time: self.time,
        })
    }
}

/// Converts a frame timestamp (nanoseconds since the epoch) to a `SystemTime`.
pub(crate) fn time_from_ns(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// Nanoseconds since the epoch, saturating; 0 for clocks before 1970.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
