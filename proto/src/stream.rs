//! Per-stream state.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use crate::flow::RecvWindow;
use crate::id::ErrorCode;

/// Where a stream is in the OPEN / OPEN ACK exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pairing {
    /// We sent OPEN and await the peer's ACK.
    AwaitingAck,
    /// The peer sent OPEN; the application has not accepted it yet. The
    /// session keeps the peer's handshake for the `RemoteOpen` event.
    AwaitingAccept,
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
    /// Blocked by the connection's send-buffer cap, in its wait queue.
    pub(crate) waiting_connection: bool,
    /// The peer sent STOP_SENDING with this code.
    pub(crate) stopped: Option<ErrorCode>,
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
    pub(crate) buf: RecvBuf,
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
                waiting_connection: false,
                stopped: None,
                deficit: 0,
                queued: false,
            },
            recv: RecvHalf {
                buf: RecvBuf::default(),
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
        self.pairing != Pairing::AwaitingAccept
    }

    /// Bytes a write may add as far as this stream goes: within the peer's
    /// window and the stream's send-buffer cap.
    pub(crate) fn send_room(&self, cap: usize) -> usize {
        let window = usize::try_from(self.send.window).unwrap_or(0);
        window.min(cap).saturating_sub(self.send.buf.len())
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

/// Payloads shorter than this are copied into the stream's compact buffer;
/// longer ones stay zero-copy slices of the caller's input. It is the
/// smallest MAX_FRAME_SIZE, so full-size DATA frames are never copied.
pub(crate) const COMPACT_BELOW: usize = crate::frame::MIN_MAX_FRAME_SIZE as usize;
/// The smallest block the compact buffer allocates.
const BLOCK_MIN: usize = 512;

/// Received data waiting for the application, in order.
///
/// A zero-copy payload keeps the whole input allocation it was cut from
/// alive, so tiny frames would each pin a read buffer. Payloads shorter than
/// [`COMPACT_BELOW`] are therefore copied into blocks that many of them
/// share. Blocks are consumed in order and a new one is started only when the
/// next payload does not fit the current one, so the bytes a block wastes are
/// fewer than the next block holds: blocks take at most twice the small bytes
/// buffered plus two blocks (each at most `COMPACT_BELOW`). Nothing is held
/// once everything has been read, not even the buffer's own bookkeeping:
/// every stream has a `RecvBuf`, and most of them are empty.
#[derive(Debug, Default)]
pub(crate) struct RecvBuf {
    held: Option<Box<Held>>,
}

/// What a non-empty [`RecvBuf`] holds.
#[derive(Debug, Default)]
struct Held {
    /// Data in arrival order; the bytes in `tail` follow it.
    chunks: VecDeque<Bytes>,
    /// The block small payloads are being copied into.
    tail: BytesMut,
    len: usize,
}

impl RecvBuf {
    /// Bytes buffered.
    pub(crate) fn len(&self) -> usize {
        self.held.as_ref().map_or(0, |held| held.len)
    }

    /// Whether nothing is buffered.
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_none()
    }

    /// Appends a payload, copying it if it is small.
    pub(crate) fn push(&mut self, payload: Bytes) {
        if payload.is_empty() {
            return;
        }
        self.held.get_or_insert_with(Box::default).push(payload);
    }

    /// Takes up to `max` bytes (at least one) from the front as one
    /// contiguous chunk.
    pub(crate) fn pop(&mut self, max: usize) -> Option<Bytes> {
        let chunk = self.held.as_mut()?.pop(max);
        self.release_if_empty();
        chunk
    }

    /// Copies up to `out.len()` bytes from the front into `out`, across
    /// chunks, and returns how many. Unlike [`pop`](Self::pop) it never
    /// allocates, so small messages read into a caller's buffer cost a copy
    /// and nothing more.
    pub(crate) fn copy_to(&mut self, out: &mut [u8]) -> usize {
        let Some(held) = self.held.as_mut() else {
            return 0;
        };
        let filled = held.copy_to(out);
        self.release_if_empty();
        filled
    }

    /// Drops everything buffered.
    pub(crate) fn clear(&mut self) {
        self.held = None;
    }

    /// An idle stream holds no memory.
    fn release_if_empty(&mut self) {
        if self.held.as_ref().is_some_and(|held| held.len == 0) {
            self.held = None;
        }
    }
}

impl Held {
    fn push(&mut self, payload: Bytes) {
        self.len += payload.len();
        if payload.len() >= COMPACT_BELOW {
            self.seal();
            self.chunks.push_back(payload);
            return;
        }
        if self.tail.capacity() - self.tail.len() < payload.len() {
            self.seal();
            // Blocks grow with what the stream holds, so a stream with a few
            // bytes buffered does not hold a large block.
            let size = self.len.next_power_of_two().clamp(BLOCK_MIN, COMPACT_BELOW);
            self.tail = BytesMut::with_capacity(size.max(payload.len()));
        }
        self.tail.extend_from_slice(&payload);
    }

    fn pop(&mut self, max: usize) -> Option<Bytes> {
        if max == 0 {
            return None;
        }
        let chunk = match self.chunks.front_mut() {
            Some(front) if front.len() <= max => self.chunks.pop_front(),
            Some(front) => Some(front.split_to(max)),
            None if self.tail.is_empty() => None,
            None => Some(self.tail.split_to(max.min(self.tail.len())).freeze()),
        }?;
        self.len -= chunk.len();
        Some(chunk)
    }

    fn copy_to(&mut self, out: &mut [u8]) -> usize {
        let mut filled = 0;
        while filled < out.len() {
            let source = match self.chunks.front_mut() {
                Some(front) => &mut *front as &mut dyn Buf,
                None if self.tail.is_empty() => break,
                None => &mut self.tail as &mut dyn Buf,
            };
            let n = source.remaining().min(out.len() - filled);
            source.copy_to_slice(&mut out[filled..filled + n]);
            filled += n;
            if self.chunks.front().is_some_and(Bytes::is_empty) {
                self.chunks.pop_front();
            }
        }
        self.len -= filled;
        filled
    }

    /// Moves the tail's bytes into `chunks`, keeping their order. The rest
    /// of its block stays with `tail`.
    fn seal(&mut self) {
        if !self.tail.is_empty() {
            self.chunks.push_back(self.tail.split().freeze());
        }
    }
}
