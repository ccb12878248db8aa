//! Joins two streams both ways: the broker between a requester and a
//! responder.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures_io::AsyncWrite;
use plex_runtime::Stream;

use crate::client::CHUNK;

/// One direction: read from one stream, write to the other, then end it.
/// What is read is the received frames' own bytes, moved without a buffer
/// of its own.
#[derive(Default)]
struct Copy {
    pending: Bytes,
    read_done: bool,
    done: bool,
}

impl Copy {
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
            if !self.pending.is_empty() {
                let written = Pin::new(&mut *to).poll_write(cx, &self.pending);
                let n = ready!(written).map_err(|_| Broke::Sink)?;
                self.pending.advance(n);
                continue;
            }
            if self.read_done {
                to.finish().map_err(|_| Broke::Sink)?;
                self.done = true;
                continue;
            }
            match ready!(from.poll_read_chunk(cx, CHUNK)).map_err(|_| Broke::Source)? {
                Some(chunk) => self.pending = chunk,
                None => self.read_done = true,
            }
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
    let (mut ab, mut ba) = (Copy::default(), Copy::default());
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
