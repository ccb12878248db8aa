//! What a subscription and a responder hand out.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_io::AsyncRead;
use futures_util::io::AsyncWriteExt;
use plex_proto::bus::{DecodeFailure, Record, RecordDecoder, SubscriptionId};
use plex_runtime::Stream;

use crate::client::{read_to_end, Inner};
use crate::error::from_io;
use crate::BusError;

/// What a subscription receives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A message published to a matching channel.
    Message {
        /// The channel it was published to.
        channel: String,
        /// Its bytes.
        payload: Bytes,
    },
    /// The broker dropped this many messages here because this subscriber
    /// fell behind; the messages after it follow.
    Gap {
        /// How many.
        dropped: u64,
    },
}

/// The messages published to a pattern. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    stream: Stream,
    id: SubscriptionId,
    decoder: RecordDecoder,
    buf: Box<[u8]>,
    ended: Option<Result<(), BusError>>,
}

impl Subscription {
    pub(crate) fn new(stream: Stream, id: SubscriptionId, max_payload: usize) -> Subscription {
        Subscription {
            stream,
            id,
            decoder: RecordDecoder::new(max_payload),
            buf: vec![0; crate::client::CHUNK].into_boxed_slice(),
            ended: None,
        }
    }

    /// The broker's number for it.
    pub fn id(&self) -> SubscriptionId {
        self.id
    }

    /// The next message or gap notice; `None` once the subscription ended
    /// cleanly, an error if the broker ended it (for example
    /// [`BusError::SlowConsumer`]) or the connection failed.
    pub async fn next(&mut self) -> Option<Result<Event, BusError>> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// The poll form of [`next`](Subscription::next).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event, BusError>>> {
        loop {
            if let Some(ended) = &self.ended {
                return Poll::Ready(ended.clone().err().map(Err));
            }
            match self.decoder.next() {
                Ok(Some(Record::Message { channel, payload })) => {
                    return Poll::Ready(Some(Ok(Event::Message { channel, payload })))
                }
                Ok(Some(Record::Gap { dropped })) => {
                    return Poll::Ready(Some(Ok(Event::Gap { dropped })))
                }
                Ok(Some(_)) => {}
                Ok(None) => {}
                Err(e) => {
                    let e = match e {
                        DecodeFailure::TooLarge { len, max } => BusError::TooLarge { len, max },
                        DecodeFailure::Wire(w) => BusError::Wire(w),
                        _ => BusError::Refused,
                    };
                    self.ended = Some(Err(e));
                    continue;
                }
            }
            // As much as there is: the decoder keeps what is past a record.
            let read = Pin::new(&mut self.stream).poll_read(cx, &mut self.buf);
            match std::task::ready!(read) {
                Ok(0) => {
                    // The broker ended it (it shuts down): so do we, so
                    // that the connection can close without waiting.
                    let _ = self.stream.finish();
                    self.ended = Some(Ok(()));
                }
                Ok(n) => self.decoder.push(&self.buf[..n]),
                Err(e) => self.ended = Some(Err(from_io(e))),
            }
        }
    }
}

/// A queue the client's delivery task fills and a handle drains.
#[derive(Debug)]
pub(crate) struct Inbox<T> {
    state: Mutex<(VecDeque<T>, Option<Waker>)>,
}

impl<T> Default for Inbox<T> {
    fn default() -> Self {
        Inbox {
            state: Mutex::new((VecDeque::new(), None)),
        }
    }
}

impl<T> Inbox<T> {
    fn lock(&self) -> MutexGuard<'_, (VecDeque<T>, Option<Waker>)> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn push(&self, item: T) {
        let mut state = self.lock();
        state.0.push_back(item);
        let waker = state.1.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<T> {
        let mut state = self.lock();
        match state.0.pop_front() {
            Some(item) => Poll::Ready(item),
            None => {
                state.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Requests to a pattern, each for this side to answer. Dropping it
/// stops responding; requests not yet answered fail at their requesters.
#[derive(Debug)]
pub struct Responder {
    stream: Stream,
    id: SubscriptionId,
    inbox: Arc<Inbox<Request>>,
    client: Weak<Inner>,
}

impl Responder {
    pub(crate) fn new(
        stream: Stream,
        id: SubscriptionId,
        inbox: Arc<Inbox<Request>>,
        client: Weak<Inner>,
    ) -> Responder {
        Responder {
            stream,
            id,
            inbox,
            client,
        }
    }

    /// The broker's number for it.
    pub fn id(&self) -> SubscriptionId {
        self.id
    }

    /// The next request; `None` once the broker or the connection ended
    /// the subscription.
    pub async fn next(&mut self) -> Option<Request> {
        poll_fn(|cx| {
            if let Poll::Ready(request) = self.inbox.poll_pop(cx) {
                return Poll::Ready(Some(request));
            }
            let mut probe = [0u8; 1];
            match Pin::new(&mut self.stream).poll_read(cx, &mut probe) {
                Poll::Ready(_) => {
                    // Ended by the broker (it shuts down) or the connection:
                    // so is our side, so that the connection can close.
                    let _ = self.stream.finish();
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(client) = self.client.upgrade() {
            client.lock_responders().queues.remove(&self.id);
        }
    }
}

/// One request to answer: its channel, its body, and the stream the reply
/// goes back on. Dropping it unanswered fails the request at the requester
/// ([`BusError::ResponderGone`]).
#[derive(Debug)]
pub struct Request {
    channel: String,
    stream: Stream,
    max_payload: usize,
    replied: bool,
}

impl Request {
    pub(crate) fn new(channel: String, stream: Stream, max_payload: usize) -> Request {
        Request {
            channel,
            stream,
            max_payload,
            replied: false,
        }
    }

    /// The channel it was sent to.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The whole request body (up to the client's `max_payload`).
    pub async fn body(&mut self) -> Result<Bytes, BusError> {
        read_to_end(&mut self.stream, self.max_payload).await
    }

    /// The request body as a byte stream, for bodies too large to hold.
    pub fn reader(&mut self) -> &mut (impl AsyncRead + Unpin + use<>) {
        &mut self.stream
    }

    /// Sends the reply and ends the request. A reply cut short (the
    /// future dropped, the write failed) fails the request at the
    /// requester; it never arrives as a whole reply.
    pub async fn reply(mut self, payload: Bytes) -> Result<(), BusError> {
        self.stream.write_all(&payload).await.map_err(from_io)?;
        self.stream.finish()?;
        self.replied = true;
        Ok(())
    }

    /// Ready once the requester gave up (cancelled, timed out, or gone).
    pub fn poll_cancelled(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.stream.poll_stopped(cx).map(|_| ())
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if !self.replied {
            // Unanswered: a reset, so that the requester learns the
            // responder gave up rather than reading an empty reply.
            self.stream.reset(plex_proto::ErrorCode::CANCEL);
        }
    }
}
