//! State shared by the driver task and every handle of one connection.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use bytes::Bytes;
use plex_proto::{CloseReason, ErrorCode, Event, StreamId};

use crate::{Error, Runtime};

pub(crate) struct Conn {
    inner: Mutex<Inner>,
    pub(crate) runtime: Arc<dyn Runtime>,
    /// Live `Session`, `Stream`, `Listener` and `Incoming` handles. When the
    /// last one goes, the connection goes away gracefully.
    handles: AtomicUsize,
}

pub(crate) struct Inner {
    pub(crate) session: plex_proto::Session,
    pub(crate) slots: HashMap<StreamId, Slot>,
    /// Streams the peer opened that no listener claimed.
    pub(crate) accept: Waiting<Pending>,
    pub(crate) listeners: HashMap<(Bytes, Bytes), Waiting<Pending>>,
    /// Tasks waiting to open a stream once the peer's limit allows.
    pub(crate) openers: Vec<Waker>,
    pub(crate) pongs: u64,
    pub(crate) pong_waiters: Vec<Waker>,
    pub(crate) closed: Option<CloseReason>,
    pub(crate) close_waiters: Vec<Waker>,
    pub(crate) driver: Option<Waker>,
    pub(crate) io_error: Option<Arc<std::io::Error>>,
}

/// What a stream handle waits on.
#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) reader: Option<Waker>,
    pub(crate) writer: Option<Waker>,
    pub(crate) remote_open: Option<Bytes>,
    pub(crate) remote_open_waiter: Option<Waker>,
    pub(crate) ended: Option<Error>,
    /// The peer sent STOP_SENDING with this code: writes fail.
    pub(crate) stopped: Option<ErrorCode>,
}

/// A stream the peer opened, not yet accepted.
pub(crate) struct Pending {
    pub(crate) stream: StreamId,
    pub(crate) protocol: Bytes,
    pub(crate) id: Bytes,
    pub(crate) handshake: Bytes,
}

/// A queue and the task waiting on it.
pub(crate) struct Waiting<T> {
    pub(crate) queue: VecDeque<T>,
    pub(crate) waiter: Option<Waker>,
}

impl<T> Default for Waiting<T> {
    fn default() -> Self {
        Waiting {
            queue: VecDeque::new(),
            waiter: None,
        }
    }
}

/// Wakers collected under the lock, woken after it is released.
#[derive(Default)]
pub(crate) struct Wakeups(Vec<Waker>);

impl Wakeups {
    pub(crate) fn push(&mut self, waker: Option<Waker>) {
        self.0.extend(waker);
    }

    pub(crate) fn extend(&mut self, wakers: impl IntoIterator<Item = Waker>) {
        self.0.extend(wakers);
    }

    pub(crate) fn wake(self) {
        self.0.into_iter().for_each(Waker::wake);
    }
}

impl Conn {
    pub(crate) fn new(session: plex_proto::Session, runtime: Arc<dyn Runtime>) -> Arc<Conn> {
        Arc::new(Conn {
            inner: Mutex::new(Inner {
                session,
                slots: HashMap::new(),
                accept: Waiting::default(),
                listeners: HashMap::new(),
                openers: Vec::new(),
                pongs: 0,
                pong_waiters: Vec::new(),
                closed: None,
                close_waiters: Vec::new(),
                driver: None,
                io_error: None,
            }),
            runtime,
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

    /// Drops a handle; the last one sends a graceful GOAWAY.
    pub(crate) fn drop_handle(&self) {
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut inner = self.lock();
            // Already closed or going away: nothing more to say.
            let _ = inner.session.go_away(ErrorCode::NO_ERROR);
            let driver = inner.driver.take();
            drop(inner);
            driver.into_iter().for_each(Waker::wake);
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

    /// Routes one session event to the handles waiting on it.
    pub(crate) fn dispatch(&mut self, event: Event, wake: &mut Wakeups) {
        match event {
            Event::Incoming {
                stream,
                protocol,
                id,
                handshake,
            } => {
                let key = (protocol.clone(), id.clone());
                let queue = match self.listeners.get_mut(&key) {
                    Some(listener) => listener,
                    None => &mut self.accept,
                };
                queue.queue.push_back(Pending {
                    stream,
                    protocol,
                    id,
                    handshake,
                });
                wake.push(queue.waiter.take());
            }
            Event::RemoteOpen { stream, handshake } => {
                if let Some(slot) = self.slots.get_mut(&stream) {
                    slot.remote_open = Some(handshake);
                    wake.push(slot.remote_open_waiter.take());
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
                match self.slots.get_mut(&stream) {
                    Some(slot) => {
                        slot.ended = Some(Error::Reset(reason));
                        wake.push(slot.reader.take());
                        wake.push(slot.writer.take());
                        wake.push(slot.remote_open_waiter.take());
                    }
                    None => self.forget_pending(stream),
                }
                wake.extend(self.openers.drain(..));
            }
            Event::Pong { .. } => {
                self.pongs += 1;
                wake.extend(self.pong_waiters.drain(..));
            }
            Event::GoAway { .. } => wake.extend(self.openers.drain(..)),
            Event::Closed { reason } => {
                self.closed = Some(reason);
                self.wake_all(wake);
            }
            // A newer proto may report more; nothing here waits on it.
            _ => {}
        }
    }

    /// A stream reset before anyone accepted it leaves the queues.
    fn forget_pending(&mut self, stream: StreamId) {
        let queues = std::iter::once(&mut self.accept).chain(self.listeners.values_mut());
        for waiting in queues {
            waiting.queue.retain(|p| p.stream != stream);
        }
    }

    pub(crate) fn wake_all(&mut self, wake: &mut Wakeups) {
        for slot in self.slots.values_mut() {
            wake.push(slot.reader.take());
            wake.push(slot.writer.take());
            wake.push(slot.remote_open_waiter.take());
        }
        wake.push(self.accept.waiter.take());
        for listener in self.listeners.values_mut() {
            wake.push(listener.waiter.take());
        }
        wake.extend(self.openers.drain(..));
        wake.extend(self.pong_waiters.drain(..));
        wake.extend(self.close_waiters.drain(..));
    }

    /// The latest RTT measurement.
    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.session.rtt()
    }
}
