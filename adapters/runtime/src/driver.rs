//! The connection task: owns the transport and runs the sans-IO loop.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_io::{AsyncRead, AsyncWrite};

use crate::conn::{Conn, Wakeups};
use crate::pump::{Input, Next, Pump, Standing, Timers, OUT_HIGH_WATER, READS_AFTER_WRITE_ERROR};

/// Transport reads taken into one round.
const READS_PER_ROUND: usize = 4;
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
    pump: Pump<T>,
    /// Output is being held one pass through the scheduler, so that frames
    /// other stream tasks are about to queue go out in the same write (see
    /// [`Driver::hold`]).
    held: bool,
    timers: Timers,
}

impl<T> Driver<T> {
    pub(crate) fn new(conn: Arc<Conn>, io: T) -> Driver<T> {
        let timers = Timers::new(conn.runtime.clone(), conn.driver_config.linger);
        Driver {
            conn,
            pump: Pump::new(io),
            held: false,
            timers,
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
        if self.pump.is_flushed()
            || !writers_likely
            || round.winding_down
            || self.pump.out_len() >= OUT_HIGH_WATER
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

impl<T: AsyncRead + AsyncWrite + Unpin> Driver<T> {
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
                        tracing::debug!(error = %e, "the transport failed");
                        inner.io_error.get_or_insert(Arc::new(e));
                    }
                    inner.session.handle_eof(now);
                }
            }
        }
        if let Some(e) = write_error {
            tracing::debug!(error = %e, "writing to the transport failed");
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
        while self.pump.has_room() {
            let Some(t) = inner.session.poll_transmit(now) else {
                break;
            };
            progress = true;
            self.pump.queue(t.head, t.payload);
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
            while inputs.len() < READS_PER_ROUND {
                match this.pump.read(cx) {
                    Some(input) => inputs.push(input),
                    None => break,
                }
            }
            let round = this.exchange(cx, inputs, None);
            if this.hold(cx, &round) {
                return Poll::Pending;
            }
            let wrote = match this.pump.write(cx) {
                Ok(wrote) => wrote,
                Err(e) => {
                    this.pump.discard_output();
                    let left = (0..READS_AFTER_WRITE_ERROR).map_while(|_| this.pump.read(cx));
                    let inputs = left.collect();
                    this.exchange(cx, inputs, Some(e));
                    this.pump.discard_output();
                    continue;
                }
            };
            let standing = Standing {
                progress: round.progress,
                winding_down: round.winding_down,
                closed: round.closed,
                deadline: round.deadline,
            };
            match this.pump.next(cx, &mut this.timers, wrote, standing) {
                Next::Again => {}
                Next::Wait => return Poll::Pending,
                Next::Done => return Poll::Ready(()),
                Next::GaveUp => {
                    // The peer stopped reading, or did not close its side
                    // after the close: drop the transport. A session still
                    // draining ends as if the transport had failed.
                    tracing::debug!("winding down outlasted the linger: transport dropped");
                    if !round.closed {
                        let gave_up = io::Error::new(io::ErrorKind::TimedOut, "linger expired");
                        this.exchange(cx, Vec::new(), Some(gave_up));
                    }
                    return Poll::Ready(());
                }
            }
        }
        // Plenty of work: yield so other tasks run, then carry on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
