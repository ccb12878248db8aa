//! Joins two streams both ways: the broker between a requester and a
//! responder.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use plex_runtime::Stream;

use crate::client::CHUNK;

/// One direction: read from one stream, write to the other, then end it.
struct Copy {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    read_done: bool,
    done: bool,
}

impl Copy {
    fn new() -> Copy {
        Copy {
            buf: vec![0; CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
            read_done: false,
            done: false,
        }
    }

    /// Moves bytes until `from` ends (then finishes `to`) or one side
    /// fails (`Source` for `from`, `Sink` for `to`); `Pending` while both
    /// wait.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut Stream,
        to: &mut Stream,
    ) -> Poll<Result<(), Broke>> {
        loop {
            if self.done {
                return Poll::Ready(Ok(()));
            }
            if self.start < self.end {
                let written = Pin::new(&mut *to).poll_write(cx, &self.buf[self.start..self.end]);
                self.start += ready!(written).map_err(|_| Broke::Sink)?;
                continue;
            }
            if self.read_done {
                to.finish().map_err(|_| Broke::Sink)?;
                self.done = true;
                continue;
            }
            let n = ready!(Pin::new(&mut *from).poll_read(cx, &mut self.buf))
                .map_err(|_| Broke::Source)?;
            if n == 0 {
                self.read_done = true;
            }
            self.start = 0;
            self.end = n;
        }
    }
}

/// Which end of one direction failed.
enum Broke {
    Source,
    Sink,
}

/// Which stream of a [`join`] failed.
#[derive(Debug)]
pub(crate) enum Failed {
    /// The first stream (the requester).
    First,
    /// The second (the responder).
    Second,
}

/// Copies `a` to `b` and `b` to `a` until both directions have ended, or
/// one stream fails.
pub(crate) async fn join(a: &mut Stream, b: &mut Stream) -> Result<(), Failed> {
    let (mut ab, mut ba) = (Copy::new(), Copy::new());
    poll_fn(|cx| {
        let forward = match ab.poll(cx, a, b) {
            Poll::Ready(Err(Broke::Source)) => return Poll::Ready(Err(Failed::First)),
            Poll::Ready(Err(Broke::Sink)) => return Poll::Ready(Err(Failed::Second)),
            other => other.is_ready(),
        };
        let back = match ba.poll(cx, b, a) {
            Poll::Ready(Err(Broke::Source)) => return Poll::Ready(Err(Failed::Second)),
            Poll::Ready(Err(Broke::Sink)) => return Poll::Ready(Err(Failed::First)),
            other => other.is_ready(),
        };
        if forward && back {
            return Poll::Ready(Ok(()));
        }
        // Nothing left to read from `a` or to write to it for now: watch it
        // anyway, so that a requester that gives up is noticed while the
        // responder still works.
        if forward && a.poll_stopped(cx).is_ready() {
            return Poll::Ready(Err(Failed::First));
        }
        Poll::Pending
    })
    .await
}
