//! The broker: routes requests to one responder each and publications to
//! every subscriber, over the `plex/1` sessions of its clients.

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use futures_io::{AsyncRead, AsyncWrite};
use futures_util::Stream as _;
use plex_proto::bus::{
    Delivery, Outbox, Pushed, Record, RecordDecoder, RequestHead, Role, Router, SlowPolicy,
    Subscribe, SubscriptionId, DELIVER_PROTOCOL, PUBLISH_PROTOCOL, REQUEST_PROTOCOL,
    RESPONDER_GONE, SLOW_CONSUMER, SUBSCRIBE_PROTOCOL,
};
use plex_proto::ErrorCode;
use plex_runtime::{Incoming, OpenOptions, Session, Stream};

use crate::error::code_of;
use crate::pipe::{self, Failed};
use crate::BusError;

/// Bytes of small records written to a subscriber in one go.
const BATCH: usize = 64 * 1024;

/// A broker's limits and its policy for slow subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerConfig {
    /// The largest published message. Default 64 MiB. A published message
    /// is held whole (its subscribers take it at their own pace); the
    /// broker assembles one per connection at a time, so unfinished ones
    /// hold at most this much per connection. Requests and replies are
    /// streamed through and have no limit here.
    pub max_payload: usize,
    /// Bytes the broker holds for one subscriber that reads slower than
    /// messages come. Default 8 MiB.
    pub subscriber_buffer: usize,
    /// What happens when a subscriber's buffer is full. Default
    /// [`SlowPolicy::DropWithGap`].
    pub slow_policy: SlowPolicy,
    /// Bytes all subscribers' buffers together may hold; past it every
    /// subscriber is treated as full (the slow policy applies). Default
    /// 256 MiB.
    pub max_buffered: usize,
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        BrokerConfig {
            max_payload: 64 << 20,
            subscriber_buffer: 8 << 20,
            slow_policy: SlowPolicy::DropWithGap,
            max_buffered: 256 << 20,
        }
    }
}

impl BrokerConfig {
    /// Sets [`max_payload`](BrokerConfig::max_payload).
    pub fn max_payload(mut self, bytes: usize) -> BrokerConfig {
        self.max_payload = bytes;
        self
    }

    /// Sets [`subscriber_buffer`](BrokerConfig::subscriber_buffer).
    pub fn subscriber_buffer(mut self, bytes: usize) -> BrokerConfig {
        self.subscriber_buffer = bytes;
        self
    }

    /// Sets [`max_buffered`](BrokerConfig::max_buffered).
    pub fn max_buffered(mut self, bytes: usize) -> BrokerConfig {
        self.max_buffered = bytes;
        self
    }

    /// Sets [`slow_policy`](BrokerConfig::slow_policy).
    pub fn slow_policy(mut self, policy: SlowPolicy) -> BrokerConfig {
        self.slow_policy = policy;
        self
    }
}

/// Counters of a broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerStats {
    /// Client connections being served.
    pub connections: u64,
    /// Subscriptions and responders in place.
    pub subscriptions: u64,
    /// Requests answered by a responder, each counted once the broker has
    /// passed its reply on whole (a requester may hold its reply a moment
    /// before it is counted).
    pub requests: u64,
    /// Requests refused for want of a responder.
    pub no_responders: u64,
    /// Requests whose responder failed under them.
    pub responder_failures: u64,
    /// Messages published.
    pub published: u64,
    /// Messages queued for subscribers (one per subscriber).
    pub delivered: u64,
    /// Messages dropped for subscribers that fell behind.
    pub dropped: u64,
    /// Bytes the subscribers' buffers hold now.
    pub buffered: u64,
    /// Subscriptions ended for falling behind.
    pub disconnected: u64,
    /// Subscribers whose connection takes nothing more for now: the
    /// broker's writes to them wait (their queues then fill).
    pub stalled: u64,
}

/// Routes requests and publications between the clients it serves. Cheap
/// to clone; clones are the same broker.
///
/// Hand it each client's session with [`serve`](Broker::serve) (a server's
/// accept loop spawns one per connection; `plex serve` hosts one).
#[derive(Clone, Debug)]
pub struct Broker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: BrokerConfig,
    state: Mutex<State>,
    next_connection: AtomicU64,
    counters: Counters,
    /// Closed by [`Broker::shutdown`]; nothing is ever sent on it. Every
    /// stream's task holds a receiver, which its close wakes.
    closing: async_channel::Sender<()>,
    closed: async_channel::Receiver<()>,
}

/// A task's view of [`Broker::shutdown`].
struct Closing {
    closed: Pin<Box<async_channel::Receiver<()>>>,
}

impl Closing {
    /// Whether the broker is shutting down; if not, `cx` is woken when it
    /// does.
    fn poll(&mut self, cx: &mut Context<'_>) -> bool {
        // Nothing is sent: the stream ends, and stays ended, on close.
        self.closed.as_mut().poll_next(cx).is_ready()
    }
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    no_responders: AtomicU64,
    responder_failures: AtomicU64,
    published: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    disconnected: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    router: Router<u64>,
    /// Each connection's session, to open request streams to responders.
    sessions: HashMap<u64, Session>,
    /// Each subscriber's outbox and its writer's waker.
    outboxes: HashMap<SubscriptionId, Mailbox>,
    /// Bytes all outboxes hold.
    buffered: usize,
}

#[derive(Debug)]
struct Mailbox {
    outbox: Outbox,
    writer: Option<Waker>,
    /// Ended for falling behind: the writer resets the stream.
    evicted: bool,
    /// The writer waits for the subscriber to take what it wrote, not for
    /// messages: only an eviction wakes it.
    writing: bool,
}

/// What a subscriber's writer does next.
enum Next {
    /// Writes a batch, then this large payload if any.
    Batch(Option<Bytes>),
    /// Ends the subscription cleanly: the broker is shutting down.
    Closing,
}

/// How writing to a subscriber ended.
enum Written {
    All,
    /// The subscriber fell behind and was evicted meanwhile.
    Evicted,
    /// The stream failed or the subscription ended.
    Failed,
}

impl Broker {
    /// A broker with `config`.
    pub fn new(config: BrokerConfig) -> Broker {
        let (closing, closed) = async_channel::bounded(1);
        Broker {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State::default()),
                next_connection: AtomicU64::new(1),
                counters: Counters::default(),
                closing,
                closed,
            }),
        }
    }

    /// Ends every subscription, for a server that is shutting down: a
    /// subscriber gets what was queued for it, then a clean end of its
    /// subscription (its `next` returns `None`), as does a responder; a
    /// publish stream is closed after its last whole message. Streams
    /// opened later end at once. Without this, subscriptions last as long
    /// as their clients, and a graceful close of their sessions waits for
    /// them.
    pub fn shutdown(&self) {
        self.inner.closing.close();
    }

    fn closing(&self) -> Closing {
        Closing {
            closed: Box::pin(self.inner.closed.clone()),
        }
    }

    /// The config.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// Counters.
    pub fn stats(&self) -> BrokerStats {
        let c = &self.inner.counters;
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        // One lock: a second in the same expression would wait for the first.
        let (subscriptions, buffered, stalled) = {
            let state = self.inner.lock();
            let stalled = state.outboxes.values().filter(|m| m.writing).count();
            (
                state.router.len() as u64,
                state.buffered as u64,
                stalled as u64,
            )
        };
        BrokerStats {
            connections: load(&c.connections),
            subscriptions,
            requests: load(&c.requests),
            no_responders: load(&c.no_responders),
            responder_failures: load(&c.responder_failures),
            published: load(&c.published),
            delivered: load(&c.delivered),
            dropped: load(&c.dropped),
            buffered,
            disconnected: load(&c.disconnected),
            stalled,
        }
    }

    /// Serves one client's session until it closes; its subscriptions end
    /// with it. Every stream the client opens is handled in a task of its
    /// own on the session's runtime.
    pub async fn serve(&self, session: Session) {
        let connection = self.inner.next_connection.fetch_add(1, Ordering::Relaxed);
        self.inner
            .counters
            .connections
            .fetch_add(1, Ordering::Relaxed);
        self.inner
            .lock()
            .sessions
            .insert(connection, session.clone());
        // One accept loop per kind of stream, each in a task of its own, so
        // that a request's arrival wakes only the loop that takes it. They
        // end when the session closes.
        let runtime = session.runtime();
        let subscriptions = session.listen(SUBSCRIBE_PROTOCOL, Bytes::new());
        let broker = self.clone();
        let spawner = runtime.clone();
        runtime.spawn(Box::pin(async move {
            while let Ok(incoming) = subscriptions.accept().await {
                let broker = broker.clone();
                spawner.spawn(Box::pin(async move {
                    broker.subscribed(connection, incoming).await
                }));
            }
        }));
        // A connection's publish streams take turns, in the order they
        // came: the broker assembles one message per connection at a time,
        // so what it holds of unfinished messages is at most `max_payload`
        // per connection. The streams waiting are held back by flow
        // control, and their number by the session's stream limit.
        let publications = session.listen(PUBLISH_PROTOCOL, Bytes::new());
        let publisher = self.clone();
        runtime.spawn(Box::pin(async move {
            while let Ok(incoming) = publications.accept().await {
                publisher.publishing(incoming).await;
            }
        }));
        let requests = session.listen(REQUEST_PROTOCOL, Bytes::new());
        while let Ok(incoming) = requests.accept().await {
            let broker = self.clone();
            runtime.spawn(Box::pin(async move { broker.request(incoming).await }));
        }
        // The subscriptions' own tasks end as their streams do; requests
        // meanwhile skip responders whose session is gone.
        self.inner.lock().sessions.remove(&connection);
        self.inner
            .counters
            .connections
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// A subscription stream: registered until the client ends it.
    async fn subscribed(&self, connection: u64, incoming: Incoming) {
        let spec = match Subscribe::decode(incoming.handshake().clone()) {
            Ok(spec) => spec,
            Err(_) => return refuse(incoming, &BusError::Refused),
        };
        let id = {
            let mut state = self.inner.lock();
            let id = state.router.subscribe(connection, spec.role, &spec.pattern);
            if spec.role == Role::Subscriber {
                let outbox = Outbox::new(
                    self.inner.config.subscriber_buffer,
                    self.inner.config.slow_policy,
                );
                state.outboxes.insert(
                    id,
                    Mailbox {
                        outbox,
                        writer: None,
                        evicted: false,
                        writing: false,
                    },
                );
            }
            id
        };
        let Ok(mut stream) = incoming.accept(Bytes::copy_from_slice(&id.to_le_bytes())) else {
            self.inner.lock().end_subscription(id);
            return;
        };
        match spec.role {
            Role::Subscriber => self.deliver(id, &mut stream).await,
            // A responder's stream only says the responder is there: it
            // ends when the client unsubscribes or goes, or at shutdown.
            _ => {
                let mut byte = [0u8; 1];
                let mut closing = self.closing();
                let shut_down = poll_fn(|cx| {
                    if closing.poll(cx) {
                        return Poll::Ready(true);
                    }
                    Pin::new(&mut stream)
                        .poll_read(cx, &mut byte)
                        .map(|_| false)
                })
                .await;
                if shut_down {
                    let _ = stream.finish();
                }
            }
        }
        self.inner.lock().end_subscription(id);
    }

    /// Writes a subscriber's outbox to its stream until either ends.
    async fn deliver(&self, id: SubscriptionId, stream: &mut Stream) {
        let mut batch = BytesMut::new();
        let mut closing = self.closing();
        loop {
            // Everything queued, up to a batch, under one lock; written in
            // one go (large payloads after their header, as they are).
            let next = poll_fn(|cx| {
                // The client ending its side ends the subscription.
                let mut probe = [0u8; 1];
                if Pin::new(&mut *stream).poll_read(cx, &mut probe).is_ready() {
                    return Poll::Ready(None);
                }
                let mut state = self.inner.lock();
                let state = &mut *state;
                let Some(mailbox) = state.outboxes.get_mut(&id) else {
                    return Poll::Ready(None);
                };
                if mailbox.evicted {
                    return Poll::Ready(Some(Err(())));
                }
                // The last write finished: the writer no longer waits on
                // the subscriber (`stalled` counts only those that do).
                mailbox.writing = false;
                let before = mailbox.outbox.bytes();
                let mut large = None;
                while batch.len() < BATCH {
                    let Some(record) = mailbox.outbox.pop() else {
                        break;
                    };
                    batch.extend_from_slice(&record.header());
                    if let Record::Message { payload, .. } = record {
                        if payload.len() > crate::client::CHUNK {
                            large = Some(payload);
                            break;
                        }
                        batch.extend_from_slice(&payload);
                    }
                }
                state.buffered -= before - mailbox.outbox.bytes();
                if batch.is_empty() {
                    // Everything queued went out: a shutdown ends it now.
                    if closing.poll(cx) {
                        return Poll::Ready(Some(Ok(Next::Closing)));
                    }
                    mailbox.writer = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(Next::Batch(large))))
            })
            .await;
            let mut large = match next {
                Some(Ok(Next::Batch(large))) => large,
                Some(Ok(Next::Closing)) => {
                    let _ = stream.finish();
                    return;
                }
                Some(Err(())) => return stream.reset(SLOW_CONSUMER),
                None => return,
            };
            match self.write_batch(id, stream, &batch, &mut large).await {
                Written::All => {}
                Written::Evicted => return stream.reset(SLOW_CONSUMER),
                Written::Failed => return,
            }
            batch.clear();
        }
    }

    /// Writes `batch`, then `large`, to a subscriber. A subscriber that
    /// stops reading blocks the write; if the broker evicts it meanwhile,
    /// the write ends at once rather than when the subscriber reads again.
    async fn write_batch(
        &self,
        id: SubscriptionId,
        stream: &mut Stream,
        batch: &[u8],
        large: &mut Option<Bytes>,
    ) -> Written {
        let mut done = 0;
        poll_fn(|cx| {
            loop {
                let rest = match &*large {
                    _ if done < batch.len() => &batch[done..],
                    Some(payload) if !payload.is_empty() => &payload[..],
                    _ => return Poll::Ready(Written::All),
                };
                match Pin::new(&mut *stream).poll_write(cx, rest) {
                    Poll::Ready(Ok(n)) if done < batch.len() => done += n,
                    Poll::Ready(Ok(n)) => large.as_mut().expect("matched above").advance(n),
                    Poll::Ready(Err(_)) => return Poll::Ready(Written::Failed),
                    Poll::Pending => break,
                }
            }
            let mut state = self.inner.lock();
            match state.outboxes.get_mut(&id) {
                Some(mailbox) if mailbox.evicted => Poll::Ready(Written::Evicted),
                Some(mailbox) => {
                    mailbox.writer = Some(cx.waker().clone());
                    mailbox.writing = true;
                    Poll::Pending
                }
                None => Poll::Ready(Written::Failed),
            }
        })
        .await
    }

    /// A publish stream: every record goes to the subscribers of its channel.
    async fn publishing(&self, incoming: Incoming) {
        let Ok(mut stream) = incoming.accept(Bytes::new()) else {
            return;
        };
        let mut decoder = RecordDecoder::new(self.inner.config.max_payload);
        let mut buf = vec![0u8; crate::client::CHUNK];
        let mut closing = self.closing();
        loop {
            match decoder.next() {
                Ok(Some(Record::Message { channel, payload })) => {
                    self.publish(&channel, payload);
                    continue;
                }
                Ok(Some(_)) | Err(_) => return stream.reset(plex_proto::bus::BAD_REQUEST),
                Ok(None) => {}
            }
            // As much as there is: the decoder keeps what is past a record.
            let read = poll_fn(|cx| {
                if closing.poll(cx) {
                    return Poll::Ready(None);
                }
                Pin::new(&mut stream).poll_read(cx, &mut buf).map(Some)
            })
            .await;
            match read {
                // Shutting down: the client's next publish finds the
                // stream closed, and the server going away.
                None => return stream.reset(ErrorCode::NO_ERROR),
                Some(Ok(0) | Err(_)) => return,
                Some(Ok(n)) => decoder.push(&buf[..n]),
            }
        }
    }

    /// Offers one message to every subscriber of `channel`; never waits.
    fn publish(&self, channel: &str, payload: Bytes) {
        let counters = &self.inner.counters;
        counters.published.fetch_add(1, Ordering::Relaxed);
        let mut wake = Vec::new();
        let budget = self.inner.config.max_buffered;
        let mut state = self.inner.lock();
        let State {
            router,
            outboxes,
            buffered,
            ..
        } = &mut *state;
        for id in router.subscribers(channel) {
            let Some(mailbox) = outboxes.get_mut(&id) else {
                continue;
            };
            let before = mailbox.outbox.bytes();
            let pushed = if *buffered + payload.len() > budget {
                mailbox.outbox.push_over_budget(channel, payload.clone())
            } else {
                mailbox.outbox.push(channel, payload.clone())
            };
            *buffered = *buffered + mailbox.outbox.bytes() - before;
            match pushed {
                Pushed::Queued => {
                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                    if !mailbox.writing {
                        wake.extend(mailbox.writer.take());
                    }
                }
                Pushed::Dropped => {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    if !mailbox.evicted {
                        mailbox.evicted = true;
                        counters.disconnected.fetch_add(1, Ordering::Relaxed);
                    }
                    wake.extend(mailbox.writer.take());
                }
            }
        }
        drop(state);
        wake.into_iter().for_each(Waker::wake);
    }

    /// A request stream: joined to one responder's, or refused.
    async fn request(&self, incoming: Incoming) {
        let head = match RequestHead::decode(incoming.handshake().clone()) {
            Ok(head) => head,
            Err(_) => return refuse(incoming, &BusError::Refused),
        };
        let candidates: Vec<(SubscriptionId, Session)> = {
            let mut state = self.inner.lock();
            let ids = state.router.responders(&head.channel);
            ids.into_iter()
                .filter_map(|id| {
                    let connection = state.router.subscription(id)?.connection;
                    Some((id, state.sessions.get(&connection)?.clone()))
                })
                .collect()
        };
        // The first responder that takes the stream gets the request; one
        // whose connection is gone is skipped.
        let mut responder = None;
        let mut delivery = Delivery {
            subscription: 0,
            channel: head.channel,
        };
        for (id, session) in candidates {
            delivery.subscription = id;
            let options =
                OpenOptions::new(DELIVER_PROTOCOL, Bytes::new()).handshake(delivery.to_bytes());
            if let Ok(stream) = session.open_stream(options).await {
                responder = Some(stream);
                break;
            }
        }
        let Some(mut responder) = responder else {
            self.inner
                .counters
                .no_responders
                .fetch_add(1, Ordering::Relaxed);
            return refuse(incoming, &BusError::NoResponders);
        };
        let Ok(mut requester) = incoming.accept(Bytes::new()) else {
            return responder.reset(ErrorCode::CANCEL);
        };
        match pipe::join(&mut requester, &mut responder).await {
            Ok(()) => {
                self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
            }
            // The requester gave up (cancel, timeout, gone): so does the
            // responder.
            Err(Failed::First) => responder.reset(ErrorCode::CANCEL),
            Err(Failed::Second) => {
                self.inner
                    .counters
                    .responder_failures
                    .fetch_add(1, Ordering::Relaxed);
                requester.reset(RESPONDER_GONE);
            }
        }
    }
}

/// Refuses a stream with the code of `error`: accepted and reset at once,
/// so the client sees why.
fn refuse(incoming: Incoming, error: &BusError) {
    if let Ok(mut stream) = incoming.accept(Bytes::new()) {
        stream.reset(code_of(error));
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn end_subscription(&mut self, id: SubscriptionId) {
        self.router.unsubscribe(id);
        if let Some(mailbox) = self.outboxes.remove(&id) {
            self.buffered -= mailbox.outbox.bytes();
            if let Some(writer) = mailbox.writer {
                writer.wake();
            }
        }
    }
}
