//! Syncthing device ids: the SHA-256 of a certificate, written in base32
//! with Luhn-32 check characters.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;

/// A device id: the SHA-256 digest of a device's DER certificate, which
/// the caller computes (this crate does no cryptography).
///
/// Written as Syncthing writes it: base32 (RFC 4648, no padding, 52
/// characters), one Luhn-32 check character after each group of 13, and
/// the 56 characters in 8 dash-separated groups of 7:
///
/// ```
/// use plex_proto::relay::DeviceId;
///
/// let id: DeviceId = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2".parse()?;
/// assert_eq!(id.to_string(), "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2");
/// // Lower case, the look-alike digits and missing dashes are forgiven.
/// let sloppy: DeviceId = "p56ioi7mzjnu2yiqgdreydm2mgtimgl3bxnpq6w5bmtbbz4tjxzwicq2".parse()?;
/// assert_eq!(sloppy, id);
/// # Ok::<(), plex_proto::relay::DeviceIdError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub [u8; 32]);

/// Why a device id did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceIdError {
    /// Not 56 characters (with check characters) or 52 (without), once
    /// dashes, spaces and `=` are removed.
    #[error("a device id has 56 characters (or 52 in the old form), not {0}")]
    Length(usize),
    /// A character outside base32's A–Z and 2–7.
    #[error("a device id is base32 (A-Z, 2-7): {0:?} is not")]
    Character(char),
    /// A check character does not match its group.
    #[error("device id check character {group} of 4 does not match (a typo?)")]
    Check {
        /// Which group of 14 characters failed, 1 to 4.
        group: usize,
    },
}

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

impl DeviceId {
    /// The 32 bytes: what `ConnectRequest` carries and `SessionInvitation`
    /// names the peer with.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id in 32 raw bytes, if `bytes` is exactly that long.
    pub fn from_slice(bytes: &[u8]) -> Option<DeviceId> {
        Some(DeviceId(bytes.try_into().ok()?))
    }
}

impl FromStr for DeviceId {
    type Err = DeviceIdError;

    fn from_str(text: &str) -> Result<DeviceId, DeviceIdError> {
        let mut chars = Vec::with_capacity(56);
        for c in text.chars() {
            let c = match c.to_ascii_uppercase() {
                '-' | ' ' | '=' => continue,
                '0' => 'O',
                '1' => 'I',
                '8' => 'B',
                c => c,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
                return Err(DeviceIdError::Character(c));
            }
            chars.push(c as u8);
        }
        let plain = match chars.len() {
            56 => {
                let mut plain = Vec::with_capacity(52);
                for (i, group) in chars.chunks(14).enumerate() {
                    let (data, check) = group.split_at(13);
                    if luhn32(data) != check[0] {
                        return Err(DeviceIdError::Check { group: i + 1 });
                    }
                    plain.extend_from_slice(data);
                }
                plain
            }
            52 => chars,
            n => return Err(DeviceIdError::Length(n)),
        };
        // 52 base32 characters are 260 bits: 32 bytes and 4 spare bits,
        // which data-encoding requires to be zero.
        let bytes = BASE32_NOPAD
            .decode(&plain)
            .map_err(|e| DeviceIdError::Character(plain[e.position] as char))?;
        // Cannot fail: 52 characters decode to exactly 32 bytes.
        Ok(DeviceId::from_slice(&bytes).expect("52 base32 characters are 32 bytes"))
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = BASE32_NOPAD.encode(&self.0);
        let mut checked = Vec::with_capacity(56);
        for group in plain.as_bytes().chunks(13) {
            checked.extend_from_slice(group);
            checked.push(luhn32(group));
        }
        for (i, group) in checked.chunks(7).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            // Cannot fail: base32 output and the check characters are ASCII.
            f.write_str(std::str::from_utf8(group).expect("base32 is ASCII"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

/// Syncthing's check character (`lib/protocol/luhn.go`): not the standard
/// Luhn mod N, but this, over base32 code points.
fn luhn32(group: &[u8]) -> u8 {
    let mut factor = 1;
    let mut sum = 0;
    for &c in group {
        // Callers pass only alphabet characters.
        let codepoint = ALPHABET.iter().position(|&a| a == c).unwrap_or(0);
        let addend = factor * codepoint;
        factor = if factor == 2 { 1 } else { 2 };
        sum += addend / 32 + addend % 32;
    }
    ALPHABET[(32 - sum % 32) % 32]
}
