//! The Protomux wire (neonplex wire §2–§5), what JavaScript Plex
//! (neonplex) speaks: the message codec, the u32-LE framing and the
//! sans-IO [`Session`]. No IO, no clock. `proto/PROTOMUX.md` says what the
//! session does where Protomux leaves a choice, and what it bounds.
//!
//! Protomux runs many channels over one connection. Each
//! [`Message`](crate::protomux::Message) starts with the channel it travels
//! on and a message type, both compact-encoding varints. Channel 0 carries
//! control messages: OPEN a channel for a protocol name and id, REJECT a
//! peer's OPEN, CLOSE a channel, or a BATCH of several messages; any other
//! channel number is the sender's own local id for an open channel, and
//! its messages are data. On a byte stream each message is preceded by its
//! length as a u32 little-endian, which
//! [`FrameDecoder`](crate::protomux::FrameDecoder) strips; over WebSocket one
//! binary message is one Protomux message.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use plex_proto::protomux::{frame_header, FrameDecoder, Message};
//!
//! let open = Message::Open {
//!     channel: 1,
//!     protocol: "p/rpc".into(),
//!     id: Bytes::from_static(b"x"),
//!     handshake: Bytes::new(),
//! };
//! let hello = Message::Data { channel: 1, kind: 0, payload: Bytes::from_static(b"hi") };
//! assert_eq!(&hello.to_bytes()[..], b"\x01\x00hi");
//!
//! // Frame both onto a stream, then read them back one byte at a time.
//! let mut stream = BytesMut::new();
//! for message in [&open, &hello] {
//!     stream.extend_from_slice(&frame_header(message.encoded_len() as u32));
//!     message.encode(&mut stream);
//! }
//! let mut frames = FrameDecoder::new(64 * 1024);
//! let mut got = Vec::new();
//! for byte in stream {
//!     frames.push(Bytes::copy_from_slice(&[byte]));
//!     while let Some(message) = frames.next()? {
//!         got.push(Message::decode(message)?);
//!     }
//! }
//! assert_eq!(got, [open, hello]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod framer;
mod message;
mod session;
#[cfg(test)]
mod tests;

pub use error::{DecodeError, FrameError};
pub use framer::{frame_header, FrameDecoder, COMPACT_BELOW, FRAME_HEADER_LEN};
pub use message::{Message, CONTROL_CHANNEL};
pub use session::{
    ChannelEnd, ChannelId, MuxCloseReason, MuxConfig, MuxError, MuxEvent, MuxLocalError, MuxStats,
    Recv, Session, MESSAGE_OVERHEAD,
};
