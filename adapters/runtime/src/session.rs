//! The session handle: open, accept and listen for streams.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};
use plex_proto::{CloseReason, Config, ErrorCode, LocalError, OpenOptions, Role, SessionStats};

use crate::conn::{Conn, Pending, Registration, Slot, WaitKind};
use tracing::Instrument;

use crate::driver::Driver;
use crate::{DriverConfig, Error, Runtime, Stream};

/// One multiplexed connection. Cheap to clone; every clone is the same
/// connection.
///
/// When the last handle of a connection (sessions, streams, listeners) is
/// dropped, it sends a graceful GOAWAY, refuses the streams the peer opened
/// that nobody accepted (REFUSED_STREAM: safe for the peer to retry), and
/// closes once streams drain. The drain and the final flush are bounded by
/// [`DriverConfig::linger`].
pub struct Session {
    conn: Arc<Conn>,
}

impl Session {
    /// Starts a session over `io`, spawning its connection task on `runtime`.
    pub fn new<T>(
        io: T,
        role: Role,
        config: Config,
        runtime: Arc<dyn Runtime>,
    ) -> Result<Session, Error>
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Session::with_driver(io, role, config, DriverConfig::default(), runtime)
    }

    /// [`Session::new`] with settings for the connection task.
    pub fn with_driver<T>(
        io: T,
        role: Role,
        config: Config,
        driver: DriverConfig,
        runtime: Arc<dyn Runtime>,
    ) -> Result<Session, Error>
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let now = runtime.now();
        let session = plex_proto::Session::new(role, config, now)?;
        let conn = Conn::new(session, runtime, driver);
        let span = tracing::debug_span!("plex_connection", ?role);
        let driver = Driver::new(conn.clone(), io).instrument(span);
        conn.runtime.spawn(Box::pin(driver));
        Ok(Session::from_conn(conn))
    }

    /// A session for the side that dialled `io`.
    pub fn client<T>(io: T, config: Config, runtime: Arc<dyn Runtime>) -> Result<Session, Error>
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Session::new(io, Role::Client, config, runtime)
    }

    /// A session for the side that accepted `io`.
    pub fn server<T>(io: T, config: Config, runtime: Arc<dyn Runtime>) -> Result<Session, Error>
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Session::new(io, Role::Server, config, runtime)
    }

    /// The shared state, for the crate's tests.
    #[cfg(test)]
    pub(crate) fn conn(&self) -> &Conn {
        &self.conn
    }

    fn from_conn(conn: Arc<Conn>) -> Session {
        conn.add_handle();
        Session { conn }
    }

    /// Opens a stream. Waits while the peer's stream limit is reached.
    pub async fn open_stream(&self, options: OpenOptions) -> Result<Stream, Error> {
        let mut waiting = Registration::new(&self.conn, WaitKind::Open);
        poll_fn(|cx| {
            let mut inner = self.conn.lock();
            match inner.session.open(options.clone()) {
                Ok(id) => {
                    waiting.done(&mut inner);
                    inner.slots.insert(id, Slot::default());
                    let driver = inner.driver.clone();
                    drop(inner);
                    driver.into_iter().for_each(|w| w.wake());
                    Poll::Ready(Ok(Stream::new(self.conn.clone(), id)))
                }
                Err(LocalError::StreamLimit) => {
                    waiting.wait(&mut inner, cx.waker());
                    Poll::Pending
                }
                Err(LocalError::Closed) => Poll::Ready(Err(inner.closed_error())),
                Err(e) => Poll::Ready(Err(e.into())),
            }
        })
        .await
    }

    /// The next stream the peer opened that no [`Listener`] claimed,
    /// accepted with an empty handshake. Its opener's handshake is
    /// [`Stream::remote_open`].
    ///
    /// Streams the peer reset before they were accepted are skipped: an
    /// error means the connection is closed, so an accept loop may stop.
    pub async fn accept_stream(&self) -> Result<Stream, Error> {
        loop {
            let incoming = self.accept_incoming().await?;
            match incoming.accept(Bytes::new()) {
                Ok(stream) => return Ok(stream),
                // Reset (or refused by a closing session) since it queued.
                Err(Error::Local(LocalError::UnknownStream(_) | LocalError::NotPending(_))) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next stream the peer opened that no [`Listener`] claimed, to
    /// accept with a handshake of our own or to refuse. Any number of tasks
    /// may wait here; each stream goes to one of them, and all of them wake
    /// when the connection closes.
    pub async fn accept_incoming(&self) -> Result<Incoming, Error> {
        let mut waiting = Registration::new(&self.conn, WaitKind::Accept);
        poll_fn(|cx| {
            let mut inner = self.conn.lock();
            if let Some(pending) = inner.accept.queue.pop_front() {
                waiting.done(&mut inner);
                return Poll::Ready(Ok(Incoming::new(self.conn.clone(), pending)));
            }
            if inner.closed.is_some() {
                waiting.done(&mut inner);
                return Poll::Ready(Err(inner.closed_error()));
            }
            waiting.wait(&mut inner, cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Claims streams the peer opens for `protocol` and channel `id`. They
    /// are accepted even when the config's `accept_any` is off. Listeners
    /// of the same protocol and id share its streams (each goes to one of
    /// them); listening ends when the last of them drops.
    ///
    /// Matching streams that arrived before, and wait unclaimed for
    /// [`accept_stream`](Session::accept_stream), are claimed too: a peer
    /// may open a lane the moment the connection is up, before this side
    /// has started listening.
    pub fn listen(&self, protocol: impl Into<Bytes>, id: impl Into<Bytes>) -> Listener {
        let key = (protocol.into(), id.into());
        let mut inner = self.conn.lock();
        let early: std::collections::VecDeque<_> = {
            let queue = &mut inner.accept.queue;
            let (mine, others) = std::mem::take(queue)
                .into_iter()
                .partition(|p| p.protocol == key.0 && p.id == key.1);
            *queue = others;
            mine
        };
        let listening = inner.listeners.entry(key.clone()).or_default();
        listening.handles += 1;
        listening.waiting.queue.extend(early);
        // Streams parked for a listener (the claim grace) arrive as
        // events, which the queue made above receives.
        inner.session.listen(key.0.clone(), key.1.clone());
        let wake = inner.take_events();
        drop(inner);
        wake.wake();
        self.conn.add_handle();
        Listener {
            conn: self.conn.clone(),
            key,
        }
    }

    /// Whether streams the peer opens that no [`Listener`] claims are
    /// queued for [`accept_stream`](Session::accept_stream) (`true`, the
    /// config's default) or refused at once with REFUSED_STREAM (`false`).
    pub fn set_accept_any(&self, accept_any: bool) {
        let mut inner = self.conn.lock();
        inner.session.set_accept_any(accept_any);
        let wake = inner.take_events();
        drop(inner);
        wake.wake();
    }

    /// How long a stream that no [`Listener`] claims waits for one before
    /// it is refused, when `accept_any` is off; `None` (the default)
    /// refuses it at once. A peer may open a lane the moment the
    /// connection is up, before this side listens: the grace covers that.
    pub fn set_claim_grace(&self, grace: Option<Duration>) {
        let mut inner = self.conn.lock();
        inner.session.set_claim_grace(grace);
        let wake = inner.take_events();
        drop(inner);
        wake.wake();
    }

    /// The runtime the session's connection task runs on, for the layers
    /// above that need its timers, clock or spawner.
    pub fn runtime(&self) -> Arc<dyn Runtime> {
        self.conn.runtime.clone()
    }

    /// Counters and windows.
    pub fn stats(&self) -> SessionStats {
        self.conn.lock().session.stats()
    }

    /// Sends a PING and returns the round-trip time of the next answer.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let mut ticket = None;
        let mut waiting = Registration::new(&self.conn, WaitKind::Pong);
        poll_fn(|cx| {
            let mut inner = self.conn.lock();
            if inner.closed.is_some() {
                waiting.done(&mut inner);
                return Poll::Ready(Err(inner.closed_error()));
            }
            match ticket {
                None => {
                    inner.session.ping()?;
                    ticket = Some(inner.pongs);
                    let driver = inner.driver.clone();
                    waiting.wait(&mut inner, cx.waker());
                    drop(inner);
                    driver.into_iter().for_each(|w| w.wake());
                    Poll::Pending
                }
                Some(sent) if inner.pongs > sent => {
                    waiting.done(&mut inner);
                    Poll::Ready(
                        inner
                            .rtt()
                            .ok_or(Error::Closed(CloseReason::TransportClosed)),
                    )
                }
                Some(_) => {
                    waiting.wait(&mut inner, cx.waker());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Sends GOAWAY: with NO_ERROR a graceful drain, otherwise an immediate
    /// close (see [`plex_proto::Session::go_away`]).
    pub fn go_away(&self, code: ErrorCode) -> Result<(), Error> {
        let mut inner = self.conn.lock();
        inner.session.go_away(code)?;
        let wake = inner.take_events();
        drop(inner);
        wake.wake();
        Ok(())
    }

    /// Closes gracefully: GOAWAY, then waits until every stream has finished
    /// and the connection is closed. Streams the peer opened that were not
    /// accepted yet (by [`accept_stream`](Session::accept_stream) or a
    /// [`Listener`]) are refused with REFUSED_STREAM, which tells the peer it
    /// may retry them elsewhere; so are any still arriving.
    pub async fn close(&self) -> Result<(), Error> {
        match self.go_away(ErrorCode::NO_ERROR) {
            Ok(()) | Err(Error::Local(LocalError::Closed)) => {}
            Err(e) => return Err(e),
        }
        let wake = self.conn.lock().refuse_unaccepted();
        wake.wake();
        match self.closed().await {
            CloseReason::Drained | CloseReason::Local(ErrorCode::NO_ERROR) => Ok(()),
            other => Err(Error::Closed(other)),
        }
    }

    /// Waits until the connection is closed and returns why.
    pub async fn closed(&self) -> CloseReason {
        let mut waiting = Registration::new(&self.conn, WaitKind::Close);
        poll_fn(|cx| {
            let mut inner = self.conn.lock();
            match inner.closed.clone() {
                Some(reason) => {
                    waiting.done(&mut inner);
                    Poll::Ready(reason)
                }
                None => {
                    waiting.wait(&mut inner, cx.waker());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.conn.lock().closed.is_some()
    }
}

impl Clone for Session {
    fn clone(&self) -> Session {
        Session::from_conn(self.conn.clone())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.conn.drop_handle();
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Streams the peer opens for one protocol and channel id.
///
/// Dropping it stops listening and refuses streams it had not handed out.
pub struct Listener {
    conn: Arc<Conn>,
    key: (Bytes, Bytes),
}

impl Listener {
    /// The next matching stream the peer opened.
    ///
    /// Any number of tasks may wait here; each stream goes to one of them,
    /// and all of them wake when the connection closes.
    pub async fn accept(&self) -> Result<Incoming, Error> {
        let mut waiting = Registration::new(&self.conn, WaitKind::Listener(self.key.clone()));
        poll_fn(|cx| {
            let mut inner = self.conn.lock();
            if inner.closed.is_some() {
                waiting.done(&mut inner);
                return Poll::Ready(Err(inner.closed_error()));
            }
            let Some(queue) = inner.listeners.get_mut(&self.key).map(|l| &mut l.waiting) else {
                return Poll::Ready(Err(Error::Closed(CloseReason::TransportClosed)));
            };
            if let Some(pending) = queue.queue.pop_front() {
                waiting.done(&mut inner);
                return Poll::Ready(Ok(Incoming::new(self.conn.clone(), pending)));
            }
            waiting.wait(&mut inner, cx.waker());
            Poll::Pending
        })
        .await
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut inner = self.conn.lock();
        let last = inner.listeners.get_mut(&self.key).is_some_and(|l| {
            l.handles -= 1;
            l.handles == 0
        });
        if last {
            inner.session.unlisten(&self.key.0, &self.key.1);
            if let Some(listening) = inner.listeners.remove(&self.key) {
                for pending in listening.waiting.queue {
                    // Gone already if the peer reset it or the session closed.
                    let _ = inner.session.refuse(pending.stream);
                }
            }
        }
        let driver = inner.driver_if_needed();
        drop(inner);
        driver.into_iter().for_each(|w| w.wake());
        self.conn.drop_handle();
    }
}

/// A stream the peer opened, waiting for us to accept or refuse it.
/// Dropping it refuses it.
pub struct Incoming {
    conn: Arc<Conn>,
    pending: Option<Pending>,
}

impl Incoming {
    fn new(conn: Arc<Conn>, pending: Pending) -> Incoming {
        conn.add_handle();
        Incoming {
            conn,
            pending: Some(pending),
        }
    }

    fn pending(&self) -> &Pending {
        // Taken only by `accept` and `refuse`, which consume `self`.
        self.pending
            .as_ref()
            .expect("pending until accepted or refused")
    }

    /// The protocol name the peer opened the stream for.
    pub fn protocol(&self) -> &Bytes {
        &self.pending().protocol
    }

    /// The channel id the peer opened the stream for.
    pub fn channel_id(&self) -> &Bytes {
        &self.pending().id
    }

    /// The peer's handshake.
    pub fn handshake(&self) -> &Bytes {
        &self.pending().handshake
    }

    /// Accepts, answering with `handshake`.
    pub fn accept(mut self, handshake: impl Into<Bytes>) -> Result<Stream, Error> {
        let Some(pending) = self.pending.take() else {
            return Err(Error::Closed(CloseReason::TransportClosed));
        };
        let mut inner = self.conn.lock();
        match inner.session.accept(pending.stream, handshake) {
            Ok(()) => {}
            // The connection closed under us.
            Err(_) if inner.closed.is_some() => return Err(inner.closed_error()),
            // Includes a stream the peer reset before we accepted it.
            Err(e) => return Err(e.into()),
        }
        // The slot goes in first: `accept` queued RemoteOpen, and
        // dispatching it fills the slot with the peer's handshake.
        inner.slots.insert(pending.stream, Slot::default());
        let wake = inner.take_events();
        drop(inner);
        wake.wake();
        Ok(Stream::new(self.conn.clone(), pending.stream))
    }

    /// Refuses with REFUSED_STREAM; data the peer sent is dropped.
    pub fn refuse(mut self) {
        self.refuse_pending();
    }

    fn refuse_pending(&mut self) {
        if let Some(pending) = self.pending.take() {
            let mut inner = self.conn.lock();
            // Gone already if the peer reset it or the session closed.
            let _ = inner.session.refuse(pending.stream);
            let driver = inner.driver_if_needed();
            drop(inner);
            driver.into_iter().for_each(|w| w.wake());
        }
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.refuse_pending();
        self.conn.drop_handle();
    }
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.pending.as_ref();
        f.debug_struct("Incoming")
            .field("stream", &p.map(|p| p.stream))
            .field("protocol", &p.map(|p| &p.protocol))
            .field("id", &p.map(|p| &p.id))
            .finish()
    }
}
