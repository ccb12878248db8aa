//! The envelope every read returns, and its sequence number.

use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::frame::TagIter;

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

/// One message read into buffers that the caller keeps: what
/// [`crate::Pool::get_into`] and [`crate::Cursor::try_next_into`] fill.
///
/// Reading into the same `MessageBuf` again reuses its allocations, so a
/// reader allocates nothing per message once they have grown to the
/// largest message it reads. After a failed read it holds no message.
///
/// ```
/// use plex_store::{MessageBuf, Options, Pool, Seq, Start};
/// # let dir = tempfile::tempdir().unwrap();
/// let pool = Pool::create(dir.path().join("buf.pool"), 1 << 20, Options::new())?;
/// pool.append(&["greeting"], b"hello")?;
/// pool.append(&[], b"world")?;
/// let mut message = MessageBuf::new();
/// pool.get_into(Seq(1), &mut message)?;
/// assert_eq!(message.data(), b"hello");
/// assert_eq!(message.tags().collect::<Vec<_>>(), ["greeting"]);
/// // A cursor reading everything into the same buffer.
/// let mut cursor = pool.cursor(Start::Oldest);
/// let mut bytes = 0;
/// while cursor.try_next_into(&mut message)? {
///     bytes += message.data().len();
/// }
/// assert_eq!(bytes, 10);
/// # Ok::<(), plex_store::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageBuf {
    pub(crate) seq: Seq,
    pub(crate) time_ns: u64,
    /// The validated tag area: `(u16 len, utf-8 bytes)*`.
    pub(crate) tags: Vec<u8>,
    pub(crate) data: Vec<u8>,
}

impl MessageBuf {
    /// An empty buffer; it allocates on the first read.
    pub fn new() -> MessageBuf {
        MessageBuf::default()
    }

    /// The message's seq (0 while it holds no message).
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// When the message was appended (the appender's wall clock).
    pub fn time(&self) -> SystemTime {
        time_from_ns(self.time_ns)
    }

    /// The message's tags, in append order, without allocating.
    pub fn tags(&self) -> Tags<'_> {
        Tags {
            inner: TagIter { rest: &self.tags },
        }
    }

    /// The message's payload.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The message as an owned [`Message`], taking the payload buffer.
    pub fn into_message(self) -> Message {
        Message {
            seq: self.seq,
            time: time_from_ns(self.time_ns),
            tags: self.tags().map(str::to_owned).collect(),
            data: self.data,
        }
    }

    /// Forgets the message, keeping the allocations.
    pub(crate) fn clear(&mut self) {
        self.seq = Seq(0);
        self.time_ns = 0;
        self.tags.clear();
        self.data.clear();
    }
}

/// The tags of a [`MessageBuf`]; see [`MessageBuf::tags`].
#[derive(Debug, Clone)]
pub struct Tags<'a> {
    inner: TagIter<'a>,
}

impl<'a> Iterator for Tags<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        // The area was validated when the message was read; a malformed
        // one ends the iteration (it cannot be, short of a bug).
        self.inner.next_tag()?.ok()
    }
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
