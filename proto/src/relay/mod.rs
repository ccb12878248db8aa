//! The Syncthing relay protocol, version 1, sans-IO: what a `relay://`
//! client sends and reads. No IO, no clock, no cryptography.
//!
//! A relay (`strelaysrv`) lets two devices that cannot reach each other
//! meet through it. A *listener* keeps a TLS control connection to the
//! relay and joins with [`Message::JoinRelayRequest`]; a *dialer* opens a
//! short TLS connection and asks for the listener by [`DeviceId`] with
//! [`Message::ConnectRequest`]. The relay answers both with a
//! [`SessionInvitation`]; each side then opens a plain TCP connection to
//! the relay, sends [`Message::JoinSessionRequest`] with its key, reads a
//! [`Response`] (see [`JoinReader`]), and from there the relay pipes raw
//! bytes between them.
//!
//! Every frame is a 12-byte header (magic [`MAGIC`], type, length; 32-bit
//! big-endian) and an XDR payload of at most [`MAX_PAYLOAD_LEN`] bytes.
//! [`Decoder`] splits a byte stream into messages and holds at most one
//! frame; bad magic, length, type or an `opaque<32>` over 32 bytes are
//! typed [`DecodeError`]s.
//!
//! ```
//! use plex_proto::relay::{Decoder, DeviceId, Message};
//!
//! let target: DeviceId = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2".parse()?;
//! let wire = Message::ConnectRequest { id: target.into() }.to_bytes()?;
//! assert_eq!(&wire[..12], b"\x9e\x79\xbc\x40\0\0\0\x05\0\0\0\x24");
//! let mut input = &wire[..];
//! let decoded = Decoder::new().decode(&mut input)?;
//! assert!(matches!(decoded, Some(Message::ConnectRequest { id }) if id.device_id() == Some(target)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod decoder;
mod device_id;
mod message;
#[cfg(test)]
mod tests;

pub use decoder::{Decoder, JoinError, JoinReader, READY};
pub use device_id::{DeviceId, DeviceIdError};
pub use message::{
    code, DecodeError, EncodeError, Header, Message, MessageType, Opaque, Response,
    SessionInvitation, HEADER_LEN, MAGIC, MAX_OPAQUE_LEN, MAX_PAYLOAD_LEN,
};
