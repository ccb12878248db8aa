//! State shared by the driver task and every handle of one connection.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use bytes::Bytes;
use plex_proto::{CloseReason, ErrorCode, Event, StreamId, StreamIdHasher};

use crate::waiters::{self, Waiters};
use crate::{DriverConfig, Error, Runtime};

pub(crate) struct Conn {
    inner: Mutex<Inner>,
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) driver_config: DriverConfig,
    /// Live `Session`, `Stream`, `Listener` and `Incoming` handles. When the
    /// last one goes, the connection goes away gracefully.
    handles: AtomicUsize,
}

pub(crate) struct Inner {
    pub(crate) session: plex_proto::Session,
    /// Our streams' slots. Their ids are hashed as the session's own
    /// stream table hashes them: their number is bounded by the streams
    /// this side opened or accepted.
    pub(crate) slots: HashMap<StreamId, Slot, BuildHasherDefault<StreamIdHasher>>,
    /// Streams the peer opened that no listener claimed.
    pub(crate) accept: Waiting<Pending>,
    pub(crate) listeners: HashMap<(Bytes, Bytes), Listening>,
    /// Tasks waiting to open a stream once the peer's limit allows.
    pub(crate) openers: Waiters,
    pub(crate) pongs: u64,
    pub(crate) pong_waiters: Waiters,
    pub(crate) closed: Option<CloseReason>,
    pub(crate) close_waiters: Waiters,
    pub(crate) driver: Option<Waker>,
    pub(crate) io_error: Option<Arc<std::io::Error>>,
    /// Streams the peer opens are refused instead of queued: the session is
    /// closing, so nobody will accept them and the drain must not wait.
    pub(crate) refusing: bool,
    /// The last handle is gone: the driver lingers, then drops the transport.
    pub(crate) abandoned: bool,
}

/// What a stream handle waits on.
#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) reader: Option<Waker>,
    pub(crate) writer: Option<Waker>,
    pub(crate) remote_open: RemoteOpen,
    /// Why the stream ended abruptly. Boxed: an error is large and rare,
    /// and every stream has a slot.
    pub(crate) ended: Option<Box<Error>>,
    /// The application read end-of-stream: the session may forget the
    /// stream, and later reads still see the end.
    pub(crate) read_end: bool,
    /// The peer sent STOP_SENDING with this code: writes fail.
    pub(crate) stopped: Option<ErrorCode>,
}

/// The peer's handshake, or the tasks waiting for it: one field, as small
/// as the handshake alone, since every stream has one.
pub(crate) enum RemoteOpen {
    Waiting(Waiters),
    Arrived(Bytes),
}

impl Default for RemoteOpen {
    fn default() -> Self {
        RemoteOpen::Waiting(Waiters::default())
    }
}

impl RemoteOpen {
    fn waiters(&mut self) -> Option<&mut Waiters> {
        match self {
            RemoteOpen::Waiting(waiters) => Some(waiters),
            RemoteOpen::Arrived(_) => None,
        }
    }
}

/// A stream the peer opened, not yet accepted.
pub(crate) struct Pending {
    pub(crate) stream: StreamId,
    pub(crate) protocol: Bytes,
    pub(crate) id: Bytes,
    pub(crate) handshake: Bytes,
}

/// A queue and the tasks waiting on it.
/// The streams waiting for the [`Listener`](crate::Listener)s of one
/// protocol and id, and how many such listeners exist: listening ends when
/// the last of them drops.
#[derive(Default)]
pub(crate) struct Listening {
    pub(crate) handles: usize,
    pub(crate) waiting: Waiting<Pending>,
}

pub(crate) struct Waiting<T> {
    pub(crate) queue: VecDeque<T>,
    pub(crate) waiters: Waiters,
}

impl<T> Default for Waiting<T> {
    fn default() -> Self {
        Waiting {
            queue: VecDeque::new(),
            waiters: Waiters::default(),
        }
    }
}

/// Which waiter set of a connection a future waits in.
pub(crate) enum WaitKind {
    Accept,
    Listener((Bytes, Bytes)),
    Open,
    Pong,
    Close,
    RemoteOpen(StreamId),
}

/// A future's place in one waiter set: registered on a pending poll,
/// removed when the future completes or is dropped.
pub(crate) struct Registration<'a> {
    conn: &'a Conn,
    kind: WaitKind,
    key: u64,
    registered: bool,
}

impl<'a> Registration<'a> {
    pub(crate) fn new(conn: &'a Conn, kind: WaitKind) -> Registration<'a> {
        Registration {
            conn,
            kind,
            key: waiters::key(),
            registered: false,
        }
    }

    /// Waits: stores or refreshes the task's waker (with the lock held).
    pub(crate) fn wait(&mut self, inner: &mut Inner, waker: &Waker) {
        if let Some(set) = inner.waiters(&self.kind) {
            set.register(self.key, waker);
            self.registered = true;
        }
    }

    /// Done waiting (with the lock held): saves `Drop` a lock.
    pub(crate) fn done(&mut self, inner: &mut Inner) {
        if std::mem::take(&mut self.registered) {
            if let Some(set) = inner.waiters(&self.kind) {
                set.remove(self.key);
            }
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if self.registered {
            let mut inner = self.conn.lock();
            if let Some(set) = inner.waiters(&self.kind) {
                set.remove(self.key);
            }
        }
    }
}

/// Wakers collected under the lock, woken after it is released.
///
/// The first is held inline: most rounds and most calls wake one task
/// (often just the driver), and then collecting allocates nothing.
#[derive(Default)]
pub(crate) struct Wakeups {
    first: Option<Waker>,
    rest: Vec<Waker>,
}

impl Wakeups {
    pub(crate) fn push(&mut self, waker: Option<Waker>) {
        let Some(waker) = waker else { return };
        if self.first.is_none() {
            self.first = Some(waker);
        } else {
            self.rest.push(waker);
        }
    }

    pub(crate) fn extend(&mut self, wakers: impl IntoIterator<Item = Waker>) {
        for waker in wakers {
            self.push(Some(waker));
        }
    }

    pub(crate) fn wake(self) {
        self.first
            .into_iter()
            .chain(self.rest)
            .for_each(Waker::wake);
    }

    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }
}

impl Conn {
    pub(crate) fn new(
        session: plex_proto::Session,
        runtime: Arc<dyn Runtime>,
        driver_config: DriverConfig,
    ) -> Arc<Conn> {
        Arc::new(Conn {
            inner: Mutex::new(Inner {
                session,
                slots: HashMap::default(),
                accept: Waiting::default(),
                listeners: HashMap::new(),
                openers: Waiters::default(),
                pongs: 0,
                pong_waiters: Waiters::default(),
                closed: None,
                close_waiters: Waiters::default(),
                driver: None,
                io_error: None,
                refusing: false,
                abandoned: false,
            }),
            runtime,
            driver_config,
            handles: AtomicUsize::new(0),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock is a bug in this crate; the state
        // is still consistent enough to shut down, so keep going.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn add_handle(&self) {
        self.handles.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops a handle; the last one sends a graceful GOAWAY, refuses the
    /// streams nobody can accept any more, and leaves the driver to linger.
    pub(crate) fn drop_handle(&self) {
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut inner = self.lock();
            inner.abandoned = true;
            // Already closed or going away: nothing more to say.
            let _ = inner.session.go_away(ErrorCode::NO_ERROR);
            let mut wake = inner.refuse_unaccepted();
            wake.push(inner.driver.take());
            drop(inner);
            wake.wake();
        }
    }
}

impl Inner {
    /// The error for an operation on a connection that is no longer usable.
    pub(crate) fn closed_error(&self) -> Error {
        match (&self.io_error, &self.closed) {
            (Some(io), _) => Error::Io(io.clone()),
            (None, Some(reason)) => Error::Closed(reason.clone()),
            (None, None) => Error::Closed(CloseReason::TransportClosed),
        }
    }

    /// The driver's waker if the session has output, to wake after unlocking.
    pub(crate) fn driver_if_needed(&self) -> Option<Waker> {
        if self.session.wants_transmit() {
            self.driver.clone()
        } else {
            None
        }
    }

    /// After a mutation that queued events (accept, go_away), dispatches them
    /// and returns the wakeups, the driver's included, to run after
    /// unlocking.
    pub(crate) fn take_events(&mut self) -> Wakeups {
        let mut wake = Wakeups::default();
        wake.push(self.driver.clone());
        while let Some(event) = self.session.poll_event() {
            self.dispatch(event, &mut wake);
        }
        wake
    }

    /// Refuses (REFUSED_STREAM, safe for the peer to retry) every stream
    /// waiting to be accepted, now and from now on: a closing session's
    /// drain would otherwise wait for them forever.
    pub(crate) fn refuse_unaccepted(&mut self) -> Wakeups {
        self.refusing = true;
        // Queue them all first: dispatching refuses the ones still coming.
        let mut wake = self.take_events();
        let queues = std::iter::once(&mut self.accept)
            .chain(self.listeners.values_mut().map(|l| &mut l.waiting));
        let pending: Vec<StreamId> = queues
            .flat_map(|waiting| waiting.queue.drain(..))
            .map(|p| p.stream)
            .collect();
        for stream in pending {
            // Gone already if the peer reset it or the session closed.
            let _ = self.session.refuse(stream);
        }
        // Refusing the last one can end the drain: `Closed` must be seen.
        while let Some(event) = self.session.poll_event() {
            self.dispatch(event, &mut wake);
        }
        wake
    }

    /// The waiter set of one kind, if it still exists.
    pub(crate) fn waiters(&mut self, kind: &WaitKind) -> Option<&mut Waiters> {
        match kind {
            WaitKind::Accept => Some(&mut self.accept.waiters),
            WaitKind::Listener(key) => self.listeners.get_mut(key).map(|l| &mut l.waiting.waiters),
            WaitKind::Open => Some(&mut self.openers),
            WaitKind::Pong => Some(&mut self.pong_waiters),
            WaitKind::Close => Some(&mut self.close_waiters),
            WaitKind::RemoteOpen(id) => {
                self.slots.get_mut(id).and_then(|s| s.remote_open.waiters())
            }
        }
    }

    /// Routes one session event to the handles waiting on it.
    pub(crate) fn dispatch(&mut self, event: Event, wake: &mut Wakeups) {
        match event {
            Event::Incoming {
                stream,
                protocol,
                id,
                handshake,
            } => {
                tracing::debug!(?stream, ?protocol, ?id, "the peer opened a stream");
                if self.refusing {
                    // Gone already if the peer reset it.
                    let _ = self.session.refuse(stream);
                    wake.push(self.driver.clone());
                    return;
                }
                let key = (protocol.clone(), id.clone());
                let queue = match self.listeners.get_mut(&key) {
                    Some(listener) => &mut listener.waiting,
                    None => &mut self.accept,
                };
                queue.queue.push_back(Pending {
                    stream,
                    protocol,
                    id,
                    handshake,
                });
                wake.extend(queue.waiters.drain());
            }
            Event::RemoteOpen { stream, handshake } => {
                if let Some(slot) = self.slots.get_mut(&stream) {
                    let arrived = RemoteOpen::Arrived(handshake);
                    if let RemoteOpen::Waiting(mut waiters) =
                        std::mem::replace(&mut slot.remote_open, arrived)
                    {
                        wake.extend(waiters.drain());
                    }
                }
            }
            Event::Readable { stream } | Event::Finished { stream } => {
                if let Some(slot) = self.slots.get_mut(&stream) {
                    wake.push(slot.reader.take());
                }
            }
            Event::Writable { stream } => {
                if let Some(slot) = self.slots.get_mut(&stream) {
                    wake.push(slot.writer.take());
                }
            }
            Event::Stopped { stream, code } => {
                if let Some(slot) = self.slots.get_mut(&stream) {
                    slot.stopped = Some(code);
                    wake.push(slot.writer.take());
                }
            }
            Event::Reset { stream, reason } => {
                tracing::debug!(?stream, ?reason, "stream reset");
                match self.slots.get_mut(&stream) {
                    Some(slot) => {
                        slot.ended = Some(Box::new(Error::Reset(reason)));
                        wake.push(slot.reader.take());
                        wake.push(slot.writer.take());
                        wake.extend(
                            slot.remote_open
                                .waiters()
                                .into_iter()
                                .flat_map(Waiters::drain),
                        );
                    }
                    None => self.forget_pending(stream),
                }
                wake.extend(self.openers.drain());
            }
            Event::Pong { .. } => {
                self.pongs += 1;
                wake.extend(self.pong_waiters.drain());
            }
            Event::GoAway { code, .. } => {
                tracing::debug!(?code, "the peer is going away (GOAWAY)");
                wake.extend(self.openers.drain());
            }
            Event::Closed { reason } => {
                tracing::debug!(?reason, "connection closed");
                self.closed = Some(reason);
                self.wake_all(wake);
            }
            // A newer proto may report more; nothing here waits on it.
            _ => {}
        }
    }

    /// A stream reset before anyone accepted it leaves the queues.
    fn forget_pending(&mut self, stream: StreamId) {
        let queues = std::iter::once(&mut self.accept)
            .chain(self.listeners.values_mut().map(|l| &mut l.waiting));
        for waiting in queues {
            waiting.queue.retain(|p| p.stream != stream);
        }
    }

    pub(crate) fn wake_all(&mut self, wake: &mut Wakeups) {
        for slot in self.slots.values_mut() {
            wake.push(slot.reader.take());
            wake.push(slot.writer.take());
            wake.extend(
                slot.remote_open
                    .waiters()
                    .into_iter()
                    .flat_map(Waiters::drain),
            );
        }
        wake.extend(self.accept.waiters.drain());
        for listener in self.listeners.values_mut() {
            wake.extend(listener.waiting.waiters.drain());
        }
        wake.extend(self.openers.drain());
        wake.extend(self.pong_waiters.drain());
        wake.extend(self.close_waiters.drain());
    }

    /// The latest RTT measurement.
    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.session.rtt()
    }
}
