//! The Protomux session's vocabulary: config, handles, events, errors and
//! stats.

use std::time::Duration;

use bytes::Bytes;

use crate::protomux::{DecodeError, FrameError};
use crate::ConfigError;

/// A channel of a [`Session`](super::Session), as the application names it.
///
/// Not the wire id: wire ids are small and reused as soon as a channel
/// closes, while a `ChannelId` is never reused within a session, so a
/// stale handle can never reach a newer channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(pub(crate) u64);

impl ChannelId {
    /// The handle's number, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for ChannelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "channel#{}", self.0)
    }
}

/// Limits of a Protomux session. Protomux has no flow control of its own,
/// so these bounds, and the transport's backpressure, are the only brakes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MuxConfig {
    /// The largest message sent or accepted, in bytes, without the length
    /// prefix. A longer frame from the peer ends the connection. Default
    /// 8 MiB (framed-stream's own limit is 4 GiB).
    pub max_message_size: usize,
    /// How many channels each side may have open at once: wire ids past
    /// it are a connection error from the peer, a local error here.
    /// Default 4,096.
    pub max_channels: usize,
    /// How many channels the peer opened may wait for this side to accept
    /// or reject them; past it, OPENs are rejected. Default 256.
    pub max_pending_opens: usize,
    /// Bytes one channel may hold received and unread before the session
    /// stops taking input (`wants_input` is false). Each message counts
    /// its length plus [`MESSAGE_OVERHEAD`]. Default 1 MiB.
    pub channel_buffer: usize,
    /// Bytes all channels together may hold received and unread before
    /// the session stops taking input. Default 8 MiB.
    pub max_buffered: usize,
    /// Bytes of output waiting for the transport past which `send` says
    /// [`MuxLocalError::Blocked`] and the session stops taking input.
    /// Default 1 MiB.
    pub send_buffer: usize,
    /// How long an OPEN nobody listens for waits for a listener before it
    /// is rejected (see [`Session::set_claim_grace`](super::Session::set_claim_grace)).
    /// Default 1 s, so that a peer may open a channel the moment it
    /// connects, before the accepting side has had a chance to listen;
    /// `None` rejects at once, as Protomux does.
    pub claim_grace: Option<Duration>,
}

/// What each queued message counts beyond its bytes: its share of the
/// queue's bookkeeping (as neonplex counts 512 bytes per parked message).
pub const MESSAGE_OVERHEAD: usize = 64;

impl Default for MuxConfig {
    fn default() -> MuxConfig {
        MuxConfig {
            max_message_size: 8 << 20,
            max_channels: 4096,
            max_pending_opens: 256,
            channel_buffer: 1 << 20,
            max_buffered: 8 << 20,
            send_buffer: 1 << 20,
            claim_grace: Some(Duration::from_secs(1)),
        }
    }
}

impl MuxConfig {
    /// Sets [`max_message_size`](MuxConfig::max_message_size).
    pub fn max_message_size(mut self, bytes: usize) -> MuxConfig {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`max_channels`](MuxConfig::max_channels).
    pub fn max_channels(mut self, channels: usize) -> MuxConfig {
        self.max_channels = channels;
        self
    }

    /// Sets [`max_pending_opens`](MuxConfig::max_pending_opens).
    pub fn max_pending_opens(mut self, opens: usize) -> MuxConfig {
        self.max_pending_opens = opens;
        self
    }

    /// Sets [`channel_buffer`](MuxConfig::channel_buffer).
    pub fn channel_buffer(mut self, bytes: usize) -> MuxConfig {
        self.channel_buffer = bytes;
        self
    }

    /// Sets [`max_buffered`](MuxConfig::max_buffered).
    pub fn max_buffered(mut self, bytes: usize) -> MuxConfig {
        self.max_buffered = bytes;
        self
    }

    /// Sets [`claim_grace`](MuxConfig::claim_grace).
    pub fn claim_grace(mut self, grace: Option<Duration>) -> MuxConfig {
        self.claim_grace = grace;
        self
    }

    /// Sets [`send_buffer`](MuxConfig::send_buffer).
    pub fn send_buffer(mut self, bytes: usize) -> MuxConfig {
        self.send_buffer = bytes;
        self
    }

    /// Checks that every limit is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |ok: bool, what: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::new(what))
            }
        };
        check(self.max_message_size > 0, "max_message_size must not be 0")?;
        check(
            u32::try_from(self.max_message_size).is_ok(),
            "max_message_size must fit the u32 length prefix",
        )?;
        check(self.max_channels > 0, "max_channels must not be 0")?;
        check(
            self.max_pending_opens > 0,
            "max_pending_opens must not be 0",
        )?;
        check(self.channel_buffer > 0, "channel_buffer must not be 0")?;
        check(
            self.max_buffered >= self.channel_buffer,
            "max_buffered must be at least channel_buffer",
        )?;
        check(self.send_buffer > 0, "send_buffer must not be 0")
    }
}

/// How a channel ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelEnd {
    /// The peer refused our OPEN: nothing listens for it there.
    Rejected,
    /// The peer closed the channel (Protomux's CLOSE is one-way: both
    /// directions end).
    Closed,
    /// The connection ended.
    Connection(MuxCloseReason),
}

/// Why the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MuxCloseReason {
    /// [`Session::close`](super::Session::close) was called.
    Local,
    /// The peer ended the byte stream.
    Eof,
    /// The peer broke the protocol; the connection must be dropped.
    Violation(MuxError),
}

impl std::fmt::Display for MuxCloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MuxCloseReason::Local => f.write_str("closed locally"),
            MuxCloseReason::Eof => f.write_str("the peer ended the connection"),
            MuxCloseReason::Violation(e) => write!(f, "protocol violation: {e}"),
        }
    }
}

/// What the peer did that ends the connection. neonplex destroys the
/// connection on the same input; here it is a typed error, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MuxError {
    /// A frame longer than [`MuxConfig::max_message_size`].
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Bytes that do not form a Protomux message.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// An OPEN whose id skips ahead of the ids in use or reuses an open one
    /// (neonplex: "Invalid open message").
    #[error("OPEN for channel {channel}: ids must be dense from 1 and not in use")]
    InvalidOpen {
        /// The id the peer gave.
        channel: u64,
    },
    /// A REJECT for an id of ours that has no OPEN waiting for an answer
    /// (neonplex: "Invalid reject message").
    #[error("REJECT for channel {channel}, which has no pending OPEN")]
    InvalidReject {
        /// The id the peer gave.
        channel: u64,
    },
    /// The peer opened more than [`MuxConfig::max_channels`] channels.
    #[error("the peer opened more than {max} channels")]
    TooManyChannels {
        /// The limit.
        max: usize,
    },
}

/// A call on the session that cannot be done. The session is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MuxLocalError {
    /// No such channel: never opened, or closed and fully read.
    #[error("unknown or finished channel")]
    UnknownChannel,
    /// The channel has ended; nothing more can be sent on it.
    #[error("the channel has ended")]
    ChannelEnded,
    /// The connection has closed.
    #[error("the connection is closed: {0}")]
    Closed(MuxCloseReason),
    /// `accept` or `reject` on a channel that is not waiting for either.
    #[error("the channel is not an incoming channel waiting to be accepted")]
    NotIncoming,
    /// `accept` of a channel while an older one of the same protocol and
    /// id waits for an answer: accept that one first.
    #[error("an older channel of the same protocol and id waits to be accepted first")]
    OutOfOrder,
    /// `send` on an incoming channel not yet accepted.
    #[error("the channel is not accepted yet")]
    NotAccepted,
    /// Every channel id this side may use is taken.
    #[error("{max} channels are open already")]
    TooManyChannels {
        /// [`MuxConfig::max_channels`].
        max: usize,
    },
    /// An empty message: neonplex may hold a zero-length DATA back
    /// indefinitely, so none is ever sent.
    #[error("empty messages cannot be sent on Protomux")]
    EmptyMessage,
    /// A message over [`MuxConfig::max_message_size`].
    #[error("message of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// The message's length on the wire.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The output queue is over [`MuxConfig::send_buffer`]: wait for
    /// [`MuxEvent::Writable`].
    #[error("the send buffer is full")]
    Blocked,
}

/// Something the application should know, from
/// [`Session::poll_event`](super::Session::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MuxEvent {
    /// The peer opened a channel this side listens for. Accept it with
    /// [`Session::accept`](super::Session::accept) (messages sent before
    /// that are kept, within the buffer limits) or reject it.
    Incoming {
        /// The new channel.
        channel: ChannelId,
        /// Its protocol.
        protocol: String,
        /// Its id within the protocol.
        id: Bytes,
        /// The peer's handshake bytes, as sent.
        handshake: Bytes,
    },
    /// The peer answered our OPEN with its own: the channel is open.
    Opened {
        /// The channel.
        channel: ChannelId,
        /// The peer's handshake bytes.
        handshake: Bytes,
    },
    /// Messages are waiting on `channel`: [`Session::recv`](super::Session::recv).
    Readable {
        /// The channel.
        channel: ChannelId,
    },
    /// The channel ended. Messages received before are still readable; the
    /// channel is forgotten once they are read.
    Ended {
        /// The channel.
        channel: ChannelId,
        /// How.
        end: ChannelEnd,
    },
    /// The output queue drained under [`MuxConfig::send_buffer`]: blocked
    /// sends can go on.
    Writable,
    /// The connection ended. Queued output, if any, may still be written
    /// before the transport is closed.
    Closed {
        /// Why.
        reason: MuxCloseReason,
    },
}

/// What [`Session::recv`](super::Session::recv) found. Exhaustive: a
/// channel has a message, has none yet, or has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recv {
    /// The next message.
    Message(Bytes),
    /// Nothing yet: wait for [`MuxEvent::Readable`].
    Empty,
    /// The channel has ended and every message was read; the channel is
    /// forgotten.
    Ended(ChannelEnd),
}

/// Counters of one session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MuxStats {
    /// Protomux messages written (a BATCH counts once).
    pub messages_sent: u64,
    /// Protomux messages read (each message of a BATCH counts).
    pub messages_received: u64,
    /// Bytes handed to the transport, length prefixes included.
    pub bytes_sent: u64,
    /// Bytes taken from the transport.
    pub bytes_received: u64,
    /// Channels opened, both directions.
    pub channels_opened: u64,
    /// OPENs of the peer's that were rejected.
    pub rejected: u64,
    /// Messages ignored: for closed or unknown channels, of message types
    /// other than 0, or control types Protomux does not define.
    pub ignored: u64,
    /// Received bytes now held for channels, as counted against the limits.
    pub buffered: usize,
    /// Bytes now waiting to be written.
    pub queued: usize,
}
