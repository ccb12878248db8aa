//! The Protomux wire (what JavaScript Plex speaks), driven on any runtime.
//!
//! A [`Mux`] runs a [`plex_proto::protomux::Session`] over a transport in a
//! connection task of its own, as [`Session`](crate::Session) runs `plex/1`.
//! Channels are opened by protocol and id and carry whole messages:
//! [`Mux::open`] one, [`Mux::listen`] for the peer's. On a byte stream
//! (TCP) every message is preceded by its length as a u32 little-endian;
//! on WebSocket every message is one binary message (the transports'
//! [`dial_messages`](crate::Transport::dial_messages)).
//!
//! Protomux has no flow control: a channel whose reader falls behind holds
//! its messages up to [`MuxConfig::channel_buffer`], then the connection
//! stops reading the transport until the reader catches up, and the
//! transport's backpressure reaches the peer. One slow channel therefore
//! slows every channel of its connection: read them all.

mod channel;
mod conn;
mod driver;

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};
use plex_proto::protomux::Session;
pub use plex_proto::protomux::{
    ChannelId, MuxCloseReason, MuxConfig, MuxError, MuxLocalError, MuxStats,
};

pub use channel::{MuxChannel, MuxListener};
use conn::{MuxConn, Registration, Slot, WaitKind};
use driver::MuxDriver;

use crate::conn::Wakeups;
use crate::transport::{Transport, TransportListener};
use crate::{Endpoint, Error, Runtime};

/// How long a closing connection may go without the transport taking a
/// byte before it is dropped.
const LINGER: Duration = Duration::from_secs(5);

/// One Protomux connection. Cheap to clone; clones are the same
/// connection. It closes when [`close`](Mux::close) is called or the last
/// handle (muxes, channels, listeners) is dropped, once what was sent is
/// written (or after 5 s of the transport taking nothing).
pub struct Mux {
    conn: Arc<MuxConn>,
}

impl Mux {
    /// Runs a Protomux connection over `io`, a length-prefixed byte stream.
    pub fn new<T>(io: T, config: MuxConfig, runtime: Arc<dyn Runtime>) -> Result<Mux, Error>
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let session = Session::new(config)?;
        let conn = MuxConn::new(session, runtime, LINGER);
        conn.runtime
            .spawn(Box::pin(MuxDriver::new(conn.clone(), io)));
        conn.add_handle();
        Ok(Mux { conn })
    }

    /// Opens a channel for `protocol` and `id` with `handshake` (sent as
    /// its bytes: neonplex's default raw encoding). Returns at once:
    /// messages may be sent before the peer answers, and it buffers them;
    /// [`MuxChannel::opened`] waits for its answer.
    pub fn open(
        &self,
        protocol: &str,
        id: impl Into<Bytes>,
        handshake: impl Into<Bytes>,
    ) -> Result<MuxChannel, Error> {
        let mut inner = self.conn.lock();
        let channel = inner.session.open(protocol, id.into(), handshake.into())?;
        inner.slots.insert(channel, Slot::default());
        let mut wake = Wakeups::default();
        inner.wake_driver(&mut wake);
        drop(inner);
        wake.wake();
        Ok(MuxChannel::new(self.conn.clone(), channel))
    }

    /// Accepts the channels the peer opens for `protocol` with `id`, or
    /// with any id if `id` is `None` (a listener for the exact id is asked
    /// first). Listeners of one key share it until the last drops; then
    /// channels waiting for it are rejected.
    pub fn listen(&self, protocol: &str, id: Option<Bytes>) -> MuxListener {
        let key = (protocol.to_owned(), id);
        let mut inner = self.conn.lock();
        let listening = inner.listeners.entry(key.clone()).or_default();
        listening.handles += 1;
        if listening.handles == 1 {
            inner.session.listen(protocol, key.1.clone());
        }
        // Channels that waited in the claim grace are announced now.
        let mut wake = Wakeups::default();
        while let Some(event) = inner.session.poll_event() {
            inner.dispatch(event, &mut wake);
        }
        inner.wake_driver(&mut wake);
        drop(inner);
        wake.wake();
        MuxListener::new(self.conn.clone(), key)
    }

    /// How long a channel the peer opens waits for a listener here before
    /// it is rejected. `None` (the default, and Protomux's behaviour)
    /// rejects it at once; a grace lets the peer open a channel the moment
    /// it connects, before this side listens.
    pub fn set_claim_grace(&self, grace: Option<Duration>) {
        self.conn.lock().session.set_claim_grace(grace);
    }

    /// Sends what is sent until the guard drops as one BATCH (Protomux's
    /// `cork`), as long as it fits one message.
    pub fn cork(&self) -> Cork<'_> {
        self.conn.lock().session.cork();
        Cork { mux: self }
    }

    /// Closes the connection: every channel ends; output already queued is
    /// still written.
    pub fn close(&self) {
        let mut inner = self.conn.lock();
        inner.session.close();
        let mut wake = Wakeups::default();
        inner.wake_driver(&mut wake);
        drop(inner);
        wake.wake();
    }

    /// Waits until the connection has closed, and says why.
    pub async fn closed(&self) -> MuxCloseReason {
        let mut registration = Registration::new(WaitKind::Close);
        let reason = poll_fn(|cx| {
            let mut inner = self.conn.lock();
            if let Some(reason) = inner.session.close_reason() {
                let reason = reason.clone();
                registration.done(&mut inner);
                return Poll::Ready(reason);
            }
            registration.wait(&mut inner, cx.waker());
            Poll::Pending
        })
        .await;
        registration.cancel(&self.conn);
        reason
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.conn.lock().session.is_closed()
    }

    /// The transport error that ended the connection, if one did.
    pub fn io_error(&self) -> Option<Arc<std::io::Error>> {
        self.conn.lock().io_error.clone()
    }

    /// Counters.
    pub fn stats(&self) -> MuxStats {
        self.conn.lock().session.stats()
    }

    /// The runtime the connection runs on.
    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.conn.runtime
    }
}

impl Clone for Mux {
    fn clone(&self) -> Mux {
        self.conn.add_handle();
        Mux {
            conn: self.conn.clone(),
        }
    }
}

impl Drop for Mux {
    fn drop(&mut self) {
        self.conn.drop_handle();
    }
}

impl std::fmt::Debug for Mux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mux").field("stats", &self.stats()).finish()
    }
}

/// A batch in progress: see [`Mux::cork`].
#[must_use = "the batch is sent when the guard drops"]
pub struct Cork<'a> {
    mux: &'a Mux,
}

impl Drop for Cork<'_> {
    fn drop(&mut self) {
        let mut inner = self.mux.conn.lock();
        inner.session.uncork();
        let mut wake = Wakeups::default();
        inner.wake_driver(&mut wake);
        drop(inner);
        wake.wake();
    }
}

/// Dials `url` through `transport` (`tcp://` or `ws://`) and runs a
/// Protomux connection over it.
pub async fn connect_mux(
    transport: &dyn Transport,
    runtime: Arc<dyn Runtime>,
    url: &str,
    config: MuxConfig,
) -> Result<Mux, Error> {
    config.validate()?;
    let endpoint: Endpoint = url.parse()?;
    let io = transport.dial_messages(&endpoint).await?;
    Mux::new(io, config, runtime)
}

/// Listens on `url` through `transport` for Protomux connections.
pub async fn listen_mux(
    transport: &dyn Transport,
    runtime: Arc<dyn Runtime>,
    url: &str,
    config: MuxConfig,
) -> Result<MuxServer, Error> {
    config.validate()?;
    let endpoint: Endpoint = url.parse()?;
    let listener = transport.listen_messages(&endpoint).await?;
    Ok(MuxServer {
        listener,
        runtime,
        config,
    })
}

/// Accepts Protomux connections on one endpoint.
pub struct MuxServer {
    listener: Box<dyn TransportListener>,
    runtime: Arc<dyn Runtime>,
    config: MuxConfig,
}

impl MuxServer {
    /// The next connection, with its peer's address. Fails only when the
    /// listener itself fails.
    pub async fn accept(&self) -> Result<(Mux, String), Error> {
        let (io, peer) = self.listener.accept().await?;
        let mux = Mux::new(io, self.config.clone(), self.runtime.clone())?;
        Ok((mux, peer))
    }

    /// The endpoint actually bound (port 0 resolved).
    pub fn local_endpoint(&self) -> Endpoint {
        self.listener.local_endpoint()
    }
}

impl std::fmt::Debug for MuxServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxServer")
            .field("endpoint", &self.local_endpoint())
            .finish()
    }
}
