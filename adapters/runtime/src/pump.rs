//! The transport side of a connection task, shared by the `plex/1` and the
//! Protomux drivers: chunked reads into shared buffers, gathered vectored
//! writes, and the two timers of a connection (the session's next deadline
//! and the winding-down linger).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_io::{AsyncRead, AsyncWrite};

use crate::{Runtime, Sleep};

/// Bytes read per allocation; reads slice it until little is left.
const READ_CHUNK: usize = 64 * 1024;
/// Below this much room, a fresh read buffer is allocated.
const READ_MIN: usize = 4 * 1024;
/// Output gathered from the session before writing; the rest waits in the
/// session, so a slow transport pushes back on the streams.
pub(crate) const OUT_HIGH_WATER: usize = 256 * 1024;
/// Slices per vectored write.
const MAX_IOVECS: usize = 64;
/// Reads dropped per poll while the peer closes its side.
const DRAIN_READS: usize = 16;
/// Reads taken, at most, once writing has failed: the frames the peer sent
/// before it went (a GOAWAY, stream resets) are still in the transport and
/// still acted on. The kernel's receive buffer bounds what a vanished peer
/// left; this bounds one that goes on sending.
pub(crate) const READS_AFTER_WRITE_ERROR: usize = 64;

/// What a read produced.
pub(crate) enum Input {
    Bytes(Bytes),
    /// The transport ended: cleanly (`None`) or with an error.
    End(Option<io::Error>),
}

/// A connection's transport with its read buffer and gathered output.
pub(crate) struct Pump<T> {
    io: T,
    read_buf: BytesMut,
    read_done: bool,
    /// The write side is closed: what the peer still sends is read and
    /// dropped until it closes too (see [`Pump::next`]).
    shut: bool,
    out: VecDeque<Bytes>,
    out_len: usize,
    needs_flush: bool,
}

impl<T> Pump<T> {
    pub(crate) fn new(io: T) -> Pump<T> {
        Pump {
            io,
            read_buf: BytesMut::zeroed(READ_CHUNK),
            read_done: false,
            shut: false,
            out: VecDeque::new(),
            out_len: 0,
            needs_flush: false,
        }
    }

    /// Whether the gathered output is below the high-water mark: the
    /// session may give more.
    pub(crate) fn has_room(&self) -> bool {
        self.out_len < OUT_HIGH_WATER
    }

    /// Bytes gathered and not yet written.
    pub(crate) fn out_len(&self) -> usize {
        self.out_len
    }

    /// Whether everything gathered has been written.
    pub(crate) fn is_flushed(&self) -> bool {
        self.out.is_empty()
    }

    /// Gathers a frame, its header and payload, for the next write.
    pub(crate) fn queue(&mut self, head: Bytes, payload: Bytes) {
        self.out_len += head.len() + payload.len();
        self.out
            .extend([head, payload].into_iter().filter(|b| !b.is_empty()));
    }

    /// Drops the gathered output: the transport failed.
    pub(crate) fn discard_output(&mut self) {
        self.out.clear();
        self.out_len = 0;
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Pump<T> {
    /// Reads one chunk the transport has, without blocking; `None` when
    /// it has nothing now, has ended already, or its write side is closed.
    pub(crate) fn read(&mut self, cx: &mut Context<'_>) -> Option<Input> {
        if self.read_done || self.shut {
            return None;
        }
        loop {
            return match Pin::new(&mut self.io).poll_read(cx, &mut self.read_buf) {
                Poll::Ready(Ok(0)) => {
                    self.read_done = true;
                    Some(Input::End(None))
                }
                Poll::Ready(Ok(n)) => {
                    let bytes = self.read_buf.split_to(n).freeze();
                    if self.read_buf.len() < READ_MIN {
                        // The old buffer lives on in the slices just taken.
                        self.read_buf = BytesMut::zeroed(READ_CHUNK);
                    }
                    Some(Input::Bytes(bytes))
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Poll::Ready(Err(e)) => {
                    self.read_done = true;
                    Some(Input::End(Some(e)))
                }
                Poll::Pending => None,
            };
        }
    }

    /// Writes gathered output until the transport pushes back, then
    /// flushes. Returns whether anything was written, or the transport's
    /// error.
    pub(crate) fn write(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        let mut wrote = false;
        while !self.out.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let n = self.out.len().min(MAX_IOVECS);
            for (slot, chunk) in slices.iter_mut().zip(&self.out) {
                *slot = IoSlice::new(chunk);
            }
            match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(mut written)) => {
                    wrote = true;
                    self.needs_flush = true;
                    self.out_len -= written;
                    while written > 0 {
                        let Some(front) = self.out.front_mut() else {
                            break;
                        };
                        let take = written.min(front.len());
                        front.advance(take);
                        written -= take;
                        if front.is_empty() {
                            self.out.pop_front();
                        }
                    }
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(wrote),
            }
        }
        if self.needs_flush {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(wrote)
    }

    /// Closes the transport; ready once it is closed (or failed to).
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.io).poll_close(cx).map(|_| ())
    }

    /// Reads and drops what the peer still sends after the write side is
    /// closed. `Ready` once the peer has closed its side too (or the
    /// transport failed); `Pending` when it has nothing now, or after a
    /// batch of reads so that a peer that keeps sending cannot hold the
    /// task.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..DRAIN_READS {
            if self.read_done {
                return Poll::Ready(());
            }
            match Pin::new(&mut self.io).poll_read(cx, &mut self.read_buf) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => self.read_done = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A connection task's timers: the session's next deadline, and how long a
/// winding-down connection may go without the transport taking a byte.
pub(crate) struct Timers {
    runtime: Arc<dyn Runtime>,
    linger_for: Duration,
    timer: Option<(Instant, Sleep)>,
    linger: Option<Instant>,
}

impl Timers {
    pub(crate) fn new(runtime: Arc<dyn Runtime>, linger_for: Duration) -> Timers {
        Timers {
            runtime,
            linger_for,
            timer: None,
            linger: None,
        }
    }

    fn now(&self) -> Instant {
        self.runtime.now()
    }

    /// The winding-down deadline, pushed back when the transport took
    /// bytes (`wrote`).
    fn linger_deadline(&mut self, wrote: bool) -> Instant {
        match self.linger {
            Some(at) if !wrote => at,
            _ => {
                let at = self.runtime.now() + self.linger_for;
                self.linger = Some(at);
                at
            }
        }
    }

    /// Arms the timer for `deadline` (none: disarms it) and polls it;
    /// true when it has fired, and the task should go round again. A later
    /// deadline keeps the armed timer: it fires early, harmlessly.
    pub(crate) fn poll_deadline(
        &mut self,
        deadline: Option<Instant>,
        cx: &mut Context<'_>,
    ) -> bool {
        match deadline {
            Some(at) if self.timer.as_ref().is_none_or(|(armed, _)| at < *armed) => {
                self.timer = Some((at, self.runtime.sleep_until(at)));
            }
            None => self.timer = None,
            Some(_) => {}
        }
        if let Some((_, timer)) = &mut self.timer {
            if timer.as_mut().poll(cx).is_ready() {
                self.timer = None;
                return true;
            }
        }
        false
    }
}

/// Where a connection task stands after a round and its write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Standing {
    /// The round or the write did something: go round again.
    pub(crate) progress: bool,
    /// The session is closed or every handle is gone: the linger applies.
    pub(crate) winding_down: bool,
    /// The session is closed: once the output is written, close.
    pub(crate) closed: bool,
    /// The session's next deadline.
    pub(crate) deadline: Option<Instant>,
}

/// What a connection task does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Go round again.
    Again,
    /// Nothing to do until a wake-up or the next deadline.
    Wait,
    /// The transport is closed: the task ends.
    Done,
    /// Winding down, the transport took nothing for the whole linger (the
    /// peer stopped reading), or after the close the peer did not close its
    /// side within it. The task drops the transport and ends.
    GaveUp,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Pump<T> {
    /// Decides, after a round whose write moved bytes or not (`wrote`),
    /// whether to go on, wait, or end; closes the transport once a closed
    /// session's output is all written, and arms the timers.
    ///
    /// The close is made in stages (RFC 9112, section 9.6): the write side
    /// is closed, then what the peer still sends is read and dropped until
    /// it closes its side too, within the linger. Dropping a socket with
    /// unread bytes in it makes the kernel reset the connection, and a
    /// reset can destroy the final frames before the peer reads them: its
    /// last writes fail, and it never sees the GOAWAY.
    pub(crate) fn next(
        &mut self,
        cx: &mut Context<'_>,
        timers: &mut Timers,
        wrote: bool,
        standing: Standing,
    ) -> Next {
        let mut progress = standing.progress || wrote;
        let mut deadline = standing.deadline;
        if standing.winding_down {
            let linger = timers.linger_deadline(wrote);
            if timers.now() >= linger {
                return Next::GaveUp;
            }
            deadline = Some(deadline.map_or(linger, |at| at.min(linger)));
        }
        if standing.closed && self.is_flushed() {
            // Everything, the final frames included, is written.
            if !self.shut && self.poll_close(cx).is_ready() {
                self.shut = true;
            }
            if self.shut && self.poll_drain(cx).is_ready() {
                return Next::Done;
            }
            progress = false;
        }
        if progress || timers.poll_deadline(deadline, cx) {
            return Next::Again;
        }
        Next::Wait
    }
}
