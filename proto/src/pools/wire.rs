//! Request heads and records: little-endian integers, strings as a u16
//! length and UTF-8, byte strings as a u32 length. Every decode is bounded
//! by its input and fails with a [`WireError`], never a panic.

use bytes::{BufMut, Bytes};

use super::codec::{
    finish, put_long_str, put_opt, put_opt_str, put_str, put_tags, tags_len, take, take_bool,
    take_long_str, take_name, take_opt, take_opt_str, take_str, take_tags, take_u32, take_u64,
    take_u8,
};

/// The protocol name the streams of pool operations are opened for.
pub const POOLS_PROTOCOL: &str = "plex-pools/1";

/// The longest pool name, in bytes.
pub const MAX_NAME: usize = 255;

/// The most tags a message or a tail's filter may carry.
pub const MAX_TAGS: usize = 1024;

/// The longest tag, in bytes (a pool's own limit too).
pub const MAX_TAG_LEN: usize = u16::MAX as usize;

/// The bytes before a record's body: its length (u32) and kind (u8).
pub const RECORD_HEADER: usize = 5;

/// Checks that `tags` fit the wire: at most [`MAX_TAGS`] of them, each at
/// most [`MAX_TAG_LEN`] bytes. Encoders take tags as they are: a writer
/// checks a message's tags first.
pub fn check_tags(tags: &[String]) -> Result<(), WireError> {
    if tags.len() > MAX_TAGS {
        return Err(WireError::TooManyTags);
    }
    match tags.iter().find(|t| t.len() > MAX_TAG_LEN) {
        Some(tag) => Err(WireError::TagTooLong(tag.len())),
        None => Ok(()),
    }
}

/// Bytes that are not a valid request or record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the field needs.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// An operation code this version does not know.
    #[error("unknown operation {0}")]
    BadOperation(u8),
    /// A record kind this version does not know.
    #[error("unknown record kind {0}")]
    BadKind(u8),
    /// A field holds a value outside its range.
    #[error("bad {0}")]
    BadValue(&'static str),
    /// A pool name that is empty, too long, a directory reference, or
    /// holds a path separator or NUL.
    #[error("invalid pool name: {0}")]
    BadName(&'static str),
    /// A string that is not UTF-8.
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    /// More tags than [`MAX_TAGS`].
    #[error("more than {MAX_TAGS} tags")]
    TooManyTags,
    /// A tag longer than [`MAX_TAG_LEN`].
    #[error("a tag of {0} bytes exceeds the limit of {MAX_TAG_LEN}")]
    TagTooLong(usize),
    /// A record longer than the reader allows.
    #[error("a record of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The record's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes left after a request or inside a record after its fields.
    #[error("{0} bytes after the fields")]
    Trailing(usize),
}

/// How an append is acknowledged (the store's durability).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Acknowledged once published.
    #[default]
    Fast,
    /// Acknowledged once on stable storage.
    Flush,
}

/// Where a tail starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TailStart {
    /// After the newest message: only new ones.
    #[default]
    End,
    /// At the oldest message held.
    Oldest,
    /// At this seq (a gap is reported if it is gone).
    Seq(u64),
    /// At the last `n` messages held.
    Last(u64),
}

/// What a tail reads and how long it lasts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TailQuery {
    /// The first message.
    pub start: TailStart,
    /// Wait for new messages (`true`) or end at the newest (`false`).
    pub follow: bool,
    /// End after this many messages.
    pub max: Option<u64>,
    /// End with [`Record::TimedOut`] when no message came for this many
    /// milliseconds.
    pub timeout_ms: Option<u64>,
    /// Only messages carrying every one of these tags.
    pub tags: Vec<String>,
}

/// The handshake of an operation's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// Create a pool of `size` bytes (`index_slots` or the store's default).
    Create {
        /// The pool.
        pool: String,
        /// File size in bytes.
        size: u64,
        /// Index slots, if not the default.
        index_slots: Option<u64>,
    },
    /// Describe a pool (validating every message, for its damaged count).
    Info {
        /// The pool.
        pool: String,
    },
    /// Describe a pool without validating its messages (`damaged` is
    /// `None`): what a writer needs, in constant time.
    Describe {
        /// The pool.
        pool: String,
    },
    /// Describe every pool.
    List,
    /// Delete a pool.
    Delete {
        /// The pool.
        pool: String,
    },
    /// Check that a delete of the pool would find a pool file, without
    /// deleting (or opening) it: a client deleting several pools checks
    /// them all first, and deletes none if one fails.
    Check {
        /// The pool.
        pool: String,
    },
    /// Append the [`Record::Batch`]es the client writes.
    Append {
        /// The pool.
        pool: String,
        /// How each batch is acknowledged.
        durability: Durability,
    },
    /// Read one message.
    Get {
        /// The pool.
        pool: String,
        /// Its seq.
        seq: u64,
    },
    /// Read messages from a start, live.
    Tail {
        /// The pool.
        pool: String,
        /// From where, how many, how long.
        query: TailQuery,
    },
}

/// The stable kinds of errors (the store's, which Plasmite shares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A bug, or a kind this version does not know.
    Internal,
    /// A bad request.
    Usage,
    /// A pool or seq does not exist.
    NotFound,
    /// The pool already exists.
    AlreadyExists,
    /// A lock or a server limit: retry later.
    Busy,
    /// Access was denied.
    Permission,
    /// A pool file failed validation.
    Corrupt,
    /// An operating-system call failed.
    Io,
    /// Messages were overwritten before they were read.
    RetentionGap,
}

/// An operation's failure: [`Record::Error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRecord {
    /// The stable kind.
    pub kind: ErrorKind,
    /// What went wrong.
    pub message: String,
    /// What the user could do about it.
    pub hint: Option<String>,
    /// The server-side file the error is about.
    pub path: Option<String>,
    /// The seq the error is about.
    pub seq: Option<u64>,
}

/// A pool's description: [`Record::Pool`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolInfo {
    /// The pool's name.
    pub name: String,
    /// The pool file, on the server.
    pub path: String,
    /// File length in bytes.
    pub file_len: u64,
    /// Ring length in bytes.
    pub ring_len: u64,
    /// Index slots.
    pub index_slots: u64,
    /// The largest frame the pool takes.
    pub max_frame: u64,
    /// Messages held.
    pub messages: u64,
    /// The oldest seq held (`newest + 1` when empty).
    pub oldest: u64,
    /// The newest seq (0 before the first append).
    pub newest: u64,
    /// Every seq up to this one is on stable storage.
    pub synced: u64,
    /// Followers waiting for wake-ups.
    pub waiters: u32,
    /// A sync of the pool failed once.
    pub sync_failed: bool,
    /// Damaged messages found by validating them (`Info` only).
    pub damaged: Option<u64>,
}

/// A stored message: [`Record::Message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its seq.
    pub seq: u64,
    /// Its append time, in nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its bytes.
    pub data: Bytes,
}

/// What travels on an operation's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Record {
    /// A pool's description.
    Pool(PoolInfo),
    /// A message.
    Message(Message),
    /// The receipt of a batch: seqs `first..first + count`, all stamped
    /// `time_ns`.
    Receipt {
        /// The batch's first seq.
        first: u64,
        /// Its message count.
        count: u32,
        /// The time stored in each, nanoseconds since the Unix epoch.
        time_ns: u64,
    },
    /// Seqs `first..next` were overwritten before the tail read them; it
    /// goes on at `next`.
    Gap {
        /// The first seq lost.
        first: u64,
        /// The seq the tail goes on at.
        next: u64,
    },
    /// The operation failed; nothing follows.
    Error(ErrorRecord),
    /// The operation finished.
    Done,
    /// A tail's timeout passed with no message.
    TimedOut,
    /// Messages to append as one batch, each its tags and data (client to
    /// server, on an append stream).
    Batch(Vec<(Vec<String>, Bytes)>),
}

const OP_CREATE: u8 = 1;
const OP_INFO: u8 = 2;
const OP_LIST: u8 = 3;
const OP_DELETE: u8 = 4;
const OP_APPEND: u8 = 5;
const OP_GET: u8 = 6;
const OP_TAIL: u8 = 7;
const OP_DESCRIBE: u8 = 8;
const OP_CHECK: u8 = 9;

const KIND_POOL: u8 = 1;
const KIND_MESSAGE: u8 = 2;
const KIND_RECEIPT: u8 = 3;
const KIND_GAP: u8 = 4;
const KIND_ERROR: u8 = 5;
const KIND_DONE: u8 = 6;
const KIND_TIMED_OUT: u8 = 7;
const KIND_BATCH: u8 = 8;

impl Request {
    /// The handshake's bytes: an operation byte, then its fields.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(32);
        match self {
            Request::Create {
                pool,
                size,
                index_slots,
            } => {
                out.put_u8(OP_CREATE);
                put_str(&mut out, pool);
                out.put_u64_le(*size);
                put_opt(&mut out, *index_slots);
            }
            Request::Info { pool } => {
                out.put_u8(OP_INFO);
                put_str(&mut out, pool);
            }
            Request::Describe { pool } => {
                out.put_u8(OP_DESCRIBE);
                put_str(&mut out, pool);
            }
            Request::List => out.put_u8(OP_LIST),
            Request::Delete { pool } => {
                out.put_u8(OP_DELETE);
                put_str(&mut out, pool);
            }
            Request::Check { pool } => {
                out.put_u8(OP_CHECK);
                put_str(&mut out, pool);
            }
            Request::Append { pool, durability } => {
                out.put_u8(OP_APPEND);
                put_str(&mut out, pool);
                out.put_u8(match durability {
                    Durability::Fast => 0,
                    Durability::Flush => 1,
                });
            }
            Request::Get { pool, seq } => {
                out.put_u8(OP_GET);
                put_str(&mut out, pool);
                out.put_u64_le(*seq);
            }
            Request::Tail { pool, query } => {
                out.put_u8(OP_TAIL);
                put_str(&mut out, pool);
                let (kind, at) = match query.start {
                    TailStart::End => (0, 0),
                    TailStart::Oldest => (1, 0),
                    TailStart::Seq(seq) => (2, seq),
                    TailStart::Last(n) => (3, n),
                };
                out.put_u8(kind);
                out.put_u64_le(at);
                out.put_u8(u8::from(query.follow));
                put_opt(&mut out, query.max);
                put_opt(&mut out, query.timeout_ms);
                put_tags(&mut out, &query.tags);
            }
        }
        out.into()
    }

    /// Decodes a handshake and checks its pool name.
    pub fn decode(mut input: &[u8]) -> Result<Request, WireError> {
        let input = &mut input;
        let request = match take_u8(input, "operation")? {
            OP_CREATE => Request::Create {
                pool: take_name(input)?,
                size: take_u64(input, "size")?,
                index_slots: take_opt(input, "index slots")?,
            },
            OP_INFO => Request::Info {
                pool: take_name(input)?,
            },
            OP_DESCRIBE => Request::Describe {
                pool: take_name(input)?,
            },
            OP_LIST => Request::List,
            OP_DELETE => Request::Delete {
                pool: take_name(input)?,
            },
            OP_CHECK => Request::Check {
                pool: take_name(input)?,
            },
            OP_APPEND => Request::Append {
                pool: take_name(input)?,
                durability: match take_u8(input, "durability")? {
                    0 => Durability::Fast,
                    1 => Durability::Flush,
                    _ => return Err(WireError::BadValue("durability")),
                },
            },
            OP_GET => Request::Get {
                pool: take_name(input)?,
                seq: take_u64(input, "seq")?,
            },
            OP_TAIL => {
                let pool = take_name(input)?;
                let kind = take_u8(input, "tail start")?;
                let at = take_u64(input, "tail start")?;
                let start = match kind {
                    0 => TailStart::End,
                    1 => TailStart::Oldest,
                    2 => TailStart::Seq(at),
                    3 => TailStart::Last(at),
                    _ => return Err(WireError::BadValue("tail start")),
                };
                let follow = take_bool(input, "follow")?;
                let max = take_opt(input, "max")?;
                let timeout_ms = take_opt(input, "timeout")?;
                let tags = take_tags(input)?;
                Request::Tail {
                    pool,
                    query: TailQuery {
                        start,
                        follow,
                        max,
                        timeout_ms,
                        tags,
                    },
                }
            }
            other => return Err(WireError::BadOperation(other)),
        };
        finish(input)?;
        Ok(request)
    }

    /// The pool the operation is on (`None` for `List`).
    pub fn pool(&self) -> Option<&str> {
        match self {
            Request::Create { pool, .. }
            | Request::Info { pool }
            | Request::Describe { pool }
            | Request::Delete { pool }
            | Request::Check { pool }
            | Request::Append { pool, .. }
            | Request::Get { pool, .. }
            | Request::Tail { pool, .. } => Some(pool),
            Request::List => None,
        }
    }
}

/// Checks a pool name: a file name in the server's directory, never a path.
pub fn check_name(name: &str) -> Result<(), WireError> {
    let why = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_NAME {
        "longer than 255 bytes"
    } else if name == "." || name == ".." {
        "a directory reference"
    } else if name.contains(['/', '\\']) {
        "contains a path separator"
    } else if name.contains('\0') {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(WireError::BadName(why))
}

impl ErrorKind {
    /// The stable name, as the CLI and Plasmite print it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Internal => "Internal",
            ErrorKind::Usage => "Usage",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::AlreadyExists => "AlreadyExists",
            ErrorKind::Busy => "Busy",
            ErrorKind::Permission => "Permission",
            ErrorKind::Corrupt => "Corrupt",
            ErrorKind::Io => "Io",
            ErrorKind::RetentionGap => "RetentionGap",
        }
    }

    fn code(self) -> u8 {
        match self {
            ErrorKind::Internal => 0,
            ErrorKind::Usage => 1,
            ErrorKind::NotFound => 2,
            ErrorKind::AlreadyExists => 3,
            ErrorKind::Busy => 4,
            ErrorKind::Permission => 5,
            ErrorKind::Corrupt => 6,
            ErrorKind::Io => 7,
            ErrorKind::RetentionGap => 8,
        }
    }

    /// A kind a newer server sends is Internal here.
    fn from_code(code: u8) -> ErrorKind {
        match code {
            1 => ErrorKind::Usage,
            2 => ErrorKind::NotFound,
            3 => ErrorKind::AlreadyExists,
            4 => ErrorKind::Busy,
            5 => ErrorKind::Permission,
            6 => ErrorKind::Corrupt,
            7 => ErrorKind::Io,
            8 => ErrorKind::RetentionGap,
            _ => ErrorKind::Internal,
        }
    }
}

impl ErrorRecord {
    /// An error of `kind` with `message` and nothing else.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ErrorRecord {
        ErrorRecord {
            kind,
            message: message.into(),
            hint: None,
            path: None,
            seq: None,
        }
    }
}

impl std::fmt::Display for ErrorRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Message {
    /// Appends the [`Record::Message`] of these parts to `out`, without
    /// building a [`Message`] (a server encodes straight from its store).
    pub fn encode_parts(seq: u64, time_ns: u64, tags: &[String], data: &[u8], out: &mut Vec<u8>) {
        let len = 1 + 8 + 8 + tags_len(tags) + data.len();
        out.put_u32_le(u32::try_from(len).unwrap_or(u32::MAX));
        out.put_u8(KIND_MESSAGE);
        out.put_u64_le(seq);
        out.put_u64_le(time_ns);
        put_tags(out, tags);
        out.extend_from_slice(data);
    }
}

impl Record {
    /// Appends the record to `out`: its length (u32, kind and body), its
    /// kind byte, its body.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let at = out.len();
        out.put_u32_le(0);
        match self {
            Record::Pool(info) => {
                out.put_u8(KIND_POOL);
                put_str(out, &info.name);
                put_str(out, &info.path);
                for n in [
                    info.file_len,
                    info.ring_len,
                    info.index_slots,
                    info.max_frame,
                    info.messages,
                    info.oldest,
                    info.newest,
                    info.synced,
                ] {
                    out.put_u64_le(n);
                }
                out.put_u32_le(info.waiters);
                out.put_u8(u8::from(info.sync_failed));
                put_opt(out, info.damaged);
            }
            Record::Message(msg) => {
                out.truncate(at);
                return Message::encode_parts(msg.seq, msg.time_ns, &msg.tags, &msg.data, out);
            }
            Record::Receipt {
                first,
                count,
                time_ns,
            } => {
                out.put_u8(KIND_RECEIPT);
                out.put_u64_le(*first);
                out.put_u32_le(*count);
                out.put_u64_le(*time_ns);
            }
            Record::Gap { first, next } => {
                out.put_u8(KIND_GAP);
                out.put_u64_le(*first);
                out.put_u64_le(*next);
            }
            Record::Error(e) => {
                out.put_u8(KIND_ERROR);
                out.put_u8(e.kind.code());
                put_long_str(out, &e.message);
                put_opt_str(out, e.hint.as_deref());
                put_opt_str(out, e.path.as_deref());
                put_opt(out, e.seq);
            }
            Record::Done => out.put_u8(KIND_DONE),
            Record::TimedOut => out.put_u8(KIND_TIMED_OUT),
            Record::Batch(messages) => {
                out.put_u8(KIND_BATCH);
                out.put_u32_le(u32::try_from(messages.len()).unwrap_or(u32::MAX));
                for (tags, data) in messages {
                    put_tags(out, tags);
                    out.put_u32_le(u32::try_from(data.len()).unwrap_or(u32::MAX));
                    out.extend_from_slice(data);
                }
            }
        }
        let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }

    /// The encoded length of a batch message with `tags` and `data_len`
    /// bytes, for a writer that bounds its batches.
    pub fn batch_item_len(tags: &[String], data_len: usize) -> usize {
        tags_len(tags) + 4 + data_len
    }

    /// Decodes the record at the start of `input`: `Ok(None)` until all of
    /// it is there, else the record and the bytes it took. A record longer
    /// than `max` bytes fails at once, from its length alone.
    pub fn decode(input: &[u8], max: usize) -> Result<Option<(Record, usize)>, WireError> {
        let Some(len) = input.get(..4) else {
            return Ok(None);
        };
        // Four bytes were just taken.
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len > max {
            return Err(WireError::TooLarge { len, max });
        }
        if len == 0 {
            return Err(WireError::Truncated("record kind"));
        }
        let Some(body) = input.get(4..4 + len) else {
            return Ok(None);
        };
        let mut body = body;
        let record = decode_body(&mut body)?;
        finish(body)?;
        Ok(Some((record, 4 + len)))
    }
}

fn decode_body(input: &mut &[u8]) -> Result<Record, WireError> {
    Ok(match take_u8(input, "record kind")? {
        KIND_POOL => {
            let name = take_str(input, "pool name")?;
            let path = take_str(input, "path")?;
            let mut n = [0u64; 8];
            for slot in &mut n {
                *slot = take_u64(input, "pool info")?;
            }
            Record::Pool(PoolInfo {
                name,
                path,
                file_len: n[0],
                ring_len: n[1],
                index_slots: n[2],
                max_frame: n[3],
                messages: n[4],
                oldest: n[5],
                newest: n[6],
                synced: n[7],
                waiters: take_u32(input, "waiters")?,
                sync_failed: take_bool(input, "sync failed")?,
                damaged: take_opt(input, "damaged")?,
            })
        }
        KIND_MESSAGE => {
            let seq = take_u64(input, "seq")?;
            let time_ns = take_u64(input, "time")?;
            let tags = take_tags(input)?;
            let data = Bytes::copy_from_slice(input);
            *input = &[];
            Record::Message(Message {
                seq,
                time_ns,
                tags,
                data,
            })
        }
        KIND_RECEIPT => Record::Receipt {
            first: take_u64(input, "first seq")?,
            count: take_u32(input, "count")?,
            time_ns: take_u64(input, "time")?,
        },
        KIND_GAP => Record::Gap {
            first: take_u64(input, "gap")?,
            next: take_u64(input, "gap")?,
        },
        KIND_ERROR => Record::Error(ErrorRecord {
            kind: ErrorKind::from_code(take_u8(input, "error kind")?),
            message: take_long_str(input, "error message")?,
            hint: take_opt_str(input, "hint")?,
            path: take_opt_str(input, "path")?,
            seq: take_opt(input, "seq")?,
        }),
        KIND_DONE => Record::Done,
        KIND_TIMED_OUT => Record::TimedOut,
        KIND_BATCH => {
            let count = take_u32(input, "batch count")? as usize;
            // Each message takes at least 6 bytes: a bound on the count
            // before anything is allocated for it.
            if count > input.len() / 6 {
                return Err(WireError::Truncated("batch"));
            }
            let mut messages = Vec::with_capacity(count);
            for _ in 0..count {
                let tags = take_tags(input)?;
                let len = take_u32(input, "data length")? as usize;
                let data = take(input, len, "data")?;
                messages.push((tags, Bytes::copy_from_slice(data)));
            }
            Record::Batch(messages)
        }
        other => return Err(WireError::BadKind(other)),
    })
}
