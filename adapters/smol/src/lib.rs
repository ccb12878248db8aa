//! Runs plex sessions on smol, over TCP or WebSocket. Streams are futures-io byte streams; smol is
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

use plex_runtime::{
    accept_path, ws_io_error, BoxFuture, Config, Endpoint, EndpointError, Error, Runtime, Scheme,
    Session, WsIo,
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

/// Dials `url` (`tcp://host:port` or `ws://host:port/path`) and starts a
/// client session.
pub async fn connect(url: &str, config: Config) -> Result<Session, Error> {
    let endpoint: Endpoint = url.parse()?;
    let stream = TcpStream::connect(endpoint.authority()).await?;
    stream.set_nodelay(true)?;
    match endpoint.scheme {
        Scheme::Tcp => Session::client(stream, config, SmolRuntime::shared()),
        Scheme::Ws => {
            let (ws, _) = async_tungstenite::client_async(endpoint.to_string(), stream)
                .await
                .map_err(ws_io_error)?;
            Session::client(WsIo::new(ws), config, SmolRuntime::shared())
        }
        other => Err(EndpointError::UnsupportedScheme(format!("{other:?}")).into()),
    }
}

/// Accepts plex connections.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    endpoint: Endpoint,
    config: Config,
}

/// Listens on `url` (`tcp://host:port` or `ws://host:port/path`; port 0
/// picks one). A WebSocket listener answers other paths with 404.
pub async fn listen(url: &str, config: Config) -> Result<Listener, Error> {
    let endpoint: Endpoint = url.parse()?;
    Ok(Listener {
        tcp: TcpListener::bind(endpoint.authority()).await?,
        endpoint,
        config,
    })
}

impl Listener {
    /// The next connection, as a server session.
    pub async fn accept(&self) -> Result<(Session, SocketAddr), Error> {
        let (stream, peer) = self.tcp.accept().await?;
        stream.set_nodelay(true)?;
        let config = self.config.clone();
        let session = match self.endpoint.scheme {
            Scheme::Ws => {
                let check = accept_path(self.endpoint.path.clone());
                let ws = async_tungstenite::accept_hdr_async(stream, check)
                    .await
                    .map_err(ws_io_error)?;
                Session::server(WsIo::new(ws), config, SmolRuntime::shared())?
            }
            _ => Session::server(stream, config, SmolRuntime::shared())?,
        };
        Ok((session, peer))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}
