//! Service ids (neonplex wire §8, `service.js` `deriveId`).

use bytes::{Bytes, BytesMut};

use super::varint::put_bytes;

/// One piece of a service id: text is written as a compact-encoding
/// `utf8` (length-prefixed), bytes are inserted raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdPart<'a> {
    /// A string; neonplex length-prefixes it.
    Text(&'a str),
    /// A byte array; neonplex inserts it as it is.
    Raw(&'a [u8]),
}

impl<'a> From<&'a str> for IdPart<'a> {
    fn from(text: &'a str) -> Self {
        IdPart::Text(text)
    }
}

impl<'a> From<&'a [u8]> for IdPart<'a> {
    fn from(raw: &'a [u8]) -> Self {
        IdPart::Raw(raw)
    }
}

/// The id neonplex's `deriveId(ns, name, version)` gives for string
/// pieces and a numeric version.
///
/// neonplex joins `'svc:'`, ns, `'/'`, name, `'/'`, version, each encoded
/// with compact-encoding `utf8`, so **every piece is length-prefixed**
/// (the separators too), not a plain `svc:ns/name/1`:
///
/// ```
/// let id = plex_proto::rpc::derive_id("ns", "store", 1);
/// assert_eq!(&id[..], b"\x04svc:\x02ns\x01/\x05store\x01/\x011");
/// ```
pub fn derive_id(ns: &str, name: &str, version: u64) -> Bytes {
    derive_id_parts(
        IdPart::Text(ns),
        IdPart::Text(name),
        IdPart::Text(&version.to_string()),
    )
}

/// [`derive_id`] with any piece given as raw bytes, as neonplex allows.
pub fn derive_id_parts(ns: IdPart<'_>, name: IdPart<'_>, version: IdPart<'_>) -> Bytes {
    let mut out = BytesMut::new();
    let sep = IdPart::Text("/");
    for part in [IdPart::Text("svc:"), ns, sep, name, sep, version] {
        match part {
            IdPart::Text(text) => put_bytes(&mut out, text.as_bytes()),
            IdPart::Raw(raw) => out.extend_from_slice(raw),
        }
    }
    out.freeze()
}
