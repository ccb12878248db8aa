//! State shared by a Protomux connection's task and its handles.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use bytes::Bytes;
use plex_proto::protomux::{ChannelEnd, ChannelId, MuxCloseReason, MuxEvent, Session};

use crate::conn::Wakeups;
use crate::waiters::{self, Waiters};
use crate::{Error, Runtime};

pub(crate) struct MuxConn {
    inner: Mutex<MuxInner>,
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) linger: Duration,
    /// Live `Mux`, `MuxChannel` and `MuxListener` handles. When the last
    /// one goes, the connection closes once its output is written.
    handles: AtomicUsize,
}

/// What a listener listens for: a protocol and an id, or any id.
pub(crate) type ListenKey = (String, Option<Bytes>);

pub(crate) struct MuxInner {
    pub(crate) session: Session,
    pub(crate) slots: HashMap<ChannelId, Slot>,
    pub(crate) listeners: HashMap<ListenKey, Listening>,
    /// Tasks whose send found the output queue full.
    pub(crate) writers: Waiters,
    pub(crate) close_waiters: Waiters,
    pub(crate) driver: Option<Waker>,
    pub(crate) io_error: Option<Arc<std::io::Error>>,
    /// The driver stopped reading because a limit was reached: a read that
    /// brings the session back under it wakes the driver.
    pub(crate) paused: bool,
}

/// What a channel handle waits on.
#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) reader: Option<Waker>,
    /// The peer's handshake once its OPEN is in.
    pub(crate) opened: Option<Bytes>,
    pub(crate) open_waiters: Waiters,
    pub(crate) ended: Option<ChannelEnd>,
}

/// The channels waiting for the listeners of one key, and how many such
/// listeners exist: listening ends when the last one drops.
#[derive(Default)]
pub(crate) struct Listening {
    pub(crate) handles: usize,
    /// Announced channels and their handshakes, oldest first: accepted in
    /// this order, as the peer pairs OPENs by age.
    pub(crate) queue: VecDeque<(ChannelId, Bytes)>,
    pub(crate) waiters: Waiters,
}

/// Which waiter set a future waits in.
pub(crate) enum WaitKind {
    Writers,
    Close,
    Listener(ListenKey),
    Opened(ChannelId),
}

/// A future's place in one waiter set, removed when it is dropped.
pub(crate) struct Registration {
    kind: WaitKind,
    key: u64,
    registered: bool,
}

impl Registration {
    pub(crate) fn new(kind: WaitKind) -> Registration {
        Registration {
            kind,
            key: waiters::key(),
            registered: false,
        }
    }

    pub(crate) fn wait(&mut self, inner: &mut MuxInner, waker: &Waker) {
        if let Some(set) = inner.waiters(&self.kind) {
            set.register(self.key, waker);
            self.registered = true;
        }
    }

    /// Leaves the set (with the lock held).
    pub(crate) fn done(&mut self, inner: &mut MuxInner) {
        if std::mem::take(&mut self.registered) {
            if let Some(set) = inner.waiters(&self.kind) {
                set.remove(self.key);
            }
        }
    }

    /// Leaves the set when the future is dropped while waiting.
    pub(crate) fn cancel(&mut self, conn: &MuxConn) {
        if self.registered {
            self.done(&mut conn.lock());
        }
    }
}

impl MuxConn {
    pub(crate) fn new(session: Session, runtime: Arc<dyn Runtime>, linger: Duration) -> Arc<Self> {
        Arc::new(MuxConn {
            inner: Mutex::new(MuxInner {
                session,
                slots: HashMap::new(),
                listeners: HashMap::new(),
                writers: Waiters::default(),
                close_waiters: Waiters::default(),
                driver: None,
                io_error: None,
                paused: false,
            }),
            runtime,
            linger,
            handles: AtomicUsize::new(0),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, MuxInner> {
        // A panic under the lock is a bug here; the state is still good
        // enough to shut down.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn add_handle(&self) {
        self.handles.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops a handle; the last one closes the connection.
    pub(crate) fn drop_handle(&self) {
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut inner = self.lock();
            inner.session.close();
            let driver = inner.driver.take();
            drop(inner);
            driver.into_iter().for_each(Waker::wake);
        }
    }

    /// Whether no handle is left.
    pub(crate) fn abandoned(&self) -> bool {
        self.handles.load(Ordering::Acquire) == 0
    }
}

impl MuxInner {
    fn waiters(&mut self, kind: &WaitKind) -> Option<&mut Waiters> {
        match kind {
            WaitKind::Writers => Some(&mut self.writers),
            WaitKind::Close => Some(&mut self.close_waiters),
            WaitKind::Listener(key) => self.listeners.get_mut(key).map(|l| &mut l.waiters),
            WaitKind::Opened(channel) => self.slots.get_mut(channel).map(|s| &mut s.open_waiters),
        }
    }

    /// The driver's waker, to wake once the lock is released: it has
    /// output to write, or may read again.
    pub(crate) fn wake_driver(&mut self, wake: &mut Wakeups) {
        wake.push(self.driver.clone());
    }

    /// Why the connection ended, as an error.
    pub(crate) fn closed_error(&self) -> Option<Error> {
        self.session.close_reason().cloned().map(Error::MuxClosed)
    }

    /// Routes one event of the session to the handles waiting for it.
    pub(crate) fn dispatch(&mut self, event: MuxEvent, wake: &mut Wakeups) {
        match event {
            MuxEvent::Incoming {
                channel,
                protocol,
                id,
                handshake,
            } => {
                // A listener for the exact id first, then one for any id.
                let exact = (protocol, Some(id));
                let key = if self.listeners.contains_key(&exact) {
                    exact
                } else {
                    (exact.0, None)
                };
                match self.listeners.get_mut(&key) {
                    Some(listening) => {
                        listening.queue.push_back((channel, handshake));
                        wake.extend(listening.waiters.drain());
                    }
                    // The listener went between the OPEN and now.
                    None => {
                        let _ = self.session.reject(channel);
                    }
                }
            }
            MuxEvent::Opened { channel, handshake } => {
                if let Some(slot) = self.slots.get_mut(&channel) {
                    slot.opened = Some(handshake);
                    wake.extend(slot.open_waiters.drain());
                }
            }
            MuxEvent::Readable { channel } => {
                if let Some(slot) = self.slots.get_mut(&channel) {
                    wake.push(slot.reader.take());
                }
            }
            MuxEvent::Ended { channel, end } => {
                match self.slots.get_mut(&channel) {
                    Some(slot) => {
                        slot.ended = Some(end);
                        wake.push(slot.reader.take());
                        wake.extend(slot.open_waiters.drain());
                    }
                    // Announced to a listener, gone before it was accepted.
                    None => {
                        for listening in self.listeners.values_mut() {
                            listening.queue.retain(|(c, _)| *c != channel);
                        }
                    }
                }
                wake.extend(self.writers.drain());
            }
            MuxEvent::Writable => wake.extend(self.writers.drain()),
            MuxEvent::Closed { .. } => {
                for slot in self.slots.values_mut() {
                    wake.push(slot.reader.take());
                    wake.extend(slot.open_waiters.drain());
                }
                for listening in self.listeners.values_mut() {
                    wake.extend(listening.waiters.drain());
                }
                wake.extend(self.writers.drain());
                wake.extend(self.close_waiters.drain());
            }
            _ => {}
        }
    }
}

/// How a channel's end reads to its handle: a close by the peer, or the
/// connection ending under it, is the end of the messages; a REJECT or a
/// broken connection is an error.
pub(crate) fn end_result(end: &ChannelEnd) -> Result<(), Error> {
    match end {
        ChannelEnd::Closed | ChannelEnd::Connection(MuxCloseReason::Eof) => Ok(()),
        ChannelEnd::Rejected => Err(Error::Rejected),
        ChannelEnd::Connection(reason) => Err(Error::MuxClosed(reason.clone())),
        _ => Err(Error::Rejected),
    }
}
