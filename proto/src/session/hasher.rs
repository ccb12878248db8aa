//! The stream map's hasher.

use std::hash::Hasher;

/// Hashes stream ids by multiplication; ids are already unique integers.
/// For maps keyed by [`StreamId`](crate::StreamId), in place of SipHash:
/// `HashMap<StreamId, V, BuildHasherDefault<StreamIdHasher>>`.
///
/// The product is rotated so that the table index depends on every bit of
/// the id: a peer picking ids that share low bits cannot pile them into one
/// bucket. It is not keyed: a peer that works out colliding ids can slow a
/// map of one connection's streams, whose number the stream limit bounds,
/// but nothing more.
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamIdHasher(u64);

impl Hasher for StreamIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(32);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
