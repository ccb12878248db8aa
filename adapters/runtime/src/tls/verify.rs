//! Verifiers of pinned certificates, for `tls://` fingerprints and for
//! `relay://` device ids: one verifier, parameterised by the pin.

use std::fmt::Debug;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::{Fingerprint, TlsError};

/// What a pinned leaf certificate must be.
pub(crate) trait Pin: Debug + Send + Sync {
    /// Passes `cert`, or fails with the error a mismatch carries.
    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error>;
}

/// A mismatch carried through rustls to the handshake's caller, which
/// downcasts it back (see `handshake::classify` and the relay's
/// `classify`).
pub(crate) fn mismatch(error: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(error))))
}

/// A `tls://` pin: exactly the certificate with this SHA-256 fingerprint.
impl Pin for Fingerprint {
    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let found = Fingerprint::of(cert);
        match found == *self {
            true => Ok(()),
            false => Err(mismatch(TlsError::FingerprintMismatch {
                expected: *self,
                found,
            })),
        }
    }
}

/// Accepts the leaf certificate its pin passes, as a server's (client
/// side) or as a client's (server side, which then requires one). The
/// handshake signature is still checked against that certificate's key,
/// so only the holder of its private key gets through.
#[derive(Debug)]
pub(crate) struct PinVerifier<P> {
    pin: P,
    provider: Arc<CryptoProvider>,
}

impl<P: Pin> PinVerifier<P> {
    pub(crate) fn new(pin: P, provider: Arc<CryptoProvider>) -> PinVerifier<P> {
        PinVerifier { pin, provider }
    }

    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl<P: Pin> ServerCertVerifier for PinVerifier<P> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.pin.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

/// The server side requires a client certificate, and its pin must pass it.
impl<P: Pin> ClientCertVerifier for PinVerifier<P> {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.pin.check(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}
