//! Running a TLS handshake: the client's timeout and typed errors, and the
//! futures-io binding (futures-rustls) that smol and async-std use.

use std::future::Future;
use std::io;

use rustls::{AlertDescription, CertificateError};

use crate::accept::first;
use crate::tls::ClientTls;
#[cfg(feature = "futures-tls")]
use crate::{BoxIo, BoxResult, Handshake, Io};
use crate::{Endpoint, Error, Runtime, TlsError};
#[cfg(feature = "futures-tls")]
use std::sync::Arc;

/// Runs a client `handshake` (an adapter's TLS connect future) for at most
/// `client`'s handshake timeout on `runtime`'s timer, and turns its
/// failure into a typed [`TlsError`].
pub async fn client_handshake<T>(
    runtime: &dyn Runtime,
    client: &ClientTls,
    endpoint: &Endpoint,
    handshake: impl Future<Output = io::Result<T>>,
) -> Result<T, Error> {
    let timeout = client.handshake_timeout();
    let expiry = runtime.sleep_until(runtime.now() + timeout);
    match first(handshake, expiry).await {
        Some(Ok(io)) => Ok(io),
        Some(Err(e)) => Err(classify(e, &endpoint.host)),
        None => Err(TlsError::HandshakeTimeout(timeout).into()),
    }
}

/// Dials TLS over `io`, an open TCP connection to `endpoint`, with
/// futures-rustls.
#[cfg(feature = "futures-tls")]
pub async fn connect(
    runtime: &dyn Runtime,
    client: &ClientTls,
    endpoint: &Endpoint,
    io: impl Io,
) -> Result<BoxIo, Error> {
    let (config, name) = client.rustls_config(endpoint)?;
    let connect = futures_rustls::TlsConnector::from(config).connect(name, io);
    let tls = client_handshake(runtime, client, endpoint, connect).await?;
    Ok(Box::new(tls))
}

/// The server handshake with futures-rustls, for a
/// [`HandshakeListener`](crate::HandshakeListener) to run under
/// `server`'s handshake timeout.
#[cfg(feature = "futures-tls")]
pub fn acceptor<C: Io>(server: &crate::tls::ServerTls) -> Handshake<C> {
    let acceptor = futures_rustls::TlsAcceptor::from(server.rustls_config());
    Arc::new(move |conn: C| -> BoxResult<'static, BoxIo> {
        let accept = acceptor.accept(conn);
        Box::pin(async move { Ok(Box::new(accept.await?) as BoxIo) })
    })
}

/// The typed error for a failed client handshake.
/// `host` is the name dialled, for [`TlsError::WrongName`].
pub(crate) fn classify(e: io::Error, host: &str) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return TlsError::ClosedDuringHandshake.into();
    }
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => from_rustls(tls, host).into(),
        None => e.into(),
    }
}

fn from_rustls(e: &rustls::Error, host: &str) -> TlsError {
    use rustls::Error as E;
    use CertificateError as C;
    match e {
        E::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer => TlsError::UnknownIssuer,
            C::NotValidForName | C::NotValidForNameContext { .. } => TlsError::WrongName {
                host: host.to_string(),
            },
            C::Expired | C::ExpiredContext { .. } => TlsError::Expired,
            C::NotValidYet | C::NotValidYetContext { .. } => TlsError::NotYetValid,
            C::Other(other) => match other.0.downcast_ref::<TlsError>() {
                Some(ours) => ours.clone(),
                None => TlsError::BadCertificate(cert.to_string()),
            },
            _ => TlsError::BadCertificate(cert.to_string()),
        },
        E::NoApplicationProtocol | E::AlertReceived(AlertDescription::NoApplicationProtocol) => {
            TlsError::NoCommonProtocol
        }
        E::InvalidMessage(_) => TlsError::NotTls,
        E::AlertReceived(alert) => TlsError::Refused(format!("{alert:?}")),
        other => TlsError::Handshake(other.to_string()),
    }
}
