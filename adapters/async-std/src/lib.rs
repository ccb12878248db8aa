//! Runs plex sessions on async-std, over TCP.
//!
//! **async-std is discontinued upstream (RUSTSEC-2025-0052).** This adapter
//! stays for users who asked for it, as a thin layer over the shared
//! futures-io driver in `plex-runtime`. New code should use `plex-smol`:
//! the same futures-io streams on a maintained runtime, plus WebSocket.
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use async_std::net::{TcpListener, TcpStream};
use plex_runtime::mux::{Mux, MuxConfig, MuxServer};
use plex_runtime::{
    BoxFuture, BoxIo, BoxResult, Config, Endpoint, Error, Manager, ManagerConfig, PlainListener,
    RawListener, Runtime, Scheme, Server, Session, Sleep, Transport, TransportListener,
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

/// TCP (with `TCP_NODELAY`) on async-std.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdTransport;

impl Transport for AsyncStdTransport {
    fn dial<'a>(&'a self, endpoint: &'a Endpoint) -> BoxResult<'a, BoxIo> {
        Box::pin(async move {
            let tcp = TcpStream::connect(endpoint.require(Scheme::Tcp)?.authority()).await?;
            tcp.set_nodelay(true)?;
            Ok(Box::new(tcp) as BoxIo)
        })
    }

    fn listen<'a>(&'a self, endpoint: &'a Endpoint) -> BoxResult<'a, Box<dyn TransportListener>> {
        Box::pin(async move {
            let tcp = TcpListener::bind(endpoint.require(Scheme::Tcp)?.authority()).await?;
            let endpoint = endpoint.bound_at(tcp.local_addr()?);
            let raw = AsyncStdListener { tcp, endpoint };
            Ok(Box::new(PlainListener(raw)) as Box<dyn TransportListener>)
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

/// Dials `url` (`tcp://host:port`) and starts a client session.
pub async fn connect(url: &str, config: Config) -> Result<Session, Error> {
    plex_runtime::connect(&AsyncStdTransport, AsyncStdRuntime::shared(), url, config).await
}

/// Listens on `url` (`tcp://host:port`; port 0 picks one).
pub async fn listen(url: &str, config: Config) -> Result<Server, Error> {
    plex_runtime::listen(&AsyncStdTransport, AsyncStdRuntime::shared(), url, config).await
}

/// Dials `url` (`tcp://host:port`) and runs a Protomux
/// connection over it: the wire JavaScript Plex speaks.
pub async fn connect_mux(url: &str, config: MuxConfig) -> Result<Mux, Error> {
    plex_runtime::mux::connect_mux(&AsyncStdTransport, AsyncStdRuntime::shared(), url, config).await
}

/// Listens on `url` for Protomux connections.
pub async fn listen_mux(url: &str, config: MuxConfig) -> Result<MuxServer, Error> {
    plex_runtime::mux::listen_mux(&AsyncStdTransport, AsyncStdRuntime::shared(), url, config).await
}

/// A connection-pooling [`Manager`] on async-std.
pub fn manager(config: ManagerConfig) -> Manager {
    Manager::new(
        Arc::new(AsyncStdTransport),
        AsyncStdRuntime::shared(),
        config,
    )
}
