//! The implementations under comparison behind one trait, and the two that
//! need no adapter: raw TCP and plex.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};

use plex_runtime::{Config, OpenOptions, Session};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use super::{Result, STREAM_LIMIT};
use crate::report::PLEX;

/// A client connected to a loopback server of one implementation.
///
/// The server hands every stream it accepts to the `serve` callback given
/// to [`Mux::start`]. Tasks live on the caller's tokio runtime; dropping the
/// runtime ends them.
pub(crate) trait Mux: Sized + Send + Sync + 'static {
    /// The implementation's name in the report.
    const NAME: &'static str;
    /// What `start` needs from the suite: nothing for loopback peers, the
    /// relay for relay peers.
    type Env: Send + 'static;
    /// A bidirectional byte stream; shutting it down ends our side.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Starts a server on an ephemeral loopback port (or joined to the
    /// relay in `env`) and connects to it.
    fn start(
        env: Self::Env,
        serve: impl Fn(Self::Stream) + Send + Sync + 'static,
    ) -> impl Future<Output = Result<Self>> + Send;

    /// Opens a stream to the server.
    fn open(&self) -> impl Future<Output = Result<Self::Stream>> + Send;
}

/// A listener on an ephemeral loopback port.
pub(crate) async fn loopback_listener() -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// The next connection, with Nagle off as every peer has it.
pub(crate) async fn accept_tcp(listener: &TcpListener) -> Result<TcpStream> {
    let (tcp, _) = listener.accept().await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// A connection to `addr`, with Nagle off as every peer has it.
pub(crate) async fn connect_tcp(addr: SocketAddr) -> Result<TcpStream> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// Raw TCP: every stream is a connection of its own.
pub(crate) struct Tcp {
    addr: SocketAddr,
}

impl Mux for Tcp {
    const NAME: &'static str = "raw";
    type Env = ();
    type Stream = TcpStream;

    async fn start((): (), serve: impl Fn(TcpStream) + Send + Sync + 'static) -> Result<Tcp> {
        let (listener, addr) = loopback_listener().await?;
        tokio::spawn(async move {
            loop {
                match accept_tcp(&listener).await {
                    Ok(tcp) => serve(tcp),
                    Err(e) => {
                        eprintln!("mux: raw server: {e}");
                        return;
                    }
                }
            }
        });
        Ok(Tcp { addr })
    }

    async fn open(&self) -> Result<TcpStream> {
        connect_tcp(self.addr).await
    }
}

/// Plex: streams of one plex-tokio session over one TCP connection.
pub(crate) struct Plex {
    session: Session,
}

/// `Config::default()`, but with room for the `idle_streams` scenario.
pub(super) fn plex_config() -> Config {
    let mut config = Config::default();
    config.max_concurrent_streams = STREAM_LIMIT as u32;
    config
}

impl Mux for Plex {
    const NAME: &'static str = PLEX;
    type Env = ();
    type Stream = plex_tokio::Stream;

    async fn start(
        (): (),
        serve: impl Fn(plex_tokio::Stream) + Send + Sync + 'static,
    ) -> Result<Plex> {
        let server = plex_tokio::listen("tcp://127.0.0.1:0", plex_config()).await?;
        let url = server.local_endpoint().to_string();
        tokio::spawn(async move {
            let session = match server.accept().await {
                Ok((session, _)) => session,
                Err(e) => {
                    eprintln!("mux: plex server: {e}");
                    return;
                }
            };
            // Ends when the connection closes.
            while let Ok(stream) = session.accept_stream().await {
                serve(stream.into());
            }
        });
        let session = plex_tokio::connect(&url, plex_config()).await?;
        Ok(Plex { session })
    }

    async fn open(&self) -> Result<plex_tokio::Stream> {
        let stream = self.session.open_stream(OpenOptions::default()).await?;
        Ok(stream.into())
    }
}
