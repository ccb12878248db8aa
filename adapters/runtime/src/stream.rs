//! The stream handle: a byte stream implementing futures-io's traits.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};
use plex_proto::{ErrorCode, LocalError, ReadError, StreamId, WriteError};

use crate::conn::{Conn, Inner, Registration, RemoteOpen, WaitKind};
use crate::manager::Lease;
use crate::{Error, Sleep};

/// One multiplexed stream: `AsyncRead + AsyncWrite`.
///
/// `poll_close` finishes our side (END_STREAM); the peer can still send.
/// Dropping a stream without closing it finishes it gracefully: data
/// already written is delivered, data still arriving is discarded, and the
/// peer is told to stop sending (STOP_SENDING CANCEL), so the stream closes
/// on both sides. A peer's writes then fail with [`Error::Stopped`].
///
/// Data that arrived before the connection closed stays readable when the
/// peer had finished sending it (END_STREAM): a response that fully arrived
/// is not lost to a transport EOF or an error GOAWAY that follows it, as
/// with TCP. Reads of a stream still open at the close fail.
pub struct Stream {
    conn: Arc<Conn>,
    id: StreamId,
    /// Boxed, like the lease: most streams have no timeouts, and every
    /// idle stream would otherwise carry the room for two timers.
    read_deadline: Option<Box<Deadline>>,
    write_deadline: Option<Box<Deadline>>,
    /// A manager's claim on the stream's connection, released on drop.
    /// Boxed: most streams have none, and every stream would otherwise
    /// carry the room for one (an endpoint, a few hundred bytes).
    _lease: Option<Box<Lease>>,
}

impl Stream {
    pub(crate) fn new(conn: Arc<Conn>, id: StreamId) -> Stream {
        conn.add_handle();
        Stream {
            conn,
            id,
            read_deadline: None,
            write_deadline: None,
            _lease: None,
        }
    }

    pub(crate) fn with_lease(mut self, lease: Lease) -> Stream {
        self._lease = Some(Box::new(lease));
        self
    }

    /// The stream id.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// The send priority (higher sends more per round).
    pub fn priority(&self) -> u8 {
        self.conn
            .lock()
            .session
            .priority(self.id)
            .unwrap_or_default()
    }

    /// Changes the send priority.
    pub fn set_priority(&self, priority: u8) {
        // A stream that is gone has no priority to change.
        let _ = self.conn.lock().session.set_priority(self.id, priority);
    }

    /// Bytes we may still send before the peer grants more.
    pub fn send_window(&self) -> i64 {
        let inner = self.conn.lock();
        inner.session.stream_windows(self.id).map_or(0, |w| w.send)
    }

    /// Our receive window for this stream (auto-tuned).
    pub fn receive_window(&self) -> u32 {
        let inner = self.conn.lock();
        inner
            .session
            .stream_windows(self.id)
            .map_or(0, |w| w.receive)
    }

    /// Waits until both sides have opened, and returns the peer's handshake.
    pub async fn remote_open(&self) -> Result<Bytes, Error> {
        let mut waiting = Registration::new(&self.conn, WaitKind::RemoteOpen(self.id));
        poll_fn(|cx| {
            let mut inner = self.conn.lock();
            let closed = inner.closed.is_some();
            let error = closed.then(|| inner.closed_error());
            let Some(slot) = inner.slots.get_mut(&self.id) else {
                return Poll::Ready(Err(
                    error.unwrap_or(Error::Local(LocalError::UnknownStream(self.id)))
                ));
            };
            let ready = match (&slot.remote_open, &slot.ended, error) {
                (RemoteOpen::Arrived(handshake), _, _) => Ok(handshake.clone()),
                (RemoteOpen::Waiting(_), Some(ended), _) => Err(Error::clone(ended)),
                (RemoteOpen::Waiting(_), None, Some(e)) => Err(e),
                (RemoteOpen::Waiting(_), None, None) => {
                    waiting.wait(&mut inner, cx.waker());
                    return Poll::Pending;
                }
            };
            waiting.done(&mut inner);
            Poll::Ready(ready)
        })
        .await
    }

    /// Finishes our side of the stream (END_STREAM) once written data is
    /// sent; the peer can still send. What `AsyncWrite::poll_close` does,
    /// without needing a runtime's extension trait. Finishing twice is fine.
    pub fn finish(&self) -> Result<(), Error> {
        let mut inner = self.conn.lock();
        if inner
            .slots
            .get(&self.id)
            .is_some_and(|s| s.stopped.is_some())
        {
            // The peer sent STOP_SENDING and the session already ended our
            // side with END_STREAM; the stream (or the whole connection, in
            // a drain) may be gone by now. Nothing is left to finish.
            return Ok(());
        }
        let result = match inner.session.finish(self.id) {
            Ok(()) | Err(LocalError::Finished(_)) => Ok(()),
            // Forgotten after a clean end, or ended abruptly.
            Err(LocalError::UnknownStream(_)) => match self.gone(&inner) {
                Some(e) => Err(e),
                None => Ok(()),
            },
            Err(LocalError::Closed) => Err(inner.closed_error()),
            Err(e) => Err(Error::Local(e)),
        };
        let driver = inner.driver_if_needed();
        drop(inner);
        driver.into_iter().for_each(Waker::wake);
        result
    }

    /// Ends the stream abruptly in both directions with `code`.
    pub fn reset(&mut self, code: ErrorCode) {
        let mut inner = self.conn.lock();
        if inner.session.reset(self.id, code).is_ok() {
            if let Some(slot) = inner.slots.get_mut(&self.id) {
                slot.ended = Some(Box::new(Error::LocalReset(code)));
            }
        }
        let driver = inner.driver_if_needed();
        drop(inner);
        driver.into_iter().for_each(Waker::wake);
    }

    /// Ready once the peer no longer takes what this side writes: it
    /// stopped reading (STOP_SENDING), reset the stream, or the connection
    /// closed. A server polls it to notice a client that gave up while the
    /// answer is being worked out. It shares the write waker, so poll it
    /// from the task that writes.
    pub fn poll_stopped(&mut self, cx: &mut Context<'_>) -> Poll<Error> {
        let mut inner = self.conn.lock();
        let Some(slot) = inner.slots.get_mut(&self.id) else {
            return Poll::Ready(
                self.gone(&inner)
                    .unwrap_or(Error::Local(LocalError::UnknownStream(self.id))),
            );
        };
        if let Some(code) = slot.stopped {
            return Poll::Ready(Error::Stopped(code));
        }
        if let Some(ended) = &slot.ended {
            return Poll::Ready(Error::clone(ended));
        }
        if inner.closed.is_some() {
            return Poll::Ready(inner.closed_error());
        }
        if let Some(slot) = inner.slots.get_mut(&self.id) {
            slot.writer = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Makes a read that waits longer than `timeout` fail with `TimedOut`.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_deadline = timeout.map(Deadline::new);
    }

    /// Makes a write that waits longer than `timeout` fail with `TimedOut`.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_deadline = timeout.map(Deadline::new);
    }

    /// Why a stream the session no longer knows cannot be used.
    fn gone(&self, inner: &Inner) -> Option<Error> {
        let ended = inner
            .slots
            .get(&self.id)
            .and_then(|s| s.ended.as_deref().cloned());
        ended.or_else(|| inner.closed.is_some().then(|| inner.closed_error()))
    }
}

/// A read or write timeout, and the timer of the wait in progress.
struct Deadline {
    timeout: Duration,
    /// Armed when a wait starts; disarmed when the operation completes.
    timer: Option<Sleep>,
}

impl Deadline {
    fn new(timeout: Duration) -> Box<Deadline> {
        Box::new(Deadline {
            timeout,
            timer: None,
        })
    }
}

/// Polls a deadline's timer, arming it on first use. Ready means it
/// expired, and disarms it.
fn expired(conn: &Conn, deadline: &mut Option<Box<Deadline>>, cx: &mut Context<'_>) -> bool {
    let Some(deadline) = deadline else {
        return false;
    };
    let timeout = deadline.timeout;
    let timer = deadline
        .timer
        .get_or_insert_with(|| conn.runtime.sleep_until(conn.runtime.now() + timeout));
    let expired = timer.as_mut().poll(cx).is_ready();
    if expired {
        deadline.timer = None;
    }
    expired
}

/// Disarms a deadline's timer: the operation it timed completed.
fn disarm(deadline: &mut Option<Box<Deadline>>) {
    if let Some(deadline) = deadline {
        deadline.timer = None;
    }
}

impl Stream {
    /// Takes up to `max` received bytes without copying them: the slices of
    /// the frames they arrived in. `None` is the end of the stream.
    pub fn poll_read_chunk(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Option<Bytes>>> {
        self.poll_read_with(cx, |session, id| session.read_chunk(id, max))
    }

    /// [`poll_read_chunk`](Stream::poll_read_chunk) as a future.
    pub async fn read_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>> {
        poll_fn(|cx| self.poll_read_chunk(cx, max)).await
    }

    /// One read of the session: `read` gives something, or `None` at the
    /// end of the stream.
    fn poll_read_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        read: impl FnOnce(&mut plex_proto::Session, StreamId) -> Result<Option<T>, ReadError>,
    ) -> Poll<io::Result<Option<T>>> {
        let mut inner = self.conn.lock();
        let result = read(&mut inner.session, self.id);
        let poll = match result {
            Ok(got) => {
                if got.is_none() {
                    if let Some(slot) = inner.slots.get_mut(&self.id) {
                        slot.read_end = true;
                    }
                }
                let driver = inner.driver_if_needed();
                drop(inner);
                driver.into_iter().for_each(Waker::wake);
                Poll::Ready(Ok(got))
            }
            Err(ReadError::Blocked) => {
                if let Some(slot) = inner.slots.get_mut(&self.id) {
                    slot.reader = Some(cx.waker().clone());
                }
                drop(inner);
                if expired(&self.conn, &mut self.read_deadline, cx) {
                    return Poll::Ready(Err(Error::TimedOut.into()));
                }
                return Poll::Pending;
            }
            // Forgotten after end-of-stream was read: still the end.
            Err(ReadError::Local(LocalError::UnknownStream(_)))
                if inner.slots.get(&self.id).is_some_and(|s| s.read_end) =>
            {
                Poll::Ready(Ok(None))
            }
            Err(ReadError::Local(LocalError::UnknownStream(_))) => match self.gone(&inner) {
                Some(e) => Poll::Ready(Err(e.into())),
                None => Poll::Ready(Ok(None)),
            },
            Err(ReadError::Local(e)) => Poll::Ready(Err(Error::Local(e).into())),
            Err(e) => Poll::Ready(Err(io::Error::other(e))),
        };
        disarm(&mut self.read_deadline);
        poll
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_with(cx, |session, id| session.read(id, buf))
            .map_ok(|n| n.unwrap_or(0))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let mut inner = this.conn.lock();
        let poll = match inner.session.write(this.id, buf) {
            Ok(n) => {
                let driver = inner.driver_if_needed();
                drop(inner);
                driver.into_iter().for_each(Waker::wake);
                Poll::Ready(Ok(n))
            }
            Err(WriteError::Blocked) => {
                if let Some(slot) = inner.slots.get_mut(&this.id) {
                    slot.writer = Some(cx.waker().clone());
                }
                drop(inner);
                if expired(&this.conn, &mut this.write_deadline, cx) {
                    return Poll::Ready(Err(Error::TimedOut.into()));
                }
                return Poll::Pending;
            }
            Err(WriteError::Stopped(code)) => Poll::Ready(Err(Error::Stopped(code).into())),
            Err(WriteError::Local(LocalError::UnknownStream(id))) => {
                let stopped = inner.slots.get(&this.id).and_then(|s| s.stopped);
                let e = this
                    .gone(&inner)
                    .or(stopped.map(Error::Stopped))
                    .unwrap_or(Error::Local(LocalError::Finished(id)));
                Poll::Ready(Err(e.into()))
            }
            Err(WriteError::Local(LocalError::Closed)) => {
                Poll::Ready(Err(inner.closed_error().into()))
            }
            Err(WriteError::Local(e)) => Poll::Ready(Err(Error::Local(e).into())),
            Err(e) => Poll::Ready(Err(io::Error::other(e))),
        };
        disarm(&mut this.write_deadline);
        poll
    }

    /// Takes as much of `bufs`, in order, as one write would, under one
    /// lock of the connection: a length prefix and its message cost one
    /// visit to the session instead of two.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut bufs = bufs.iter().filter(|b| !b.is_empty());
        let Some(first) = bufs.next() else {
            return Poll::Ready(Ok(0));
        };
        let mut taken = match self.as_mut().poll_write(cx, first) {
            Poll::Ready(Ok(n)) if n == first.len() => n,
            other => return other,
        };
        let this = &mut *self;
        let mut inner = this.conn.lock();
        for buf in bufs {
            match inner.session.write(this.id, buf) {
                Ok(n) => {
                    taken += n;
                    if n < buf.len() {
                        break;
                    }
                }
                // The first part went in; the rest waits for the next call.
                Err(_) => break,
            }
        }
        let driver = inner.driver_if_needed();
        drop(inner);
        driver.into_iter().for_each(Waker::wake);
        Poll::Ready(Ok(taken))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written data is already the connection task's to send.
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.finish().map_err(io::Error::from))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let mut inner = self.conn.lock();
        // Finish what we wrote, discard what still comes and ask the peer
        // to stop sending; a stream that already ended refuses both, which
        // is fine.
        let _ = inner.session.finish(self.id);
        let _ = inner.session.stop(self.id, ErrorCode::CANCEL);
        inner.slots.remove(&self.id);
        let driver = inner.driver_if_needed();
        drop(inner);
        driver.into_iter().for_each(Waker::wake);
        self.conn.drop_handle();
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("id", &self.id).finish()
    }
}
