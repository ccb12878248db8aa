//! The TLS rows' peers: plex over `tls://` (one TLS connection for every
//! stream) and raw rustls over TCP (a connection, so a handshake, per
//! stream). Both use one self-signed certificate, pinned by the client,
//! the ring provider and rustls's default protocol choice (TLS 1.3).

use std::sync::Arc;

use plex_runtime::tls::{ClientTls, ServerTls, TlsConfig};
use plex_runtime::{OpenOptions, Session};
use plex_tokio::{TokioRuntime, TokioTransport};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use super::peer::{accept_tcp, connect_tcp, loopback_listener, plex_config, Mux};
use super::Result;
use crate::report::PLEX;

/// Plex: streams of one plex-tokio session over one `tls://` connection.
pub(crate) struct PlexTls {
    session: Session,
}

impl Mux for PlexTls {
    const NAME: &'static str = PLEX;
    type Env = ();
    type Stream = plex_tokio::Stream;

    async fn start(
        (): (),
        serve: impl Fn(plex_tokio::Stream) + Send + Sync + 'static,
    ) -> Result<PlexTls> {
        let cert = ServerTls::self_signed(&["127.0.0.1"])?;
        let fingerprint = cert.fingerprint();
        let transport = TokioTransport::with_tls(TlsConfig::default().with_server(cert));
        let runtime = TokioRuntime::current();
        let url = "tls://127.0.0.1:0";
        let server = plex_runtime::listen(&transport, runtime, url, plex_config()).await?;
        let url = format!("{}?fingerprint={fingerprint}", server.local_endpoint());
        tokio::spawn(async move {
            let session = match server.accept().await {
                Ok((session, _)) => session,
                Err(e) => {
                    eprintln!("mux: plex tls server: {e}");
                    return;
                }
            };
            while let Ok(stream) = session.accept_stream().await {
                serve(stream.into());
            }
        });
        let session = plex_tokio::connect(&url, plex_config()).await?;
        Ok(PlexTls { session })
    }

    async fn open(&self) -> Result<plex_tokio::Stream> {
        let stream = self.session.open_stream(OpenOptions::default()).await?;
        Ok(stream.into())
    }
}

/// Raw rustls: every stream is a TLS connection of its own.
pub(crate) struct RawTls {
    addr: std::net::SocketAddr,
    connector: TlsConnector,
    name: rustls_name::ServerName<'static>,
}

/// The server-name type tokio-rustls takes.
mod rustls_name {
    pub(crate) use plex_runtime::tls::rustls::pki_types::ServerName;
}

impl Mux for RawTls {
    const NAME: &'static str = "raw rustls";
    type Env = ();
    type Stream = TlsStream<TcpStream>;

    async fn start(
        (): (),
        serve: impl Fn(TlsStream<TcpStream>) + Send + Sync + 'static,
    ) -> Result<RawTls> {
        let cert = ServerTls::self_signed(&["127.0.0.1"])?;
        let client = ClientTls::pinned(cert.fingerprint());
        let acceptor = TlsAcceptor::from(cert.rustls_config());
        let (listener, addr) = loopback_listener().await?;
        let serve = Arc::new(serve);
        tokio::spawn(async move {
            loop {
                let tcp = match accept_tcp(&listener).await {
                    Ok(tcp) => tcp,
                    Err(e) => {
                        eprintln!("mux: raw rustls server: {e}");
                        return;
                    }
                };
                let (acceptor, serve) = (acceptor.clone(), serve.clone());
                tokio::spawn(async move {
                    match acceptor.accept(tcp).await {
                        Ok(tls) => serve(TlsStream::Server(tls)),
                        Err(e) => eprintln!("mux: raw rustls handshake: {e}"),
                    }
                });
            }
        });
        let endpoint = format!("tls://{addr}").parse()?;
        let (config, name) = client.rustls_config(&endpoint)?;
        Ok(RawTls {
            addr,
            connector: TlsConnector::from(config),
            name,
        })
    }

    async fn open(&self) -> Result<TlsStream<TcpStream>> {
        let tcp = connect_tcp(self.addr).await?;
        let tls = self.connector.connect(self.name.clone(), tcp).await?;
        Ok(TlsStream::Client(tls))
    }
}
