//! Why a `relay://` connection failed.

use std::time::Duration;

use plex_proto::relay::DeviceId;

/// Why dialling or listening through a Syncthing relay failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The relay could not be reached (TCP), or its TLS handshake failed.
    #[error("relay {relay} is not reachable: {reason}")]
    Unreachable {
        /// The relay's `host:port`.
        relay: String,
        /// Why.
        reason: String,
    },
    /// The relay's certificate is not the one pinned with `?relay=`.
    #[error("the relay is {found}, not the pinned {expected}")]
    WrongRelay {
        /// The relay id pinned in the URL.
        expected: DeviceId,
        /// The id of the certificate the relay presented.
        found: DeviceId,
    },
    /// The relay answered a request with an error code.
    #[error("the relay refused: {message} (code {code})")]
    Refused {
        /// The relay's code (`plex_proto::relay::code`).
        code: i32,
        /// The relay's text.
        message: String,
    },
    /// The device dialled is not joined to the relay.
    #[error("device {0} is not joined to the relay")]
    NotFound(DeviceId),
    /// The peer inside the relayed session is not the device expected.
    #[error("the relayed peer is {found}, not {expected}")]
    WrongDevice {
        /// The device the session was meant for.
        expected: DeviceId,
        /// The id of the certificate the peer presented.
        found: DeviceId,
    },
    /// The session key was no longer valid when this side joined (the
    /// relay's `-message-timeout` passed, or the key was used).
    #[error("the relay session invitation expired before it was joined")]
    InvitationExpired,
    /// The relay is over its connection limit and dropped this connection.
    #[error("the relay is full")]
    RelayFull,
    /// Joining the session, or waiting for the peer to join, took too long.
    #[error("the relayed session was not set up within {0:?}")]
    SessionTimedOut(Duration),
    /// The listener's connection to the relay ended; its sessions end too.
    #[error("the connection to the relay ended: {0}")]
    ControlLost(String),
    /// The relay sent something the protocol does not allow there.
    #[error("the relay broke the protocol: {0}")]
    Protocol(String),
    /// A `relay://` URL to dial without `?id=` (the target device).
    #[error("dialling relay:// needs the target device: ?id=DEVICE-ID")]
    NoDeviceId,
    /// The device identity could not be generated, loaded or saved.
    #[error("relay identity: {0}")]
    Identity(String),
}

impl RelayError {
    /// The `std::io::ErrorKind` this error reads as.
    pub(crate) fn io_kind(&self) -> std::io::ErrorKind {
        use std::io::ErrorKind;
        match self {
            RelayError::Unreachable { .. } | RelayError::RelayFull => ErrorKind::ConnectionRefused,
            RelayError::Refused { .. } | RelayError::NotFound(_) => ErrorKind::ConnectionRefused,
            RelayError::SessionTimedOut(_) => ErrorKind::TimedOut,
            RelayError::ControlLost(_) => ErrorKind::ConnectionAborted,
            RelayError::NoDeviceId | RelayError::Identity(_) => ErrorKind::InvalidInput,
            _ => ErrorKind::InvalidData,
        }
    }
}
