//! What the client core takes and gives: its config, errors, replies,
//! events and counters.

use std::time::Duration;

use super::{DecodeError, Envelope};
use crate::{ConfigError, ErrorCode};

/// neonplex's `PLEX_RPC_MAX_REQUEST_BYTES`: REQ body bytes, the 6-byte header not counted.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// neonplex's `PLEX_RPC_MAX_CLIENT_ROUTES` and `PLEX_RPC_MAX_SERVER_ROUTES`.
pub const MAX_IN_FLIGHT: usize = 256;

/// Limits of a [`Client`](super::Client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Largest REQ body sent, in bytes (the 6-byte REQ header not counted). Default 256 KiB.
    pub max_request_bytes: usize,
    /// Most calls held at once (see [`Client::in_flight`](super::Client::in_flight)). Default 256.
    pub max_in_flight: usize,
    /// Per-call timeout unless the call names its own; `None` = none. Default 30 s.
    pub timeout: Option<Duration>,
    /// Most replies queued for one call before it fails with [`CallError::Overflow`]. Default 64.
    pub max_queued_replies: usize,
    /// Most payload bytes queued for one call before it fails with [`CallError::Overflow`]. Default 1 MiB.
    pub max_queued_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            max_request_bytes: MAX_REQUEST_BYTES,
            max_in_flight: MAX_IN_FLIGHT,
            timeout: Some(Duration::from_secs(30)),
            max_queued_replies: 64,
            max_queued_bytes: 1024 * 1024,
        }
    }
}

impl ClientConfig {
    /// Checks that no limit is zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        nonzero(self.max_request_bytes, "max_request_bytes must not be 0")?;
        nonzero(self.max_in_flight, "max_in_flight must not be 0")?;
        nonzero(self.max_queued_replies, "max_queued_replies must not be 0")?;
        nonzero(self.max_queued_bytes, "max_queued_bytes must not be 0")?;
        check_timeout(self.timeout)
    }
}

pub(super) fn nonzero(value: usize, what: &'static str) -> Result<(), ConfigError> {
    match value {
        0 => Err(ConfigError(what)),
        _ => Ok(()),
    }
}

pub(super) fn check_timeout(timeout: Option<Duration>) -> Result<(), ConfigError> {
    match timeout {
        Some(after) if after.is_zero() => Err(ConfigError("a timeout must not be 0 (use None)")),
        _ => Ok(()),
    }
}

/// Why a call failed, or was never started. A server's error *envelope* is
/// not a `CallError`: it arrives as [`Envelope::Err`] in a [`Reply`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The request body is over the limit; nothing was sent.
    #[error("request payload is {len} bytes, the limit is {max}")]
    PayloadTooLarge {
        /// The body's length.
        len: usize,
        /// [`ClientConfig::max_request_bytes`].
        max: usize,
    },
    /// As many calls as allowed are in flight; nothing was sent.
    #[error("too many in-flight requests (limit {limit})")]
    NotReady {
        /// [`ClientConfig::max_in_flight`].
        limit: usize,
    },
    /// No reply ended the call in time; the call was cancelled.
    #[error("request timed out after {after:?}")]
    Timeout {
        /// The call's timeout.
        after: Duration,
    },
    /// The lane or session closed.
    #[error("connection closed")]
    Closed,
    /// More replies arrived than the call may queue; the call was cancelled.
    #[error("too many replies queued for the call")]
    Overflow,
    /// A reply's payload is not an envelope; the call was cancelled.
    #[error("bad reply: {0}")]
    BadReply(DecodeError),
    /// Every request id has been used once; ids are never reused.
    #[error("request ids exhausted")]
    RidsExhausted,
    /// The lane has no listener (plex/1: the call's stream was refused).
    #[error("no listener for the lane")]
    Unavailable,
    /// The call's transport stream was reset by the peer with this code.
    #[error("call stream reset ({0})")]
    Reset(ErrorCode),
}

/// One reply popped by [`Client::poll_reply`](super::Client::poll_reply).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// A scan item (`RES more=1`).
    Item(Envelope),
    /// The end of the call, exactly once per call: the final envelope
    /// (an empty final payload reads as [`Envelope::OK`], which ends a
    /// scan), or why the call failed.
    Done(Result<Envelope, CallError>),
}

/// Something the caller of a [`Client`](super::Client) should act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The call has a reply to [`poll_reply`](super::Client::poll_reply):
    /// wake whoever waits on it.
    Readable {
        /// The call.
        rid: u32,
    },
}

/// Counters for one [`Client`](super::Client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClientStats {
    /// Calls started (REQ queued).
    pub calls: u64,
    /// Calls ended by the server's final reply, error envelopes included.
    pub completed: u64,
    /// Of `completed`, those whose final envelope is an error.
    pub remote_errors: u64,
    /// Calls failed by their deadline.
    pub timeouts: u64,
    /// Calls the caller cancelled while pending.
    pub cancelled: u64,
    /// Calls failed by [`Client::close`](super::Client::close).
    pub closed: u64,
    /// Calls failed by a full reply queue.
    pub overflows: u64,
    /// Calls failed by an undecodable reply.
    pub bad_replies: u64,
    /// Calls failed by the transport ([`Client::fail`](super::Client::fail)).
    pub transport_failures: u64,
    /// RES frames for no pending call (late, after cancel, timeout or end; or unknown): dropped.
    pub late_replies: u64,
    /// Payload bytes of `late_replies`.
    pub late_bytes: u64,
    /// REQ and CANCEL frames received by the client: dropped.
    pub unexpected_frames: u64,
}
