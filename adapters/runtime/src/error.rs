//! The adapters' error type, and its mapping to `std::io::Error`.

use std::io;
use std::sync::Arc;

use plex_proto::protomux::{MuxCloseReason, MuxLocalError};
use plex_proto::{CloseReason, ConfigError, ErrorCode, LocalError, ResetReason};

use crate::auth::AuthError;

/// Why an operation on a [`Session`](crate::Session) or
/// [`Stream`](crate::Stream) failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The call was not valid for the stream or session's state.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// The configuration was rejected.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The stream was reset; the reason says by whom and why.
    #[error("stream reset: {0}")]
    Reset(ResetReason),
    /// This side reset the stream with this code.
    #[error("stream reset locally with {0}")]
    LocalReset(ErrorCode),
    /// The peer stopped reading the stream (STOP_SENDING with this code):
    /// writes fail, reads still deliver what the peer sent.
    #[error("peer stopped reading the stream ({0})")]
    Stopped(ErrorCode),
    /// The connection closed.
    #[error("connection closed: {0}")]
    Closed(CloseReason),
    /// A read or write deadline passed.
    #[error("timed out")]
    TimedOut,
    /// The transport failed, or could not be dialled.
    #[error("transport: {0}")]
    Io(Arc<io::Error>),
    /// The endpoint URL was rejected.
    #[error(transparent)]
    Endpoint(#[from] crate::EndpointError),
    /// A Protomux call that was not valid for the channel or connection.
    #[error(transparent)]
    MuxLocal(#[from] MuxLocalError),
    /// The Protomux connection closed.
    #[error("connection closed: {0}")]
    MuxClosed(MuxCloseReason),
    /// The peer rejected the Protomux channel: nothing listens for it there.
    #[error("the peer rejected the channel: nothing listens for it there")]
    Rejected,
    /// A `tls://` handshake or TLS setting failed.
    #[error(transparent)]
    Tls(#[from] crate::TlsError),
    /// A `relay://` connection failed.
    #[error(transparent)]
    Relay(#[from] crate::RelayError),
    /// The server did not admit the connection ([`crate::auth`]).
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(Arc::new(e))
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::Local(LocalError::Finished(_)) | Error::Stopped(_) => io::ErrorKind::BrokenPipe,
            Error::Local(_) | Error::Config(_) | Error::Endpoint(_) | Error::MuxLocal(_) => {
                io::ErrorKind::InvalidInput
            }
            Error::MuxClosed(_) => io::ErrorKind::ConnectionAborted,
            Error::Rejected => io::ErrorKind::ConnectionRefused,
            Error::Reset(_) | Error::LocalReset(_) => io::ErrorKind::ConnectionReset,
            Error::Closed(CloseReason::IdleTimeout) | Error::TimedOut => io::ErrorKind::TimedOut,
            Error::Closed(_) => io::ErrorKind::ConnectionAborted,
            Error::Io(io) => io.kind(),
            Error::Tls(tls) => tls.io_kind(),
            Error::Relay(relay) => relay.io_kind(),
            Error::Auth(AuthError::TimedOut(_)) => io::ErrorKind::TimedOut,
            Error::Auth(AuthError::Connection(e)) => io::Error::from((**e).clone()).kind(),
            Error::Auth(_) => io::ErrorKind::PermissionDenied,
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_sentences_not_debug_names() {
        let closed = Error::Closed(CloseReason::TransportClosed).to_string();
        assert_eq!(
            closed,
            "connection closed: the transport closed before the session ended"
        );
        let reset = Error::Reset(ResetReason::Remote(ErrorCode::CANCEL)).to_string();
        assert!(!reset.contains("Remote("), "{reset}");
        assert!(reset.contains("CANCEL"), "{reset}");
    }
}
