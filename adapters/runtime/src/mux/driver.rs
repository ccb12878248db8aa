//! The Protomux connection task: owns the transport and runs the sans-IO
//! session, reading only while the session wants input.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use futures_io::{AsyncRead, AsyncWrite};

use super::conn::MuxConn;
use crate::conn::Wakeups;
use crate::Sleep;

/// Bytes read per allocation; reads slice it until little is left.
const READ_CHUNK: usize = 64 * 1024;
/// Below this much room, a fresh read buffer is allocated.
const READ_MIN: usize = 4 * 1024;
/// Output gathered from the session before writing.
const OUT_HIGH_WATER: usize = 256 * 1024;
/// Slices per vectored write.
const MAX_IOVECS: usize = 64;
/// Rounds of work before yielding to other tasks.
const ROUNDS_PER_POLL: usize = 32;

pub(crate) struct MuxDriver<T> {
    conn: Arc<MuxConn>,
    io: T,
    read_buf: BytesMut,
    read_done: bool,
    out: VecDeque<Bytes>,
    out_len: usize,
    needs_flush: bool,
    timer: Option<(Instant, Sleep)>,
    /// Once closing: when to give up on a transport that takes nothing.
    linger: Option<Instant>,
}

impl<T> MuxDriver<T> {
    pub(crate) fn new(conn: Arc<MuxConn>, io: T) -> MuxDriver<T> {
        MuxDriver {
            conn,
            io,
            read_buf: BytesMut::zeroed(READ_CHUNK),
            read_done: false,
            out: VecDeque::new(),
            out_len: 0,
            needs_flush: false,
            timer: None,
            linger: None,
        }
    }
}

/// What one round found.
struct Round {
    progress: bool,
    closed: bool,
    wants_input: bool,
    deadline: Option<Instant>,
}

enum Input {
    Bytes(Bytes),
    End(Option<io::Error>),
}

impl<T: AsyncRead + AsyncWrite + Unpin> MuxDriver<T> {
    /// Reads one chunk the transport has, without blocking.
    fn read(&mut self, cx: &mut Context<'_>) -> Option<Input> {
        if self.read_done {
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

    /// Writes gathered output until the transport pushes back.
    fn write(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
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

    /// One round with the session locked: input in, output and events out.
    fn exchange(
        &mut self,
        cx: &mut Context<'_>,
        input: Option<Input>,
        failed: Option<io::Error>,
    ) -> Round {
        let now = self.conn.runtime.now();
        let mut wake = Wakeups::default();
        let mut inner = self.conn.lock();
        if !inner
            .driver
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            inner.driver = Some(cx.waker().clone());
        }
        let mut progress = input.is_some();
        match input {
            Some(Input::Bytes(bytes)) => inner.session.handle_input(now, bytes),
            Some(Input::End(error)) => {
                if let Some(e) = error {
                    inner.io_error.get_or_insert(Arc::new(e));
                }
                inner.session.handle_eof();
            }
            None => {}
        }
        if let Some(e) = failed {
            inner.io_error.get_or_insert(Arc::new(e));
            inner.session.handle_eof();
            progress = true;
        }
        if inner.session.poll_timeout().is_some_and(|at| at <= now) {
            inner.session.handle_timeout(now);
            progress = true;
        }
        while self.out_len < OUT_HIGH_WATER {
            let Some(t) = inner.session.poll_transmit() else {
                break;
            };
            progress = true;
            self.out_len += t.len();
            self.out
                .extend([t.head, t.payload].into_iter().filter(|b| !b.is_empty()));
        }
        while let Some(event) = inner.session.poll_event() {
            inner.dispatch(event, &mut wake);
            progress = true;
        }
        let wants_input = inner.session.wants_input();
        inner.paused = !wants_input;
        let round = Round {
            progress,
            closed: inner.session.is_closed() && !inner.session.wants_transmit(),
            wants_input,
            deadline: inner.session.poll_timeout(),
        };
        drop(inner);
        wake.wake();
        round
    }

    fn linger_deadline(&mut self, wrote: bool) -> Instant {
        match self.linger {
            Some(at) if !wrote => at,
            _ => {
                let at = self.conn.runtime.now() + self.conn.linger;
                self.linger = Some(at);
                at
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Future for MuxDriver<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut wants_input = this.conn.lock().session.wants_input();
        for _ in 0..ROUNDS_PER_POLL {
            // Read only while the session takes input: a full channel
            // leaves the bytes in the transport, which pushes back.
            let input = if wants_input { this.read(cx) } else { None };
            let round = this.exchange(cx, input, None);
            wants_input = round.wants_input;
            let wrote = match this.write(cx) {
                Ok(wrote) => wrote,
                Err(e) => {
                    this.out.clear();
                    this.out_len = 0;
                    this.exchange(cx, None, Some(e));
                    continue;
                }
            };
            let mut progress = round.progress || wrote;
            let mut deadline = round.deadline;
            if round.closed || this.conn.abandoned() {
                let linger = this.linger_deadline(wrote);
                if this.conn.runtime.now() >= linger {
                    // The peer stopped reading: drop the transport.
                    return Poll::Ready(());
                }
                deadline = Some(deadline.map_or(linger, |at| at.min(linger)));
            }
            if round.closed && this.out.is_empty() {
                if Pin::new(&mut this.io).poll_close(cx).is_ready() {
                    return Poll::Ready(());
                }
                progress = false;
            }
            if progress {
                continue;
            }
            match deadline {
                Some(at) if this.timer.as_ref().is_none_or(|(armed, _)| at < *armed) => {
                    this.timer = Some((at, this.conn.runtime.sleep_until(at)));
                }
                None => this.timer = None,
                Some(_) => {}
            }
            if let Some((_, timer)) = &mut this.timer {
                if timer.as_mut().poll(cx).is_ready() {
                    this.timer = None;
                    continue;
                }
            }
            return Poll::Pending;
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
