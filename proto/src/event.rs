//! What the session reports: events, statistics, transmits.

use std::time::Duration;

use bytes::Bytes;

use crate::error::{CloseReason, ResetReason};
use crate::id::{ErrorCode, StreamId};

/// Something the application should react to, from [`Session::poll_event`](crate::Session::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The peer opened a stream that matches a listener (or any, with
    /// `accept_any`). Answer with [`Session::accept`](crate::Session::accept)
    /// or [`Session::refuse`](crate::Session::refuse).
    Incoming {
        /// The new stream.
        stream: StreamId,
        /// Protocol name the peer gave.
        protocol: Bytes,
        /// Channel id the peer gave.
        id: Bytes,
        /// The peer's handshake.
        handshake: Bytes,
    },
    /// Both sides have opened the stream; carries the peer's handshake. Fires
    /// exactly once per stream on each side: on the opener when the OPEN ACK
    /// arrives, on the acceptor when it accepts.
    RemoteOpen {
        /// The stream.
        stream: StreamId,
        /// The peer's handshake.
        handshake: Bytes,
    },
    /// New data can be read.
    Readable {
        /// The stream.
        stream: StreamId,
    },
    /// Space opened up after a write returned `Blocked`.
    Writable {
        /// The stream.
        stream: StreamId,
    },
    /// The peer sent STOP_SENDING: it discards what we send. Unsent data was
    /// dropped, our side ends with END_STREAM, and writes fail with
    /// [`WriteError::Stopped`](crate::WriteError::Stopped).
    Stopped {
        /// The stream.
        stream: StreamId,
        /// The peer's code.
        code: ErrorCode,
    },
    /// The peer finished its side; reads return end-of-stream once drained.
    Finished {
        /// The stream.
        stream: StreamId,
    },
    /// The stream ended abruptly and is gone; unread data was dropped.
    Reset {
        /// The stream.
        stream: StreamId,
        /// Why.
        reason: ResetReason,
    },
    /// A PING was answered.
    Pong {
        /// The measured round-trip time.
        rtt: Duration,
    },
    /// The peer sent GOAWAY.
    GoAway {
        /// Highest stream of ours the peer will process.
        last_stream: StreamId,
        /// The peer's code; NO_ERROR means a graceful drain.
        code: ErrorCode,
        /// The peer's diagnostic bytes.
        debug: Bytes,
    },
    /// The connection is closed. Flush [`poll_transmit`](crate::Session::poll_transmit)
    /// and close the transport. This is the last event.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// Counters for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SessionStats {
    /// Streams opened by either side.
    pub streams_opened: u64,
    /// Streams that ended (finished both ways, reset or refused).
    pub streams_closed: u64,
    /// Streams currently live.
    pub active_streams: u32,
    /// Bytes handed to the transport.
    pub bytes_sent: u64,
    /// Bytes received from the transport.
    pub bytes_received: u64,
    /// Frames handed to the transport.
    pub frames_sent: u64,
    /// Frames received.
    pub frames_received: u64,
    /// Latest PING round-trip time.
    pub last_rtt: Option<Duration>,
    /// Our connection receive window (auto-tuned).
    pub connection_window: u32,
    /// Credit the peer has granted us on the connection.
    pub remote_window: i64,
    /// Bytes written on all streams and not yet sent; at most
    /// [`Config::connection_send_buffer`](crate::Config::connection_send_buffer).
    pub send_buffered: u64,
}

/// One stream's flow-control windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamWindows {
    /// Credit the peer granted us, minus what we sent.
    pub send: i64,
    /// Our receive window (auto-tuned).
    pub receive: u32,
}

/// Bytes to write to the transport, in order: `head` then `payload`.
///
/// Control frames come whole in `head`. A DATA frame's payload is a
/// zero-copy slice of what was written, ready for a vectored write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Frame header(s), or whole control frames.
    pub head: Bytes,
    /// DATA payload; may be empty.
    pub payload: Bytes,
}

impl Transmit {
    /// Total bytes.
    pub fn len(&self) -> usize {
        self.head.len() + self.payload.len()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
