//! Differential decoding.
//!
//! The same bytes decoded whole and split at fuzzer-chosen boundaries must
//! give the same frames, then the same error or the same number of leftover
//! bytes. Every decoded frame must re-encode to bytes that decode back to it.
//!
//! Input: `[mode] [n] [n chunk sizes] [wire bytes]`. Bit 0 of `mode` selects
//! a decoder that expects the preface; bits 1..=2 index [`MAX_FRAME_SIZES`].
//! The chunk sizes are used in turn, cyclically, to split the wire bytes; a
//! zero size feeds an empty chunk. With no sizes, or only zeros, the split
//! run feeds one byte at a time.

use bytes::{Bytes, BytesMut};
use plex_proto::{
    Decoder, Frame, ProtocolError, HEADER_LEN, MAX_MAX_FRAME_SIZE, MIN_MAX_FRAME_SIZE,
};

/// The MAX_FRAME_SIZE choices: the default, the largest, and two below the
/// protocol minimum (a bare `Decoder` accepts any limit) that make
/// oversized headers easy to reach.
pub const MAX_FRAME_SIZES: [u32; 4] = [MIN_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE, 0, 64];

/// Runs one input; panics if a check fails.
pub fn run(data: &[u8]) {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let wire = Bytes::copy_from_slice(input.wire);
    let whole = decode(input.decoder(), [wire.clone()]);
    let split = decode(input.decoder(), Chunks::new(wire, input.chunk_sizes));
    assert_eq!(whole, split, "whole and split input decode differently");
    for frame in &whole.frames {
        check_round_trip(frame, input.max_frame_size);
    }
}

/// Builds an input in the format [`run`] parses.
///
/// `max_frame_size` indexes [`MAX_FRAME_SIZES`]; at most 255 chunk sizes are
/// kept.
pub fn input(with_preface: bool, max_frame_size: u8, chunk_sizes: &[u8], wire: &[u8]) -> Vec<u8> {
    let sizes = &chunk_sizes[..chunk_sizes.len().min(255)];
    let mut out = Vec::with_capacity(2 + sizes.len() + wire.len());
    out.push(u8::from(with_preface) | (max_frame_size & 0b11) << 1);
    // At most 255 sizes: truncated just above.
    out.push(sizes.len() as u8);
    out.extend_from_slice(sizes);
    out.extend_from_slice(wire);
    out
}

struct Input<'a> {
    with_preface: bool,
    max_frame_size: u32,
    chunk_sizes: &'a [u8],
    wire: &'a [u8],
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Option<Input<'a>> {
        let (&mode, rest) = data.split_first()?;
        let (&n, rest) = rest.split_first()?;
        let n = usize::from(n).min(rest.len());
        let (chunk_sizes, wire) = rest.split_at(n);
        Some(Input {
            with_preface: mode & 1 != 0,
            max_frame_size: MAX_FRAME_SIZES[usize::from((mode >> 1) & 0b11)],
            chunk_sizes,
            wire,
        })
    }

    fn decoder(&self) -> Decoder {
        if self.with_preface {
            Decoder::with_preface(self.max_frame_size)
        } else {
            Decoder::new(self.max_frame_size)
        }
    }
}

/// What a decoder made of some input.
#[derive(Debug, PartialEq)]
struct Outcome {
    frames: Vec<Frame>,
    /// The error that stopped decoding, or the bytes left buffered.
    end: Result<usize, ProtocolError>,
}

fn decode(mut decoder: Decoder, chunks: impl IntoIterator<Item = Bytes>) -> Outcome {
    let mut frames = Vec::new();
    for mut chunk in chunks {
        loop {
            match decoder.decode(&mut chunk) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => {
                    assert!(chunk.is_empty(), "decode returned None with input left");
                    break;
                }
                // The decoder must not be used after an error.
                Err(e) => {
                    return Outcome {
                        frames,
                        end: Err(e),
                    }
                }
            }
        }
    }
    Outcome {
        frames,
        end: Ok(decoder.buffered()),
    }
}

/// Encodes `frame` and checks that it decodes back to itself.
fn check_round_trip(frame: &Frame, max_frame_size: u32) {
    // An unknown frame's payload is skipped, not kept: it cannot round-trip.
    if matches!(frame, Frame::Unknown { .. }) {
        return;
    }
    let mut wire = BytesMut::new();
    frame.encode(&mut wire);
    assert_eq!(wire.len(), HEADER_LEN + frame.payload_len(), "{frame:?}");
    let mut wire = wire.freeze();
    // Re-encoding never grows a frame: a decoded frame fits the same limit.
    let decoded = Decoder::new(max_frame_size).decode(&mut wire);
    assert_eq!(decoded, Ok(Some(frame.clone())), "re-encoded frame differs");
    assert!(wire.is_empty(), "re-encoded {frame:?} left bytes over");
}

/// Splits bytes into chunks of the given sizes, cycling through them.
struct Chunks<'a> {
    rest: Bytes,
    sizes: std::iter::Cycle<std::slice::Iter<'a, u8>>,
    all_zero: bool,
}

impl<'a> Chunks<'a> {
    fn new(rest: Bytes, sizes: &'a [u8]) -> Chunks<'a> {
        Chunks {
            rest,
            sizes: sizes.iter().cycle(),
            // With only zero sizes (or none) the split would never advance.
            all_zero: sizes.iter().all(|&s| s == 0),
        }
    }
}

impl Iterator for Chunks<'_> {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.rest.is_empty() {
            return None;
        }
        let size = match self.all_zero {
            true => 1,
            // Not all zero, so not empty: the cycle never ends.
            false => usize::from(*self.sizes.next()?),
        };
        Some(self.rest.split_to(size.min(self.rest.len())))
    }
}
