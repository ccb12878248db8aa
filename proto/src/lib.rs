//! Plex's sans-IO multiplexing protocol, `plex/1`.
//!
//! This crate contains no networking code and reads no clock. It runs many
//! named, flow-controlled, bidirectional streams over one reliable byte stream:
//! bytes and time go in ([`Session::handle_input`], [`Session::handle_timeout`]),
//! frames, events and deadlines come out ([`Session::poll_transmit`],
//! [`Session::poll_event`], [`Session::poll_timeout`]). Bring your own IO.
//!
//! The wire format is specified in `proto/SPEC.md`.
//!
//! # Driving it by hand
//!
//! The driver loop is the same everywhere: feed input, drain
//! `poll_transmit` and `poll_event`, sleep until `poll_timeout`. Here two
//! sessions are joined by function calls:
//!
//! ```
//! use std::time::Instant;
//! use plex_proto::{CloseReason, Config, Event, OpenOptions, Session};
//!
//! fn shuttle(from: &mut Session, to: &mut Session, now: Instant) -> usize {
//!     let mut moved = 0;
//!     while let Some(t) = from.poll_transmit(now) {
//!         moved += t.len();
//!         to.handle_input(now, t.head);
//!         to.handle_input(now, t.payload);
//!     }
//!     moved
//! }
//! fn settle(a: &mut Session, b: &mut Session, now: Instant) {
//!     while shuttle(a, b, now) + shuttle(b, a, now) > 0 {}
//! }
//!
//! let mut now = Instant::now();
//! let mut client = Session::client(Config::default(), now)?;
//! let mut server = Session::server(Config::default(), now)?;
//! settle(&mut client, &mut server, now);
//!
//! // A named stream with a handshake; data may follow the open at once.
//! let id = client.open(OpenOptions::new("greeter", "room-1").handshake("v1"))?;
//! client.write(id, b"hello")?;
//! client.finish(id)?;
//! settle(&mut client, &mut server, now);
//!
//! let mut incoming = None;
//! while let Some(event) = server.poll_event() {
//!     if let Event::Incoming { stream, protocol, handshake, .. } = event {
//!         assert_eq!((&protocol[..], &handshake[..]), (&b"greeter"[..], &b"v1"[..]));
//!         incoming = Some(stream);
//!     }
//! }
//! server.accept(incoming.unwrap(), "v1-ok")?;
//! assert!(matches!(server.poll_event(), Some(Event::RemoteOpen { .. })));
//! let mut buf = [0u8; 16];
//! assert_eq!(server.read(id, &mut buf)?, Some(5));
//! assert_eq!(&buf[..5], b"hello");
//! assert_eq!(server.read(id, &mut buf)?, None); // end of stream
//!
//! // Time moves only when we say so: jump to the keep-alive deadline.
//! let frames = client.stats().frames_sent;
//! now = client.poll_timeout().unwrap();
//! client.handle_timeout(now);
//! settle(&mut client, &mut server, now);
//! assert_eq!(client.stats().frames_sent, frames + 1); // the PING
//!
//! // Garbage is a typed error and a GOAWAY, never a panic.
//! server.handle_input(now, bytes::Bytes::from_static(b"\0\0\x04\x03\0\0\0\0\0junk"));
//! let closed = std::iter::from_fn(|| server.poll_event()).last();
//! assert!(matches!(closed, Some(Event::Closed { reason: CloseReason::Violation(_) })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod auth;
mod budget;
pub mod bus;
mod codec;
mod config;
mod error;
mod event;
mod flow;
mod frame;
mod id;
pub mod pools;
/// The Protomux wire codec neonplex speaks: messages and their u32LE framing.
pub mod protomux;
pub mod relay;
/// neonplex's RPC codec: REQ/RES/CANCEL frames, envelopes, store bodies, service ids.
pub mod rpc;
mod session;
pub mod sim;
mod stream;
#[cfg(test)]
mod tests;

pub use codec::Decoder;
pub use config::{Config, FloodLimits, Rate};
pub use error::{
    CloseReason, ConfigError, Flood, LocalError, ProtocolError, ReadError, ResetReason, WriteError,
};
pub use event::{Event, SessionStats, StreamWindows, Transmit};
pub use frame::{
    Frame, FrameHeader, FrameType, SettingsFrame, FLAG_ACK, FLAG_END_STREAM, HEADER_LEN,
    INITIAL_CONNECTION_WINDOW, MAX_MAX_FRAME_SIZE, MAX_WINDOW, MIN_INITIAL_WINDOW,
    MIN_MAX_FRAME_SIZE, PREFACE, SETTING_INITIAL_WINDOW_SIZE, SETTING_MAX_CONCURRENT_STREAMS,
    SETTING_MAX_FRAME_SIZE, VERSION,
};
pub use id::{ErrorCode, Role, StreamId};
pub use session::hasher::StreamIdHasher;
pub use session::{OpenOptions, Session};
