//! One Protomux message (neonplex wire §4): decoding and encoding.

use bytes::{BufMut, Bytes, BytesMut};

use super::DecodeError;
use crate::rpc::{put_bytes, put_uint, uint_len, Reader};

/// The control channel: messages on it are BATCH, OPEN, REJECT or CLOSE.
pub const CONTROL_CHANNEL: u64 = 0;

const BATCH: u64 = 0;
const OPEN: u64 = 1;
const REJECT: u64 = 2;
const CLOSE: u64 = 3;

/// One Protomux message: `uint channel · uint type · body`.
///
/// Control messages travel on channel 0; the `channel` they carry in their
/// body is a channel id, not where they travel. [`Data`](Message::Data)
/// travels on its sender's local channel id, which is never 0.
///
/// The `id` of an OPEN is a compact-encoding `buffer`, where `null` and an
/// empty buffer are both the single byte `00`; both are an empty [`Bytes`]
/// here, as neonplex pairs them alike.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// OPEN (`00 01`): the sender opens channel `channel` for `protocol`/`id`.
    Open {
        /// The sender's local id for the channel (neonplex uses ids from 1).
        channel: u64,
        /// The protocol name.
        protocol: String,
        /// The channel id within the protocol; empty stands for `null` too.
        id: Bytes,
        /// The sender's handshake, encoded as it chose: the rest of the message.
        handshake: Bytes,
    },
    /// REJECT (`00 02`): the sender refuses the peer's OPEN.
    Reject {
        /// The id the *rejected* peer used in its OPEN.
        channel: u64,
    },
    /// CLOSE (`00 03`): the sender closed its channel (one-way, no echo).
    Close {
        /// The sender's local id for the channel.
        channel: u64,
    },
    /// A message on an open channel.
    Data {
        /// The sender's local id for the channel; must be at least 1, since
        /// channel 0 is the control channel.
        channel: u64,
        /// The message type (neonplex only has type 0); other types are
        /// decoded too, for the session to ignore.
        kind: u64,
        /// The message: the rest of the bytes.
        payload: Bytes,
    },
    /// BATCH (`00 00`): several messages in one, each carrying its channel.
    ///
    /// Encoding switches channel only when it changes, so decoding then
    /// encoding a batch with redundant switches yields fewer bytes. A batch
    /// nested in the list is written as its messages, inline.
    Batch(Vec<Message>),
    /// A control message of a type Protomux does not define (4 and up),
    /// decoded for the session to ignore.
    Unknown {
        /// The control message type.
        kind: u64,
        /// The rest of the message.
        body: Bytes,
    },
}

impl Message {
    /// Decodes one whole message. Fields are zero-copy slices of `input`
    /// (the protocol name is copied into a `String`).
    ///
    /// Stricter than neonplex, which ignores bytes after a REJECT or CLOSE
    /// id and replaces bad UTF-8: neonplex never writes either, so only
    /// garbage is refused. A BATCH inside a BATCH is refused, which bounds
    /// the recursion.
    pub fn decode(input: Bytes) -> Result<Message, DecodeError> {
        let mut r = Reader::new(input);
        let channel = r.uint("channel")?;
        let kind = r.uint("message type")?;
        decode_body(channel, kind, r, true)
    }

    /// Appends the message's bytes to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        put_uint(out, self.route());
        put_uint(out, self.kind());
        self.put_body(out);
    }

    /// The message's bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out.freeze()
    }

    /// How many bytes [`encode`](Message::encode) writes.
    pub fn encoded_len(&self) -> usize {
        uint_len(self.route()) + uint_len(self.kind()) + self.body_len()
    }

    /// The channel the message travels on.
    fn route(&self) -> u64 {
        match self {
            Message::Data { channel, .. } => *channel,
            _ => CONTROL_CHANNEL,
        }
    }

    fn kind(&self) -> u64 {
        match self {
            Message::Batch(_) => BATCH,
            Message::Open { .. } => OPEN,
            Message::Reject { .. } => REJECT,
            Message::Close { .. } => CLOSE,
            Message::Data { kind, .. } | Message::Unknown { kind, .. } => *kind,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            Message::Open {
                channel,
                protocol,
                id,
                handshake,
            } => {
                uint_len(*channel)
                    + uint_len(protocol.len() as u64)
                    + protocol.len()
                    + uint_len(id.len() as u64)
                    + id.len()
                    + handshake.len()
            }
            Message::Reject { channel } | Message::Close { channel } => uint_len(*channel),
            Message::Data { payload, .. } => payload.len(),
            Message::Unknown { body, .. } => body.len(),
            Message::Batch(items) => {
                let leaves = leaves(items);
                let mut current = leaves.first().map_or(CONTROL_CHANNEL, |m| m.route());
                let mut len = uint_len(current);
                for leaf in leaves {
                    if leaf.route() != current {
                        current = leaf.route();
                        len += 1 + uint_len(current);
                    }
                    let item = leaf.item_len();
                    len += uint_len(item as u64) + item;
                }
                len
            }
        }
    }

    fn put_body(&self, out: &mut BytesMut) {
        match self {
            Message::Open {
                channel,
                protocol,
                id,
                handshake,
            } => {
                put_uint(out, *channel);
                put_bytes(out, protocol.as_bytes());
                put_bytes(out, id);
                out.put_slice(handshake);
            }
            Message::Reject { channel } | Message::Close { channel } => put_uint(out, *channel),
            Message::Data { payload, .. } => out.put_slice(payload),
            Message::Unknown { body, .. } => out.put_slice(body),
            Message::Batch(items) => {
                let leaves = leaves(items);
                let mut current = leaves.first().map_or(CONTROL_CHANNEL, |m| m.route());
                put_uint(out, current);
                for leaf in leaves {
                    if leaf.route() != current {
                        current = leaf.route();
                        put_uint(out, 0);
                        put_uint(out, current);
                    }
                    put_uint(out, leaf.item_len() as u64);
                    put_uint(out, leaf.kind());
                    leaf.put_body(out);
                }
            }
        }
    }

    /// A batch item's length: the message without its channel.
    fn item_len(&self) -> usize {
        uint_len(self.kind()) + self.body_len()
    }
}

/// The non-batch messages of `items`, nested batches spliced in.
fn leaves(items: &[Message]) -> Vec<&Message> {
    fn walk<'a>(items: &'a [Message], out: &mut Vec<&'a Message>) {
        for item in items {
            match item {
                Message::Batch(inner) => walk(inner, out),
                leaf => out.push(leaf),
            }
        }
    }
    let mut out = Vec::with_capacity(items.len());
    walk(items, &mut out);
    out
}

/// Decodes what follows `channel · type`; `top` is false inside a BATCH.
fn decode_body(channel: u64, kind: u64, mut r: Reader, top: bool) -> Result<Message, DecodeError> {
    if channel != CONTROL_CHANNEL {
        return Ok(Message::Data {
            channel,
            kind,
            payload: r.rest(),
        });
    }
    Ok(match kind {
        BATCH if top => decode_batch(r)?,
        BATCH => return Err(DecodeError::NestedBatch),
        OPEN => {
            let channel = r.uint("OPEN channel")?;
            let protocol = r.bytes("OPEN protocol")?;
            let protocol = std::str::from_utf8(&protocol)
                .map_err(|_| crate::rpc::DecodeError::BadUtf8 {
                    what: "OPEN protocol",
                })?
                .to_owned();
            let id = r.bytes("OPEN id")?;
            Message::Open {
                channel,
                protocol,
                id,
                handshake: r.rest(),
            }
        }
        REJECT => {
            let channel = r.uint("REJECT channel")?;
            r.finish("REJECT")?;
            Message::Reject { channel }
        }
        CLOSE => {
            let channel = r.uint("CLOSE channel")?;
            r.finish("CLOSE")?;
            Message::Close { channel }
        }
        kind => Message::Unknown {
            kind,
            body: r.rest(),
        },
    })
}

/// `uint firstChannel · (uint len · item[len])*`, where `len` 0 is
/// followed by the `uint` channel of the items after it.
fn decode_batch(mut r: Reader) -> Result<Message, DecodeError> {
    let mut channel = r.uint("BATCH channel")?;
    // Every item takes at least two bytes of the input: bounded by it.
    let mut items = Vec::new();
    while !r.is_empty() {
        let len = r.uint("BATCH item length")?;
        if len == 0 {
            channel = r.uint("BATCH channel")?;
            continue;
        }
        let mut item = Reader::new(r.take("BATCH item", len)?);
        let kind = item.uint("message type")?;
        items.push(decode_body(channel, kind, item, false)?);
    }
    Ok(Message::Batch(items))
}
