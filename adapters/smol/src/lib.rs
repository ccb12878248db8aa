//! Runs plex sessions on smol, over TCP or WebSocket. Streams are
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
use plex_runtime::{
    accept_path, ws_io_error, BoxFuture, BoxIo, BoxResult, Config, Endpoint, EndpointError, Error,
    HandshakeListener, Manager, ManagerConfig, PlainListener, RawListener, Runtime, Scheme, Server,
    Session, Sleep, Transport, TransportListener, WsIo, DEFAULT_HANDSHAKE_TIMEOUT,
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

/// TCP (with `TCP_NODELAY`) and WebSocket on smol.
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolTransport;

impl Transport for SmolTransport {
    fn dial<'a>(&'a self, endpoint: &'a Endpoint) -> BoxResult<'a, BoxIo> {
        self.dial_with(endpoint, false)
    }

    /// Listens on `endpoint`. WebSocket upgrades run in tasks of their own,
    /// each bounded by [`DEFAULT_HANDSHAKE_TIMEOUT`].
    fn listen<'a>(&'a self, endpoint: &'a Endpoint) -> BoxResult<'a, Box<dyn TransportListener>> {
        self.listen_with(endpoint, false)
    }

    /// On WebSocket, one binary message per message (Protomux).
    fn dial_messages<'a>(&'a self, endpoint: &'a Endpoint) -> BoxResult<'a, BoxIo> {
        self.dial_with(endpoint, true)
    }

    fn listen_messages<'a>(
        &'a self,
        endpoint: &'a Endpoint,
    ) -> BoxResult<'a, Box<dyn TransportListener>> {
        self.listen_with(endpoint, true)
    }
}

impl SmolTransport {
    fn dial_with<'a>(&'a self, endpoint: &'a Endpoint, messages: bool) -> BoxResult<'a, BoxIo> {
        Box::pin(async move {
            let tcp = TcpStream::connect(endpoint.authority()).await?;
            tcp.set_nodelay(true)?;
            match endpoint.scheme {
                Scheme::Tcp => Ok(Box::new(tcp) as BoxIo),
                Scheme::Ws => {
                    let (ws, _) = async_tungstenite::client_async(endpoint.to_string(), tcp)
                        .await
                        .map_err(ws_io_error)?;
                    Ok(Box::new(ws_io(ws, messages)) as BoxIo)
                }
                other => Err(EndpointError::UnsupportedScheme(other.name().into()).into()),
            }
        })
    }

    /// Listens on `endpoint`. WebSocket upgrades run in tasks of their own,
    /// each bounded by [`DEFAULT_HANDSHAKE_TIMEOUT`].
    fn listen_with<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        messages: bool,
    ) -> BoxResult<'a, Box<dyn TransportListener>> {
        Box::pin(async move {
            let tcp = TcpListener::bind(endpoint.authority()).await?;
            let endpoint = endpoint.bound_at(tcp.local_addr()?);
            let raw = SmolListener { tcp, endpoint };
            Ok(match raw.endpoint.scheme {
                Scheme::Ws => {
                    let check = raw.endpoint.path.clone();
                    let upgrade = move |tcp: TcpStream| -> BoxResult<'static, BoxIo> {
                        let check = accept_path(check.clone());
                        Box::pin(async move {
                            let ws = async_tungstenite::accept_hdr_async(tcp, check)
                                .await
                                .map_err(ws_io_error)?;
                            Ok(Box::new(ws_io(ws, messages)) as BoxIo)
                        })
                    };
                    Box::new(HandshakeListener::new(
                        raw,
                        SmolRuntime::shared(),
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

/// Dials `url` (`tcp://host:port` or `ws://host:port/path`) and starts a
/// client session.
pub async fn connect(url: &str, config: Config) -> Result<Session, Error> {
    plex_runtime::connect(&SmolTransport, SmolRuntime::shared(), url, config).await
}

/// Listens on `url` (`tcp://host:port` or `ws://host:port/path`; port 0
/// picks one). A WebSocket listener answers other paths with 404.
pub async fn listen(url: &str, config: Config) -> Result<Server, Error> {
    plex_runtime::listen(&SmolTransport, SmolRuntime::shared(), url, config).await
}

/// Dials `url` (`tcp://host:port` or `ws://host:port/path`) and runs a Protomux
/// connection over it: the wire JavaScript Plex speaks.
pub async fn connect_mux(url: &str, config: MuxConfig) -> Result<Mux, Error> {
    plex_runtime::mux::connect_mux(&SmolTransport, SmolRuntime::shared(), url, config).await
}

/// Listens on `url` for Protomux connections.
pub async fn listen_mux(url: &str, config: MuxConfig) -> Result<MuxServer, Error> {
    plex_runtime::mux::listen_mux(&SmolTransport, SmolRuntime::shared(), url, config).await
}

/// A connection-pooling [`Manager`] on smol.
pub fn manager(config: ManagerConfig) -> Manager {
    Manager::new(Arc::new(SmolTransport), SmolRuntime::shared(), config)
}
