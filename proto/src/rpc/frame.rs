//! RPC frames (neonplex wire §7): REQ, RES and CANCEL.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::varint::Reader;
use super::DecodeError;

/// A method id. Unknown ids are kept as they are: a server answers them
/// with `err(Unknown, "Unknown method")`, so they must survive decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Method(pub u8);

impl Method {
    /// `get`: read one key.
    pub const GET: Method = Method(0);
    /// `put`: write one key.
    pub const PUT: Method = Method(1);
    /// `del`: delete one key.
    pub const DEL: Method = Method(2);
    /// `scan`: a streamed range of entries.
    pub const SCAN: Method = Method(3);
    /// `append`: add a value to a log (absent from neonplex's exported `METHOD`).
    pub const APPEND: Method = Method(4);

    /// neonplex's name for a known method (`"GET"` …), `None` otherwise.
    pub fn name(self) -> Option<&'static str> {
        ["GET", "PUT", "DEL", "SCAN", "APPEND"]
            .get(usize::from(self.0))
            .copied()
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "method {}", self.0),
        }
    }
}

/// One RPC frame, the whole payload of one channel message.
///
/// | frame | layout (LE ints) |
/// |---|---|
/// | REQ | `00 · rid:u32 · mid:u8 · body` |
/// | RES | `01 · rid:u32 · mid:u8 · more:u8 · payload` |
/// | CANCEL | `02 · rid:u32 · mid:u8` |
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A call; `body` is a store body ([`Body`](super::Body)) for `method`.
    Request {
        /// Request id, chosen by the client (from 1, never reused).
        rid: u32,
        /// The method called.
        method: Method,
        /// The rest of the message, undecoded.
        body: Bytes,
    },
    /// An answer. Unary calls get one with `more == false`; a scan gets one
    /// per item with `more == true`, then `more == false` with an empty
    /// payload (or an error envelope).
    Response {
        /// The request id answered.
        rid: u32,
        /// The method answered (echoed).
        method: Method,
        /// Whether more responses follow for this `rid`.
        more: bool,
        /// An [`Envelope`](super::Envelope), or empty (unary: `ok()`; scan: end).
        payload: Bytes,
    },
    /// The client gives up on a call; no response follows it.
    Cancel {
        /// The request id cancelled.
        rid: u32,
        /// The method of the cancelled call.
        method: Method,
    },
}

const TAG_REQUEST: u8 = 0;
const TAG_RESPONSE: u8 = 1;
const TAG_CANCEL: u8 = 2;

impl Frame {
    /// Decodes one whole message. The body and payload are slices of
    /// `message`, not copies.
    ///
    /// Stricter than neonplex, which reads missing bytes as `undefined`:
    /// a short header, a `more` byte other than 0 or 1, an undefined frame
    /// type and bytes after a CANCEL are errors.
    pub fn decode(message: Bytes) -> Result<Frame, DecodeError> {
        let mut r = Reader::new(message);
        let tag = r.u8("frame type")?;
        if tag > TAG_CANCEL {
            return Err(DecodeError::BadTag {
                what: "frame type",
                value: tag,
            });
        }
        let rid = r.u32_le("request id")?;
        let method = Method(r.u8("method id")?);
        Ok(match tag {
            TAG_REQUEST => Frame::Request {
                rid,
                method,
                body: r.rest(),
            },
            TAG_RESPONSE => Frame::Response {
                rid,
                method,
                more: r.bool("more flag")?,
                payload: r.rest(),
            },
            _ => {
                r.finish("CANCEL")?;
                Frame::Cancel { rid, method }
            }
        })
    }

    /// Appends the frame's bytes, exactly as neonplex writes them.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        let (tag, rid, method) = match *self {
            Frame::Request { rid, method, .. } => (TAG_REQUEST, rid, method),
            Frame::Response { rid, method, .. } => (TAG_RESPONSE, rid, method),
            Frame::Cancel { rid, method } => (TAG_CANCEL, rid, method),
        };
        out.put_u8(tag);
        out.put_u32_le(rid);
        out.put_u8(method.0);
        match self {
            Frame::Request { body, .. } => out.put_slice(body),
            Frame::Response { more, payload, .. } => {
                out.put_u8(u8::from(*more));
                out.put_slice(payload);
            }
            Frame::Cancel { .. } => {}
        }
    }

    /// The frame's bytes in a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out.freeze()
    }

    /// How many bytes [`encode`](Frame::encode) writes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Frame::Request { body, .. } => 6 + body.len(),
            Frame::Response { payload, .. } => 7 + payload.len(),
            Frame::Cancel { .. } => 6,
        }
    }

    /// The request id.
    pub fn rid(&self) -> u32 {
        match *self {
            Frame::Request { rid, .. }
            | Frame::Response { rid, .. }
            | Frame::Cancel { rid, .. } => rid,
        }
    }

    /// The method id.
    pub fn method(&self) -> Method {
        match *self {
            Frame::Request { method, .. }
            | Frame::Response { method, .. }
            | Frame::Cancel { method, .. } => method,
        }
    }
}
