//! Output: the bytes to write, in the order they must go.
//!
//! Order: the preface, then control frames (bounded queue), then window
//! updates, then DATA. Streams with data take turns by deficit round-robin,
//! each turn worth a quantum proportional to the stream's priority.
//!
//! Written data waits in per-stream buffers, capped per stream and per
//! connection; as frames leave, blocked writers are told `Writable`.

use std::time::Instant;

use bytes::Bytes;

use super::Session;
use crate::event::{Event, Transmit};
use crate::frame::{Frame, FrameHeader, FrameType, FLAG_END_STREAM, HEADER_LEN, PREFACE};
use crate::id::StreamId;
use crate::stream::Fin;

/// Bytes of send turn per priority step, at the smallest frame size.
const QUANTUM_UNIT: i64 = 256;
/// Control frames are gathered into one buffer up to about this size.
const CONTROL_BATCH: usize = 16 * 1024;
/// Capacity of the buffer frame headers are cut from. Each `Transmit` takes
/// a slice of it; when it runs out, a new one of this size is allocated, so
/// one allocation serves hundreds of DATA headers.
pub(super) const SCRATCH_CAPACITY: usize = 8 * 1024;

impl Session {
    /// The next bytes to write to the transport, if any.
    ///
    /// Call until it returns `None` after every input, mutation or timeout.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.advance(now);
        if !self.preface_sent {
            self.preface_sent = true;
            self.scratch.extend_from_slice(&PREFACE);
        }
        while self.scratch.len() < CONTROL_BATCH {
            let Some(frame) = self.next_control_frame() else {
                break;
            };
            frame.encode(&mut self.scratch);
            self.stats.frames_sent += 1;
        }
        if !self.scratch.is_empty() {
            let head = self.scratch.split().freeze();
            return Some(self.count(Transmit {
                head,
                payload: Bytes::new(),
            }));
        }
        if self.closed.is_some() {
            return None;
        }
        let transmit = self.next_data_frame()?;
        self.stats.frames_sent += 1;
        Some(self.count(transmit))
    }

    fn count(&mut self, transmit: Transmit) -> Transmit {
        self.stats.bytes_sent += transmit.len() as u64;
        transmit
    }

    /// Control frames first, then window updates.
    fn next_control_frame(&mut self) -> Option<Frame> {
        if let Some((frame, reply)) = self.control.pop_front() {
            if reply {
                self.queued_replies -= 1;
            }
            if let Frame::Ping {
                ack: false,
                payload,
            } = &frame
            {
                let token = u64::from_be_bytes(*payload);
                if let Some(entry) = self.pings.iter_mut().find(|(t, _)| *t == token) {
                    entry.1 = Some(self.now);
                }
            }
            return Some(frame);
        }
        if self.closed.is_some() {
            return None;
        }
        if self.conn_update_queued {
            self.conn_update_queued = false;
            let increment =
                self.recv_window
                    .take_update(self.now, self.rtt, self.config.max_connection_window);
            if increment > 0 {
                return Some(Frame::WindowUpdate {
                    stream: StreamId::CONNECTION,
                    increment,
                });
            }
        }
        while let Some(stream) = self.updates.pop() {
            let Some(s) = self.streams.get_mut(&stream) else {
                continue;
            };
            s.recv.update_queued = false;
            if s.recv.fin || s.recv.stopped {
                continue;
            }
            let increment =
                s.recv
                    .window
                    .take_update(self.now, self.rtt, self.config.max_stream_window);
            if increment > 0 {
                return Some(Frame::WindowUpdate { stream, increment });
            }
        }
        None
    }

    fn next_data_frame(&mut self) -> Option<Transmit> {
        let max_frame = self.peer.max_frame_size as usize;
        loop {
            let stream = *self.ready.front()?;
            let Some(s) = self.streams.get_mut(&stream) else {
                self.ready.pop_front();
                continue;
            };
            if !s.sendable() {
                s.send.queued = false;
                self.ready.pop_front();
                continue;
            }
            let pending = s.send.buf.len();
            let conn = usize::try_from(self.send_window).unwrap_or(0);
            if pending > 0 && conn == 0 {
                // Blocked on the connection window until a WINDOW_UPDATE.
                // A bare END_STREAM needs no credit: it must not wait.
                return self.next_bare_fin();
            }
            let window = usize::try_from(s.send.window).unwrap_or(0);
            let n = pending.min(window).min(conn).min(max_frame);
            let cost = (n as i64).max(1);
            if s.send.deficit < cost {
                // Not this stream's turn yet: bank its quantum and move on.
                // The unit scales with the frame size, so even priority 0
                // earns a frame within 64 rounds.
                let unit = (max_frame as i64 / 64).max(QUANTUM_UNIT);
                s.send.deficit += unit * (i64::from(s.priority) + 1);
                self.ready.rotate_left(1);
                continue;
            }
            let end = s.send.fin == Fin::Queued && n == pending;
            // The whole buffer leaves as it is: an idle stream keeps no
            // allocation, and no shared header is made for one frame.
            let payload = match n == pending {
                true => std::mem::take(&mut s.send.buf),
                false => s.send.buf.split_to(n),
            }
            .freeze();
            self.send_buffered -= n;
            s.send.window -= n as i64;
            s.send.deficit -= cost;
            self.send_window -= n as i64;
            if end {
                s.send.fin = Fin::Sent;
            }
            if !s.sendable() {
                // An idle stream banks no credit for later.
                s.send.deficit = 0;
                s.send.queued = false;
                self.ready.pop_front();
            }
            let header = FrameHeader {
                len: n as u32,
                ty: FrameType::Data,
                flags: if end { FLAG_END_STREAM } else { 0 },
                stream,
            };
            self.scratch.reserve(HEADER_LEN);
            header.encode(&mut self.scratch);
            let head = self.scratch.split().freeze();
            self.unblock(stream);
            self.wake_send_waiters();
            if end {
                self.maybe_forget(stream);
            }
            return Some(Transmit { head, payload });
        }
    }

    /// While the connection window is shut, the first queued stream with
    /// nothing left to send but its END_STREAM.
    fn next_bare_fin(&mut self) -> Option<Transmit> {
        let pos = self.ready.iter().position(|id| {
            self.streams
                .get(id)
                .is_some_and(|s| s.send.buf.is_empty() && s.send.fin == Fin::Queued)
        })?;
        let stream = self.ready.remove(pos)?;
        let s = self.streams.get_mut(&stream)?;
        s.send.fin = Fin::Sent;
        s.send.queued = false;
        s.send.deficit = 0;
        let header = FrameHeader {
            len: 0,
            ty: FrameType::Data,
            flags: FLAG_END_STREAM,
            stream,
        };
        self.scratch.reserve(HEADER_LEN);
        header.encode(&mut self.scratch);
        let head = self.scratch.split().freeze();
        self.maybe_forget(stream);
        Some(Transmit {
            head,
            payload: Bytes::new(),
        })
    }
}

impl Session {
    /// Room the connection's send-buffer cap leaves for writes.
    pub(super) fn connection_room(&self) -> usize {
        self.config
            .connection_send_buffer
            .saturating_sub(self.send_buffered)
    }

    /// Queues a stream whose write found the connection's buffer full.
    pub(super) fn wait_for_connection_room(&mut self, stream: StreamId) {
        if let Some(s) = self.streams.get_mut(&stream) {
            if !s.send.waiting_connection {
                s.send.waiting_connection = true;
                self.send_waiters.push_back(stream);
            }
        }
    }

    /// Tells a blocked stream's writer that room returned, or queues it for
    /// the connection's buffer if only the stream has room.
    pub(super) fn unblock(&mut self, stream: StreamId) {
        let (cap, connection) = (self.config.stream_send_buffer, self.connection_room());
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        if !s.send.blocked || s.send.fin != Fin::Open || s.send_room(cap) == 0 {
            return;
        }
        if connection == 0 {
            self.wait_for_connection_room(stream);
            return;
        }
        s.send.blocked = false;
        self.events.push_back(Event::Writable { stream });
    }

    /// Unsent bytes of `stream` were dropped: give their room back.
    pub(super) fn release_send_buffer(&mut self, stream: StreamId, n: usize) {
        self.send_buffered -= n;
        self.unblock(stream);
        self.wake_send_waiters();
    }

    /// Wakes streams waiting for the connection's buffer, in the order they
    /// blocked, while the room that returned could serve them. When nothing
    /// is left to send, every waiter is woken: no frame will leave to wake
    /// them later.
    fn wake_send_waiters(&mut self) {
        let cap = self.config.stream_send_buffer;
        let mut room = self.connection_room();
        let everyone = self.ready.is_empty();
        while room > 0 {
            let Some(stream) = self.send_waiters.pop_front() else {
                break;
            };
            let Some(s) = self.streams.get_mut(&stream) else {
                continue;
            };
            s.send.waiting_connection = false;
            let wants = s.send_room(cap);
            // A stream without room of its own is woken by its window.
            if s.send.blocked && s.send.fin == Fin::Open && wants > 0 {
                s.send.blocked = false;
                self.events.push_back(Event::Writable { stream });
                if !everyone {
                    room = room.saturating_sub(wants);
                }
            }
        }
    }
}
