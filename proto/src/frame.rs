//! Frame types, the 9-byte header, and encoding.
//!
//! Decoding lives in [`crate::codec`]; both follow `proto/SPEC.md`.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::id::{ErrorCode, StreamId};

/// The preface each side sends before its first frame: `PLEX\r\n` and a
/// big-endian version.
pub const PREFACE: [u8; 8] = [b'P', b'L', b'E', b'X', b'\r', b'\n', 0x00, 0x01];
/// The magic part of the preface.
pub(crate) const MAGIC: &[u8; 6] = b"PLEX\r\n";
/// The protocol version this crate speaks.
pub const VERSION: u16 = 1;
/// Length of a frame header.
pub const HEADER_LEN: usize = 9;
/// The smallest MAX_FRAME_SIZE a peer may advertise (and the default).
pub const MIN_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest payload the 24-bit length field can describe.
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// The largest flow-control window, 2^31 - 1.
pub const MAX_WINDOW: u32 = 0x7fff_ffff;
/// The connection window every session starts with before any WINDOW_UPDATE.
pub const INITIAL_CONNECTION_WINDOW: u32 = 65_536;
/// The default and smallest INITIAL_WINDOW_SIZE. Because no peer may
/// advertise less, data sent before the peer's SETTINGS arrive, assuming
/// this default, can never exceed the real window.
pub const MIN_INITIAL_WINDOW: u32 = 65_536;

/// Flag on DATA: the sender will send nothing more on this stream.
pub const FLAG_END_STREAM: u8 = 0x1;
/// Flag on OPEN, SETTINGS and PING: this frame acknowledges the peer's.
pub const FLAG_ACK: u8 = 0x1;

/// The frame type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// Stream data (0x0).
    Data,
    /// Opens a stream, or acknowledges an open (0x1).
    Open,
    /// Abruptly terminates a stream (0x3).
    RstStream,
    /// Connection parameters (0x4).
    Settings,
    /// Liveness and round-trip measurement (0x6).
    Ping,
    /// Graceful or fatal connection shutdown (0x7).
    GoAway,
    /// Flow-control credit (0x8).
    WindowUpdate,
    /// Asks the peer to stop sending on a stream (0xb).
    StopSending,
    /// A type this version does not know; skipped.
    Unknown(u8),
}

impl FrameType {
    /// The type for a wire byte.
    pub fn from_byte(b: u8) -> FrameType {
        match b {
            0x0 => FrameType::Data,
            0x1 => FrameType::Open,
            0x3 => FrameType::RstStream,
            0x4 => FrameType::Settings,
            0x6 => FrameType::Ping,
            0x7 => FrameType::GoAway,
            0x8 => FrameType::WindowUpdate,
            0xb => FrameType::StopSending,
            other => FrameType::Unknown(other),
        }
    }

    /// The wire byte for this type.
    pub fn to_byte(self) -> u8 {
        match self {
            FrameType::Data => 0x0,
            FrameType::Open => 0x1,
            FrameType::RstStream => 0x3,
            FrameType::Settings => 0x4,
            FrameType::Ping => 0x6,
            FrameType::GoAway => 0x7,
            FrameType::WindowUpdate => 0x8,
            FrameType::StopSending => 0xb,
            FrameType::Unknown(b) => b,
        }
    }
}

impl FrameType {
    /// The type's name, with " ACK" when `ack` is set on a type that has
    /// an ACK flag: for diagnostics such as "SETTINGS ACK".
    pub fn describe(self, ack: bool) -> String {
        let acks = matches!(
            self,
            FrameType::Open | FrameType::Settings | FrameType::Ping
        );
        match ack && acks {
            true => format!("{self} ACK"),
            false => self.to_string(),
        }
    }
}

/// The name the spec uses: `DATA`, `RST_STREAM`, … or `unknown type 0x42`.
impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameType::Data => "DATA",
            FrameType::Open => "OPEN",
            FrameType::RstStream => "RST_STREAM",
            FrameType::Settings => "SETTINGS",
            FrameType::Ping => "PING",
            FrameType::GoAway => "GOAWAY",
            FrameType::StopSending => "STOP_SENDING",
            FrameType::WindowUpdate => "WINDOW_UPDATE",
            FrameType::Unknown(b) => return write!(f, "unknown type {b:#04x}"),
        })
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length in bytes (24 bits).
    pub len: u32,
    /// Frame type.
    pub ty: FrameType,
    /// Type-specific flags.
    pub flags: u8,
    /// Stream id; the reserved bit is dropped on decode.
    pub stream: StreamId,
}

impl FrameHeader {
    /// Parses the first [`HEADER_LEN`] bytes of `b`.
    pub fn parse(b: &[u8; HEADER_LEN]) -> FrameHeader {
        FrameHeader {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            ty: FrameType::from_byte(b[3]),
            flags: b[4],
            stream: StreamId::new(u32::from_be_bytes([b[5], b[6], b[7], b[8]])),
        }
    }

    /// Appends the 9 header bytes to `dst`.
    pub fn encode(&self, dst: &mut impl BufMut) {
        debug_assert!(self.len <= MAX_MAX_FRAME_SIZE);
        let len = self.len.to_be_bytes();
        dst.put_slice(&len[1..]);
        dst.put_u8(self.ty.to_byte());
        dst.put_u8(self.flags);
        dst.put_u32(self.stream.value());
    }
}

/// A SETTINGS frame's parameters; absent ones keep their current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SettingsFrame {
    /// MAX_CONCURRENT_STREAMS (0x3): streams the sender lets its peer open.
    pub max_concurrent_streams: Option<u32>,
    /// INITIAL_WINDOW_SIZE (0x4): the sender's initial per-stream receive window.
    pub initial_window_size: Option<u32>,
    /// MAX_FRAME_SIZE (0x5): the largest payload the sender accepts.
    pub max_frame_size: Option<u32>,
}

/// Setting id of MAX_CONCURRENT_STREAMS.
pub const SETTING_MAX_CONCURRENT_STREAMS: u16 = 0x3;
/// Setting id of INITIAL_WINDOW_SIZE.
pub const SETTING_INITIAL_WINDOW_SIZE: u16 = 0x4;
/// Setting id of MAX_FRAME_SIZE.
pub const SETTING_MAX_FRAME_SIZE: u16 = 0x5;

impl SettingsFrame {
    fn entries(&self) -> impl Iterator<Item = (u16, u32)> + '_ {
        [
            (SETTING_MAX_CONCURRENT_STREAMS, self.max_concurrent_streams),
            (SETTING_INITIAL_WINDOW_SIZE, self.initial_window_size),
            (SETTING_MAX_FRAME_SIZE, self.max_frame_size),
        ]
        .into_iter()
        .filter_map(|(id, v)| v.map(|v| (id, v)))
    }
}

/// One decoded frame. Payload fields are zero-copy slices of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// DATA: stream bytes, possibly ending the stream.
    Data {
        /// The stream.
        stream: StreamId,
        /// END_STREAM flag.
        end_stream: bool,
        /// The bytes.
        payload: Bytes,
    },
    /// OPEN without ACK: the initiator opens a stream.
    Open {
        /// The new stream.
        stream: StreamId,
        /// Protocol name, at most 255 bytes.
        protocol: Bytes,
        /// Channel id bytes, at most 255 bytes.
        id: Bytes,
        /// The initiator's handshake.
        handshake: Bytes,
    },
    /// OPEN with ACK: the acceptor pairs the stream.
    OpenAck {
        /// The stream being accepted.
        stream: StreamId,
        /// The acceptor's handshake.
        handshake: Bytes,
    },
    /// RST_STREAM.
    RstStream {
        /// The stream.
        stream: StreamId,
        /// Why.
        code: ErrorCode,
    },
    /// SETTINGS without ACK.
    Settings(SettingsFrame),
    /// SETTINGS with ACK.
    SettingsAck,
    /// PING; `ack` marks the reply.
    Ping {
        /// ACK flag.
        ack: bool,
        /// Opaque bytes echoed by the reply.
        payload: [u8; 8],
    },
    /// GOAWAY.
    GoAway {
        /// The highest peer-initiated stream the sender processed.
        last_stream: StreamId,
        /// Why.
        code: ErrorCode,
        /// Diagnostic bytes.
        debug: Bytes,
    },
    /// WINDOW_UPDATE; stream 0 is the connection window.
    WindowUpdate {
        /// The stream, or [`StreamId::CONNECTION`].
        stream: StreamId,
        /// Credit added, 1..=2^31-1 on a valid frame.
        increment: u32,
    },
    /// STOP_SENDING: the sender discards what arrives on the stream; the
    /// receiver should end its side.
    StopSending {
        /// The stream.
        stream: StreamId,
        /// Why.
        code: ErrorCode,
    },
    /// A frame of a type this version does not know. Receivers skip it.
    Unknown {
        /// The type byte.
        ty: u8,
        /// The stream id.
        stream: StreamId,
    },
}

impl Frame {
    /// The header this frame encodes with.
    pub fn header(&self) -> FrameHeader {
        let (ty, flags, stream) = match self {
            Frame::Data {
                stream, end_stream, ..
            } => (
                FrameType::Data,
                if *end_stream { FLAG_END_STREAM } else { 0 },
                *stream,
            ),
            Frame::Open { stream, .. } => (FrameType::Open, 0, *stream),
            Frame::OpenAck { stream, .. } => (FrameType::Open, FLAG_ACK, *stream),
            Frame::RstStream { stream, .. } => (FrameType::RstStream, 0, *stream),
            Frame::Settings(_) => (FrameType::Settings, 0, StreamId::CONNECTION),
            Frame::SettingsAck => (FrameType::Settings, FLAG_ACK, StreamId::CONNECTION),
            Frame::Ping { ack, .. } => (
                FrameType::Ping,
                if *ack { FLAG_ACK } else { 0 },
                StreamId::CONNECTION,
            ),
            Frame::GoAway { .. } => (FrameType::GoAway, 0, StreamId::CONNECTION),
            Frame::WindowUpdate { stream, .. } => (FrameType::WindowUpdate, 0, *stream),
            Frame::StopSending { stream, .. } => (FrameType::StopSending, 0, *stream),
            Frame::Unknown { ty, stream } => (FrameType::Unknown(*ty), 0, *stream),
        };
        FrameHeader {
            len: self.payload_len() as u32,
            ty,
            flags,
            stream,
        }
    }

    /// Payload length in bytes.
    pub fn payload_len(&self) -> usize {
        match self {
            Frame::Data { payload, .. } => payload.len(),
            Frame::Open {
                protocol,
                id,
                handshake,
                ..
            } => 2 + protocol.len() + id.len() + handshake.len(),
            Frame::OpenAck { handshake, .. } => handshake.len(),
            Frame::RstStream { .. } | Frame::WindowUpdate { .. } | Frame::StopSending { .. } => 4,
            Frame::Settings(s) => 6 * s.entries().count(),
            Frame::SettingsAck | Frame::Unknown { .. } => 0,
            Frame::Ping { .. } => 8,
            Frame::GoAway { debug, .. } => 8 + debug.len(),
        }
    }

    /// Appends header and payload to `dst`, copying the payload.
    ///
    /// The caller keeps sizes within the peer's limits: protocol and id at
    /// most 255 bytes, the payload at most the peer's MAX_FRAME_SIZE.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(HEADER_LEN + self.payload_len());
        self.header().encode(dst);
        match self {
            Frame::Data { payload, .. } => dst.put_slice(payload),
            Frame::Open {
                protocol,
                id,
                handshake,
                ..
            } => {
                debug_assert!(protocol.len() <= 255 && id.len() <= 255);
                dst.put_u8(protocol.len() as u8);
                dst.put_slice(protocol);
                dst.put_u8(id.len() as u8);
                dst.put_slice(id);
                dst.put_slice(handshake);
            }
            Frame::OpenAck { handshake, .. } => dst.put_slice(handshake),
            Frame::RstStream { code, .. } | Frame::StopSending { code, .. } => {
                dst.put_u32(code.value())
            }
            Frame::Settings(s) => {
                for (id, value) in s.entries() {
                    dst.put_u16(id);
                    dst.put_u32(value);
                }
            }
            Frame::SettingsAck | Frame::Unknown { .. } => {}
            Frame::Ping { payload, .. } => dst.put_slice(payload),
            Frame::GoAway {
                last_stream,
                code,
                debug,
            } => {
                dst.put_u32(last_stream.value());
                dst.put_u32(code.value());
                dst.put_slice(debug);
            }
            Frame::WindowUpdate { increment, .. } => dst.put_u32(increment & MAX_WINDOW),
        }
    }
}
