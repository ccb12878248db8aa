//! The u32 little-endian length prefix that splits a byte stream (TCP)
//! into Protomux messages (neonplex wire §2).

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use super::FrameError;

/// The bytes of the length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// Pushed chunks shorter than this are copied rather than kept as slices.
pub const COMPACT_BELOW: usize = 16 * 1024;

/// The length prefix for a message of `len` bytes.
pub fn frame_header(len: u32) -> [u8; FRAME_HEADER_LEN] {
    len.to_le_bytes()
}

/// Splits a length-prefixed byte stream into messages, however its bytes
/// were chunked.
///
/// It holds only the input pushed and not yet yielded: a message that
/// lies within one pushed chunk is yielded as a zero-copy slice of it,
/// one spread over several chunks is copied once. Chunks under
/// [`COMPACT_BELOW`] bytes are copied into one buffer as they arrive, so
/// a peer that drips its bytes cannot make the decoder hold a slice, and
/// the read buffer behind it, per byte: what it holds stays within a small
/// factor of what it buffers, as in `plex/1`'s receive buffers. A length prefix over
/// `max_message` is an error as soon as its four bytes are in, before any
/// of the message is waited for, and the error sticks. Zero-length frames
/// are yielded as empty messages (Protomux ignores them).
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_message: usize,
    chunks: VecDeque<Bytes>,
    /// Small pushed chunks, copied together; they follow `chunks`.
    tail: BytesMut,
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
            tail: BytesMut::new(),
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
        if input.is_empty() {
            return;
        }
        self.buffered += input.len();
        if input.len() < COMPACT_BELOW {
            self.tail.extend_from_slice(&input);
        } else {
            self.flush_tail();
            self.chunks.push_back(input);
        }
    }

    /// Moves the copied small chunks behind the kept ones, in order.
    fn flush_tail(&mut self) {
        if !self.tail.is_empty() {
            self.chunks.push_back(self.tail.split().freeze());
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
        self.flush_tail();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A message dripped a byte at a time, each byte a slice of its own
    /// large read buffer, is held as one copy, not a slice (and a buffer)
    /// per byte.
    #[test]
    fn dripped_bytes_are_compacted_not_kept_as_slices() {
        let mut decoder = FrameDecoder::new(1 << 20);
        let message = vec![7u8; 100_000];
        let mut wire = frame_header(message.len() as u32).to_vec();
        wire.extend_from_slice(&message);
        for (i, &byte) in wire.iter().enumerate() {
            let mut read_buffer = BytesMut::zeroed(64 * 1024);
            read_buffer[0] = byte;
            decoder.push(read_buffer.freeze().slice(..1));
            if i + 1 < wire.len() {
                assert_eq!(decoder.next(), Ok(None));
                assert!(decoder.chunks.len() <= 1, "{} chunks", decoder.chunks.len());
                assert!(decoder.tail.capacity() <= 2 * (i + 1).max(64));
            }
        }
        assert_eq!(decoder.next().unwrap().as_deref(), Some(&message[..]));
        assert_eq!(decoder.buffered(), 0);
    }

    /// Large chunks are still yielded without a copy.
    #[test]
    fn a_message_within_a_large_chunk_is_a_slice_of_it() {
        let mut decoder = FrameDecoder::new(1 << 20);
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&frame_header(COMPACT_BELOW as u32));
        wire.extend_from_slice(&vec![1u8; COMPACT_BELOW]);
        let wire = wire.freeze();
        decoder.push(wire.clone());
        let message = decoder.next().unwrap().expect("a message");
        assert_eq!(message.as_ptr(), wire[FRAME_HEADER_LEN..].as_ptr());
    }
}
