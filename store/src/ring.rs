//! Reading frames out of a ring, over a live mapping or a plain byte slice.

use std::sync::atomic::{fence, Ordering};

use crate::frame::{self, FrameError, FrameHead, WRAP_MAGIC};
use crate::header;
use crate::map::Mapping;
use crate::message::{time_from_ns, Message};
use crate::Seq;

/// Word-level read access to a ring.
pub(crate) trait Ring {
    /// Ring length in bytes (a multiple of 8).
    fn len(&self) -> u64;
    /// File offset of ring offset 0, for error locations.
    fn base(&self) -> u64;
    /// The little-endian word at ring offset `off` (8-aligned, `< len`).
    fn word(&self, off: u64) -> u64;
    /// After reading frame bytes: an acquire fence, then the published oldest
    /// seq. Frames below it may have been overwritten while they were read.
    fn oldest_after_read(&self) -> u64;
}

/// Why a read by seq failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetch {
    /// The frame was overwritten by the ring wrapping (seq < oldest).
    Gone,
    /// The bytes at this ring offset are not the expected frame.
    Bad(u64, FrameError),
}

/// A ring inside a live pool mapping.
pub(crate) struct MapRing<'a> {
    pub(crate) map: &'a Mapping,
    pub(crate) off: u64,
    pub(crate) len: u64,
}

impl Ring for MapRing<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn base(&self) -> u64 {
        self.off
    }

    fn word(&self, off: u64) -> u64 {
        u64::from_le(self.map.u64_at(self.off + off).load(Ordering::Relaxed))
    }

    fn oldest_after_read(&self) -> u64 {
        // Pairs with the writer's release fence between advancing `OLDEST`
        // and overwriting frame bytes (FORMAT.md §5.3).
        fence(Ordering::Acquire);
        u64::from_le(self.map.u64_at(header::OLDEST).load(Ordering::Relaxed))
    }
}

/// A ring inside an immutable byte slice (fuzzing, offline checks).
pub(crate) struct SliceRing<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) base: u64,
}

impl Ring for SliceRing<'_> {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn base(&self) -> u64 {
        self.base
    }

    fn word(&self, off: u64) -> u64 {
        let at = off as usize;
        match self.bytes.get(at..at + 8) {
            Some(w) => u64::from_le_bytes(w.try_into().unwrap_or([0; 8])),
            None => 0,
        }
    }

    fn oldest_after_read(&self) -> u64 {
        0
    }
}

/// Where the frame that logically sits at `pos` really starts: `pos` itself,
/// or 0 when `pos` is the ring end or holds a wrap marker.
pub(crate) fn resolve<R: Ring>(ring: &R, pos: u64) -> Result<u64, FrameError> {
    if pos % 8 != 0 || pos > ring.len() {
        return Err(FrameError::Length);
    }
    if pos == ring.len() || ring.word(pos) as u32 == WRAP_MAGIC {
        return Ok(0);
    }
    Ok(pos)
}

/// Copies the frame at resolved offset `pos` into `buf` and validates its
/// lengths, and its checksum when its seq is above `trusted_upto`.
pub(crate) fn load<R: Ring>(
    ring: &R,
    pos: u64,
    max_frame: u64,
    trusted_upto: u64,
    buf: &mut Vec<u8>,
) -> Result<FrameHead, FrameError> {
    if pos % 8 != 0 || pos + frame::FRAME_HEADER > ring.len() {
        return Err(FrameError::Length);
    }
    buf.clear();
    for i in 0..frame::FRAME_HEADER / 8 {
        buf.extend_from_slice(&ring.word(pos + 8 * i).to_le_bytes());
    }
    let first: &[u8; 32] = buf[..32].try_into().map_err(|_| FrameError::Length)?;
    let head = frame::parse_head(first, max_frame)?;
    let padded = head.padded_len();
    if pos + padded > ring.len() {
        return Err(FrameError::Length);
    }
    for i in frame::FRAME_HEADER / 8..padded / 8 {
        buf.extend_from_slice(&ring.word(pos + 8 * i).to_le_bytes());
    }
    if head.seq > trusted_upto {
        frame::verify(buf, &head)?;
    }
    Ok(head)
}

/// Reads message `expect` from logical position `pos`, seqlock-style: the
/// bytes are copied, then checked against `OLDEST` so a frame overwritten
/// mid-copy is reported as [`Fetch::Gone`], never returned. On success also
/// returns the logical position of the next frame.
pub(crate) fn fetch<R: Ring>(
    ring: &R,
    pos: u64,
    expect: u64,
    max_frame: u64,
    buf: &mut Vec<u8>,
) -> Result<(Message, u64), Fetch> {
    let loaded = resolve(ring, pos).and_then(|p| Ok((p, load(ring, p, max_frame, 0, buf)?)));
    if expect < ring.oldest_after_read() {
        return Err(Fetch::Gone);
    }
    let (p, head) = loaded.map_err(|e| Fetch::Bad(pos, e))?;
    if head.seq != expect {
        return Err(Fetch::Bad(p, FrameError::Seq));
    }
    let (tags, data) = frame::decode(buf, &head).map_err(|e| Fetch::Bad(p, e))?;
    let msg = Message {
        seq: Seq(head.seq),
        time: time_from_ns(head.time_ns),
        tags,
        data,
    };
    Ok((msg, p + head.padded_len()))
}

/// Walks from the frame at logical position `start` (holding seq `start_seq`)
/// to message `target`, validating every frame on the way.
pub(crate) fn walk_to<R: Ring>(
    ring: &R,
    start: u64,
    start_seq: u64,
    target: u64,
    max_frame: u64,
    buf: &mut Vec<u8>,
) -> Result<(Message, u64), Fetch> {
    let mut pos = start;
    // Every frame takes at least FRAME_HEADER bytes, so a longer walk
    // means the chain loops: corrupt.
    let max_steps = ring.len() / frame::FRAME_HEADER + 1;
    for seq in (start_seq..).take(max_steps as usize) {
        let (msg, next) = fetch(ring, pos, seq, max_frame, buf)?;
        if seq == target {
            return Ok((msg, next));
        }
        pos = next;
    }
    Err(Fetch::Bad(pos, FrameError::Length))
}
