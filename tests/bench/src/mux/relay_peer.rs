//! The relay row's peers, both through the suite's one `strelaysrv`: plex
//! over `relay://` (one relayed session, mutual TLS inside, every stream
//! on it) and raw relayed sessions (one per stream, no TLS inside, a
//! chunk length per write, see [`Relayed`]).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_io::{AsyncRead as FuturesRead, AsyncWrite as FuturesWrite};
use plex_proto::relay::{code, Decoder, Message};
use plex_runtime::relay::{self, Connector, DeviceId, Identity, RelayConfig, SessionInvitation};
use plex_runtime::tls::rustls::crypto::ring::default_provider;
use plex_runtime::tls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use plex_runtime::tls::rustls::sign::{CertifiedKey, SingleCertAndKey};
use plex_runtime::tls::ClientTls;
use plex_runtime::{
    BoxIo, BoxResult, Endpoint, Error, Fingerprint, OpenOptions, RelayError, Runtime, Session,
};
use plex_tokio::{TokioRuntime, TokioTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::peer::{connect_tcp, plex_config, Mux};
use super::relayed::Relayed;
use super::strelaysrv::RelayAt;
use super::Result;
use crate::report::PLEX;

/// Bounds each step of a raw session's set-up, as the runtime's default
/// bounds plex's.
const SESSION_TIMEOUT: Duration = plex_runtime::DEFAULT_HANDSHAKE_TIMEOUT;

/// The raw listener joins a session this much after its invitation, as
/// plex's does: joins at the same instant race in the relay.
const LISTENER_STAGGER: Duration = Duration::from_millis(5);

/// Sessions a raw dialer requests before giving up on the relay's join
/// race, as plex's dial does.
const DIAL_ATTEMPTS: usize = 3;

/// Plex: streams of one plex-tokio session over `relay://`; the listener
/// and the dialer each with an identity of their own.
pub(crate) struct PlexRelay {
    session: Session,
}

impl Mux for PlexRelay {
    const NAME: &'static str = PLEX;
    type Env = RelayAt;
    type Stream = plex_tokio::Stream;

    async fn start(
        relay: RelayAt,
        serve: impl Fn(plex_tokio::Stream) + Send + Sync + 'static,
    ) -> Result<PlexRelay> {
        let me = RelayConfig::default().with_identity(Identity::generate()?);
        let transport = TokioTransport::default().with_relay(me);
        let runtime = TokioRuntime::current();
        let server = plex_runtime::listen(&transport, runtime, &relay.url(), plex_config()).await?;
        let url = server.local_endpoint().to_string();
        tokio::spawn(async move {
            let session = match server.accept().await {
                Ok((session, _)) => session,
                Err(e) => {
                    eprintln!("mux: plex relay server: {e}");
                    return;
                }
            };
            while let Ok(stream) = session.accept_stream().await {
                serve(stream.into());
            }
        });
        // A dialling identity generated in memory.
        let session = plex_tokio::connect(&url, plex_config()).await?;
        Ok(PlexRelay { session })
    }

    async fn open(&self) -> Result<plex_tokio::Stream> {
        let stream = self.session.open_stream(OpenOptions::default()).await?;
        Ok(stream.into())
    }
}

/// Raw relayed sessions: every stream is a session of its own, requested
/// and joined with the runtime's public steps, and accepted by a listener
/// of the bench's own (the runtime's always runs TLS inside).
pub(crate) struct RawRelay {
    runtime: Arc<dyn Runtime>,
    connect: Connector,
    /// The dialer's identity.
    config: RelayConfig,
    relay: Endpoint,
    listener: DeviceId,
}

impl Mux for RawRelay {
    const NAME: &'static str = "raw relay";
    type Env = RelayAt;
    type Stream = Relayed<BoxIo>;

    async fn start(
        at: RelayAt,
        serve: impl Fn(Relayed<BoxIo>) + Send + Sync + 'static,
    ) -> Result<RawRelay> {
        let runtime = TokioRuntime::current();
        let connect = tcp_connector();
        let relay: Endpoint = at.url().parse()?;
        let listener = RawListener::join(at).await?;
        let id = listener.id;
        let (serving_runtime, serving_connect, serving_relay) =
            (runtime.clone(), connect.clone(), relay.clone());
        tokio::spawn(async move {
            let why = listener
                .serve(serving_runtime, serving_connect, serving_relay, serve)
                .await;
            eprintln!("mux: raw relay listener: {why}");
        });
        Ok(RawRelay {
            runtime,
            connect,
            config: RelayConfig::default().with_identity(Identity::generate()?),
            relay,
            listener: id,
        })
    }

    async fn open(&self) -> Result<Relayed<BoxIo>> {
        let (runtime, connect, relay) = (&*self.runtime, &self.connect, &self.relay);
        let mut attempt = 1;
        loop {
            let invitation =
                relay::request_session(runtime, connect, &self.config, relay, self.listener)
                    .await?;
            match relay::join_session(runtime, connect, relay, &invitation, SESSION_TIMEOUT).await {
                Ok(io) => return Ok(Relayed::new(io)),
                Err(Error::Relay(RelayError::Refused { code: 2, .. }))
                | Err(Error::Relay(RelayError::SessionTimedOut(_)))
                    if attempt < DIAL_ATTEMPTS =>
                {
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The raw side's control connection: TLS with its own client
/// certificate, ALPN `bep-relay`, the relay pinned, joined.
struct RawListener {
    control: TlsStream<TcpStream>,
    id: DeviceId,
    decoder: Decoder,
    /// Bytes read past the join's answer.
    rest: Vec<u8>,
}

impl RawListener {
    /// Connects to the relay and joins it under a fresh identity.
    async fn join(at: RelayAt) -> Result<RawListener> {
        let generated = rcgen::generate_simple_self_signed(vec!["plex-bench".to_string()])?;
        let cert = CertificateDer::from(generated.cert.der().to_vec());
        let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
        let id = Identity::new(cert.clone(), key.clone_key().into()).device_id();
        let relay_endpoint: Endpoint = format!("tls://{}", at.addr()).parse()?;
        let pinned = ClientTls::pinned(Fingerprint(*at.id().as_bytes()));
        let (config, name) = pinned.rustls_config(&relay_endpoint)?;
        let mut config = (*config).clone();
        let certified = CertifiedKey::from_der(vec![cert], key.into(), &default_provider())?;
        config.client_auth_cert_resolver = Arc::new(SingleCertAndKey::from(certified));
        config.alpn_protocols = vec![relay::BEP_RELAY.to_vec()];
        let tcp = connect_tcp(at.addr()).await?;
        let mut control = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        let join = Message::JoinRelayRequest {
            token: String::new(),
        };
        control.write_all(&join.to_bytes()?).await?;
        control.flush().await?;
        let mut listener = RawListener {
            control,
            id,
            decoder: Decoder::new(),
            rest: Vec::new(),
        };
        match listener.next_message().await? {
            Message::Response(r) if r.code == code::SUCCESS => Ok(listener),
            other => Err(format!("the relay refused the raw listener: {other:?}").into()),
        }
    }

    /// Answers Pings and joins every session offered, handing each to
    /// `serve`; returns why the control connection ended.
    async fn serve(
        mut self,
        runtime: Arc<dyn Runtime>,
        connect: Connector,
        relay: Endpoint,
        serve: impl Fn(Relayed<BoxIo>) + Send + Sync + 'static,
    ) -> String {
        let serve = Arc::new(serve);
        loop {
            let invitation: SessionInvitation = match self.next_message().await {
                Ok(Message::SessionInvitation(invitation)) => invitation,
                Ok(other) => return format!("unexpected {other:?}"),
                Err(e) => return e.to_string(),
            };
            let (runtime, connect, relay) = (runtime.clone(), connect.clone(), relay.clone());
            let serve = serve.clone();
            tokio::spawn(async move {
                tokio::time::sleep(LISTENER_STAGGER).await;
                match relay::join_session(&*runtime, &connect, &relay, &invitation, SESSION_TIMEOUT)
                    .await
                {
                    Ok(io) => serve(Relayed::new(io)),
                    Err(e) => eprintln!("mux: raw relay listener join: {e}"),
                }
            });
        }
    }

    /// The next message other than Ping (answered) and Pong.
    async fn next_message(&mut self) -> Result<Message> {
        let pong = Message::Pong.to_bytes()?;
        let mut buf = [0u8; 2048];
        loop {
            let mut input = &self.rest[..];
            let decoded = self.decoder.decode(&mut input)?;
            let consumed = self.rest.len() - input.len();
            self.rest.drain(..consumed);
            match decoded {
                Some(Message::Ping) => {
                    self.control.write_all(&pong).await?;
                    self.control.flush().await?;
                }
                Some(Message::Pong) => {}
                Some(message) => return Ok(message),
                None => {
                    let n = self.control.read(&mut buf).await?;
                    if n == 0 {
                        return Err("the relay closed the control connection".into());
                    }
                    self.rest.extend_from_slice(&buf[..n]);
                }
            }
        }
    }
}

/// Plain TCP, Nagle off, for the relay steps: a futures-io connection
/// that keeps tokio's vectored writes (a chunk's header goes out with its
/// payload).
fn tcp_connector() -> Connector {
    Arc::new(|address: String| -> BoxResult<'static, BoxIo> {
        Box::pin(async move {
            let tcp = TcpStream::connect(address).await?;
            tcp.set_nodelay(true)?;
            Ok(Box::new(TcpIo(tcp)) as BoxIo)
        })
    })
}

/// A tokio TCP stream with futures-io's traits.
struct TcpIo(TcpStream);

impl FuturesRead for TcpIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        std::task::ready!(tokio::io::AsyncRead::poll_read(
            Pin::new(&mut self.0),
            cx,
            &mut buf
        ))?;
        Poll::Ready(Ok(buf.filled().len()))
    }
}

impl FuturesWrite for TcpIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write_vectored(Pin::new(&mut self.0), cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::io::AsyncWrite::poll_shutdown(Pin::new(&mut self.0), cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::strelaysrv::Relay;
    use super::super::{run_once, Peer, Workload};
    use crate::pattern::pattern;

    /// Both peers carry several streams through a real relay, every byte
    /// checked by the bulk workload (it fails on a mismatch).
    #[test]
    fn both_peers_carry_bulk_streams_through_the_relay() {
        let relay = Relay::start().unwrap();
        for peer in [Peer::PlexRelay, Peer::RawRelay] {
            let workload = Workload::Bulk {
                streams: 3,
                per_stream: 1 << 20,
                pattern: Arc::from(pattern(4099)),
            };
            let figures = run_once(workload, peer, Some(relay.at())).unwrap();
            assert_eq!(figures.len(), 2, "{}: MB/s and CPU s/GB", peer.name());
            assert!(
                figures.iter().all(|&f| f > 0.0),
                "{}: {figures:?}",
                peer.name()
            );
        }
    }

    #[test]
    fn relay_peers_need_the_relay() {
        let workload = Workload::Bulk {
            streams: 1,
            per_stream: 1,
            pattern: Arc::from(pattern(1)),
        };
        let missing = run_once(workload, Peer::RawRelay, None).unwrap_err();
        assert!(missing.to_string().contains("needs the relay"), "{missing}");
    }
}
