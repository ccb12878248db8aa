//! The bus's bytes: stream handshakes, and the records on publish and
//! subscription streams.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::ErrorCode;

/// The stream a client opens to subscribe or respond; its handshake is a
/// [`Subscribe`].
pub const SUBSCRIBE_PROTOCOL: &str = "plex-bus/1/sub";
/// The stream a client opens per request; its handshake is a
/// [`RequestHead`].
pub const REQUEST_PROTOCOL: &str = "plex-bus/1/req";
/// The stream the broker opens to a responder per request; its handshake
/// is a [`Delivery`].
pub const DELIVER_PROTOCOL: &str = "plex-bus/1/deliver";
/// The stream a client publishes on: [`Record`]s.
pub const PUBLISH_PROTOCOL: &str = "plex-bus/1/pub";

/// The longest channel name or pattern, in bytes.
pub const MAX_CHANNEL: usize = 1024;

/// RST_STREAM code of a request no responder is subscribed for.
pub const NO_RESPONDERS: ErrorCode = ErrorCode::new(0x100);
/// RST_STREAM code of a request whose responder went away mid-request.
pub const RESPONDER_GONE: ErrorCode = ErrorCode::new(0x101);
/// RST_STREAM code of a subscription the broker dropped because its
/// subscriber fell too far behind (the `Disconnect` policy).
pub const SLOW_CONSUMER: ErrorCode = ErrorCode::new(0x102);
/// RST_STREAM code of a handshake or record the broker cannot take: a bad
/// channel name, or a payload over its limit.
pub const BAD_REQUEST: ErrorCode = ErrorCode::new(0x103);

/// A bus message that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the field needs.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A channel name that is empty, too long, not UTF-8, or has a `*`
    /// anywhere but at the end of a pattern.
    #[error("bad channel name: {0}")]
    BadChannel(&'static str),
    /// A role byte other than 0 or 1.
    #[error("unknown subscription role {0}")]
    BadRole(u8),
    /// A record kind this version does not know.
    #[error("unknown record kind {0}")]
    BadKind(u8),
    /// Bytes left after a handshake.
    #[error("{0} bytes after the handshake")]
    Trailing(usize),
}

/// Checks a channel name (`pattern` false) or a subscription pattern: a
/// pattern may end with `*`, which matches every channel that starts with
/// what comes before it.
pub fn check_channel(name: &str, pattern: bool) -> Result<(), WireError> {
    if name.is_empty() {
        return Err(WireError::BadChannel("empty"));
    }
    if name.len() > MAX_CHANNEL {
        return Err(WireError::BadChannel("longer than 1024 bytes"));
    }
    let body = if pattern {
        name.strip_suffix('*').unwrap_or(name)
    } else {
        name
    };
    if body.contains('*') {
        return Err(WireError::BadChannel("`*` only ends a pattern"));
    }
    Ok(())
}

/// What a subscription stream is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Receives every message published to a matching channel.
    Subscriber,
    /// Answers requests to a matching channel, one responder per request.
    Responder,
}

/// The handshake of a subscription stream: `role u8 · u16 len · pattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Subscriber or responder.
    pub role: Role,
    /// A channel name, or a prefix followed by `*`.
    pub pattern: String,
}

impl Subscribe {
    /// The handshake's bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(3 + self.pattern.len());
        out.put_u8(match self.role {
            Role::Subscriber => 0,
            Role::Responder => 1,
        });
        put_str(&mut out, &self.pattern);
        out.freeze()
    }

    /// Decodes and checks a handshake.
    pub fn decode(mut input: Bytes) -> Result<Subscribe, WireError> {
        let role = match take_u8(&mut input, "role")? {
            0 => Role::Subscriber,
            1 => Role::Responder,
            other => return Err(WireError::BadRole(other)),
        };
        let pattern = take_str(&mut input, "pattern")?;
        check_channel(&pattern, true)?;
        finish(&input)?;
        Ok(Subscribe { role, pattern })
    }
}

/// The handshake of a request stream: `u16 len · channel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The channel the request goes to.
    pub channel: String,
}

impl RequestHead {
    /// The handshake's bytes.
    pub fn to_bytes(&self) -> Bytes {
        RequestHead::encode(&self.channel)
    }

    /// The handshake's bytes for a request to `channel`, without a
    /// `RequestHead` (and its copy of the name) to hold them.
    pub fn encode(channel: &str) -> Bytes {
        let mut out = BytesMut::with_capacity(2 + channel.len());
        put_str(&mut out, channel);
        out.freeze()
    }

    /// Decodes and checks a handshake.
    pub fn decode(mut input: Bytes) -> Result<RequestHead, WireError> {
        let channel = take_str(&mut input, "channel")?;
        check_channel(&channel, false)?;
        finish(&input)?;
        Ok(RequestHead { channel })
    }
}

/// The handshake of a stream the broker opens to a responder:
/// `u64 subscription · u16 len · channel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The responder's subscription, as the broker numbered it in its
    /// accept handshake.
    pub subscription: u64,
    /// The channel the request was sent to.
    pub channel: String,
}

impl Delivery {
    /// The handshake's bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(10 + self.channel.len());
        out.put_u64_le(self.subscription);
        put_str(&mut out, &self.channel);
        out.freeze()
    }

    /// Decodes and checks a handshake.
    pub fn decode(mut input: Bytes) -> Result<Delivery, WireError> {
        if input.len() < 8 {
            return Err(WireError::Truncated("subscription"));
        }
        let subscription = input.get_u64_le();
        let channel = take_str(&mut input, "channel")?;
        check_channel(&channel, false)?;
        finish(&input)?;
        Ok(Delivery {
            subscription,
            channel,
        })
    }
}

/// A record on a publish or subscription stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Record {
    /// A message: `00 · u16 len · channel · u32 len · payload`.
    Message {
        /// The channel it was published to.
        channel: String,
        /// Its bytes.
        payload: Bytes,
    },
    /// `01 · u64 count`: the broker dropped this many messages for a
    /// subscriber that fell behind (the `DropWithGap` policy).
    Gap {
        /// Messages dropped since the last record.
        dropped: u64,
    },
}

const MESSAGE: u8 = 0;
const GAP: u8 = 1;

impl Record {
    /// The record's header; a message's payload follows it as it is.
    pub fn header(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            Record::Message { channel, payload } => {
                out.reserve(7 + channel.len());
                out.put_u8(MESSAGE);
                put_str(&mut out, channel);
                let len = u32::try_from(payload.len()).expect("payloads are under 4 GiB");
                out.put_u32_le(len);
            }
            Record::Gap { dropped } => {
                out.put_u8(GAP);
                out.put_u64_le(*dropped);
            }
        }
        out.freeze()
    }

    /// How many bytes the record takes on the stream.
    pub fn encoded_len(&self) -> usize {
        match self {
            Record::Message { channel, payload } => 7 + channel.len() + payload.len(),
            Record::Gap { .. } => 9,
        }
    }
}

/// Splits a stream of [`Record`]s, however it arrives, holding at most one
/// record: a message over `max_payload` is an error from its header alone.
#[derive(Debug)]
pub struct RecordDecoder {
    max_payload: usize,
    buffer: BytesMut,
    failed: Option<DecodeFailure>,
}

/// Why a record stream cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeFailure {
    /// Bytes that are no record.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A message longer than the limit.
    #[error("a {len}-byte payload is over the {max}-byte limit")]
    TooLarge {
        /// Its announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl RecordDecoder {
    /// A decoder taking payloads up to `max_payload` bytes.
    pub fn new(max_payload: usize) -> RecordDecoder {
        RecordDecoder {
            max_payload,
            buffer: BytesMut::new(),
            failed: None,
        }
    }

    /// Bytes held, waiting for the rest of a record.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, input: &[u8]) {
        self.buffer.extend_from_slice(input);
    }

    /// The next whole record, if one is in.
    #[allow(clippy::should_implement_trait)] // fallible, so not an Iterator
    pub fn next(&mut self) -> Result<Option<Record>, DecodeFailure> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let total = match self.need() {
            Ok(Some(total)) => total,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.failed = Some(e.clone());
                return Err(e);
            }
        };
        if self.buffer.len() < total {
            return Ok(None);
        }
        let mut record = self.buffer.split_to(total).freeze();
        let kind = record.get_u8();
        Ok(Some(match kind {
            MESSAGE => {
                let channel = take_str(&mut record, "channel").expect("checked by need");
                record.advance(4);
                Record::Message {
                    channel,
                    payload: record,
                }
            }
            _ => Record::Gap {
                dropped: record.get_u64_le(),
            },
        }))
    }

    /// The whole length of the record at the front, once its header is in.
    fn need(&self) -> Result<Option<usize>, DecodeFailure> {
        let b = &self.buffer[..];
        let Some(&kind) = b.first() else {
            return Ok(None);
        };
        match kind {
            MESSAGE => {
                if b.len() < 3 {
                    return Ok(None);
                }
                let name = usize::from(u16::from_le_bytes([b[1], b[2]]));
                if name > MAX_CHANNEL {
                    return Err(WireError::BadChannel("longer than 1024 bytes").into());
                }
                if b.len() < 3 + name + 4 {
                    return Ok(None);
                }
                let channel = std::str::from_utf8(&b[3..3 + name])
                    .map_err(|_| WireError::BadChannel("not UTF-8"))?;
                check_channel(channel, false)?;
                let at = 3 + name;
                let len = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
                if len > self.max_payload {
                    return Err(DecodeFailure::TooLarge {
                        len,
                        max: self.max_payload,
                    });
                }
                Ok(Some(7 + name + len))
            }
            GAP => Ok(Some(9)),
            other => Err(WireError::BadKind(other).into()),
        }
    }
}

fn put_str(out: &mut BytesMut, s: &str) {
    let len = u16::try_from(s.len()).expect("names are checked to fit");
    out.put_u16_le(len);
    out.put_slice(s.as_bytes());
}

fn take_u8(input: &mut Bytes, what: &'static str) -> Result<u8, WireError> {
    if input.is_empty() {
        return Err(WireError::Truncated(what));
    }
    Ok(input.get_u8())
}

fn take_str(input: &mut Bytes, what: &'static str) -> Result<String, WireError> {
    if input.len() < 2 {
        return Err(WireError::Truncated(what));
    }
    let len = usize::from(input.get_u16_le());
    if input.len() < len {
        return Err(WireError::Truncated(what));
    }
    let bytes = input.split_to(len);
    String::from_utf8(bytes.to_vec()).map_err(|_| WireError::BadChannel("not UTF-8"))
}

fn finish(input: &Bytes) -> Result<(), WireError> {
    if input.is_empty() {
        Ok(())
    } else {
        Err(WireError::Trailing(input.len()))
    }
}
