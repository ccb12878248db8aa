//! Certificate checks by device id: the relay's (`?relay=`), and the
//! peer's inside a relayed session, on either side of its TLS.

use plex_proto::relay::DeviceId;
use rustls_pki_types::CertificateDer;

use crate::tls::verify::{mismatch, Pin};
use crate::{Fingerprint, RelayError};

/// Whose certificate is checked: it decides the error a mismatch gives.
/// The certificate passes when its SHA-256 is the expected device id (or,
/// for an unpinned relay, always).
#[derive(Debug, Clone, Copy)]
pub(super) enum Whose {
    /// The relay's, pinned with `?relay=`, or any relay.
    Relay(Option<DeviceId>),
    /// The peer's inside a session.
    Peer(DeviceId),
}

impl Pin for Whose {
    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let found = DeviceId(Fingerprint::of(cert).0);
        match *self {
            Whose::Relay(Some(expected)) if expected != found => {
                Err(mismatch(RelayError::WrongRelay { expected, found }))
            }
            Whose::Peer(expected) if expected != found => {
                Err(mismatch(RelayError::WrongDevice { expected, found }))
            }
            _ => Ok(()),
        }
    }
}
