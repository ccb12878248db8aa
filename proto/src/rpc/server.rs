//! The server side of RPC calls: a sans-IO state machine.

use std::collections::HashMap;

use bytes::Bytes;

use super::call::{nonzero, MAX_IN_FLIGHT, MAX_REQUEST_BYTES};
use super::{Body, DecodeError, EncodeError, Envelope, Frame, Method};
use crate::ConfigError;

/// Limits of a [`Server`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest REQ body accepted, in bytes (the 6-byte header not counted). Default 256 KiB.
    pub max_request_bytes: usize,
    /// Most calls active at once. Default 256.
    pub max_in_flight: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_request_bytes: MAX_REQUEST_BYTES,
            max_in_flight: MAX_IN_FLIGHT,
        }
    }
}

impl ServerConfig {
    /// Checks that no limit is zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        nonzero(self.max_request_bytes, "max_request_bytes must not be 0")?;
        nonzero(self.max_in_flight, "max_in_flight must not be 0")
    }
}

/// What the adapter does with one incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Send this frame now: a request refused with an error envelope. The
    /// call never became active.
    Reply(Frame),
    /// Run the handler for a new active call; answer with [`Server::respond`].
    Dispatch {
        /// The request id.
        rid: u32,
        /// The method called.
        method: Method,
        /// The decoded request body.
        body: Body,
    },
    /// Stop the handler of `rid`: the client gave up. Send nothing more for it.
    Cancel {
        /// The request id.
        rid: u32,
    },
}

/// Counters for one [`Server`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ServerStats {
    /// REQ frames received.
    pub requests: u64,
    /// Requests handed to a handler.
    pub dispatched: u64,
    /// Requests refused with `PayloadTooLarge`.
    pub too_large: u64,
    /// Requests refused with `NotReady`.
    pub not_ready: u64,
    /// Requests refused with `Unknown method` or `Bad request payload`.
    pub bad_requests: u64,
    /// Requests refused because their rid was active.
    pub duplicate_rids: u64,
    /// Active calls cancelled by the client or by [`Server::close`].
    pub cancelled: u64,
    /// RES frames built for active calls.
    pub responses: u64,
    /// Responses dropped because their call was not active (cancelled).
    pub suppressed: u64,
    /// Frames ignored: RES frames, CANCELs for inactive rids, anything after close.
    pub ignored: u64,
    /// Messages that are not RPC frames.
    pub malformed: u64,
}

/// The server side of one RPC lane: decides what to do with each request,
/// tracks active calls and suppresses answers to cancelled ones. No IO,
/// no clock (timeouts are the client's).
///
/// - **Getters**: [`in_flight`](Self::in_flight), [`is_active`](Self::is_active),
///   [`max_message_len`](Self::max_message_len), [`stats`](Self::stats),
///   [`config`](Self::config).
/// - **Inputs**: [`handle_message`](Self::handle_message) with each whole
///   message, [`handle_oversized`](Self::handle_oversized) with the head of
///   one too large to buffer.
/// - **Mutators**: [`respond`](Self::respond), [`close`](Self::close).
///
/// Its outputs are return values: an [`Action`] per message, a frame per
/// response.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    closed: bool,
    /// Active calls and their methods, echoed in responses.
    active: HashMap<u32, Method>,
    stats: ServerStats,
}

impl Server {
    /// A server with these limits.
    pub fn new(config: ServerConfig) -> Result<Server, ConfigError> {
        config.validate()?;
        Ok(Server {
            config,
            closed: false,
            active: HashMap::new(),
            stats: ServerStats::default(),
        })
    }

    /// Its limits.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Active calls: dispatched, not yet ended or cancelled.
    pub fn in_flight(&self) -> usize {
        self.active.len()
    }

    /// Whether `rid` is active.
    pub fn is_active(&self, rid: u32) -> bool {
        self.active.contains_key(&rid)
    }

    /// The longest message worth buffering: a REQ header (6 bytes) and
    /// `max_request_bytes`. Longer ones go to [`handle_oversized`](Self::handle_oversized).
    pub fn max_message_len(&self) -> usize {
        self.config.max_request_bytes.saturating_add(6)
    }

    /// Its counters.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Takes one whole message from the client.
    ///
    /// A REQ becomes [`Action::Dispatch`], or [`Action::Reply`] with
    /// neonplex's error envelope when the body is over the limit
    /// (`PayloadTooLarge`), too many calls are active (`NotReady`), the
    /// method is unknown or the body does not decode (`Unknown`). A REQ
    /// whose rid is active is refused with `BadArg "Duplicate request id"`
    /// and the active call runs on (neonplex does no check): that reply
    /// carries the active call's rid, so the client sees its call fail and
    /// counts the real answer as late; a well-behaved client never reuses
    /// an rid. A CANCEL for an active rid becomes [`Action::Cancel`] and
    /// frees it. RES frames, CANCELs for inactive rids and anything after
    /// [`close`](Self::close) are ignored (`None`) and counted.
    ///
    /// A message that is not an RPC frame is an error; the adapter decides
    /// (on plex/1 it resets that call's stream).
    pub fn handle_message(&mut self, message: Bytes) -> Result<Option<Action>, DecodeError> {
        let frame = Frame::decode(message).inspect_err(|_| self.stats.malformed += 1)?;
        if self.closed {
            self.stats.ignored += 1;
            return Ok(None);
        }
        Ok(match frame {
            Frame::Request { rid, method, body } => Some(self.request(rid, method, body)),
            Frame::Cancel { rid, .. } if self.active.remove(&rid).is_some() => {
                self.stats.cancelled += 1;
                Some(Action::Cancel { rid })
            }
            Frame::Cancel { .. } | Frame::Response { .. } => {
                self.stats.ignored += 1;
                None
            }
        })
    }

    /// Answers a REQ too long to buffer from its first 6 bytes (the
    /// header: type, rid, method) with `err PayloadTooLarge`; the adapter
    /// then discards the rest. `None`, counted as malformed, if `head` is
    /// not a REQ header; ignored after [`close`](Self::close).
    pub fn handle_oversized(&mut self, head: &[u8]) -> Option<Frame> {
        let Some(&[0, a, b, c, d, mid]) = head.get(..6) else {
            self.stats.malformed += 1;
            return None;
        };
        if self.closed {
            self.stats.ignored += 1;
            return None;
        }
        self.stats.requests += 1;
        self.stats.too_large += 1;
        Some(refusal(
            u32::from_le_bytes([a, b, c, d]),
            Method(mid),
            "PayloadTooLarge",
            "Request payload exceeds limit",
        ))
    }

    /// Builds the RES frame answering `rid`: `more` for a scan item,
    /// `envelope` `None` for an empty payload (a unary `ok()`, the end of a
    /// scan). Without `more` the call ends and its slot is freed.
    ///
    /// `Ok(None)` if `rid` is not active (cancelled, ended or closed): the
    /// response is suppressed and counted. An envelope the wire cannot carry
    /// is an error and leaves the call active, so it can still be failed
    /// with a smaller error envelope.
    pub fn respond(
        &mut self,
        rid: u32,
        more: bool,
        envelope: Option<&Envelope>,
    ) -> Result<Option<Frame>, EncodeError> {
        let Some(&method) = self.active.get(&rid) else {
            self.stats.suppressed += 1;
            return Ok(None);
        };
        let payload = match envelope {
            Some(envelope) => envelope.to_bytes()?,
            None => Bytes::new(),
        };
        if !more {
            self.active.remove(&rid);
        }
        self.stats.responses += 1;
        Ok(Some(Frame::Response {
            rid,
            method,
            more,
            payload,
        }))
    }

    /// The lane closed: every active call is cancelled; returns their rids
    /// (ascending) so the adapter stops their handlers. Later messages are
    /// ignored and later responses suppressed.
    pub fn close(&mut self) -> Vec<u32> {
        self.closed = true;
        let mut rids: Vec<u32> = self.active.drain().map(|(rid, _)| rid).collect();
        rids.sort_unstable();
        self.stats.cancelled += rids.len() as u64;
        rids
    }

    fn request(&mut self, rid: u32, method: Method, body: Bytes) -> Action {
        self.stats.requests += 1;
        let refuse = |code, message| Action::Reply(refusal(rid, method, code, message));
        if body.len() > self.config.max_request_bytes {
            self.stats.too_large += 1;
            return refuse("PayloadTooLarge", "Request payload exceeds limit");
        }
        if self.active.contains_key(&rid) {
            self.stats.duplicate_rids += 1;
            return refuse("BadArg", "Duplicate request id");
        }
        if self.active.len() >= self.config.max_in_flight {
            self.stats.not_ready += 1;
            return refuse("NotReady", "Too many in-flight requests");
        }
        let body = match Body::decode(method, body) {
            Ok(body) => body,
            Err(DecodeError::UnknownMethod(_)) => {
                self.stats.bad_requests += 1;
                return refuse("Unknown", "Unknown method");
            }
            Err(_) => {
                self.stats.bad_requests += 1;
                return refuse("Unknown", "Bad request payload");
            }
        };
        self.active.insert(rid, method);
        self.stats.dispatched += 1;
        Action::Dispatch { rid, method, body }
    }
}

/// A final RES carrying an error envelope.
fn refusal(rid: u32, method: Method, code: &str, message: &str) -> Frame {
    let envelope = Envelope::err(code, message);
    Frame::Response {
        rid,
        method,
        more: false,
        // Fixed short strings, far below the u16 length limit.
        payload: envelope.to_bytes().unwrap_or_default(),
    }
}
