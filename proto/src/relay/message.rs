//! The relay's messages: a 12-byte header and an XDR payload.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes, BytesMut};

use super::DeviceId;

/// The first four bytes of every frame.
pub const MAGIC: u32 = 0x9E79_BC40;

/// The bytes of a frame header: magic, type and payload length, each a
/// 32-bit big-endian integer.
pub const HEADER_LEN: usize = 12;

/// The longest payload the relay accepts or sends.
pub const MAX_PAYLOAD_LEN: usize = 1024;

/// The longest XDR `opaque<32>` field (keys, device ids, addresses).
pub const MAX_OPAQUE_LEN: usize = 32;

/// The relay's answer codes in [`Response`].
pub mod code {
    /// The request succeeded.
    pub const SUCCESS: i32 = 0;
    /// The device is not joined, or the session key is unknown, expired
    /// or already used.
    pub const NOT_FOUND: i32 = 1;
    /// The device id is already joined (one listener per id), or, on a
    /// session join, the peer's join raced this one.
    pub const ALREADY_CONNECTED: i32 = 2;
    /// The relay wants another token (relay v1.22.1 and later).
    pub const WRONG_TOKEN: i32 = 3;
    /// The relay did not expect this message here.
    pub const UNEXPECTED_MESSAGE: i32 = 100;
}

/// A message type: the header's second word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageType {
    /// [`Message::Ping`].
    Ping = 0,
    /// [`Message::Pong`].
    Pong = 1,
    /// [`Message::JoinRelayRequest`].
    JoinRelayRequest = 2,
    /// [`Message::JoinSessionRequest`].
    JoinSessionRequest = 3,
    /// [`Message::Response`].
    Response = 4,
    /// [`Message::ConnectRequest`].
    ConnectRequest = 5,
    /// [`Message::SessionInvitation`].
    SessionInvitation = 6,
    /// [`Message::RelayFull`].
    RelayFull = 7,
}

/// An XDR `opaque<32>`: at most 32 bytes.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Opaque(Bytes);

/// The relay's answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// One of [`code`]'s values (others are possible from newer relays).
    pub code: i32,
    /// The relay's text for the code (`"success"`, `"not found"`, …).
    pub message: String,
}

/// The relay's offer of a session: join it with `key` at `address:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInvitation {
    /// The device at the other end (the relay's attestation: it read the
    /// id from that device's certificate).
    pub from: Opaque,
    /// The single-use session key to join with.
    pub key: Opaque,
    /// The relay's IP for sessions in raw bytes (4 or 16, IPv4-mapped),
    /// or empty: then the address the relay was dialled at.
    pub address: Opaque,
    /// The relay's port for sessions.
    pub port: u16,
    /// Whether this side should be the TLS server inside the session.
    pub server_socket: bool,
}

/// One relay protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// A keepalive; answer with [`Message::Pong`].
    Ping,
    /// The answer to [`Message::Ping`].
    Pong,
    /// A listener joins the relay (sent on the control connection).
    JoinRelayRequest {
        /// The relay's access token; empty for open relays.
        token: String,
    },
    /// Joins a session (sent on a plain TCP connection).
    JoinSessionRequest {
        /// The key from the [`SessionInvitation`].
        key: Opaque,
    },
    /// The relay's answer.
    Response(Response),
    /// A dialer asks for a session with a joined device.
    ConnectRequest {
        /// The target's device id (32 bytes).
        id: Opaque,
    },
    /// The relay offers a session.
    SessionInvitation(SessionInvitation),
    /// The relay is over its connection limit and drops this connection.
    RelayFull,
}

/// Why bytes from the relay do not form a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame does not start with [`MAGIC`].
    #[error("not a relay frame: magic {0:#010x}, expected 0x9e79bc40")]
    BadMagic(u32),
    /// The header's length is negative or over [`MAX_PAYLOAD_LEN`].
    #[error("relay frame announces {0} payload bytes (0..=1024 allowed)")]
    BadLength(i32),
    /// The header's type is none of the eight messages.
    #[error("unknown relay message type {0}")]
    UnknownType(i32),
    /// The payload ends inside a field.
    #[error("relay message truncated")]
    Truncated,
    /// An `opaque<32>` field announces more than 32 bytes.
    #[error("opaque field of {0} bytes (32 at most)")]
    OpaqueTooLong(u32),
    /// A string field is not UTF-8.
    #[error("string field is not UTF-8")]
    NotUtf8,
    /// A `uint16` field holds a larger value.
    #[error("port {0} does not fit in 16 bits")]
    BadPort(u32),
    /// A message other than [`Message::Response`] where only a response
    /// may come.
    #[error("expected a relay Response, got {0:?}")]
    Unexpected(MessageType),
}

/// Why a message cannot be encoded: a local mistake, not the peer's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The payload would exceed [`MAX_PAYLOAD_LEN`] (a string too long).
    #[error("relay message payload of {0} bytes (1024 at most)")]
    TooLong(usize),
    /// An opaque field (key, device id, address) over 32 bytes.
    #[error("opaque field of {0} bytes (32 at most)")]
    OpaqueTooLong(usize),
}

impl Opaque {
    /// `bytes` as an opaque field; an error over 32 bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Result<Opaque, EncodeError> {
        let bytes = bytes.into();
        if bytes.len() > MAX_OPAQUE_LEN {
            return Err(EncodeError::OpaqueTooLong(bytes.len()));
        }
        Ok(Opaque(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as a device id, if there are exactly 32.
    pub fn device_id(&self) -> Option<DeviceId> {
        DeviceId::from_slice(&self.0)
    }
}

impl From<DeviceId> for Opaque {
    fn from(id: DeviceId) -> Opaque {
        Opaque(Bytes::copy_from_slice(id.as_bytes()))
    }
}

impl From<[u8; 32]> for Opaque {
    fn from(bytes: [u8; 32]) -> Opaque {
        Opaque(Bytes::copy_from_slice(&bytes))
    }
}

impl std::fmt::Debug for Opaque {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl SessionInvitation {
    /// The IP to join the session at: the invitation's address, or
    /// `relay_ip` (the address the relay was dialled at) when the
    /// invitation has none, an unspecified one, or an unreadable one.
    /// IPv4-mapped IPv6 addresses (what Go sends for IPv4) become IPv4.
    pub fn ip(&self, relay_ip: IpAddr) -> IpAddr {
        let given = match self.address.as_bytes().len() {
            4 => {
                let b: [u8; 4] = self.address.as_bytes().try_into().unwrap_or_default();
                IpAddr::V4(Ipv4Addr::from(b))
            }
            16 => {
                let b: [u8; 16] = self.address.as_bytes().try_into().unwrap_or_default();
                let v6 = Ipv6Addr::from(b);
                v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
            }
            _ => return relay_ip,
        };
        if given.is_unspecified() {
            relay_ip
        } else {
            given
        }
    }
}

impl MessageType {
    /// The type for a header's type word, if it names one.
    pub fn from_wire(value: i32) -> Option<MessageType> {
        Some(match value {
            0 => MessageType::Ping,
            1 => MessageType::Pong,
            2 => MessageType::JoinRelayRequest,
            3 => MessageType::JoinSessionRequest,
            4 => MessageType::Response,
            5 => MessageType::ConnectRequest,
            6 => MessageType::SessionInvitation,
            7 => MessageType::RelayFull,
            _ => return None,
        })
    }
}

impl Message {
    /// The message's type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Ping => MessageType::Ping,
            Message::Pong => MessageType::Pong,
            Message::JoinRelayRequest { .. } => MessageType::JoinRelayRequest,
            Message::JoinSessionRequest { .. } => MessageType::JoinSessionRequest,
            Message::Response(_) => MessageType::Response,
            Message::ConnectRequest { .. } => MessageType::ConnectRequest,
            Message::SessionInvitation(_) => MessageType::SessionInvitation,
            Message::RelayFull => MessageType::RelayFull,
        }
    }

    /// The whole frame: header and payload.
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut payload = BytesMut::new();
        match self {
            Message::Ping | Message::Pong | Message::RelayFull => {}
            Message::JoinRelayRequest { token } => put_opaque(&mut payload, token.as_bytes()),
            Message::JoinSessionRequest { key } => put_opaque(&mut payload, key.as_bytes()),
            Message::Response(r) => {
                payload.put_i32(r.code);
                put_opaque(&mut payload, r.message.as_bytes());
            }
            Message::ConnectRequest { id } => put_opaque(&mut payload, id.as_bytes()),
            Message::SessionInvitation(i) => {
                put_opaque(&mut payload, i.from.as_bytes());
                put_opaque(&mut payload, i.key.as_bytes());
                put_opaque(&mut payload, i.address.as_bytes());
                payload.put_u32(u32::from(i.port));
                payload.put_u32(u32::from(i.server_socket));
            }
        }
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(EncodeError::TooLong(payload.len()));
        }
        let mut frame = BytesMut::with_capacity(HEADER_LEN + payload.len());
        frame.put_u32(MAGIC);
        frame.put_i32(self.message_type() as i32);
        frame.put_i32(payload.len() as i32);
        frame.extend_from_slice(&payload);
        Ok(frame.freeze())
    }

    /// Decodes the payload of a frame whose header said `kind`. Trailing
    /// bytes are ignored, as the relay ignores them.
    pub fn decode(kind: MessageType, payload: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader(payload);
        Ok(match kind {
            MessageType::Ping => Message::Ping,
            MessageType::Pong => Message::Pong,
            MessageType::RelayFull => Message::RelayFull,
            MessageType::JoinRelayRequest => Message::JoinRelayRequest { token: r.string()? },
            MessageType::JoinSessionRequest => Message::JoinSessionRequest { key: r.opaque()? },
            MessageType::Response => Message::Response(Response {
                code: r.u32()? as i32,
                message: r.string()?,
            }),
            MessageType::ConnectRequest => Message::ConnectRequest { id: r.opaque()? },
            MessageType::SessionInvitation => Message::SessionInvitation(SessionInvitation {
                from: r.opaque()?,
                key: r.opaque()?,
                address: r.opaque()?,
                port: {
                    let port = r.u32()?;
                    u16::try_from(port).map_err(|_| DecodeError::BadPort(port))?
                },
                // XDR bools are 0 or 1; Go reads any other word as true.
                server_socket: r.u32()? != 0,
            }),
        })
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The message type.
    pub kind: MessageType,
    /// The payload length, at most [`MAX_PAYLOAD_LEN`].
    pub len: usize,
}

impl Header {
    /// Checks a 12-byte header: magic, then length, then type.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, DecodeError> {
        let word = |i: usize| [bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]];
        let magic = u32::from_be_bytes(word(0));
        if magic != MAGIC {
            return Err(DecodeError::BadMagic(magic));
        }
        let kind = i32::from_be_bytes(word(4));
        let len = i32::from_be_bytes(word(8));
        if !(0..=MAX_PAYLOAD_LEN as i32).contains(&len) {
            return Err(DecodeError::BadLength(len));
        }
        let kind = MessageType::from_wire(kind).ok_or(DecodeError::UnknownType(kind))?;
        Ok(Header {
            kind,
            len: len as usize,
        })
    }
}

/// XDR fields read off the front of a payload.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let (word, rest) = self
            .0
            .split_first_chunk::<4>()
            .ok_or(DecodeError::Truncated)?;
        self.0 = rest;
        Ok(u32::from_be_bytes(*word))
    }

    /// A variable-length field and its padding to four bytes.
    fn bytes(&mut self) -> Result<&[u8], DecodeError> {
        let len = self.u32()? as usize;
        let padded = len.checked_add(3).ok_or(DecodeError::Truncated)? & !3;
        if padded > self.0.len() {
            return Err(DecodeError::Truncated);
        }
        let (field, rest) = self.0.split_at(padded);
        self.0 = rest;
        Ok(&field[..len])
    }

    fn opaque(&mut self) -> Result<Opaque, DecodeError> {
        let len = self.0.first_chunk::<4>().map(|w| u32::from_be_bytes(*w));
        if let Some(len) = len.filter(|&l| l as usize > MAX_OPAQUE_LEN) {
            return Err(DecodeError::OpaqueTooLong(len));
        }
        Ok(Opaque(Bytes::copy_from_slice(self.bytes()?)))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let bytes = self.bytes()?.to_vec();
        String::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8)
    }
}

fn put_opaque(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32(bytes.len() as u32);
    out.extend_from_slice(bytes);
    out.put_bytes(0, (4 - bytes.len() % 4) % 4);
}
