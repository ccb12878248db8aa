//! Error types. Remote violations ([`ProtocolError`]) and local misuse
//! ([`LocalError`]) are kept apart: the first is the peer's fault and ends a
//! stream or the connection, the second is the caller's and changes nothing.

use std::fmt;

use bytes::Bytes;

use crate::frame::FrameType;
use crate::id::{ErrorCode, StreamId};

/// The peer broke the protocol.
///
/// Each variant maps to the error code sent on the wire ([`code`]) and to a
/// scope ([`is_connection_error`]): a stream error resets one stream with
/// RST_STREAM, a connection error ends the session with GOAWAY.
///
/// [`code`]: ProtocolError::code
/// [`is_connection_error`]: ProtocolError::is_connection_error
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The peer's first bytes are not the plex preface.
    #[error("peer is not speaking plex (bad preface)")]
    NotPlex,
    /// The peer speaks a plex version this crate does not.
    #[error("peer speaks plex version {0}, this side speaks version 1")]
    UnsupportedVersion(u16),
    /// The first frame after the preface was not SETTINGS (without ACK).
    #[error("first frame after the preface was {}, not SETTINGS", ty.describe(*ack))]
    MissingSettings {
        /// Type of the frame that came instead.
        ty: FrameType,
        /// Whether it carried the ACK flag (SETTINGS ACK, OPEN ACK, PING ACK).
        ack: bool,
    },
    /// A frame header announced more than our MAX_FRAME_SIZE.
    #[error("frame of {len} bytes exceeds MAX_FRAME_SIZE {max}")]
    FrameTooLarge {
        /// Announced payload length.
        len: u32,
        /// Our limit.
        max: u32,
    },
    /// A frame's length does not fit its type.
    #[error("{ty} frame has invalid length {len}")]
    BadFrameSize {
        /// Frame type.
        ty: FrameType,
        /// Payload length.
        len: u32,
    },
    /// A frame was sent on a stream id its type forbids (0 or non-0).
    #[error("{ty} frame on invalid stream id {stream}")]
    BadStreamId {
        /// Frame type.
        ty: FrameType,
        /// Stream id.
        stream: StreamId,
    },
    /// An OPEN's protocol/id length prefixes overrun the payload.
    #[error("malformed OPEN on stream {0}")]
    MalformedOpen(StreamId),
    /// A SETTINGS value is out of range.
    #[error("setting {id:#x} has invalid value {value}")]
    InvalidSetting {
        /// Setting id.
        id: u16,
        /// Offending value.
        value: u32,
    },
    /// A SETTINGS ACK arrived with no SETTINGS of ours outstanding.
    #[error("unsolicited SETTINGS ACK")]
    UnexpectedSettingsAck,
    /// The peer opened a stream with our parity or a non-increasing id.
    #[error("peer opened stream {0} with a wrong or reused id")]
    BadOpenId(StreamId),
    /// A frame named a stream that was never opened.
    #[error("{ty} frame on idle stream {stream}")]
    IdleStream {
        /// Frame type.
        ty: FrameType,
        /// Stream id.
        stream: StreamId,
    },
    /// An OPEN ACK for a stream we did not open, or opened and paired already.
    #[error("unexpected OPEN ACK on stream {0}")]
    UnexpectedOpenAck(StreamId),
    /// DATA arrived on a stream we opened before the peer's OPEN ACK.
    #[error("DATA on stream {0} before its OPEN ACK")]
    DataBeforeAck(StreamId),
    /// The peer sent more than the window it was granted.
    #[error("flow-control window exceeded on stream {0}")]
    WindowExceeded(StreamId),
    /// A WINDOW_UPDATE pushed a window past 2^31-1.
    #[error("WINDOW_UPDATE overflows the window of stream {0}")]
    WindowOverflow(StreamId),
    /// A SETTINGS change of INITIAL_WINDOW_SIZE pushed the send window of
    /// this stream past 2^31-1 (a connection error: the SETTINGS frame is at
    /// fault).
    #[error("SETTINGS INITIAL_WINDOW_SIZE overflows the send window of stream {0}")]
    InitialWindowOverflow(StreamId),
    /// A WINDOW_UPDATE had an increment of 0.
    #[error("zero WINDOW_UPDATE increment on stream {0}")]
    ZeroWindowIncrement(StreamId),
    /// DATA arrived after the peer ended the stream.
    #[error("DATA after END_STREAM on stream {0}")]
    DataAfterEnd(StreamId),
    /// Our SETTINGS were not acknowledged in time.
    #[error("SETTINGS not acknowledged in time")]
    SettingsTimeout,
    /// A frame (or the preface) that had started did not complete within
    /// the frame timeout: a slow drip that would hold the connection open.
    #[error("a frame did not complete within the frame timeout")]
    FrameTimeout,
    /// The peer exceeded a budget meant to stop floods and rapid resets.
    #[error("peer flooded: {0}")]
    Flood(Flood),
}

/// Which budget a flooding peer exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Flood {
    /// Too many RST_STREAM frames (rapid reset, CVE-2023-44487).
    #[error("too many stream resets")]
    Resets,
    /// Too many empty DATA frames.
    #[error("too many empty DATA frames")]
    EmptyData,
    /// Too many SETTINGS frames.
    #[error("too many SETTINGS frames")]
    Settings,
    /// Too many PING frames.
    #[error("too many PING frames")]
    Pings,
    /// Too many streams we had to reset because the peer broke the protocol
    /// on them ("MadeYouReset").
    #[error("too many streams reset for protocol violations")]
    LocalResets,
    /// Too many frames that are ignored (unknown types, unmatched PING ACKs,
    /// small DATA on closed streams).
    #[error("too many ignored frames")]
    Ignored,
    /// Too many control replies waiting to be sent (the peer is not reading).
    #[error("too many queued {0} replies")]
    ControlQueue(&'static str),
}

impl ProtocolError {
    /// The code sent on the wire for this violation.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::NotPlex
            | ProtocolError::UnsupportedVersion(_)
            | ProtocolError::MissingSettings { .. }
            | ProtocolError::BadStreamId { .. }
            | ProtocolError::MalformedOpen(_)
            | ProtocolError::InvalidSetting { .. }
            | ProtocolError::UnexpectedSettingsAck
            | ProtocolError::BadOpenId(_)
            | ProtocolError::IdleStream { .. }
            | ProtocolError::UnexpectedOpenAck(_)
            | ProtocolError::DataBeforeAck(_)
            | ProtocolError::ZeroWindowIncrement(_) => ErrorCode::PROTOCOL_ERROR,
            ProtocolError::FrameTooLarge { .. } | ProtocolError::BadFrameSize { .. } => {
                ErrorCode::FRAME_SIZE_ERROR
            }
            ProtocolError::WindowExceeded(_)
            | ProtocolError::WindowOverflow(_)
            | ProtocolError::InitialWindowOverflow(_) => ErrorCode::FLOW_CONTROL_ERROR,
            ProtocolError::DataAfterEnd(_) => ErrorCode::STREAM_CLOSED,
            ProtocolError::SettingsTimeout => ErrorCode::SETTINGS_TIMEOUT,
            ProtocolError::Flood(_) | ProtocolError::FrameTimeout => ErrorCode::ENHANCE_YOUR_CALM,
        }
    }

    /// Whether this ends the whole connection (GOAWAY) rather than one stream
    /// (RST_STREAM).
    pub fn is_connection_error(&self) -> bool {
        match self {
            ProtocolError::WindowExceeded(s)
            | ProtocolError::WindowOverflow(s)
            | ProtocolError::ZeroWindowIncrement(s) => s.is_connection(),
            ProtocolError::DataAfterEnd(_) => false,
            _ => true,
        }
    }
}

/// The caller misused the API. Nothing was sent and no state changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// No live stream has this id (never opened, or already closed or reset).
    #[error("no live stream {0}")]
    UnknownStream(StreamId),
    /// The stream's send side was already finished.
    #[error("stream {0} is already finished")]
    Finished(StreamId),
    /// The stream is waiting to be accepted; accept or refuse it first.
    #[error("stream {0} has not been accepted")]
    NotAccepted(StreamId),
    /// `accept` or `refuse` on a stream that is not waiting to be accepted.
    #[error("stream {0} is not waiting to be accepted")]
    NotPending(StreamId),
    /// The peer's MAX_CONCURRENT_STREAMS is reached; retry when a stream closes.
    #[error("peer allows no more concurrent streams")]
    StreamLimit,
    /// Every stream id has been used; open a new connection.
    #[error("stream ids exhausted")]
    IdsExhausted,
    /// A GOAWAY was sent or received: no new streams on this connection.
    #[error("connection is going away")]
    GoingAway,
    /// The connection is closed.
    #[error("connection is closed")]
    Closed,
    /// The protocol name or channel id is longer than 255 bytes.
    #[error("protocol name and channel id must each be at most 255 bytes")]
    NameTooLong,
    /// The OPEN frame would exceed the peer's MAX_FRAME_SIZE.
    #[error("OPEN of {len} bytes exceeds the peer's MAX_FRAME_SIZE {max}")]
    OpenTooLarge {
        /// Payload length the OPEN would have.
        len: usize,
        /// The peer's limit.
        max: u32,
    },
    /// Too many of our own PINGs are unanswered.
    #[error("too many PINGs in flight")]
    PingsInFlight,
}

/// Why a read returned no data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Nothing buffered yet; wait for [`Event::Readable`](crate::Event::Readable).
    #[error("no data available yet")]
    Blocked,
    /// The call itself was wrong.
    #[error(transparent)]
    Local(#[from] LocalError),
}

/// Why a write accepted no data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The stream's flow-control window is full; wait for
    /// [`Event::Writable`](crate::Event::Writable).
    #[error("send window full")]
    Blocked,
    /// The peer sent STOP_SENDING with this code: it discards what we send.
    /// Our side was ended with END_STREAM; data sent before still arrives.
    #[error("peer stopped reading the stream ({0})")]
    Stopped(ErrorCode),
    /// The call itself was wrong.
    #[error(transparent)]
    Local(#[from] LocalError),
}

/// A [`Config`](crate::Config) value is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config: {0}")]
pub struct ConfigError(pub(crate) &'static str);

impl ConfigError {
    /// A config error saying `what` is wrong, for layers above the
    /// session that check configs of their own.
    pub const fn new(what: &'static str) -> ConfigError {
        ConfigError(what)
    }
}

/// Why a stream ended abruptly.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetReason {
    /// The peer sent RST_STREAM, or refused the stream, with this code.
    Remote(ErrorCode),
    /// The peer broke the protocol on this stream; we sent RST_STREAM.
    Violation(ProtocolError),
    /// The peer's GOAWAY says it never processed this stream; safe to retry.
    GoneAway,
}

impl ResetReason {
    /// The wire code associated with the reset.
    pub fn code(&self) -> ErrorCode {
        match self {
            ResetReason::Remote(code) => *code,
            ResetReason::Violation(e) => e.code(),
            ResetReason::GoneAway => ErrorCode::REFUSED_STREAM,
        }
    }
}

/// Why the connection closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// A graceful GOAWAY (ours or the peer's) drained: every stream finished.
    Drained,
    /// We closed with this error code through [`Session::go_away`](crate::Session::go_away).
    Local(ErrorCode),
    /// The peer closed with a GOAWAY carrying an error.
    Remote {
        /// The peer's code.
        code: ErrorCode,
        /// The peer's diagnostic bytes.
        debug: Bytes,
    },
    /// The peer broke the protocol; we sent GOAWAY with its code.
    Violation(ProtocolError),
    /// Nothing was received for the idle timeout.
    IdleTimeout,
    /// The transport ended before the session did.
    TransportClosed,
}

/// Most bytes of a peer's GOAWAY debug data shown by `Display`.
const DEBUG_SHOWN: usize = 256;

/// A sentence for logs and error messages, naming codes by name.
impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResetReason::Remote(code) if *code == ErrorCode::REFUSED_STREAM => {
                f.write_str("the peer refused the stream (REFUSED_STREAM; safe to retry)")
            }
            ResetReason::Remote(code) => write!(f, "the peer reset the stream with {code}"),
            ResetReason::Violation(e) => write!(
                f,
                "the peer broke the protocol on the stream ({e}); we reset it with {}",
                e.code()
            ),
            ResetReason::GoneAway => {
                f.write_str("the peer's GOAWAY says it never processed the stream (safe to retry)")
            }
        }
    }
}

/// A sentence for logs and error messages, naming codes by name.
impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Drained => f.write_str("the connection drained after a graceful GOAWAY"),
            CloseReason::Local(code) => write!(f, "we closed the connection with {code}"),
            CloseReason::Remote { code, debug } => {
                write!(f, "the peer closed the connection with {code}")?;
                if !debug.is_empty() {
                    let shown = &debug[..debug.len().min(DEBUG_SHOWN)];
                    write!(f, ": \"{}\"", shown.escape_ascii())?;
                    if shown.len() < debug.len() {
                        f.write_str("…")?;
                    }
                }
                Ok(())
            }
            CloseReason::Violation(e) => write!(
                f,
                "the peer broke the protocol ({e}); we closed the connection with {}",
                e.code()
            ),
            CloseReason::IdleTimeout => {
                f.write_str("nothing was received from the peer for the idle timeout")
            }
            CloseReason::TransportClosed => {
                f.write_str("the transport closed before the session ended")
            }
        }
    }
}
