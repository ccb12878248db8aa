//! Accepting connections that need a handshake (a WebSocket upgrade) without
//! letting one slow client hold up the others.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::transport::{BoxIo, BoxResult, Io, TransportListener};
use crate::waiters::{self, Waiters};
use crate::{Endpoint, Error, Runtime};

/// How long a client may take over its handshake unless told otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes under way or finished and not yet taken, per listener.
const MAX_HANDSHAKES: usize = 128;

/// The raw connections of a listening socket, before their handshake.
pub trait RawListener: Send + Sync + 'static {
    /// One accepted connection.
    type Conn: Send + 'static;

    /// The next connection and a description of its peer.
    fn accept(&self) -> BoxResult<'_, (Self::Conn, String)>;

    /// The endpoint actually bound.
    fn local_endpoint(&self) -> Endpoint;
}

/// Turns a raw connection into a byte stream (a WebSocket upgrade).
pub type Handshake<C> = Arc<dyn Fn(C) -> BoxResult<'static, BoxIo> + Send + Sync>;

/// A [`TransportListener`] that runs each connection's handshake in a task
/// of its own, bounded by a timeout.
///
/// A client that stays silent, fails its handshake or disconnects delays
/// nobody and is dropped; [`accept`](TransportListener::accept) returns the
/// next connection that completed its handshake. It fails only when the
/// listening socket itself fails: errors that concern one connection
/// (aborted, reset) are skipped. At most 128 handshakes run at once; past
/// that, new connections wait in the socket's backlog.
pub struct HandshakeListener<L: RawListener> {
    raw: L,
    runtime: Arc<dyn Runtime>,
    handshake: Handshake<L::Conn>,
    timeout: Duration,
    done: Arc<Mutex<Done>>,
}

#[derive(Default)]
struct Done {
    ready: VecDeque<(BoxIo, String)>,
    running: usize,
    waiters: Waiters,
}

impl<L: RawListener> HandshakeListener<L> {
    /// Accepts from `raw`, running `handshake` on each connection for at
    /// most `timeout`, in tasks spawned on `runtime`.
    pub fn new(
        raw: L,
        runtime: Arc<dyn Runtime>,
        handshake: Handshake<L::Conn>,
        timeout: Duration,
    ) -> HandshakeListener<L> {
        HandshakeListener {
            raw,
            runtime,
            handshake,
            timeout,
            done: Arc::default(),
        }
    }

    /// Starts one connection's handshake in its own task.
    fn start(&self, conn: L::Conn, peer: String) {
        lock(&self.done).running += 1;
        // Made before the task: freed even if the task is never polled.
        let mut running = Running {
            done: self.done.clone(),
            io: None,
        };
        let handshake = (self.handshake)(conn);
        let expiry = self.runtime.sleep_until(self.runtime.now() + self.timeout);
        self.runtime.spawn(Box::pin(async move {
            if let Some(Ok(io)) = first(handshake, expiry).await {
                running.succeeded(io, peer);
            }
        }));
    }

    async fn next(&self) -> Result<(BoxIo, String), Error> {
        let key = waiters::key();
        let _leave = Leave {
            done: &self.done,
            key,
        };
        let mut raw: Option<BoxResult<'_, (L::Conn, String)>> = None;
        poll_fn(|cx| loop {
            let mut state = lock(&self.done);
            if let Some(ready) = state.ready.pop_front() {
                return Poll::Ready(Ok(ready));
            }
            state.waiters.register(key, cx.waker());
            let full = state.running + state.ready.len() >= MAX_HANDSHAKES;
            drop(state);
            if full {
                return Poll::Pending;
            }
            let accept = raw.get_or_insert_with(|| self.raw.accept());
            match accept.as_mut().poll(cx) {
                Poll::Ready(Ok((conn, peer))) => {
                    raw = None;
                    self.start(conn, peer);
                }
                Poll::Ready(Err(e)) if concerns_one_connection(&e) => raw = None,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await
    }
}

impl<L: RawListener> TransportListener for HandshakeListener<L> {
    fn accept(&self) -> BoxResult<'_, (BoxIo, String)> {
        Box::pin(self.next())
    }

    fn local_endpoint(&self) -> Endpoint {
        self.raw.local_endpoint()
    }
}

/// A [`TransportListener`] over connections that need no handshake (TCP).
/// Errors that concern one connection are skipped, as in
/// [`HandshakeListener`].
pub struct PlainListener<L>(pub L);

impl<L: RawListener> TransportListener for PlainListener<L>
where
    L::Conn: Io,
{
    fn accept(&self) -> BoxResult<'_, (BoxIo, String)> {
        Box::pin(async move {
            loop {
                match self.0.accept().await {
                    Ok((conn, peer)) => return Ok((Box::new(conn) as BoxIo, peer)),
                    Err(e) if concerns_one_connection(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        })
    }

    fn local_endpoint(&self) -> Endpoint {
        self.0.local_endpoint()
    }
}

/// Whether an accept error concerns only the connection being accepted
/// (which is then skipped), not the listening socket.
pub fn concerns_one_connection(e: &Error) -> bool {
    let Error::Io(e) = e else { return false };
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::TimedOut
            | io::ErrorKind::WouldBlock
    )
}

/// One handshake task's slot: freed, with its connection queued if the
/// handshake succeeded, however the task ends (dropped by a runtime
/// shutting down included).
struct Running {
    done: Arc<Mutex<Done>>,
    io: Option<(BoxIo, String)>,
}

impl Running {
    /// Queues the connection for `accept` when the task ends.
    fn succeeded(&mut self, io: BoxIo, peer: String) {
        self.io = Some((io, peer));
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut state = lock(&self.done);
        state.running -= 1;
        state.ready.extend(self.io.take());
        // Woken either way: a slot for another handshake is free.
        let wake: Vec<Waker> = state.waiters.drain().collect();
        drop(state);
        wake.into_iter().for_each(Waker::wake);
    }
}

/// Leaves the waiter set when an `accept` future ends or is dropped.
struct Leave<'a> {
    done: &'a Mutex<Done>,
    key: u64,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        lock(self.done).waiters.remove(self.key);
    }
}

fn lock(done: &Mutex<Done>) -> MutexGuard<'_, Done> {
    // Nothing in this module panics with the lock held; stay usable anyway.
    done.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `future`'s output, or `None` if `expiry` completes first.
pub(crate) async fn first<F: Future>(
    future: F,
    mut expiry: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    poll_fn(|cx| {
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        expiry.as_mut().poll(cx).map(|()| None)
    })
    .await
}
