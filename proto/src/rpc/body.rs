//! Store request bodies (neonplex wire §8), the `body` of a REQ frame.
//!
//! `U8` is a compact-encoding `uint8array` (`uint` length + bytes) and
//! `caps` is `bool hasCaps · [U8 caps]`:
//!
//! | method | body |
//! |---|---|
//! | GET, DEL | `U8 key · caps` |
//! | PUT | `U8 key · U8 value · caps` |
//! | APPEND | `U8 value · caps` |
//! | SCAN | `bool hasPrefix · [U8 prefix] · bool reverse · range bounds · caps` |
//!
//! Encoders always write the caps flag; decoders accept a body that ends
//! before it. Empty caps are no caps, and an empty prefix is no prefix,
//! as in neonplex.
//!
//! SCAN range bounds: see the range-bounds bug in the `rpc` module docs.

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::Method;
use super::varint::{put_bytes, uint_len, Reader};
use super::DecodeError;

/// A decoded store request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// GET: `U8 key · caps`.
    Get {
        /// The key.
        key: Bytes,
        /// The capability token; empty means none.
        caps: Bytes,
    },
    /// DEL: `U8 key · caps`.
    Del {
        /// The key.
        key: Bytes,
        /// The capability token; empty means none.
        caps: Bytes,
    },
    /// PUT: `U8 key · U8 value · caps`.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// The capability token; empty means none.
        caps: Bytes,
    },
    /// APPEND: `U8 value · caps`.
    Append {
        /// The value.
        value: Bytes,
        /// The capability token; empty means none.
        caps: Bytes,
    },
    /// SCAN.
    Scan(Scan),
}

/// A SCAN body: an optional prefix, a direction and optional bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Only keys starting with this; empty means no prefix.
    pub prefix: Bytes,
    /// Newest (greatest) key first.
    pub reverse: bool,
    /// Keys `>=` this.
    pub gte: Option<Bytes>,
    /// Keys `>` this.
    pub gt: Option<Bytes>,
    /// Keys `<=` this.
    pub lte: Option<Bytes>,
    /// Keys `<` this.
    pub lt: Option<Bytes>,
    /// The capability token; empty means none.
    pub caps: Bytes,
}

/// The order in which a SCAN body's range bounds were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeLayout {
    /// Four flags, then the present values: what neonplex decodes, and
    /// what [`Body::encode`] writes.
    FlagsFirst,
    /// Flag, value, flag, value…: what neonplex's encoder writes (its bug).
    Interleaved,
}

impl Body {
    /// Decodes the body of a REQ for `method`. Fields are slices of `body`.
    ///
    /// Stricter than neonplex: flags must be 0 or 1 and no bytes may follow
    /// the body. [`DecodeError::UnknownMethod`] for an id without a body.
    pub fn decode(method: Method, body: Bytes) -> Result<Body, DecodeError> {
        let mut r = Reader::new(body);
        let decoded = match method {
            Method::GET | Method::DEL => {
                let key = r.bytes("key")?;
                let caps = caps(&mut r)?;
                if method == Method::GET {
                    Body::Get { key, caps }
                } else {
                    Body::Del { key, caps }
                }
            }
            Method::PUT => Body::Put {
                key: r.bytes("key")?,
                value: r.bytes("value")?,
                caps: caps(&mut r)?,
            },
            Method::APPEND => Body::Append {
                value: r.bytes("value")?,
                caps: caps(&mut r)?,
            },
            Method::SCAN => return Ok(Body::Scan(Scan::decode_from(r)?.0)),
            Method(other) => return Err(DecodeError::UnknownMethod(other)),
        };
        r.finish("store body")?;
        Ok(decoded)
    }

    /// The method this body belongs to.
    pub fn method(&self) -> Method {
        match self {
            Body::Get { .. } => Method::GET,
            Body::Del { .. } => Method::DEL,
            Body::Put { .. } => Method::PUT,
            Body::Append { .. } => Method::APPEND,
            Body::Scan(_) => Method::SCAN,
        }
    }

    /// Appends the body's bytes as neonplex writes them (SCAN ranges in
    /// the flags-first layout, see the module docs).
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        match self {
            Body::Get { key, caps } | Body::Del { key, caps } => {
                put_bytes(out, key);
                put_caps(out, caps);
            }
            Body::Put { key, value, caps } => {
                put_bytes(out, key);
                put_bytes(out, value);
                put_caps(out, caps);
            }
            Body::Append { value, caps } => {
                put_bytes(out, value);
                put_caps(out, caps);
            }
            Body::Scan(scan) => scan.encode(out),
        }
    }

    /// The body's bytes in a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out.freeze()
    }

    /// How many bytes [`encode`](Body::encode) writes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Body::Get { key, caps } | Body::Del { key, caps } => u8_len(key) + caps_len(caps),
            Body::Put { key, value, caps } => u8_len(key) + u8_len(value) + caps_len(caps),
            Body::Append { value, caps } => u8_len(value) + caps_len(caps),
            Body::Scan(scan) => scan.encoded_len(),
        }
    }
}

impl Scan {
    /// Decodes a SCAN body in either range layout and says which it was
    /// (see the module docs for how the two are told apart).
    pub fn decode(body: Bytes) -> Result<(Scan, RangeLayout), DecodeError> {
        Scan::decode_from(Reader::new(body))
    }

    fn decode_from(mut r: Reader) -> Result<(Scan, RangeLayout), DecodeError> {
        let prefix = if r.bool("prefix flag")? {
            r.bytes("prefix")?
        } else {
            Bytes::new()
        };
        let reverse = r.bool("reverse flag")?;
        let head = Scan {
            prefix,
            reverse,
            ..Scan::default()
        };
        let flags_first = head
            .clone()
            .bounds_and_caps(r.clone(), RangeLayout::FlagsFirst);
        match flags_first {
            Ok(scan) => Ok((scan, RangeLayout::FlagsFirst)),
            Err(error) => match head.bounds_and_caps(r, RangeLayout::Interleaved) {
                Ok(scan) => Ok((scan, RangeLayout::Interleaved)),
                // The canonical layout's error is the one worth reporting.
                Err(_) => Err(error),
            },
        }
    }

    fn bounds_and_caps(mut self, mut r: Reader, layout: RangeLayout) -> Result<Scan, DecodeError> {
        const NAMES: [&str; 4] = ["gte", "gt", "lte", "lt"];
        let mut bounds: [Option<Bytes>; 4] = Default::default();
        match layout {
            RangeLayout::FlagsFirst => {
                let mut present = [false; 4];
                for (flag, name) in present.iter_mut().zip(NAMES) {
                    *flag = r.bool(name)?;
                }
                for ((bound, flag), name) in bounds.iter_mut().zip(present).zip(NAMES) {
                    if flag {
                        *bound = Some(r.bytes(name)?);
                    }
                }
            }
            RangeLayout::Interleaved => {
                for (bound, name) in bounds.iter_mut().zip(NAMES) {
                    if r.bool(name)? {
                        *bound = Some(r.bytes(name)?);
                    }
                }
            }
        }
        self.caps = caps(&mut r)?;
        r.finish("scan body")?;
        [self.gte, self.gt, self.lte, self.lt] = bounds;
        Ok(self)
    }

    /// Appends the body's bytes, range bounds flags-first.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        out.put_u8(u8::from(!self.prefix.is_empty()));
        if !self.prefix.is_empty() {
            put_bytes(out, &self.prefix);
        }
        out.put_u8(u8::from(self.reverse));
        let bounds = [&self.gte, &self.gt, &self.lte, &self.lt];
        for bound in bounds {
            out.put_u8(u8::from(bound.is_some()));
        }
        for bound in bounds.into_iter().flatten() {
            put_bytes(out, bound);
        }
        put_caps(out, &self.caps);
    }

    /// How many bytes [`encode`](Scan::encode) writes.
    pub fn encoded_len(&self) -> usize {
        let prefix = if self.prefix.is_empty() {
            0
        } else {
            u8_len(&self.prefix)
        };
        let bounds: usize = [&self.gte, &self.gt, &self.lte, &self.lt]
            .into_iter()
            .flatten()
            .map(u8_len)
            .sum();
        1 + prefix + 1 + 4 + bounds + caps_len(&self.caps)
    }
}

/// Optional caps: absent if the body ends here (neonplex's decoder allows
/// it) or the flag is 0; an empty token is no token.
fn caps(r: &mut Reader) -> Result<Bytes, DecodeError> {
    if r.is_empty() || !r.bool("caps flag")? {
        return Ok(Bytes::new());
    }
    r.bytes("caps")
}

fn put_caps(out: &mut BytesMut, caps: &[u8]) {
    out.put_u8(u8::from(!caps.is_empty()));
    if !caps.is_empty() {
        put_bytes(out, caps);
    }
}

fn u8_len(bytes: &Bytes) -> usize {
    uint_len(bytes.len() as u64) + bytes.len()
}

fn caps_len(caps: &Bytes) -> usize {
    1 + if caps.is_empty() { 0 } else { u8_len(caps) }
}
