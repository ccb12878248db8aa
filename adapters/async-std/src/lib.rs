//! Runs plex sessions on async-std, over TCP, TLS, WebSocket or a relay.
//!
//! **async-std is discontinued upstream (RUSTSEC-2025-0052).** This adapter
//! stays for users who asked for it, as a thin layer over the shared
//! futures-io driver in `plex-runtime`. New code should use `plex-smol`:
//! the same futures-io streams on a maintained runtime.
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use async_std::net::{TcpListener, TcpStream};
use plex_runtime::mux::{Mux, MuxConfig, MuxServer};
use plex_runtime::relay::{self, Connector, RelayConfig};
use plex_runtime::tls::{self, TlsConfig};
use plex_runtime::{
    futures_ws, BoxFuture, BoxIo, BoxResult, Config, Endpoint, EndpointError, Error,
    FramedTransport, HandshakeListener, Manager, ManagerConfig, PlainListener, RawListener,
    Runtime, Scheme, Server, Session, Sleep, TransportListener, DEFAULT_HANDSHAKE_TIMEOUT,
};

/// [`Runtime`] on async-std's global executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdRuntime;

impl AsyncStdRuntime {
    /// The runtime as the driver takes it.
    pub fn shared() -> Arc<dyn Runtime> {
        Arc::new(AsyncStdRuntime)
    }
}

impl Runtime for AsyncStdRuntime {
    fn spawn(&self, future: BoxFuture) {
        async_std::task::spawn(future);
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let wait = deadline.saturating_duration_since(Instant::now());
        Box::pin(async_std::task::sleep(wait))
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// TCP (with `TCP_NODELAY`), TLS (futures-rustls), WebSocket
/// (async-tungstenite) and `relay://` on async-std.
///
/// The default dials `tls://` trusting the system's roots (or the URL's
/// pinned fingerprint) and cannot listen on `tls://`:
/// [`with_tls`](AsyncStdTransport::with_tls) gives it a certificate or
/// other trust. On `relay://` it uses a device identity generated in
/// memory unless [`with_relay`](AsyncStdTransport::with_relay) gives one.
#[derive(Debug, Clone, Default)]
pub struct AsyncStdTransport {
    tls: TlsConfig,
    relay: RelayConfig,
}

impl AsyncStdTransport {
    /// A transport with these TLS settings.
    pub fn with_tls(tls: TlsConfig) -> AsyncStdTransport {
        AsyncStdTransport {
            tls,
            relay: RelayConfig::default(),
        }
    }

    /// Uses these `relay://` settings (identity, keep-alive, timeouts).
    pub fn with_relay(mut self, relay: RelayConfig) -> AsyncStdTransport {
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
impl FramedTransport for AsyncStdTransport {
    fn dial_framed<'a>(&'a self, endpoint: &'a Endpoint, messages: bool) -> BoxResult<'a, BoxIo> {
        Box::pin(async move {
            if endpoint.scheme == Scheme::Relay {
                let runtime = AsyncStdRuntime;
                return relay::dial(&runtime, &tcp_connector(), &self.relay, endpoint).await;
            }
            let tcp = TcpStream::connect(endpoint.authority()).await?;
            tcp.set_nodelay(true)?;
            match endpoint.scheme {
                Scheme::Tcp => Ok(Box::new(tcp) as BoxIo),
                Scheme::Tls => {
                    let client = self.tls.client();
                    tls::connect(&AsyncStdRuntime, client, endpoint, tcp).await
                }
                Scheme::Ws => futures_ws::connect(endpoint, tcp, messages).await,
                other => Err(EndpointError::UnsupportedScheme(other.name().into()).into()),
            }
        })
    }

    fn listen_framed<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        messages: bool,
    ) -> BoxResult<'a, Box<dyn TransportListener>> {
        Box::pin(async move {
            if endpoint.scheme == Scheme::Relay {
                let runtime = AsyncStdRuntime::shared();
                return relay::listen(runtime, tcp_connector(), &self.relay, endpoint).await;
            }
            let (upgrade, timeout) = match endpoint.scheme {
                Scheme::Tls => {
                    let server = self.tls.server()?;
                    (Some(tls::acceptor(server)), server.handshake_timeout())
                }
                Scheme::Ws => (
                    Some(futures_ws::acceptor(endpoint.path.clone(), messages)),
                    DEFAULT_HANDSHAKE_TIMEOUT,
                ),
                _ => (None, DEFAULT_HANDSHAKE_TIMEOUT),
            };
            let tcp = TcpListener::bind(endpoint.authority()).await?;
            let endpoint = endpoint.bound_at(tcp.local_addr()?);
            let raw = AsyncStdListener { tcp, endpoint };
            Ok(match upgrade {
                Some(upgrade) => Box::new(HandshakeListener::new(
                    raw,
                    AsyncStdRuntime::shared(),
                    upgrade,
                    timeout,
                )) as Box<dyn TransportListener>,
                None => Box::new(PlainListener(raw)),
            })
        })
    }
}

struct AsyncStdListener {
    tcp: TcpListener,
    endpoint: Endpoint,
}

impl RawListener for AsyncStdListener {
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
/// client session. TLS
/// trusts the system's roots, or the fingerprint in the URL; `relay://`
/// dials with a throwaway device identity.
pub async fn connect(url: &str, config: Config) -> Result<Session, Error> {
    plex_runtime::connect(
        &AsyncStdTransport::default(),
        AsyncStdRuntime::shared(),
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
    let transport =
        AsyncStdTransport::with_tls(TlsConfig::default().with_client(options.tls.clone()));
    plex_runtime::connect_with(&transport, AsyncStdRuntime::shared(), url, options).await
}

/// Listens on `url` (`tcp://host:port` or `ws://host:port/path`; port 0
/// picks one). For `tls://`,
/// listen through an [`AsyncStdTransport::with_tls`] that has a
/// certificate.
pub async fn listen(url: &str, config: Config) -> Result<Server, Error> {
    plex_runtime::listen(
        &AsyncStdTransport::default(),
        AsyncStdRuntime::shared(),
        url,
        config,
    )
    .await
}

/// Dials `url` (`tcp://host:port` or `ws://host:port/path`) and runs a Protomux
/// connection over it: the wire JavaScript Plex speaks.
pub async fn connect_mux(url: &str, config: MuxConfig) -> Result<Mux, Error> {
    plex_runtime::mux::connect_mux(
        &AsyncStdTransport::default(),
        AsyncStdRuntime::shared(),
        url,
        config,
    )
    .await
}

/// Listens on `url` for Protomux connections.
pub async fn listen_mux(url: &str, config: MuxConfig) -> Result<MuxServer, Error> {
    plex_runtime::mux::listen_mux(
        &AsyncStdTransport::default(),
        AsyncStdRuntime::shared(),
        url,
        config,
    )
    .await
}

/// A connection-pooling [`Manager`] on async-std.
pub fn manager(config: ManagerConfig) -> Manager {
    Manager::new(
        Arc::new(AsyncStdTransport::default()),
        AsyncStdRuntime::shared(),
        config,
    )
}
