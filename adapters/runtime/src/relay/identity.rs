//! A device's certificate and key: its device id on relays.

use std::path::Path;
use std::sync::Arc;

use plex_proto::relay::DeviceId;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{Error, Fingerprint, RelayError};

/// The certificate file in an identity directory.
pub const CERT_FILE: &str = "cert.pem";
/// The private key file in an identity directory.
pub const KEY_FILE: &str = "key.pem";

/// A device's self-signed certificate and private key. Its [`DeviceId`]
/// (the SHA-256 of the certificate) is how relays and peers know it.
///
/// Keep it with [`load_or_generate`](Identity::load_or_generate) so that
/// the id survives restarts; [`generate`](Identity::generate) makes a
/// throwaway one (enough for a dialer).
#[derive(Clone)]
pub struct Identity {
    cert: CertificateDer<'static>,
    key: Arc<PrivateKeyDer<'static>>,
    id: DeviceId,
}

impl Identity {
    /// A fresh ECDSA P-256 identity, in memory only.
    pub fn generate() -> Result<Identity, Error> {
        Ok(Identity::generated()?.0)
    }

    /// The identity saved in `dir` (`cert.pem` and `key.pem`), or a new one
    /// saved there (the directory is created; the key file is readable by
    /// its owner only).
    pub fn load_or_generate(dir: impl AsRef<Path>) -> Result<Identity, Error> {
        let dir = dir.as_ref();
        let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        if cert.exists() || key.exists() {
            return Identity::load(dir);
        }
        let (identity, cert_pem, key_pem) = Identity::generated()?;
        let fail = |e: std::io::Error| RelayError::Identity(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(fail)?;
        write_private(&key, key_pem.as_bytes()).map_err(fail)?;
        std::fs::write(&cert, cert_pem).map_err(fail)?;
        Ok(identity)
    }

    /// The identity saved in `dir` (`cert.pem` and `key.pem`).
    pub fn load(dir: impl AsRef<Path>) -> Result<Identity, Error> {
        let dir = dir.as_ref();
        let fail = |what: &Path, e: &dyn std::fmt::Display| {
            RelayError::Identity(format!("{}: {e}", what.display()))
        };
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        let cert = CertificateDer::from_pem_file(&cert_path).map_err(|e| fail(&cert_path, &e))?;
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| fail(&key_path, &e))?;
        Ok(Identity::new(cert, key))
    }

    /// An identity from a DER certificate and its private key.
    pub fn new(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> Identity {
        let id = DeviceId(Fingerprint::of(&cert).0);
        Identity {
            cert,
            key: Arc::new(key),
            id,
        }
    }

    /// The device id: what dialers put in `relay://…/?id=`.
    pub fn device_id(&self) -> DeviceId {
        self.id
    }

    /// The certificate (DER).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    fn generated() -> Result<(Identity, String, String), Error> {
        let generated = rcgen::generate_simple_self_signed(vec!["plex".to_string()])
            .map_err(|e| RelayError::Identity(format!("cannot generate a certificate: {e}")))?;
        let key_pem = generated.signing_key.serialize_pem();
        let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
        let identity = Identity::new(generated.cert.der().clone(), key.into());
        Ok((identity, generated.cert.pem(), key_pem))
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("id", &self.id).finish()
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}
