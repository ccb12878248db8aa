//! Why a `tls://` connection or TLS setting failed.

use std::time::Duration;

use crate::Fingerprint;

/// Why a TLS handshake, or loading TLS settings, failed. The variants
/// about the server's certificate are what a client sees; a server skips
/// clients whose handshake fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The server's certificate does not chain to a trusted root.
    #[error("the server's certificate is not issued by a trusted authority (unknown issuer)")]
    UnknownIssuer,
    /// The server's certificate does not name the host dialled.
    #[error("the server's certificate is not valid for the name {host:?}")]
    WrongName {
        /// The host the client dialled.
        host: String,
    },
    /// The server's certificate (or one of its issuers) has expired.
    #[error("the server's certificate has expired")]
    Expired,
    /// The server's certificate (or one of its issuers) is not valid yet.
    #[error("the server's certificate is not valid yet")]
    NotYetValid,
    /// The server's certificate is not the one the client pinned.
    #[error("the server's certificate is {found}, not the pinned {expected}")]
    FingerprintMismatch {
        /// The fingerprint the client pinned.
        expected: Fingerprint,
        /// The fingerprint of the certificate the server presented.
        found: Fingerprint,
    },
    /// The server's certificate was rejected for another reason.
    #[error("the server's certificate was rejected: {0}")]
    BadCertificate(String),
    /// The peer and this side share no ALPN protocol (`plex/1`).
    #[error("the peer does not speak plex/1 (no common ALPN protocol)")]
    NoCommonProtocol,
    /// The peer answered with something other than TLS.
    #[error("the peer does not speak TLS (a plain tcp:// endpoint?)")]
    NotTls,
    /// The peer closed the connection in the middle of the handshake.
    #[error("the peer closed the connection during the TLS handshake (a plain tcp:// endpoint?)")]
    ClosedDuringHandshake,
    /// The handshake did not finish in time: the peer may not speak TLS.
    #[error("the TLS handshake did not finish within {0:?} (a plain tcp:// endpoint?)")]
    HandshakeTimeout(Duration),
    /// The peer refused the handshake with this alert.
    #[error("the peer refused the TLS handshake: {0}")]
    Refused(String),
    /// The handshake failed for another reason.
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    /// The dialled host is not a valid TLS server name.
    #[error("{0:?} is not a valid TLS server name")]
    BadServerName(String),
    /// A `tls://` listener without a server certificate.
    #[error("listening on tls:// needs a server certificate (TlsConfig::with_server)")]
    NoServerCertificate,
    /// A certificate, key or CA file could not be loaded.
    #[error("cannot load {what}: {reason}")]
    Load {
        /// What was being loaded (a path, or what the bytes were).
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// The operating system's store gave no usable root certificate.
    #[error("no trusted root certificate in the system store: {0}")]
    NoSystemRoots(String),
    /// A development certificate could not be generated.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
}

impl TlsError {
    /// The `std::io::ErrorKind` this error reads as.
    pub(crate) fn io_kind(&self) -> std::io::ErrorKind {
        use std::io::ErrorKind;
        match self {
            TlsError::HandshakeTimeout(_) => ErrorKind::TimedOut,
            TlsError::ClosedDuringHandshake => ErrorKind::UnexpectedEof,
            TlsError::BadServerName(_)
            | TlsError::NoServerCertificate
            | TlsError::Load { .. }
            | TlsError::NoSystemRoots(_)
            | TlsError::Generate(_) => ErrorKind::InvalidInput,
            _ => ErrorKind::InvalidData,
        }
    }
}
