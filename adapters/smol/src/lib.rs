//! Runs plex sessions on smol. Streams are futures-io byte streams; smol is
//! the recommended runtime for futures-io code.
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

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use plex_runtime::{BoxFuture, Config, Endpoint, Error, Runtime, Session};
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

    fn sleep_until(&self, deadline: Instant) -> BoxFuture {
        let timer = smol::Timer::at(deadline);
        Box::pin(async move {
            timer.await;
        })
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
    Session::client(stream, config, SmolRuntime::shared())
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
        let session = Session::server(stream, self.config.clone(), SmolRuntime::shared())?;
        Ok((session, peer))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}
