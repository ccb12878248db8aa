//! The Protomux connection task: owns the transport and runs the sans-IO
//! session, reading only while the session wants input.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_io::{AsyncRead, AsyncWrite};

use super::conn::MuxConn;
use crate::conn::Wakeups;
use crate::pump::{Input, Next, Pump, Standing, Timers, READS_AFTER_WRITE_ERROR};

/// Rounds of work before yielding to other tasks.
const ROUNDS_PER_POLL: usize = 32;

pub(crate) struct MuxDriver<T> {
    conn: Arc<MuxConn>,
    pump: Pump<T>,
    timers: Timers,
}

impl<T> MuxDriver<T> {
    pub(crate) fn new(conn: Arc<MuxConn>, io: T) -> MuxDriver<T> {
        let timers = Timers::new(conn.runtime.clone(), conn.linger);
        MuxDriver {
            conn,
            pump: Pump::new(io),
            timers,
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

impl<T: AsyncRead + AsyncWrite + Unpin> MuxDriver<T> {
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
        while self.pump.has_room() {
            let Some(t) = inner.session.poll_transmit() else {
                break;
            };
            progress = true;
            self.pump.queue(t.head, t.payload);
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
}

impl<T: AsyncRead + AsyncWrite + Unpin> Future for MuxDriver<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut wants_input = this.conn.lock().session.wants_input();
        for _ in 0..ROUNDS_PER_POLL {
            // Read only while the session takes input: a full channel
            // leaves the bytes in the transport, which pushes back.
            let input = if wants_input {
                this.pump.read(cx)
            } else {
                None
            };
            let round = this.exchange(cx, input, None);
            wants_input = round.wants_input;
            let wrote = match this.pump.write(cx) {
                Ok(wrote) => wrote,
                Err(e) => {
                    this.pump.discard_output();
                    for _ in 0..READS_AFTER_WRITE_ERROR {
                        let Some(input) = wants_input.then(|| this.pump.read(cx)).flatten() else {
                            break;
                        };
                        wants_input = this.exchange(cx, Some(input), None).wants_input;
                    }
                    this.exchange(cx, None, Some(e));
                    this.pump.discard_output();
                    continue;
                }
            };
            let standing = Standing {
                progress: round.progress,
                winding_down: round.closed || this.conn.abandoned(),
                closed: round.closed,
                deadline: round.deadline,
            };
            match this.pump.next(cx, &mut this.timers, wrote, standing) {
                Next::Again => {}
                Next::Wait => return Poll::Pending,
                // Closed, or the peer stopped reading: drop the transport.
                Next::Done | Next::GaveUp => return Poll::Ready(()),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
