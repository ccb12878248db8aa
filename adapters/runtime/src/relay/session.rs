//! Joining a relayed session, and the mutual TLS that runs inside it.

use std::future::{poll_fn, Future};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use plex_proto::relay::{code, DeviceId, JoinReader, Message, SessionInvitation, READY};
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;

use super::verify::Whose;
use super::{Connector, Identity};
use crate::accept::first;
use crate::tls::verify::PinVerifier;
use crate::tls::{provider, ALPN};
use crate::{BoxIo, Endpoint, Error, RelayError, Runtime, TlsError};

/// Which end of the TLS inside a relayed session this side is: the
/// invitation's `ServerSocket` says (true for the listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionSide {
    /// The TLS server: requires a client certificate, pinned to the peer.
    Server,
    /// The TLS client: pins the server's certificate to the peer.
    Client,
}

/// Runs mutual TLS (ALPN `plex/1`) over a joined session, presenting
/// `identity` and accepting only `peer`'s certificate, within `timeout`.
///
/// The relay sees the session's bytes in the clear and anyone holding the
/// key could join it, so this is where the two devices authenticate each
/// other: a certificate whose SHA-256 is not `peer` fails with
/// [`RelayError::WrongDevice`] on the side that checked it.
pub async fn secure_session(
    runtime: &dyn Runtime,
    io: BoxIo,
    identity: &Identity,
    peer: DeviceId,
    side: SessionSide,
    timeout: Duration,
) -> Result<BoxIo, Error> {
    let pin = Arc::new(PinVerifier::new(Whose::Peer(peer), provider()));
    let tls_error = |e: rustls::Error| Error::from(TlsError::Handshake(e.to_string()));
    let handshake: std::pin::Pin<Box<dyn Future<Output = io::Result<BoxIo>> + Send>> = match side {
        SessionSide::Client => {
            let mut config = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(tls_error)?
                .dangerous()
                .with_custom_certificate_verifier(pin)
                .with_client_auth_cert(vec![identity.certificate().clone()], identity.key())
                .map_err(tls_error)?;
            config.alpn_protocols = vec![ALPN.to_vec()];
            let connect = futures_rustls::TlsConnector::from(Arc::new(config))
                .connect(ServerName::IpAddress(Ipv4Addr::LOCALHOST.into()), io);
            Box::pin(async move { Ok(Box::new(connect.await?) as BoxIo) })
        }
        SessionSide::Server => {
            let mut config = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(tls_error)?
                .with_client_cert_verifier(pin)
                .with_single_cert(vec![identity.certificate().clone()], identity.key())
                .map_err(tls_error)?;
            config.alpn_protocols = vec![ALPN.to_vec()];
            let accept = futures_rustls::TlsAcceptor::from(Arc::new(config)).accept(io);
            Box::pin(async move { Ok(Box::new(accept.await?) as BoxIo) })
        }
    };
    match within(runtime, timeout, handshake).await {
        Some(Ok(io)) => Ok(io),
        Some(Err(e)) => Err(classify(e)),
        None => Err(RelayError::SessionTimedOut(timeout).into()),
    }
}

/// Joins the session `invitation` offers at the relay `relay` was dialled
/// as: plain TCP, `JoinSessionRequest`, the relay's `Response`, then the
/// READY exchange, so that neither side sends data before both joined.
pub(super) async fn join(
    runtime: &dyn Runtime,
    connect: &Connector,
    relay: &Endpoint,
    invitation: &SessionInvitation,
    timeout: Duration,
) -> Result<BoxIo, Error> {
    let ip = invitation.ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let address = if ip.is_unspecified() {
        host_port(&relay.host, invitation.port)
    } else {
        SocketAddr::new(ip, invitation.port).to_string()
    };
    let joining = async {
        let mut io = connect(address.clone())
            .await
            .map_err(|e| RelayError::Unreachable {
                relay: address.clone(),
                reason: e.to_string(),
            })?;
        let request = Message::JoinSessionRequest {
            key: invitation.key.clone(),
        };
        write_message(&mut io, &request).await?;
        let mut reader = JoinReader::new();
        let mut buf = [0; 64];
        let response = loop {
            if let Some(response) = reader.response() {
                break response.clone();
            }
            let n = read_some(&mut io, &mut buf).await?;
            if n == 0 {
                return Err(protocol("the relay closed the session before answering"));
            }
            reader
                .handle_input(&buf[..n])
                .map_err(|e| protocol(&e.to_string()))?;
        };
        match response.code {
            code::SUCCESS => {}
            code::NOT_FOUND => return Err(RelayError::InvitationExpired.into()),
            code => {
                let message = response.message;
                return Err(RelayError::Refused { code, message }.into());
            }
        }
        write_all(&mut io, &[READY]).await?;
        if !reader.peer_ready() {
            // Exactly one byte: the peer's data follows its READY.
            let mut byte = [0];
            if read_some(&mut io, &mut byte).await? == 0 {
                return Err(protocol("the session closed before the peer was ready"));
            }
            reader
                .handle_input(&byte)
                .map_err(|e| protocol(&e.to_string()))?;
        }
        Ok::<BoxIo, Error>(io)
    };
    within(runtime, timeout, joining)
        .await
        .unwrap_or(Err(RelayError::SessionTimedOut(timeout).into()))
}

/// `future`'s output, or `None` after `timeout`.
pub(super) async fn within<F: Future>(
    runtime: &dyn Runtime,
    timeout: Duration,
    future: F,
) -> Option<F::Output> {
    first(future, runtime.sleep_until(runtime.now() + timeout)).await
}

/// A failed handshake's error: ours (a pin mismatch) if rustls carried
/// one, else the TLS error.
pub(super) fn classify(e: io::Error) -> Error {
    let ours = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|tls| match tls {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
                other.0.downcast_ref::<RelayError>().cloned()
            }
            _ => None,
        });
    match ours {
        Some(relay) => relay.into(),
        // Device pins never fail on a name: no host to report.
        None => crate::tls::classify(e, ""),
    }
}

pub(super) fn protocol(what: &str) -> Error {
    RelayError::Protocol(what.to_string()).into()
}

pub(super) async fn write_message(io: &mut BoxIo, message: &Message) -> Result<(), Error> {
    // Our requests are small: encoding fails only on a local bug.
    let frame = message
        .to_bytes()
        .map_err(|e| protocol(&format!("cannot encode {message:?}: {e}")))?;
    write_all(io, &frame).await?;
    Ok(())
}

pub(super) async fn write_all(io: &mut BoxIo, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *io).poll_write(cx, bytes)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    poll_fn(|cx| Pin::new(&mut *io).poll_flush(cx)).await
}

pub(super) async fn read_some(io: &mut BoxIo, buf: &mut [u8]) -> io::Result<usize> {
    poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, buf)).await
}

/// Closes `io` (TLS close_notify), giving up after a second: the relay
/// may have stopped reading.
pub(super) async fn close(runtime: &dyn Runtime, mut io: BoxIo) {
    let closing = poll_fn(|cx| Pin::new(&mut io).poll_close(cx));
    let _ = within(runtime, Duration::from_secs(1), closing).await;
}

/// `host:port`, with brackets around an IPv6 host.
pub(super) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
