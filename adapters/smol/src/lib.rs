//! Runs plex sessions on smol, over TCP, TLS or WebSocket. Streams are
//! futures-io byte streams; smol is the recommended runtime for futures-io
//! code.
//!
//! ```no_run
//! use smol::io::{AsyncReadExt, AsyncWriteExt};
//! use plex_runtime::{Config, OpenOptions};
//!
//! smol::block_on(async {
//!     let session = plex_smol::connect("tcp://127.0.0.1:7000", Config::default()).await?;
//!     let mut stream = session.open_stream(OpenOptions::default()).await?;
//!     stream.write_all(b"ping").await?;
//!     stream.close().await?;
//!     let mut reply = Vec::new();
//!     stream.read_to_end(&mut reply).await?;
//!     Ok::<_, plex_runtime::Error>(())
//! });
//! ```
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use plex_runtime::mux::{Mux, MuxConfig, MuxServer};
use plex_runtime::relay::{self, Connector, RelayConfig};
use plex_runtime::tls::{self, TlsConfig};
use plex_runtime::{
    futures_ws, BoxFuture, BoxIo, BoxResult, Config, Endpoint, EndpointError, Error,
    FramedTransport, HandshakeListener, Manager, ManagerConfig, PlainListener, RawListener,
    Runtime, Scheme, Server, Session, Sleep, TransportListener, DEFAULT_HANDSHAKE_TIMEOUT,
};
use smol::net::{TcpListener, TcpStream};

/// [`Runtime`] on smol's global executor and timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolRuntime;

impl SmolRuntime {
    /// The runtime as the driver takes it.
    pub fn shared() -> Arc<dyn Runtime> {
        Arc::new(SmolRuntime)
    }
}

impl Runtime for SmolRuntime {
    fn spawn(&self, future: BoxFuture) {
        smol::spawn(future).detach();
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let timer = smol::Timer::at(deadline);
        Box::pin(async move {
            timer.await;
        })
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// TCP (with `TCP_NODELAY`), TLS (futures-rustls), WebSocket and
/// `relay://` on smol.
///
/// The default dials `tls://` trusting the system's roots (or the URL's
/// pinned fingerprint) and cannot listen on `tls://`:
/// [`with_tls`](SmolTransport::with_tls) gives it a certificate or other
/// trust. On `relay://` it uses a device identity generated in memory
/// unless [`with_relay`](SmolTransport::with_relay) gives one.
#[derive(Debug, Clone, Default)]
pub struct SmolTransport {
    tls: TlsConfig,
    relay: RelayConfig,
}

impl SmolTransport {
    /// A transport with these TLS settings.
    pub fn with_tls(tls: TlsConfig) -> SmolTransport {
        SmolTransport {
            tls,
            relay: RelayConfig::default(),
        }
    }

    /// Uses these `relay://` settings (identity, keep-alive, timeouts).
    pub fn with_relay(mut self, relay: RelayConfig) -> SmolTransport {
        self.relay = relay;
        self
    }

    /// The `relay://` settings, with this device's identity.
    pub fn relay(&self) -> &RelayConfig {
        &self.relay
    }
}

/// Plain TCP for the relay code, which opens no sockets itself.
fn tcp_connector() -> Connector {
    Arc::new(|address: String| -> BoxResult<'static, BoxIo> {
        Box::pin(async move {
            let tcp = TcpStream::connect(address).await?;
            tcp.set_nodelay(true)?;
            Ok(Box::new(tcp) as BoxIo)
        })
    })
}

/// On WebSocket with `messages`, one binary message per message (Protomux).
impl FramedTransport for SmolTransport {
    fn dial_framed<'a>(&'a self, endpoint: &'a Endpoint, messages: bool) -> BoxResult<'a, BoxIo> {
        Box::pin(async move {
            if endpoint.scheme == Scheme::Relay {
                return relay::dial(&SmolRuntime, &tcp_connector(), &self.relay, endpoint).await;
            }
            let tcp = TcpStream::connect(endpoint.authority()).await?;
            tcp.set_nodelay(true)?;
            match endpoint.scheme {
                Scheme::Tcp => Ok(Box::new(tcp) as BoxIo),
                Scheme::Tls => tls::connect(&SmolRuntime, self.tls.client(), endpoint, tcp).await,
                Scheme::Ws => futures_ws::connect(endpoint, tcp, messages).await,
                other => Err(EndpointError::UnsupportedScheme(other.name().into()).into()),
            }
        })
    }

    /// Listens on `endpoint`. WebSocket upgrades and TLS handshakes run in
    /// tasks of their own, each bounded by a timeout.
    fn listen_framed<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        messages: bool,
    ) -> BoxResult<'a, Box<dyn TransportListener>> {
        Box::pin(async move {
            if endpoint.scheme == Scheme::Relay {
                let runtime = SmolRuntime::shared();
                return relay::listen(runtime, tcp_connector(), &self.relay, endpoint).await;
            }
            let server = match endpoint.scheme {
                Scheme::Tls => Some(self.tls.server()?.clone()),
                _ => None,
            };
            let tcp = TcpListener::bind(endpoint.authority()).await?;
            let endpoint = endpoint.bound_at(tcp.local_addr()?);
            let raw = SmolListener { tcp, endpoint };
            Ok(match (raw.endpoint.scheme, server) {
                (_, Some(server)) => Box::new(HandshakeListener::new(
                    raw,
                    SmolRuntime::shared(),
                    tls::acceptor(&server),
                    server.handshake_timeout(),
                )) as Box<dyn TransportListener>,
                (Scheme::Ws, None) => {
                    let upgrade = futures_ws::acceptor(raw.endpoint.path.clone(), messages);
                    Box::new(HandshakeListener::new(
                        raw,
                        SmolRuntime::shared(),
                        upgrade,
                        DEFAULT_HANDSHAKE_TIMEOUT,
                    )) as Box<dyn TransportListener>
                }
                _ => Box::new(PlainListener(raw)),
            })
        })
    }
}

struct SmolListener {
    tcp: TcpListener,
    endpoint: Endpoint,
}

impl RawListener for SmolListener {
    type Conn = TcpStream;

    fn accept(&self) -> BoxResult<'_, (TcpStream, String)> {
        Box::pin(async move {
            let (tcp, peer) = self.tcp.accept().await?;
            tcp.set_nodelay(true)?;
            Ok((tcp, peer.to_string()))
        })
    }

    fn local_endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }
}

/// Dials `url` (`tcp://host:port`, `tls://host:port[?fingerprint=sha256:HEX]`,
/// `ws://host:port/path` or `relay://host:port/?id=DEVICE-ID`) and starts a
/// client session. TLS trusts the system's roots, or the fingerprint in the
/// URL; `relay://` dials with a throwaway device identity.
pub async fn connect(url: &str, config: Config) -> Result<Session, Error> {
    plex_runtime::connect(
        &SmolTransport::default(),
        SmolRuntime::shared(),
        url,
        config,
    )
    .await
}

/// How [`connect_with`] dials and authenticates (the runtime's type).
pub use plex_runtime::ConnectOptions;

/// Dials `url` as [`connect`] does, with `options`' TLS trust and config,
/// and authenticates the connection with its token (or none) before
/// returning it ([`plex_runtime::auth::authenticate`]): a server that
/// refuses it gives [`Error::Auth`].
pub async fn connect_with(url: &str, options: &ConnectOptions) -> Result<Session, Error> {
    let transport = SmolTransport::with_tls(TlsConfig::default().with_client(options.tls.clone()));
    plex_runtime::connect_with(&transport, SmolRuntime::shared(), url, options).await
}

/// Listens on `url` (`tcp://host:port` or `ws://host:port/path`; port 0
/// picks one). A WebSocket listener answers other paths with 404. For
/// `tls://`, listen through a [`SmolTransport::with_tls`] that has a
/// certificate.
pub async fn listen(url: &str, config: Config) -> Result<Server, Error> {
    plex_runtime::listen(
        &SmolTransport::default(),
        SmolRuntime::shared(),
        url,
        config,
    )
    .await
}

/// Dials `url` (`tcp://host:port` or `ws://host:port/path`) and runs a Protomux
/// connection over it: the wire JavaScript Plex speaks.
pub async fn connect_mux(url: &str, config: MuxConfig) -> Result<Mux, Error> {
    plex_runtime::mux::connect_mux(
        &SmolTransport::default(),
        SmolRuntime::shared(),
        url,
        config,
    )
    .await
}

/// Listens on `url` for Protomux connections.
pub async fn listen_mux(url: &str, config: MuxConfig) -> Result<MuxServer, Error> {
    plex_runtime::mux::listen_mux(
        &SmolTransport::default(),
        SmolRuntime::shared(),
        url,
        config,
    )
    .await
}

/// A connection-pooling [`Manager`] on smol.
pub fn manager(config: ManagerConfig) -> Manager {
    Manager::new(
        Arc::new(SmolTransport::default()),
        SmolRuntime::shared(),
        config,
    )
}
