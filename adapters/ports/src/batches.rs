//! A scan stream that fetches its entries a batch at a time on the
//! blocking thread pool, holding no snapshot between batches.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use blocking::Task;
use futures_core::Stream;
use plex_peer::store::Entry;
use plex_peer::Error;

/// How many entries a scan reads per batch (and per read transaction).
pub(crate) const SCAN_BATCH: usize = 64;

/// Where a scan is, and how to read the next batch from there.
pub(crate) trait Source: Send + Unpin + 'static {
    /// Reads up to [`SCAN_BATCH`] entries after the previous batch and
    /// moves past them; an empty batch ends the scan. Blocks.
    fn next_batch(&mut self) -> Result<Vec<Entry>, Error>;
}

/// Streams a [`Source`]'s batches; each read runs on `blocking`'s pool so
/// that the executor thread never waits on the disk.
pub(crate) struct Batches<S> {
    state: State<S>,
    ready: VecDeque<Entry>,
}

enum State<S> {
    Idle(S),
    Reading(Task<(S, Result<Vec<Entry>, Error>)>),
    Done,
}

impl<S: Source> Batches<S> {
    pub(crate) fn new(source: S) -> Batches<S> {
        Batches {
            state: State::Idle(source),
            ready: VecDeque::new(),
        }
    }
}

impl<S: Source> Stream for Batches<S> {
    type Item = Result<Entry, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(entry) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(entry)));
            }
            match std::mem::replace(&mut this.state, State::Done) {
                State::Done => return Poll::Ready(None),
                State::Idle(mut source) => {
                    this.state = State::Reading(blocking::unblock(move || {
                        let batch = source.next_batch();
                        (source, batch)
                    }));
                }
                State::Reading(mut task) => match Pin::new(&mut task).poll(cx) {
                    Poll::Pending => {
                        this.state = State::Reading(task);
                        return Poll::Pending;
                    }
                    Poll::Ready((_, Err(e))) => return Poll::Ready(Some(Err(e))),
                    Poll::Ready((_, Ok(batch))) if batch.is_empty() => return Poll::Ready(None),
                    Poll::Ready((source, Ok(batch))) => {
                        this.ready = batch.into();
                        this.state = State::Idle(source);
                    }
                },
            }
        }
    }
}

/// The entries of an empty range.
pub(crate) struct Empty;

impl Stream for Empty {
    type Item = Result<Entry, Error>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(None)
    }
}
