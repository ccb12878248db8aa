//! Runs plex sessions on async-std.
//!
//! **async-std is discontinued upstream (RUSTSEC-2025-0052).** This adapter
//! stays for users who asked for it, as a thin layer over the shared
//! futures-io driver in `plex-runtime`. New code should use `plex-smol`:
//! the same futures-io streams on a maintained runtime.
#![deny(missing_docs)]

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use async_std::net::{TcpListener, TcpStream};
use plex_runtime::{BoxFuture, Config, Endpoint, Error, Runtime, Session};

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

    fn sleep_until(&self, deadline: Instant) -> BoxFuture {
        let wait = deadline.saturating_duration_since(Instant::now());
        Box::pin(async_std::task::sleep(wait))
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Dials `url` (`tcp://host:port`) and starts a client session.
pub async fn connect(url: &str, config: Config) -> Result<Session, Error> {
    let endpoint = Endpoint::tcp(url)?;
    let stream = TcpStream::connect(endpoint.authority()).await?;
    stream.set_nodelay(true)?;
    Session::client(stream, config, AsyncStdRuntime::shared())
}

/// Accepts plex connections.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    config: Config,
}

/// Listens on `url` (`tcp://host:port`; port 0 picks one).
pub async fn listen(url: &str, config: Config) -> Result<Listener, Error> {
    let endpoint = Endpoint::tcp(url)?;
    Ok(Listener {
        tcp: TcpListener::bind(endpoint.authority()).await?,
        config,
    })
}

impl Listener {
    /// The next connection, as a server session.
    pub async fn accept(&self) -> Result<(Session, SocketAddr), Error> {
        let (stream, peer) = self.tcp.accept().await?;
        stream.set_nodelay(true)?;
        let session = Session::server(stream, self.config.clone(), AsyncStdRuntime::shared())?;
        Ok((session, peer))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}
