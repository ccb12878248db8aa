//! The bus client: requests, replies, publications and subscriptions over
//! one session to a broker.

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_io::AsyncRead;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use futures_util::lock::Mutex as AsyncMutex;
use plex_proto::bus::{
    check_channel, Delivery, Record, RequestHead, Role, Subscribe, SubscriptionId,
    DELIVER_PROTOCOL, PUBLISH_PROTOCOL, REQUEST_PROTOCOL, SUBSCRIBE_PROTOCOL,
};
use plex_proto::ErrorCode;
use plex_runtime::{OpenOptions, Session, Stream};

use crate::error::from_io;
use crate::subscription::{Inbox, Request, Responder, Subscription};
use crate::BusError;

/// A client's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// How long a request waits for its reply when the caller gives no
    /// timeout (or zero). Default 30 s.
    pub request_timeout: Duration,
    /// The largest reply, request body or message this client takes into
    /// memory. Default 64 MiB.
    pub max_payload: usize,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            request_timeout: Duration::from_secs(30),
            max_payload: 64 << 20,
        }
    }
}

impl ClientConfig {
    /// Sets [`request_timeout`](ClientConfig::request_timeout).
    pub fn request_timeout(mut self, timeout: Duration) -> ClientConfig {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`max_payload`](ClientConfig::max_payload).
    pub fn max_payload(mut self, bytes: usize) -> ClientConfig {
        self.max_payload = bytes;
        self
    }
}

/// A connection to a broker. Cheap to clone and safe to share: any number
/// of tasks may request, publish, subscribe and respond on one client at
/// once. Every request travels on a stream of its own, so nothing of one
/// can mix with another.
#[derive(Clone, Debug)]
pub struct BusClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    session: Session,
    config: ClientConfig,
    closed: AtomicBool,
    /// The one publish stream, so that this client's messages keep their
    /// order; opened at the first publish.
    publisher: AsyncMutex<Option<Stream>>,
    /// Each responder's queue of requests, by subscription, and requests
    /// that came for a responder still being set up.
    responders: Mutex<Responders>,
}

/// The responders' queues. The broker may hand a request to a new
/// responder the moment it has accepted the subscription, before
/// [`BusClient::respond`] has its number: such requests wait in `early`
/// while a `respond` is under way, and are refused otherwise.
#[derive(Debug, Default)]
pub(crate) struct Responders {
    pub(crate) queues: HashMap<SubscriptionId, Arc<Inbox<Request>>>,
    early: HashMap<SubscriptionId, Vec<Request>>,
    /// `respond` calls under way.
    opening: usize,
}

/// Requests held for responders being set up; past it they are refused.
const EARLY_LIMIT: usize = 256;

impl BusClient {
    /// A client over a session to a broker, with the default config.
    pub fn new(session: Session) -> BusClient {
        BusClient::with_config(session, ClientConfig::default())
    }

    /// A client with `config`.
    pub fn with_config(session: Session, config: ClientConfig) -> BusClient {
        let inner = Arc::new(Inner {
            session,
            config,
            closed: AtomicBool::new(false),
            publisher: AsyncMutex::new(None),
            responders: Mutex::new(Responders::default()),
        });
        let listener = inner.session.listen(DELIVER_PROTOCOL, Bytes::new());
        let weak = Arc::downgrade(&inner);
        inner.session.runtime().spawn(Box::pin(async move {
            // Requests the broker hands this client's responders.
            while let Ok(incoming) = listener.accept().await {
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let Ok(delivery) = Delivery::decode(incoming.handshake().clone()) else {
                    incoming.refuse();
                    continue;
                };
                let mut responders = inner.lock_responders();
                let id = delivery.subscription;
                let known = responders.queues.get(&id).cloned();
                let wait = known.is_none()
                    && responders.opening > 0
                    && responders.early.values().map(Vec::len).sum::<usize>() < EARLY_LIMIT;
                if known.is_none() && !wait {
                    // Unsubscribed meanwhile: the requester learns the
                    // responder is gone.
                    drop(responders);
                    incoming.refuse();
                    continue;
                }
                let Ok(stream) = incoming.accept(Bytes::new()) else {
                    continue;
                };
                let request = Request::new(delivery.channel, stream, inner.config.max_payload);
                match known {
                    Some(inbox) => {
                        drop(responders);
                        inbox.push(request);
                    }
                    None => responders.early.entry(id).or_default().push(request),
                }
            }
        }));
        BusClient { inner }
    }

    /// The session underneath.
    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    /// Sends `payload` to one responder of `channel` and returns its reply,
    /// waiting at most the configured timeout.
    pub async fn request(&self, channel: &str, payload: Bytes) -> Result<Bytes, BusError> {
        self.request_timeout(channel, payload, None).await
    }

    /// [`request`](BusClient::request) with its own timeout; `None` or zero
    /// means the configured one.
    pub async fn request_timeout(
        &self,
        channel: &str,
        payload: Bytes,
        timeout: Option<Duration>,
    ) -> Result<Bytes, BusError> {
        self.call(
            channel,
            Body::<futures_util::io::Empty>::Bytes(payload),
            timeout,
        )
        .await
    }

    /// Sends a request whose payload is read from `source` as it goes, of
    /// any size, and returns the reply. A read error from `source` fails
    /// the request ([`BusError::Source`]) and cancels it at the responder.
    /// Dropping the future cancels it too.
    pub async fn request_from(
        &self,
        channel: &str,
        source: &mut (impl AsyncRead + Unpin),
        timeout: Option<Duration>,
    ) -> Result<Bytes, BusError> {
        self.call(channel, Body::Reader(source), timeout).await
    }

    async fn call(
        &self,
        channel: &str,
        body: Body<'_, impl AsyncRead + Unpin>,
        timeout: Option<Duration>,
    ) -> Result<Bytes, BusError> {
        self.check_open()?;
        check_channel(channel, false)?;
        let timeout = match timeout {
            Some(t) if !t.is_zero() => t,
            _ => self.inner.config.request_timeout,
        };
        let runtime = self.inner.session.runtime();
        let mut timer = runtime.sleep_until(runtime.now() + timeout);
        let options = OpenOptions::new(REQUEST_PROTOCOL, Bytes::new())
            .handshake(RequestHead::encode(channel));
        let mut stream = self.inner.session.open_stream(options).await?;
        let result = {
            let work = async {
                match body {
                    Body::Bytes(payload) => stream.write_all(&payload).await.map_err(from_io)?,
                    Body::Reader(source) => {
                        let mut buf = vec![0u8; CHUNK];
                        loop {
                            let n = source
                                .read(&mut buf)
                                .await
                                .map_err(|e| BusError::Source(Arc::new(e)))?;
                            if n == 0 {
                                break;
                            }
                            stream.write_all(&buf[..n]).await.map_err(from_io)?;
                        }
                    }
                }
                stream.finish()?;
                read_to_end(&mut stream, self.inner.config.max_payload).await
            };
            let mut work = pin!(work);
            poll_fn(|cx| {
                if let Poll::Ready(result) = work.as_mut().poll(cx) {
                    return Poll::Ready(result);
                }
                timer
                    .as_mut()
                    .poll(cx)
                    .map(|()| Err(BusError::Timeout(timeout)))
            })
            .await
        };
        if result.is_err() {
            // Cancels the request at the broker and so at the responder.
            stream.reset(ErrorCode::CANCEL);
        }
        result
    }

    /// Publishes `payload` to every subscriber of `channel`. Messages of one
    /// client reach each subscriber in the order they were published.
    pub async fn publish(&self, channel: &str, payload: Bytes) -> Result<(), BusError> {
        self.check_open()?;
        check_channel(channel, false)?;
        if payload.len() > self.inner.config.max_payload {
            let max = self.inner.config.max_payload;
            return Err(BusError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        let record = Record::Message {
            channel: channel.to_owned(),
            payload,
        };
        let mut publisher = self.inner.publisher.lock().await;
        if publisher.is_none() {
            let options = OpenOptions::new(PUBLISH_PROTOCOL, Bytes::new());
            *publisher = Some(self.inner.session.open_stream(options).await?);
        }
        let stream = publisher.as_mut().expect("opened above");
        let written = async {
            let header = record.header();
            match &record {
                // Small messages go in one write, header and payload.
                Record::Message { payload, .. } if payload.len() <= CHUNK => {
                    stream.write_all(&[&header[..], payload].concat()).await?;
                }
                Record::Message { payload, .. } => {
                    stream.write_all(&header).await?;
                    stream.write_all(payload).await?;
                }
                _ => stream.write_all(&header).await?,
            }
            Ok::<(), std::io::Error>(())
        };
        if let Err(e) = written.await {
            // A half-written record: the stream cannot be used again.
            *publisher = None;
            return Err(from_io(e));
        }
        Ok(())
    }

    /// Subscribes to `pattern`: a channel, or a prefix followed by `*`
    /// (every channel that starts with it).
    pub async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError> {
        let (stream, id) = self.open_subscription(Role::Subscriber, pattern).await?;
        Ok(Subscription::new(stream, id, self.inner.config.max_payload))
    }

    /// Offers to answer requests to `pattern`. Each request goes to one of
    /// the channel's responders, in turn.
    pub async fn respond(&self, pattern: &str) -> Result<Responder, BusError> {
        let inbox = Arc::new(Inbox::default());
        self.inner.lock_responders().opening += 1;
        let opened = self.open_subscription(Role::Responder, pattern).await;
        let mut responders = self.inner.lock_responders();
        responders.opening -= 1;
        let ours = opened.as_ref().ok().map(|(_, id)| *id);
        let mine = ours.and_then(|id| responders.early.remove(&id));
        // Held for numbers no `respond` will claim now: dropped unanswered
        // below, so that their requesters learn it at once.
        let orphans = if responders.opening == 0 {
            std::mem::take(&mut responders.early)
        } else {
            HashMap::new()
        };
        if let Some(id) = ours {
            responders.queues.insert(id, inbox.clone());
        }
        drop(responders);
        drop(orphans);
        let (stream, id) = opened?;
        for request in mine.into_iter().flatten() {
            inbox.push(request);
        }
        Ok(Responder::new(
            stream,
            id,
            inbox,
            Arc::downgrade(&self.inner),
        ))
    }

    /// Closes the client: later calls fail with [`BusError::Closed`], and
    /// the session goes away (GOAWAY) once the streams still open end:
    /// subscriptions and responders end when they are dropped, and closing
    /// never waits for them.
    ///
    /// What was published has reached the broker when `close` returns: it
    /// waits (at most the configured request timeout) until the broker has
    /// read this client's messages to the end and routed them. A process
    /// may exit right after without losing any. Closing twice is harmless.
    pub async fn close(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(mut stream) = self.inner.publisher.lock().await.take() {
            if stream.finish().is_ok() {
                // The broker ends its side of the publish stream once it
                // has read ours to the end; an error (the connection
                // failed) ends the wait as well.
                let runtime = self.inner.session.runtime();
                let timeout = self.inner.config.request_timeout;
                let mut timer = runtime.sleep_until(runtime.now() + timeout);
                let mut drained =
                    pin!(async { while let Ok(Some(_)) = stream.read_chunk(usize::MAX).await {} });
                poll_fn(|cx| {
                    if drained.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(());
                    }
                    timer.as_mut().poll(cx)
                })
                .await;
            }
        }
        // Already closing or closed: nothing more to say.
        let _ = self.inner.session.go_away(ErrorCode::NO_ERROR);
    }

    /// Whether [`close`](BusClient::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    fn check_open(&self) -> Result<(), BusError> {
        if self.is_closed() {
            Err(BusError::Closed)
        } else {
            Ok(())
        }
    }

    async fn open_subscription(
        &self,
        role: Role,
        pattern: &str,
    ) -> Result<(Stream, SubscriptionId), BusError> {
        self.check_open()?;
        check_channel(pattern, true)?;
        let spec = Subscribe {
            role,
            pattern: pattern.to_owned(),
        };
        let options = OpenOptions::new(SUBSCRIBE_PROTOCOL, Bytes::new()).handshake(spec.to_bytes());
        let stream = self.inner.session.open_stream(options).await?;
        let accepted = stream.remote_open().await?;
        let id = <[u8; 8]>::try_from(&accepted[..])
            .map(u64::from_le_bytes)
            .map_err(|_| BusError::Refused)?;
        Ok((stream, id))
    }
}

impl Inner {
    pub(crate) fn lock_responders(&self) -> MutexGuard<'_, Responders> {
        // No code panics while holding the lock.
        self.responders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request's body: bytes at hand, or a source read as it goes.
enum Body<'a, R> {
    Bytes(Bytes),
    Reader(&'a mut R),
}

/// Bytes read or copied per step: a `plex/1` DATA frame's worth.
pub(crate) const CHUNK: usize = 16 * 1024;

/// Reads a stream to its end, refusing more than `max` bytes. A body that
/// arrived in one frame is returned as that frame's bytes, uncopied.
pub(crate) async fn read_to_end(stream: &mut Stream, max: usize) -> Result<Bytes, BusError> {
    let mut first = Bytes::new();
    let mut joined = BytesMut::new();
    let mut len = 0;
    while let Some(chunk) = stream.read_chunk(usize::MAX).await.map_err(from_io)? {
        len += chunk.len();
        if len > max {
            return Err(BusError::TooLarge { len, max });
        }
        if first.is_empty() {
            first = chunk;
            continue;
        }
        if joined.is_empty() {
            joined.reserve(len);
            joined.extend_from_slice(&first);
        }
        joined.extend_from_slice(&chunk);
    }
    Ok(if joined.is_empty() {
        first
    } else {
        joined.freeze()
    })
}
