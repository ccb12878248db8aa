//! Per-stream state.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::flow::RecvWindow;

/// Where a stream is in the OPEN / OPEN ACK exchange.
#[derive(Debug)]
pub(crate) enum Pairing {
    /// We sent OPEN and await the peer's ACK.
    AwaitingAck,
    /// The peer sent OPEN; the application has not accepted it yet. The
    /// peer's handshake is kept for the `RemoteOpen` event on accept.
    AwaitingAccept { handshake: Bytes },
    /// Both sides have opened.
    Paired,
}

#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) pairing: Pairing,
    pub(crate) priority: u8,
    /// Whether this stream still counts against a MAX_CONCURRENT_STREAMS
    /// limit: until END_STREAM has crossed the wire both ways.
    pub(crate) counted: bool,
    pub(crate) send: SendHalf,
    pub(crate) recv: RecvHalf,
}

#[derive(Debug)]
pub(crate) struct SendHalf {
    /// Bytes written but not yet framed.
    pub(crate) buf: BytesMut,
    /// Credit the peer granted; negative if a SETTINGS change shrank it.
    pub(crate) window: i64,
    pub(crate) fin: Fin,
    /// A write returned `Blocked`; say `Writable` when space returns.
    pub(crate) blocked: bool,
    /// Deficit-round-robin balance, in bytes.
    pub(crate) deficit: i64,
    /// In the scheduler's ready queue.
    pub(crate) queued: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fin {
    Open,
    Queued,
    Sent,
}

#[derive(Debug)]
pub(crate) struct RecvHalf {
    pub(crate) buf: VecDeque<Bytes>,
    pub(crate) buffered: usize,
    pub(crate) window: RecvWindow,
    /// END_STREAM received.
    pub(crate) fin: bool,
    /// The application was told end-of-stream, or stopped reading.
    pub(crate) done: bool,
    /// The application stopped reading: data is discarded on arrival.
    pub(crate) stopped: bool,
    /// A `Readable`/`Finished` event is outstanding since the last read.
    pub(crate) notified: bool,
    /// A WINDOW_UPDATE for this stream is queued.
    pub(crate) update_queued: bool,
}

impl Stream {
    pub(crate) fn new(
        pairing: Pairing,
        priority: u8,
        send_window: u32,
        recv_window: u32,
        now: Instant,
    ) -> Stream {
        Stream {
            pairing,
            priority,
            counted: true,
            send: SendHalf {
                buf: BytesMut::new(),
                window: i64::from(send_window),
                fin: Fin::Open,
                blocked: false,
                deficit: 0,
                queued: false,
            },
            recv: RecvHalf {
                buf: VecDeque::new(),
                buffered: 0,
                window: RecvWindow::new(recv_window, recv_window, now),
                fin: false,
                done: false,
                stopped: false,
                notified: false,
                update_queued: false,
            },
        }
    }

    /// Visible to the application: paired, or opened by us.
    pub(crate) fn is_accepted(&self) -> bool {
        !matches!(self.pairing, Pairing::AwaitingAccept { .. })
    }

    /// Bytes a write may add now.
    pub(crate) fn send_capacity(&self) -> usize {
        let free = self.send.window - self.send.buf.len() as i64;
        usize::try_from(free).unwrap_or(0)
    }

    /// Has something the scheduler can frame: data within the window, or a
    /// bare END_STREAM.
    pub(crate) fn sendable(&self) -> bool {
        (!self.send.buf.is_empty() && self.send.window > 0)
            || (self.send.buf.is_empty() && self.send.fin == Fin::Queued)
    }

    /// END_STREAM has crossed the wire in both directions.
    pub(crate) fn wire_closed(&self) -> bool {
        self.send.fin == Fin::Sent && self.recv.fin
    }

    /// Nothing more will happen on this stream: it can be forgotten.
    pub(crate) fn finished(&self) -> bool {
        self.send.fin == Fin::Sent && self.recv.fin && self.recv.done
    }

    /// Memory the stream's state takes, buffers excluded.
    pub(crate) const STATE_SIZE: usize = std::mem::size_of::<Stream>();
}
