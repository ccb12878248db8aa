//! SHA-256 certificate fingerprints, as pinned in `tls://…?fingerprint=`.

use std::fmt;
use std::str::FromStr;

/// The SHA-256 digest of a certificate (its DER bytes): what a client pins
/// instead of trusting a certificate authority.
///
/// Written `sha256:` and 64 hex digits; parsing also takes upper case and
/// `:` between bytes, as `openssl x509 -fingerprint -sha256` prints them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

/// Why a fingerprint did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FingerprintError {
    /// The text does not start with `sha256:`.
    #[error("fingerprint {0:?} must start with sha256:")]
    Algorithm(String),
    /// Not 32 bytes of hex digits.
    #[error("fingerprint {0:?} must be 64 hex digits after sha256:")]
    Digest(String),
}

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    #[cfg(feature = "tls")]
    pub fn of(certificate_der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, certificate_der);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(text: &str) -> Result<Fingerprint, FingerprintError> {
        let (algorithm, hex) = text
            .split_once(':')
            .ok_or_else(|| FingerprintError::Algorithm(text.into()))?;
        if !algorithm.eq_ignore_ascii_case("sha256") {
            return Err(FingerprintError::Algorithm(text.into()));
        }
        let digits: Vec<u8> = hex.bytes().filter(|&b| b != b':').collect();
        let bad = || FingerprintError::Digest(text.into());
        if digits.len() != 64 {
            return Err(bad());
        }
        let mut bytes = [0; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Fingerprint(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_accepts_openssl_s_colons() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let f: Fingerprint = format!("sha256:{hex}").parse().unwrap();
        assert_eq!(f.to_string(), format!("sha256:{hex}"));
        let colons = "SHA256:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:\
                      00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
        assert_eq!(colons.parse::<Fingerprint>().unwrap(), f);
    }

    #[test]
    fn rejects_other_algorithms_and_short_or_bad_digests() {
        let err = |s: &str| s.parse::<Fingerprint>().unwrap_err();
        assert!(matches!(err("md5:00"), FingerprintError::Algorithm(_)));
        assert!(matches!(err("abcd"), FingerprintError::Algorithm(_)));
        assert!(matches!(err("sha256:00ff"), FingerprintError::Digest(_)));
        let bad = format!("sha256:{}", "zz".repeat(32));
        assert!(matches!(err(&bad), FingerprintError::Digest(_)));
    }
}
