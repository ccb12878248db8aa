//! Splitting the relay's byte stream into messages, and reading the answer
//! to a session join.

use super::message::{Header, HEADER_LEN, MAGIC, MAX_PAYLOAD_LEN};
use super::{DecodeError, Message, Response};

/// The byte a relayed peer sends once it has its own session
/// [`Response`]: a library convention (not Syncthing's) that lets each side
/// wait until both joined before sending data (see [`JoinReader`]).
pub const READY: u8 = 0x01;

/// Splits the relay's byte stream into [`Message`]s, however it was
/// chunked.
///
/// It buffers at most one frame ([`HEADER_LEN`] + [`MAX_PAYLOAD_LEN`]
/// bytes): [`decode`](Decoder::decode) takes input only up to the end of
/// the frame in progress. A bad header is an error as soon as its 12 bytes
/// are in, and the error sticks.
///
/// ```
/// use plex_proto::relay::{Decoder, Message};
///
/// let ping = Message::Ping.to_bytes()?;
/// let pong = Message::Pong.to_bytes()?;
/// let wire = [&ping[..], &pong[..]].concat();
/// let mut decoder = Decoder::new();
/// let mut input = &wire[..5];
/// assert_eq!(decoder.decode(&mut input)?, None); // 5 bytes of a header
/// let mut input = &wire[5..];
/// assert_eq!(decoder.decode(&mut input)?, Some(Message::Ping));
/// assert_eq!(decoder.decode(&mut input)?, Some(Message::Pong));
/// assert!(input.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    header: Option<Header>,
    failed: Option<DecodeError>,
}

impl Decoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Takes bytes off the front of `input` until one message is complete
    /// and returns it, or takes all of `input` and returns `None` when the
    /// message is still incomplete.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Message>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.step(input);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    /// Bytes held of the frame in progress: never more than
    /// [`HEADER_LEN`] + [`MAX_PAYLOAD_LEN`].
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether the decoder is between frames (nothing partial held).
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.header.is_none()
    }

    fn step(&mut self, input: &mut &[u8]) -> Result<Option<Message>, DecodeError> {
        if self.header.is_none() {
            self.fill(input, HEADER_LEN);
            let Some(head) = self.buf.first_chunk::<HEADER_LEN>() else {
                return Ok(None);
            };
            self.header = Some(Header::decode(head)?);
            self.buf.clear();
        }
        // Set just above.
        let Some(header) = self.header else {
            return Ok(None);
        };
        self.fill(input, header.len);
        if self.buf.len() < header.len {
            return Ok(None);
        }
        let message = Message::decode(header.kind, &self.buf)?;
        self.buf.clear();
        self.header = None;
        Ok(Some(message))
    }

    /// Moves bytes from `input` until `buf` holds `want`.
    fn fill(&mut self, input: &mut &[u8], want: usize) {
        let take = want.saturating_sub(self.buf.len()).min(input.len());
        let (taken, rest) = input.split_at(take);
        self.buf.extend_from_slice(taken);
        *input = rest;
        debug_assert!(self.buf.len() <= HEADER_LEN + MAX_PAYLOAD_LEN);
    }
}

/// Reads what comes back on a session connection after
/// `JoinSessionRequest`: the relay's [`Response`], with the peer's
/// [`READY`] byte possibly before it or after it.
///
/// The relay hands a joiner's connection to the session before it writes
/// that joiner's `Response`, so bytes the peer already sent can arrive
/// first (research §7.2). Under the READY convention the only byte a peer
/// sends before hearing our READY is its own READY, so what arrives before
/// we send ours is: at most one READY, the Response, at most one READY.
/// Anything else is an error. Feed it everything read until
/// [`response`](JoinReader::response) is known; once it is, send READY, and
/// if [`peer_ready`](JoinReader::peer_ready) is still false read exactly
/// one more byte (later bytes are the peer's data) and feed it.
///
/// ```
/// use plex_proto::relay::{JoinReader, Message, Response, READY};
///
/// let ok = Message::Response(Response { code: 0, message: "success".into() }).to_bytes()?;
/// let mut join = JoinReader::new();
/// join.handle_input(&[READY])?; // the peer's READY overtook our Response
/// join.handle_input(&ok)?;
/// assert_eq!(join.response().map(|r| r.code), Some(0));
/// assert!(join.peer_ready());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct JoinReader {
    decoder: Decoder,
    response: Option<Response>,
    peer_ready: bool,
}

/// Why the bytes after a session join are not a Response and READY bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The Response frame is malformed, or another message came instead.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A byte that is neither READY nor the start of the Response, or
    /// data after the peer's READY.
    #[error("unexpected byte {0:#04x} on a session being joined")]
    UnexpectedByte(u8),
}

impl JoinReader {
    /// A reader for a session connection that has just sent its join.
    pub fn new() -> JoinReader {
        JoinReader::default()
    }

    /// Takes all of `input`.
    pub fn handle_input(&mut self, mut input: &[u8]) -> Result<(), JoinError> {
        while let Some((&first, rest)) = input.split_first() {
            let between = self.decoder.is_idle();
            if between && self.response.is_some() {
                // After the Response: only the peer's READY may come before
                // we send ours.
                if first != READY || self.peer_ready {
                    return Err(JoinError::UnexpectedByte(first));
                }
                self.peer_ready = true;
                input = rest;
                continue;
            }
            if between && first == READY && !self.peer_ready {
                self.peer_ready = true;
                input = rest;
                continue;
            }
            if between && u32::from(first) != MAGIC >> 24 {
                return Err(JoinError::UnexpectedByte(first));
            }
            match self.decoder.decode(&mut input)? {
                Some(Message::Response(response)) => self.response = Some(response),
                Some(other) => {
                    return Err(DecodeError::Unexpected(other.message_type()).into());
                }
                None => {}
            }
        }
        Ok(())
    }

    /// The relay's answer, once it is in.
    pub fn response(&self) -> Option<&Response> {
        self.response.as_ref()
    }

    /// Whether the peer's READY byte has come.
    pub fn peer_ready(&self) -> bool {
        self.peer_ready
    }
}
