//! Stream ids, roles and the error-code newtype shared by the wire and the API.

use std::fmt;

/// Which end of the connection a session is.
///
/// The client opens odd stream ids, the server even ones. Apart from that the
/// protocol is symmetric: both sides send the preface and may open streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Role {
    /// The side that dialled the transport; opens odd stream ids.
    Client,
    /// The side that accepted the transport; opens even stream ids.
    Server,
}

impl Role {
    /// The other role.
    pub fn peer(self) -> Role {
        match self {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        }
    }

    /// The first stream id this role opens.
    pub(crate) fn first_stream_id(self) -> u32 {
        match self {
            Role::Client => 1,
            Role::Server => 2,
        }
    }
}

/// A 31-bit stream identifier. Id 0 names the connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId(u32);

impl StreamId {
    /// The connection-level id used by SETTINGS, PING, GOAWAY and connection
    /// WINDOW_UPDATE frames.
    pub const CONNECTION: StreamId = StreamId(0);
    /// The largest id the 31-bit field can carry.
    pub const MAX: StreamId = StreamId(0x7fff_ffff);

    /// Wraps a raw id, dropping the reserved high bit.
    pub const fn new(raw: u32) -> StreamId {
        StreamId(raw & 0x7fff_ffff)
    }

    /// The raw 31-bit value.
    pub const fn value(self) -> u32 {
        self.0
    }

    /// Whether this is the connection id 0.
    pub const fn is_connection(self) -> bool {
        self.0 == 0
    }

    /// The role whose side opened this stream (odd: client, even: server).
    ///
    /// Meaningless for [`StreamId::CONNECTION`].
    pub const fn initiator(self) -> Role {
        if self.0 % 2 == 1 {
            Role::Client
        } else {
            Role::Server
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An error code carried by RST_STREAM and GOAWAY.
///
/// The numbering is HTTP/2's. Codes this version does not know are kept as
/// they are, so a newer peer's codes pass through unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ErrorCode(u32);

impl ErrorCode {
    /// Graceful; not an error.
    pub const NO_ERROR: ErrorCode = ErrorCode(0x0);
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: ErrorCode = ErrorCode(0x1);
    /// The sender hit an internal fault.
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(0x2);
    /// A flow-control window was exceeded or overflowed.
    pub const FLOW_CONTROL_ERROR: ErrorCode = ErrorCode(0x3);
    /// SETTINGS were not acknowledged in time.
    pub const SETTINGS_TIMEOUT: ErrorCode = ErrorCode(0x4);
    /// A frame arrived for a stream that was already half-closed.
    pub const STREAM_CLOSED: ErrorCode = ErrorCode(0x5);
    /// A frame had an invalid size.
    pub const FRAME_SIZE_ERROR: ErrorCode = ErrorCode(0x6);
    /// The stream was refused before any application processing; safe to retry.
    pub const REFUSED_STREAM: ErrorCode = ErrorCode(0x7);
    /// The stream is no longer needed.
    pub const CANCEL: ErrorCode = ErrorCode(0x8);
    /// The peer is generating excessive load.
    pub const ENHANCE_YOUR_CALM: ErrorCode = ErrorCode(0xb);

    /// Wraps a raw code from the wire.
    pub const fn new(raw: u32) -> ErrorCode {
        ErrorCode(raw)
    }

    /// The raw 32-bit value.
    pub const fn value(self) -> u32 {
        self.0
    }

    fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x0 => "NO_ERROR",
            0x1 => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            0x3 => "FLOW_CONTROL_ERROR",
            0x4 => "SETTINGS_TIMEOUT",
            0x5 => "STREAM_CLOSED",
            0x6 => "FRAME_SIZE_ERROR",
            0x7 => "REFUSED_STREAM",
            0x8 => "CANCEL",
            0xb => "ENHANCE_YOUR_CALM",
            _ => return None,
        })
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "ErrorCode({:#x})", self.0),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
