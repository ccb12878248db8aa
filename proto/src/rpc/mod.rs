//! The wire codec of neonplex's RPC layer (`@neonloom/plex` `rpc.js` and
//! `protocol/store.js` at 16cc625), byte-compatible with its golden
//! vectors. Pure functions on [`Bytes`](bytes::Bytes): no IO, no clock, no state.
//!
//! One channel message carries one [`Frame`](crate::rpc::Frame). A REQ's body is a store
//! [`Body`](crate::rpc::Body) chosen by the frame's [`Method`](crate::rpc::Method); a RES's payload is an
//! [`Envelope`](crate::rpc::Envelope), or empty (`ok()` for a unary call, the end of a scan).
//! [`derive_id`](crate::rpc::derive_id) builds neonplex service ids.
//!
//! Decoding checks every length against the bytes that remain before it
//! slices, returns a [`DecodeError`](crate::rpc::DecodeError) on any malformed input and never
//! panics; decoded fields are zero-copy slices of the input. It is
//! stricter than neonplex, which reads past-the-end fields as `undefined`
//! and ignores trailing bytes: neonplex never writes such messages, so
//! only garbage is refused. Encoding writes exactly neonplex's bytes, with
//! one deliberate exception: SCAN range bounds go out in the layout
//! neonplex *decodes*, not the one its encoder writes (below).
//!
//! A GET for `k1` as request 1, and the server's reply carrying `v1`:
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use plex_proto::rpc::{Body, Envelope, Frame, Method};
//!
//! let body = Body::Get { key: Bytes::from_static(b"k1"), caps: Bytes::new() };
//! let request = Frame::Request { rid: 1, method: Method::GET, body: body.to_bytes() };
//! assert_eq!(&request.to_bytes()[..], b"\x00\x01\x00\x00\x00\x00\x02k1\x00");
//!
//! // The server's side: decode the frame, then the body for its method.
//! let Frame::Request { rid, method, body } = Frame::decode(request.to_bytes())? else {
//!     unreachable!("a REQ decodes as a request");
//! };
//! assert_eq!(Body::decode(method, body)?, Body::Get { key: Bytes::from_static(b"k1"), caps: Bytes::new() });
//!
//! // Its reply, as neonplex writes it: RES, more = 0, envelope ok("v1").
//! let mut payload = BytesMut::new();
//! Envelope::Ok { value: Some(Bytes::from_static(b"v1")), key: None }.encode(&mut payload)?;
//! let reply = Frame::Response { rid, method, more: false, payload: payload.freeze() };
//! let wire = reply.to_bytes();
//! assert_eq!(&wire[..7], b"\x01\x01\x00\x00\x00\x00\x00");
//!
//! // The client's side.
//! let Frame::Response { payload, more: false, .. } = Frame::decode(wire)? else {
//!     unreachable!("a unary RES");
//! };
//! match Envelope::decode(payload)? {
//!     Envelope::Ok { value, .. } => assert_eq!(value.as_deref(), Some(&b"v1"[..])),
//!     Envelope::Err { code, message } => panic!("{code}: {message}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Call semantics
//!
//! Two sans-IO state machines, in the style of [`Session`](crate::Session),
//! carry the calls; `proto/RPC.md` specifies them. A [`Client`](crate::rpc::Client)
//! numbers calls, queues their REQ and CANCEL frames, matches RES frames to
//! them, times them out and bounds what each may queue; exactly one
//! [`Reply::Done`](crate::rpc::Reply::Done) ends each call, and late replies are
//! counted, never delivered. A [`Server`](crate::rpc::Server) turns each
//! message into an [`Action`](crate::rpc::Action) (dispatch, cancel, or an
//! immediate error reply with neonplex's codes), bounds the active calls and
//! suppresses answers to cancelled ones. Both serve plex/1, where each call
//! has its own stream, and a shared channel multiplexed by request id.
//!
//! # The range-bounds bug
//!
//! neonplex's SCAN encoder interleaves the bounds
//! (`bool gte [U8] · bool gt [U8] · bool lte [U8] · bool lt [U8]`) but its
//! decoder reads the four flags first, then the present values. So a
//! neonplex server rejects ranges from a neonplex client, and decodes the
//! flags-first layout correctly.
//!
//! [`Body::encode`](crate::rpc::Body::encode) writes **flags-first**: it is the layout every neonplex
//! server decodes, so ranges from Plex work against neonplex servers, and
//! it is what Plex peers read first. Decoding accepts **both**: it tries
//! flags-first, and falls back to the interleaved layout only if
//! flags-first fails or leaves bytes over (so ranges sent by neonplex
//! clients work against Plex servers). With no bounds the two layouts are
//! the same bytes. A few bodies with bounds parse both ways (e.g. interleaved `gte = [00]` reads flags-first as
//! `gte = gt = []`); flags-first wins those, because it is the layout
//! neonplex's own decoder defines and Plex sends. [`Scan::decode`](crate::rpc::Scan::decode) reports
//! which layout it used.

mod body;
mod call;
mod client;
mod derive_id;
mod envelope;
mod error;
mod frame;
mod server;
#[cfg(test)]
pub(crate) mod tests;
mod varint;

pub use body::{Body, RangeLayout, Scan};
pub use call::{
    CallError, ClientConfig, ClientEvent, ClientStats, Reply, MAX_IN_FLIGHT, MAX_REQUEST_BYTES,
};
pub use client::Client;
pub use derive_id::{derive_id, derive_id_parts, IdPart};
pub use envelope::Envelope;
pub use error::{DecodeError, EncodeError};
pub use frame::{Frame, Method};
pub use server::{Action, Server, ServerConfig, ServerStats};
pub(crate) use varint::Reader;
pub use varint::{decode_uint, put_bytes, put_uint, uint_len};
