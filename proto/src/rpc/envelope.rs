//! The response envelope (neonplex wire §7): what survives of a neonplex
//! `Result` on the RPC wire.

use bytes::{BufMut, Bytes, BytesMut};

use super::varint::Reader;
use super::{DecodeError, EncodeError};

/// The result carried in a RES payload.
///
/// ```text
/// ok : 01 | hasValue:u8 | valueLen:u32LE | value | hasKey:u8 | keyLen:u32LE | key
/// err: 00 | codeLen:u16LE | code | msgLen:u16LE | message
/// ```
///
/// Both ok blocks are always present; an absent value or key is written as
/// flag 0 and length 0. A present empty value (`hasValue 1`, length 0) is
/// not the same as no value. An empty RES payload is not an envelope: for a
/// unary call it means `ok()`, for a scan the end of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// Success.
    Ok {
        /// The value, if the result had one.
        value: Option<Bytes>,
        /// neonplex's `meta.key` (e.g. the key an append wrote, a scan item's key).
        key: Option<Bytes>,
    },
    /// Failure.
    Err {
        /// neonplex's error code (`"BadArg"`, `"Unknown"`, …), at most 65535 bytes.
        code: String,
        /// The message, at most 65535 bytes.
        message: String,
    },
}

impl Envelope {
    /// neonplex's bare `ok()`: no value, no key (11 bytes on the wire).
    pub const OK: Envelope = Envelope::Ok {
        value: None,
        key: None,
    };

    /// An error envelope.
    pub fn err(code: impl Into<String>, message: impl Into<String>) -> Envelope {
        Envelope::Err {
            code: code.into(),
            message: message.into(),
        }
    }

    /// Decodes one whole payload. Value and key are slices of `payload`.
    ///
    /// Stricter than neonplex, which takes any first byte other than `01`
    /// as an error and clips short fields: here the status byte must be 0
    /// or 1, the flags 0 or 1, every length must fit, strings must be
    /// UTF-8 and nothing may follow. Like neonplex, the length after a
    /// zero flag is read and its bytes skipped.
    pub fn decode(payload: Bytes) -> Result<Envelope, DecodeError> {
        let mut r = Reader::new(payload);
        let envelope = match r.u8("envelope status")? {
            1 => {
                let value = optional(&mut r, "value")?;
                let key = optional(&mut r, "key")?;
                Envelope::Ok { value, key }
            }
            0 => {
                let code = string(&mut r, "error code")?;
                let message = string(&mut r, "error message")?;
                Envelope::Err { code, message }
            }
            value => {
                return Err(DecodeError::BadTag {
                    what: "envelope status",
                    value,
                })
            }
        };
        r.finish("envelope")?;
        Ok(envelope)
    }

    /// Appends the envelope's bytes, exactly as neonplex writes them.
    ///
    /// Fails, writing nothing, if a value or key exceeds `u32::MAX` bytes
    /// or a code or message exceeds `u16::MAX` bytes.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Envelope::Ok { value, key } => {
                let value = check(value.as_deref(), "value", u32::MAX as usize)?;
                let key = check(key.as_deref(), "key", u32::MAX as usize)?;
                out.reserve(self.encoded_len());
                out.put_u8(1);
                for field in [value, key] {
                    out.put_u8(u8::from(field.is_some()));
                    let bytes = field.unwrap_or_default();
                    // Checked against u32::MAX above.
                    out.put_u32_le(bytes.len() as u32);
                    out.put_slice(bytes);
                }
            }
            Envelope::Err { code, message } => {
                let max = usize::from(u16::MAX);
                let code = check(Some(code.as_bytes()), "error code", max)?.unwrap_or_default();
                let message =
                    check(Some(message.as_bytes()), "error message", max)?.unwrap_or_default();
                out.reserve(self.encoded_len());
                out.put_u8(0);
                for field in [code, message] {
                    // Checked against u16::MAX above.
                    out.put_u16_le(field.len() as u16);
                    out.put_slice(field);
                }
            }
        }
        Ok(())
    }

    /// The envelope's bytes in a new buffer.
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::new();
        self.encode(&mut out)?;
        Ok(out.freeze())
    }

    /// How many bytes [`encode`](Envelope::encode) writes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Envelope::Ok { value, key } => {
                11 + value.as_ref().map_or(0, Bytes::len) + key.as_ref().map_or(0, Bytes::len)
            }
            Envelope::Err { code, message } => 5 + code.len() + message.len(),
        }
    }
}

fn optional(r: &mut Reader, what: &'static str) -> Result<Option<Bytes>, DecodeError> {
    let present = r.bool(what)?;
    let len = r.u32_le(what)?;
    let bytes = r.take(what, u64::from(len))?;
    Ok(present.then_some(bytes))
}

fn string(r: &mut Reader, what: &'static str) -> Result<String, DecodeError> {
    let len = r.u16_le(what)?;
    let bytes = r.take(what, u64::from(len))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::BadUtf8 { what })
}

fn check<'a>(
    field: Option<&'a [u8]>,
    what: &'static str,
    max: usize,
) -> Result<Option<&'a [u8]>, EncodeError> {
    match field {
        Some(bytes) if bytes.len() > max => Err(EncodeError::TooLong {
            what,
            len: bytes.len(),
            max,
        }),
        _ => Ok(field),
    }
}
