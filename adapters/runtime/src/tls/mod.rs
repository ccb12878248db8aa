//! TLS settings for `tls://` endpoints, shared by every adapter: the
//! adapters only wrap their TCP streams (tokio-rustls on tokio,
//! futures-rustls on smol and async-std).
//!
//! Plex over TLS is TCP, then a rustls handshake with the ALPN protocol
//! [`ALPN`] (`plex/1`), then the usual session. Only the `ring` crypto
//! provider is used.
//!
//! - A **server** needs a certificate: [`ServerTls::from_pem_files`], or
//!   [`ServerTls::self_signed`] for development, whose
//!   [`fingerprint`](ServerTls::fingerprint) clients pin.
//! - A **client** trusts the operating system's roots by default
//!   ([`ClientTls::system_roots`]), a CA file ([`ClientTls::ca_file`]) or
//!   one certificate ([`ClientTls::pinned`]). A fingerprint in the URL,
//!   `tls://host:port?fingerprint=sha256:HEX`, pins that connection
//!   whatever the client's settings, so `connect` with the default
//!   settings reaches a development server.
//! - Failures are typed: [`TlsError`] says whether the
//!   issuer was unknown, the name wrong, the certificate expired, the pin
//!   mismatched, or the peer does not speak TLS.
//!
//! ALPN: a client offers only `plex/1`. A server selects `plex/1` and
//! refuses a client that offers other protocols only; a client offering
//! none is served (generic TLS clients), and a client accepts a server that
//! selects none (a TLS terminator in front of a plex server).
//!
//! ```
//! use plex_runtime::tls::{ClientTls, ServerTls, TlsConfig};
//!
//! let server = ServerTls::self_signed(&["localhost"])?;
//! println!("pin with ?fingerprint={}", server.fingerprint());
//! let listening = TlsConfig::default().with_server(server.clone());
//! // A client that trusts exactly that certificate:
//! let dialling = TlsConfig::default().with_client(ClientTls::pinned(server.fingerprint()));
//! # let _ = (listening, dialling);
//! # Ok::<(), plex_runtime::Error>(())
//! ```

mod handshake;
pub(crate) mod verify;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

#[cfg(feature = "relay")]
pub(crate) use handshake::classify;
pub use handshake::client_handshake;
#[cfg(feature = "futures-tls")]
pub use handshake::{acceptor, connect};
/// The rustls version these settings are built with, for
/// [`ClientTls::custom`] and [`ServerTls::rustls_config`].
pub use rustls;

use crate::{Endpoint, Error, Fingerprint, TlsError, DEFAULT_HANDSHAKE_TIMEOUT};

/// The ALPN protocol a plex client offers and a plex server selects.
pub const ALPN: &[u8] = b"plex/1";

/// A transport's TLS settings: how it dials `tls://` and, if it has a
/// certificate, how it listens.
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    client: ClientTls,
    server: Option<ServerTls>,
}

impl TlsConfig {
    /// Dials with `client`'s trust.
    pub fn with_client(mut self, client: ClientTls) -> TlsConfig {
        self.client = client;
        self
    }

    /// Listens on `tls://` with `server`'s certificate.
    pub fn with_server(mut self, server: ServerTls) -> TlsConfig {
        self.server = Some(server);
        self
    }

    /// How `tls://` endpoints are dialled.
    pub fn client(&self) -> &ClientTls {
        &self.client
    }

    /// How `tls://` endpoints are listened on; an error without a
    /// certificate.
    pub fn server(&self) -> Result<&ServerTls, Error> {
        self.server
            .as_ref()
            .ok_or_else(|| TlsError::NoServerCertificate.into())
    }
}

/// What a TLS client trusts, and how long its handshake may take.
///
/// The default trusts the operating system's root certificates (loaded
/// once, on the first dial). A `?fingerprint=` in the URL overrides any
/// trust for that connection.
#[derive(Debug, Clone)]
pub struct ClientTls {
    trust: Trust,
    handshake_timeout: Duration,
    /// The config for `trust`, built on the first dial and kept, so that
    /// later dials resume sessions.
    built: Arc<OnceLock<Arc<ClientConfig>>>,
}

#[derive(Debug, Clone)]
enum Trust {
    System,
    Roots(Arc<RootCertStore>),
    Pinned(Fingerprint),
    Custom(Arc<ClientConfig>),
}

impl Default for ClientTls {
    fn default() -> ClientTls {
        ClientTls::system_roots()
    }
}

impl ClientTls {
    /// Trusts the operating system's root certificates (on Linux the
    /// distribution's bundle, or `SSL_CERT_FILE` / `SSL_CERT_DIR`).
    pub fn system_roots() -> ClientTls {
        ClientTls::trusting(Trust::System)
    }

    /// Trusts the certificate authorities of a PEM file.
    pub fn ca_file(path: impl AsRef<Path>) -> Result<ClientTls, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| load_error(path.display(), e))?;
        ClientTls::ca_pem_named(&bytes, &path.display().to_string())
    }

    /// Trusts the certificate authorities of PEM text.
    pub fn ca_pem(pem: &[u8]) -> Result<ClientTls, Error> {
        ClientTls::ca_pem_named(pem, "CA certificates")
    }

    /// Trusts exactly the certificate with this SHA-256 fingerprint,
    /// whoever issued it and whatever names and dates it carries, as SSH
    /// trusts a known host key.
    pub fn pinned(fingerprint: Fingerprint) -> ClientTls {
        ClientTls::trusting(Trust::Pinned(fingerprint))
    }

    /// Uses `config` as it is (client certificates, other roots, other
    /// ALPN): for what the other constructors do not cover. A
    /// `?fingerprint=` in the URL still overrides it.
    pub fn custom(config: Arc<ClientConfig>) -> ClientTls {
        ClientTls::trusting(Trust::Custom(config))
    }

    /// Fails handshakes that take longer than `timeout` (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> ClientTls {
        self.handshake_timeout = timeout;
        self
    }

    /// How long a handshake may take.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The rustls config and server name to dial `endpoint` with: for
    /// adapters that run the handshake themselves (see
    /// [`client_handshake`]).
    pub fn rustls_config(
        &self,
        endpoint: &Endpoint,
    ) -> Result<(Arc<ClientConfig>, ServerName<'static>), Error> {
        let name = ServerName::try_from(endpoint.host.clone())
            .map_err(|_| TlsError::BadServerName(endpoint.host.clone()))?;
        let config = match endpoint.fingerprint {
            Some(pin) => client_config(&Trust::Pinned(pin))?,
            None => match self.built.get() {
                Some(config) => config.clone(),
                None => {
                    let config = client_config(&self.trust)?;
                    self.built.get_or_init(|| config).clone()
                }
            },
        };
        Ok((config, name))
    }

    fn trusting(trust: Trust) -> ClientTls {
        ClientTls {
            trust,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            built: Arc::default(),
        }
    }

    fn ca_pem_named(pem: &[u8], what: &str) -> Result<ClientTls, Error> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| load_error(what, e))?;
            roots.add(cert).map_err(|e| load_error(what, e))?;
        }
        if roots.is_empty() {
            return Err(load_error(what, "no CERTIFICATE in the PEM text").into());
        }
        Ok(ClientTls::trusting(Trust::Roots(Arc::new(roots))))
    }
}

/// A TLS server's certificate and key, and how long a client's handshake
/// may take.
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    fingerprint: Fingerprint,
    handshake_timeout: Duration,
}

impl ServerTls {
    /// Loads a certificate chain (leaf first) and its private key (PKCS#8,
    /// PKCS#1 or SEC1) from PEM files.
    pub fn from_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<ServerTls, Error> {
        let (chain, key) = (chain.as_ref(), key.as_ref());
        let chain_pem = std::fs::read(chain).map_err(|e| load_error(chain.display(), e))?;
        let key_pem = std::fs::read(key).map_err(|e| load_error(key.display(), e))?;
        let chain = parse_chain(&chain_pem, &chain.display().to_string())?;
        let key =
            PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| load_error(key.display(), e))?;
        ServerTls::new(chain, key)
    }

    /// Takes a certificate chain (leaf first) and its private key as PEM
    /// text.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<ServerTls, Error> {
        let chain = parse_chain(chain, "the certificate chain")?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| load_error("the key", e))?;
        ServerTls::new(chain, key)
    }

    /// A freshly generated self-signed certificate for `names` (DNS names
    /// or IP addresses), for development: clients pin its
    /// [`fingerprint`](ServerTls::fingerprint), which changes with every
    /// call.
    pub fn self_signed(names: &[&str]) -> Result<ServerTls, Error> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let generated = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
        ServerTls::new(vec![generated.cert.der().clone()], key.into())
    }

    /// The SHA-256 fingerprint of the leaf certificate: what a client pins
    /// with `?fingerprint=`.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Drops clients whose handshake takes longer than `timeout` (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]), without holding up the others.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> ServerTls {
        self.handshake_timeout = timeout;
        self
    }

    /// How long a client's handshake may take.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The rustls config: for adapters that run the handshake themselves.
    pub fn rustls_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<ServerTls, Error> {
        let fingerprint = Fingerprint::of(&chain[0]);
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Handshake(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| load_error("the certificate and key", e))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
            fingerprint,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }
}

/// The one crypto provider: ring.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static RING: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    RING.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Handshake(e.to_string()))?;
    let mut config = match trust {
        Trust::Custom(config) => return Ok(config.clone()),
        Trust::System => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
        Trust::Roots(roots) => builder
            .with_root_certificates(roots.clone())
            .with_no_client_auth(),
        Trust::Pinned(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verify::PinVerifier::new(*pin, provider())))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// The operating system's roots, loaded once per process.
fn system_roots() -> Result<Arc<RootCertStore>, TlsError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, TlsError>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "the store is empty".to_string(), |e| e.to_string());
                return Err(TlsError::NoSystemRoots(why));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

fn parse_chain(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| load_error(what, e))?;
    if chain.is_empty() {
        return Err(load_error(what, "no CERTIFICATE in the PEM text").into());
    }
    Ok(chain)
}

fn load_error(what: impl std::fmt::Display, why: impl std::fmt::Display) -> TlsError {
    TlsError::Load {
        what: what.to_string(),
        reason: why.to_string(),
    }
}
