//! Protomux codec (`plex_proto::protomux`) on arbitrary bytes.
//!
//! Input: the whole input is one Protomux message, decoded with
//! [`Message::decode`]: nothing may panic, and whatever decodes must
//! re-encode to exactly `encoded_len` bytes that decode to the same value.
//! The same input, less its first byte, is then read as a u32LE-framed
//! stream by two [`FrameDecoder`]s (limit [`MAX_MESSAGE`]): one gets it
//! whole, the other in chunks of `1 + first byte % 16` bytes. Both must
//! yield the same messages, then the same error or the same leftover, and
//! every message they yield goes through the same decode check.

use bytes::{Bytes, BytesMut};
use plex_proto::protomux::{frame_header, FrameDecoder, FrameError, Message};

/// The framers' message limit: small, so the fuzzer reaches it.
pub const MAX_MESSAGE: usize = 64;

/// Runs one input; panics if a check fails.
pub fn run(data: &[u8]) {
    check_message(Bytes::copy_from_slice(data));
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let whole = drain(stream, stream.len().max(1));
    let chunked = drain(stream, 1 + usize::from(first % 16));
    assert_eq!(whole, chunked, "chunking changes nothing");
    for message in whole.0 {
        check_message(message);
    }
}

/// Decodes one message and checks its re-encoding.
fn check_message(input: Bytes) {
    if let Ok(message) = Message::decode(input) {
        let wire = message.to_bytes();
        assert_eq!(wire.len(), message.encoded_len());
        assert_eq!(Message::decode(wire), Ok(message));
    }
}

/// Messages yielded, then the error or the bytes still held at the end.
type Drained = (Vec<Bytes>, Result<usize, FrameError>);

/// Pushes `stream` in `chunk`-byte pieces, draining after each.
fn drain(stream: &[u8], chunk: usize) -> Drained {
    let mut framer = FrameDecoder::new(MAX_MESSAGE);
    let mut out = Vec::new();
    for piece in stream.chunks(chunk) {
        framer.push(Bytes::copy_from_slice(piece));
        loop {
            match framer.next() {
                Ok(Some(message)) => {
                    assert!(message.len() <= MAX_MESSAGE);
                    out.push(message);
                }
                Ok(None) => break,
                Err(err) => return (out, Err(err)),
            }
        }
    }
    let held = framer.buffered();
    (out, Ok(held))
}

/// Seeds: neonplex's golden Protomux messages
/// (`proto/src/protomux/vectors.txt`), each alone, plus all of them framed
/// into one stream behind a chunk-size byte.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stream = BytesMut::from(&[7u8][..]);
    for line in include_str!("../../proto/src/protomux/vectors.txt").lines() {
        let Some((name, hex)) = line.split_once('\t') else {
            continue;
        };
        if line.starts_with('#') {
            continue;
        }
        let bytes = crate::hex_bytes(hex);
        let slug = crate::slug(name);
        stream.extend_from_slice(&frame_header(bytes.len() as u32));
        stream.extend_from_slice(&bytes);
        out.push((slug, bytes));
    }
    out.push(("framed-stream".to_string(), stream.to_vec()));
    out
}
