//! The u32 little-endian length prefix that splits a byte stream (TCP)
//! into Protomux messages (neonplex wire §2).

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use super::FrameError;

/// The bytes of the length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// The length prefix for a message of `len` bytes.
pub fn frame_header(len: u32) -> [u8; FRAME_HEADER_LEN] {
    len.to_le_bytes()
}

/// Splits a length-prefixed byte stream into messages, however its bytes
/// were chunked.
///
/// It holds only the input pushed and not yet yielded: a message that
/// lies within one pushed chunk is yielded as a zero-copy slice of it,
/// one spread over several chunks is copied once. A length prefix over
/// `max_message` is an error as soon as its four bytes are in, before any
/// of the message is waited for, and the error sticks. Zero-length frames
/// are yielded as empty messages (Protomux ignores them).
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_message: usize,
    chunks: VecDeque<Bytes>,
    buffered: usize,
    /// The length of the message whose prefix has been read.
    pending: Option<usize>,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder that refuses messages longer than `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        FrameDecoder {
            max_message,
            chunks: VecDeque::new(),
            buffered: 0,
            pending: None,
            failed: None,
        }
    }

    /// The longest message accepted.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Bytes pushed and not yet yielded, prefixes included.
    pub fn buffered(&self) -> usize {
        self.buffered + self.pending.map_or(0, |_| FRAME_HEADER_LEN)
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, input: Bytes) {
        if !input.is_empty() {
            self.buffered += input.len();
            self.chunks.push_back(input);
        }
    }

    /// The next whole message, or `None` until more bytes are pushed.
    #[allow(clippy::should_implement_trait)] // fallible, so not an Iterator
    pub fn next(&mut self) -> Result<Option<Bytes>, FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let len = match self.pending {
            Some(len) => len,
            None => {
                if self.buffered < FRAME_HEADER_LEN {
                    return Ok(None);
                }
                let mut header = [0; FRAME_HEADER_LEN];
                self.take(FRAME_HEADER_LEN).copy_to_slice(&mut header);
                let announced = u32::from_le_bytes(header);
                let len = usize::try_from(announced)
                    .ok()
                    .filter(|&len| len <= self.max_message);
                let Some(len) = len else {
                    let err = FrameError::TooLarge {
                        len: announced,
                        max: self.max_message,
                    };
                    self.failed = Some(err.clone());
                    return Err(err);
                };
                self.pending = Some(len);
                len
            }
        };
        if self.buffered < len {
            return Ok(None);
        }
        self.pending = None;
        Ok(Some(self.take(len)))
    }

    /// Removes the first `len` bytes, which the caller checked are buffered.
    fn take(&mut self, len: usize) -> Bytes {
        self.buffered -= len;
        match self.chunks.front_mut() {
            Some(front) if front.len() >= len => {
                let out = front.split_to(len);
                if front.is_empty() {
                    self.chunks.pop_front();
                }
                return out;
            }
            _ => {}
        }
        let mut out = BytesMut::with_capacity(len);
        while out.len() < len {
            // `buffered` counted these bytes: the chunks hold them.
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let n = front.len().min(len - out.len());
            out.extend_from_slice(&front.split_to(n));
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
        out.freeze()
    }
}
