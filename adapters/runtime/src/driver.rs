//! The connection task: owns the transport and runs the sans-IO loop.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_io::{AsyncRead, AsyncWrite};

use crate::conn::{Conn, Wakeups};
use crate::Sleep;

/// Bytes read per allocation; reads slice it until little is left.
const READ_CHUNK: usize = 64 * 1024;
/// Below this much room, a fresh read buffer is allocated.
const READ_MIN: usize = 4 * 1024;
/// Output gathered from the session before writing; the rest waits in the
/// session, so a slow transport pushes back on the streams.
const OUT_HIGH_WATER: usize = 256 * 1024;
/// Slices per vectored write.
const MAX_IOVECS: usize = 64;
/// Rounds of work before yielding to other tasks.
const ROUNDS_PER_POLL: usize = 32;

/// Settings of a session's connection task (the protocol's own are in
/// [`Config`](crate::Config)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverConfig {
    /// How long a connection that is winding down may go without the
    /// transport accepting a written byte before it is dropped.
    ///
    /// Winding down starts when the session closes (the final GOAWAY still
    /// has to be written and the transport closed) or when the last handle
    /// is dropped (streams drain in the background). A peer that stops
    /// reading then holds the socket for at most this long. A drain that
    /// keeps moving data is never cut short. Default: 5 seconds.
    pub linger: Duration,
}

impl Default for DriverConfig {
    fn default() -> DriverConfig {
        DriverConfig {
            linger: Duration::from_secs(5),
        }
    }
}

pub(crate) struct Driver<T> {
    conn: Arc<Conn>,
    io: T,
    read_buf: BytesMut,
    read_done: bool,
    out: VecDeque<Bytes>,
    out_len: usize,
    needs_flush: bool,
    /// Output is being held one pass through the scheduler, so that frames
    /// other stream tasks are about to queue go out in the same write (see
    /// [`Driver::hold`]).
    held: bool,
    timer: Option<(Instant, Sleep)>,
    /// While winding down: when to give up on the transport.
    linger: Option<Instant>,
}

impl<T> Driver<T> {
    pub(crate) fn new(conn: Arc<Conn>, io: T) -> Driver<T> {
        Driver {
            conn,
            io,
            read_buf: BytesMut::zeroed(READ_CHUNK),
            read_done: false,
            out: VecDeque::new(),
            out_len: 0,
            needs_flush: false,
            held: false,
            timer: None,
            linger: None,
        }
    }

    /// The winding-down deadline, pushed back when the transport took bytes.
    fn linger_deadline(&mut self, wrote: bool) -> Instant {
        match self.linger {
            Some(at) if !wrote => at,
            _ => {
                let at = self.conn.runtime.now() + self.conn.driver_config.linger;
                self.linger = Some(at);
                at
            }
        }
    }
}

/// Open streams from which a connection's writers are taken to be many.
const HOLD_STREAMS: u32 = 4;

impl<T> Driver<T> {
    /// Whether to hold the gathered output one pass through the scheduler
    /// instead of writing it now (the task has woken itself).
    ///
    /// A stream task that queues a frame wakes this task, and a
    /// work-stealing scheduler runs a task woken that way next (tokio's
    /// LIFO slot): writing at once makes one system call per frame while
    /// other stream tasks wait to queue theirs. Holding puts this task
    /// behind them, and one write carries all their frames. A hold costs
    /// a pass through the scheduler (on tokio, waking the other worker),
    /// so it is made only where other writers are likely: this round woke
    /// several stream tasks, or many streams are open. One request at a
    /// time on a connection goes out at once.
    fn hold(&mut self, cx: &mut Context<'_>, round: &Round) -> bool {
        if self.held {
            self.held = false;
            return false;
        }
        let writers_likely = round.woke > 1 || round.streams >= HOLD_STREAMS;
        if self.out.is_empty()
            || !writers_likely
            || round.winding_down
            || self.out_len >= OUT_HIGH_WATER
        {
            return false;
        }
        self.held = true;
        cx.waker().wake_by_ref();
        true
    }
}

/// What one round with the session locked found.
struct Round {
    progress: bool,
    closed: bool,
    /// Closed, or every handle dropped: the linger bound applies.
    winding_down: bool,
    /// Handle tasks woken.
    woke: usize,
    /// Streams open.
    streams: u32,
    deadline: Option<Instant>,
}

/// What a read pass produced.
enum Input {
    Bytes(Bytes),
    End(Option<io::Error>),
}

impl<T: AsyncRead + AsyncWrite + Unpin> Driver<T> {
    /// Reads what the transport has, without blocking.
    fn read(&mut self, cx: &mut Context<'_>, inputs: &mut Vec<Input>) {
        while !self.read_done && inputs.len() < 4 {
            match Pin::new(&mut self.io).poll_read(cx, &mut self.read_buf) {
                Poll::Ready(Ok(0)) => {
                    self.read_done = true;
                    inputs.push(Input::End(None));
                }
                Poll::Ready(Ok(n)) => {
                    inputs.push(Input::Bytes(self.read_buf.split_to(n).freeze()));
                    if self.read_buf.len() < READ_MIN {
                        // The old buffer lives on in the slices just taken.
                        self.read_buf = BytesMut::zeroed(READ_CHUNK);
                    }
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => {
                    self.read_done = true;
                    inputs.push(Input::End(Some(e)));
                }
                Poll::Pending => break,
            }
        }
    }

    /// Writes gathered output until the transport pushes back. Returns
    /// whether anything was written, or the transport's error.
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

    /// One round with the session locked: input in, events and output out.
    fn exchange(
        &mut self,
        cx: &mut Context<'_>,
        inputs: Vec<Input>,
        write_error: Option<io::Error>,
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
        let mut progress = !inputs.is_empty();
        for input in inputs {
            match input {
                Input::Bytes(bytes) => inner.session.handle_input(now, bytes),
                Input::End(error) => {
                    if let Some(e) = error {
                        inner.io_error.get_or_insert(Arc::new(e));
                    }
                    inner.session.handle_eof(now);
                }
            }
        }
        if let Some(e) = write_error {
            inner.io_error.get_or_insert(Arc::new(e));
            inner.session.handle_eof(now);
            progress = true;
        }
        if progress {
            // Streams may have closed: openers waiting for room retry.
            wake.extend(inner.openers.drain());
        }
        if inner.session.poll_timeout().is_some_and(|at| at <= now) {
            inner.session.handle_timeout(now);
            progress = true;
        }
        while self.out_len < OUT_HIGH_WATER {
            let Some(t) = inner.session.poll_transmit(now) else {
                break;
            };
            progress = true;
            self.out_len += t.len();
            self.out
                .extend([t.head, t.payload].into_iter().filter(|b| !b.is_empty()));
        }
        // Events last: sending can end the session too (the final
        // END_STREAM of a drain), and its `Closed` must reach the handles.
        while let Some(event) = inner.session.poll_event() {
            inner.dispatch(event, &mut wake);
            progress = true;
        }
        let closed = inner.session.is_closed();
        let round = Round {
            progress,
            closed,
            winding_down: closed || inner.abandoned,
            woke: wake.len(),
            streams: inner.session.stats().active_streams,
            deadline: inner.session.poll_timeout(),
        };
        drop(inner);
        wake.wake();
        round
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Future for Driver<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        for _ in 0..ROUNDS_PER_POLL {
            let mut inputs = Vec::new();
            this.read(cx, &mut inputs);
            let round = this.exchange(cx, inputs, None);
            if this.hold(cx, &round) {
                return Poll::Pending;
            }
            let wrote = match this.write(cx) {
                Ok(wrote) => wrote,
                Err(e) => {
                    this.out.clear();
                    this.out_len = 0;
                    this.exchange(cx, Vec::new(), Some(e));
                    continue;
                }
            };
            let mut progress = round.progress || wrote;
            let mut deadline = round.deadline;
            if round.winding_down {
                let linger = this.linger_deadline(wrote);
                if this.conn.runtime.now() >= linger {
                    // The peer stopped reading: drop the transport. A session
                    // still draining ends as if the transport had failed.
                    if !round.closed {
                        let gave_up = io::Error::new(io::ErrorKind::TimedOut, "linger expired");
                        this.exchange(cx, Vec::new(), Some(gave_up));
                    }
                    return Poll::Ready(());
                }
                deadline = Some(deadline.map_or(linger, |at| at.min(linger)));
            }
            if round.closed && this.out.is_empty() {
                // Everything, GOAWAY included, is written: close the transport.
                if Pin::new(&mut this.io).poll_close(cx).is_ready() {
                    return Poll::Ready(());
                }
                progress = false;
            }
            if progress {
                continue;
            }
            // Idle: arm the timer for the next deadline. A later deadline
            // keeps the armed timer; it fires early, harmlessly.
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
        // Plenty of work: yield so other tasks run, then carry on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
