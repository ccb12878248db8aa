//! Runs plex sessions on tokio, over TCP, TLS or WebSocket.
//!
//! ```no_run
//! # async fn demo() -> Result<(), plex_runtime::Error> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use plex_runtime::{Config, OpenOptions};
//!
//! let session = plex_tokio::connect("tcp://127.0.0.1:7000", Config::default()).await?;
//! let mut stream = plex_tokio::Stream::from(session.open_stream(OpenOptions::default()).await?);
//! stream.write_all(b"ping").await?;
//! stream.shutdown().await?;
//! let mut reply = Vec::new();
//! stream.read_to_end(&mut reply).await?;
//! # Ok(()) }
//! ```
//!
//! Over TLS, the default client trusts the system's roots or the
//! fingerprint pinned in the URL; a server needs a certificate, given in
//! the transport's [`TlsConfig`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), plex_runtime::Error> {
//! use plex_runtime::tls::{ServerTls, TlsConfig};
//! use plex_runtime::Config;
//! use plex_tokio::{TokioRuntime, TokioTransport};
//!
//! let cert = ServerTls::self_signed(&["localhost"])?;
//! let transport = TokioTransport::with_tls(TlsConfig::default().with_server(cert.clone()));
//! let url = "tls://127.0.0.1:7443";
//! let server = plex_runtime::listen(&transport, TokioRuntime::current(), url, Config::default()).await?;
//! // Elsewhere: the client pins the server's certificate in the URL.
//! let url = format!("tls://127.0.0.1:7443?fingerprint={}", cert.fingerprint());
//! let session = plex_tokio::connect(&url, Config::default()).await?;
//! # let _ = (server, session); Ok(()) }
//! ```
//!
//! Through a Syncthing relay (`relay://`, see [`plex_runtime::relay`]):
//! the listener's local endpoint is the URL to dial, with its device id.
//!
//! ```no_run
//! # async fn demo() -> Result<(), plex_runtime::Error> {
//! use plex_runtime::relay::{Identity, RelayConfig};
//! use plex_runtime::{Config, TransportListener};
//! use plex_tokio::{TokioRuntime, TokioTransport};
//!
//! let me = RelayConfig::default().with_identity(Identity::load_or_generate("plex-identity")?);
//! let transport = TokioTransport::default().with_relay(me);
//! let url = "relay://127.0.0.1:22067";
//! let server = plex_runtime::listen(&transport, TokioRuntime::current(), url, Config::default()).await?;
//! println!("dial {}", server.local_endpoint()); // relay://127.0.0.1:22067/?id=DEVICE-ID
//! // Elsewhere (any identity will do for dialling):
//! let session = plex_tokio::connect(&server.local_endpoint().to_string(), Config::default()).await?;
//! # let _ = session; Ok(()) }
//! ```
#![deny(missing_docs)]

use std::io;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use plex_runtime::mux::{Mux, MuxConfig, MuxServer};
use plex_runtime::relay::{self, Connector, RelayConfig};
use plex_runtime::tls::{client_handshake, TlsConfig};
use plex_runtime::{
    accept_path, ws_io_error, BoxFuture, BoxIo, BoxResult, Config, Endpoint, EndpointError, Error,
    FramedTransport, HandshakeListener, Manager, ManagerConfig, PlainListener, RawListener,
    Runtime, Scheme, Server, Session, Sleep, TransportListener, WsIo, DEFAULT_HANDSHAKE_TIMEOUT,
};
use tokio::net::{TcpListener, TcpStream};

/// How [`connect_with`] dials and authenticates (the runtime's type).
pub use plex_runtime::ConnectOptions;

/// [`Runtime`] on the tokio runtime the handle belongs to.
#[derive(Debug, Clone)]
pub struct TokioRuntime(tokio::runtime::Handle);

impl TokioRuntime {
    /// The runtime of the calling task. Panics outside a tokio runtime, as
    /// tokio's own constructors do.
    pub fn current() -> Arc<dyn Runtime> {
        Arc::new(TokioRuntime(tokio::runtime::Handle::current()))
    }
}

impl Runtime for TokioRuntime {
    fn spawn(&self, future: BoxFuture) {
        self.0.spawn(future);
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// TCP (with `TCP_NODELAY`), TLS (tokio-rustls), WebSocket and
/// `relay://` on tokio.
///
/// The default dials `tls://` trusting the system's roots (or the URL's
/// pinned fingerprint) and cannot listen on `tls://`:
/// [`with_tls`](TokioTransport::with_tls) gives it a certificate or other
/// trust. On `relay://` it uses a device identity generated in memory
/// unless [`with_relay`](TokioTransport::with_relay) gives one.
#[derive(Debug, Clone, Default)]
pub struct TokioTransport {
    tls: TlsConfig,
    relay: RelayConfig,
}

impl TokioTransport {
    /// A transport with these TLS settings.
    pub fn with_tls(tls: TlsConfig) -> TokioTransport {
        TokioTransport {
            tls,
            relay: RelayConfig::default(),
        }
    }

    /// Uses these `relay://` settings (identity, keep-alive, timeouts).
    pub fn with_relay(mut self, relay: RelayConfig) -> TokioTransport {
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
            Ok(Box::new(TokioIo(tcp)) as BoxIo)
        })
    })
}

/// On WebSocket with `messages`, one binary message per message (Protomux).
impl FramedTransport for TokioTransport {
    fn dial_framed<'a>(&'a self, endpoint: &'a Endpoint, messages: bool) -> BoxResult<'a, BoxIo> {
        Box::pin(async move {
            if endpoint.scheme == Scheme::Relay {
                let runtime = TokioRuntime::current();
                return relay::dial(&*runtime, &tcp_connector(), &self.relay, endpoint).await;
            }
            let tcp = TcpStream::connect(endpoint.authority()).await?;
            tcp.set_nodelay(true)?;
            match endpoint.scheme {
                Scheme::Tcp => Ok(Box::new(TokioIo(tcp)) as BoxIo),
                Scheme::Tls => {
                    let client = self.tls.client();
                    let (config, name) = client.rustls_config(endpoint)?;
                    let connect = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
                    let runtime = TokioRuntime::current();
                    let tls = client_handshake(&*runtime, client, endpoint, connect).await?;
                    Ok(Box::new(TokioIo(tls)) as BoxIo)
                }
                Scheme::Ws => {
                    let (ws, _) = tokio_tungstenite::client_async(endpoint.to_string(), tcp)
                        .await
                        .map_err(ws_io_error)?;
                    Ok(Box::new(ws_io(ws, messages)) as BoxIo)
                }
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
                let runtime = TokioRuntime::current();
                return relay::listen(runtime, tcp_connector(), &self.relay, endpoint).await;
            }
            let server = match endpoint.scheme {
                Scheme::Tls => Some(self.tls.server()?.clone()),
                _ => None,
            };
            let tcp = TcpListener::bind(endpoint.authority()).await?;
            let endpoint = endpoint.bound_at(tcp.local_addr()?);
            let raw = TokioListener { tcp, endpoint };
            Ok(match (raw.endpoint.scheme, server) {
                (_, Some(server)) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(server.rustls_config());
                    let handshake = move |tcp: TokioIo<TcpStream>| -> BoxResult<'static, BoxIo> {
                        let accept = acceptor.accept(tcp.0);
                        Box::pin(async move { Ok(Box::new(TokioIo(accept.await?)) as BoxIo) })
                    };
                    Box::new(HandshakeListener::new(
                        raw,
                        TokioRuntime::current(),
                        Arc::new(handshake),
                        server.handshake_timeout(),
                    )) as Box<dyn TransportListener>
                }
                (Scheme::Ws, None) => {
                    let check = raw.endpoint.path.clone();
                    let upgrade = move |tcp: TokioIo<TcpStream>| -> BoxResult<'static, BoxIo> {
                        let check = accept_path(check.clone());
                        Box::pin(async move {
                            let ws = tokio_tungstenite::accept_hdr_async(tcp.0, check)
                                .await
                                .map_err(ws_io_error)?;
                            Ok(Box::new(ws_io(ws, messages)) as BoxIo)
                        })
                    };
                    let runtime = TokioRuntime::current();
                    Box::new(HandshakeListener::new(
                        raw,
                        runtime,
                        Arc::new(upgrade),
                        DEFAULT_HANDSHAKE_TIMEOUT,
                    )) as Box<dyn TransportListener>
                }
                _ => Box::new(PlainListener(raw)),
            })
        })
    }
}

/// A WebSocket as a byte stream, or in messages mode.
fn ws_io<S>(ws: S, messages: bool) -> WsIo<S> {
    if messages {
        WsIo::messages(ws)
    } else {
        WsIo::new(ws)
    }
}

struct TokioListener {
    tcp: TcpListener,
    endpoint: Endpoint,
}

impl RawListener for TokioListener {
    type Conn = TokioIo<TcpStream>;

    fn accept(&self) -> BoxResult<'_, (TokioIo<TcpStream>, String)> {
        Box::pin(async move {
            let (tcp, peer) = self.tcp.accept().await?;
            tcp.set_nodelay(true)?;
            Ok((TokioIo(tcp), peer.to_string()))
        })
    }

    fn local_endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }
}

/// A tokio byte stream seen through futures-io's traits.
///
/// `tokio_util::compat` would do, but it drops vectored writes: the driver's
/// header-and-payload batches would leave as one `send` per slice, each
/// header its own TCP segment under `TCP_NODELAY`. This forwards
/// `poll_write_vectored` to tokio's.
struct TokioIo<T>(T);

impl<T: tokio::io::AsyncRead + Unpin> futures_io::AsyncRead for TokioIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut buf = tokio::io::ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> futures_io::AsyncWrite for TokioIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Dials `url` (`tcp://host:port`, `tls://host:port[?fingerprint=sha256:HEX]`,
/// `ws://host:port/path` or `relay://host:port/?id=DEVICE-ID`) and starts a
/// client session. TLS trusts the system's roots, or the fingerprint in the
/// URL; `relay://` dials with a throwaway device identity.
pub async fn connect(url: &str, config: Config) -> Result<Session, Error> {
    plex_runtime::connect(
        &TokioTransport::default(),
        TokioRuntime::current(),
        url,
        config,
    )
    .await
}

/// Dials `url` as [`connect`] does, with `options`' TLS trust and config,
/// and authenticates the connection with its token (or none) before
/// returning it ([`plex_runtime::auth::authenticate`]): a server that
/// refuses it gives [`Error::Auth`], saying whether a token was missing,
/// not valid, or could not be checked.
pub async fn connect_with(url: &str, options: &ConnectOptions) -> Result<Session, Error> {
    let transport = TokioTransport::with_tls(TlsConfig::default().with_client(options.tls.clone()));
    plex_runtime::connect_with(&transport, TokioRuntime::current(), url, options).await
}

/// Listens on `url` (`tcp://host:port` or `ws://host:port/path`; port 0
/// picks one). A WebSocket listener answers other paths with 404. For
/// `tls://`, listen through a [`TokioTransport::with_tls`] that has a
/// certificate.
pub async fn listen(url: &str, config: Config) -> Result<Server, Error> {
    plex_runtime::listen(
        &TokioTransport::default(),
        TokioRuntime::current(),
        url,
        config,
    )
    .await
}

/// Dials `url` (`tcp://host:port` or `ws://host:port/path`) and runs a Protomux
/// connection over it: the wire JavaScript Plex speaks.
pub async fn connect_mux(url: &str, config: MuxConfig) -> Result<Mux, Error> {
    plex_runtime::mux::connect_mux(
        &TokioTransport::default(),
        TokioRuntime::current(),
        url,
        config,
    )
    .await
}

/// Listens on `url` for Protomux connections.
pub async fn listen_mux(url: &str, config: MuxConfig) -> Result<MuxServer, Error> {
    plex_runtime::mux::listen_mux(
        &TokioTransport::default(),
        TokioRuntime::current(),
        url,
        config,
    )
    .await
}

/// A connection-pooling [`Manager`] on tokio.
pub fn manager(config: ManagerConfig) -> Manager {
    Manager::new(
        Arc::new(TokioTransport::default()),
        TokioRuntime::current(),
        config,
    )
}

/// A plex stream with tokio's IO traits (and futures-io's, through `Deref`).
#[derive(Debug)]
pub struct Stream(plex_runtime::Stream);

impl From<plex_runtime::Stream> for Stream {
    fn from(stream: plex_runtime::Stream) -> Stream {
        Stream(stream)
    }
}

impl Stream {
    /// The runtime-neutral stream.
    pub fn into_inner(self) -> plex_runtime::Stream {
        self.0
    }
}

impl Deref for Stream {
    type Target = plex_runtime::Stream;

    fn deref(&self) -> &plex_runtime::Stream {
        &self.0
    }
}

impl DerefMut for Stream {
    fn deref_mut(&mut self) -> &mut plex_runtime::Stream {
        &mut self.0
    }
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let unfilled = buf.initialize_unfilled();
        match futures_io::AsyncRead::poll_read(Pin::new(&mut self.0), cx, unfilled) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_close(Pin::new(&mut self.0), cx)
    }
}
