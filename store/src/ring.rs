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
    /// The little-endian word at ring offset `off` (8-aligned, `< len`).
    fn word(&self, off: u64) -> u64;
    /// After reading ring bytes: an acquire fence, then the published
    /// `(OLDEST, TAIL)`. A writer changes this pair before it frees any ring
    /// bytes and the pair never takes an earlier value again, so bytes read
    /// while it stayed the same were stable (`FORMAT.md` §5.3).
    fn generation(&self) -> Generation;
}

/// The published `(OLDEST, TAIL)` pair that guards ring bytes against reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Generation {
    /// The oldest seq: frames below it may be overwritten.
    pub(crate) oldest: u64,
    /// The ring offset of the oldest frame or of the wrap marker before it.
    pub(crate) tail: u64,
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

    fn word(&self, off: u64) -> u64 {
        #[cfg(test)]
        WORDS_READ.with(|n| n.set(n.get() + 1));
        self.map.load(self.off + off, Ordering::Relaxed)
    }

    fn generation(&self) -> Generation {
        // Pairs with the writer's release fence between storing `OLDEST` and
        // `TAIL` and overwriting ring bytes (FORMAT.md §5.3).
        fence(Ordering::Acquire);
        Generation {
            oldest: self.map.load(header::OLDEST, Ordering::Relaxed),
            tail: self.map.load(header::TAIL, Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Ring words this thread loaded from live mappings: what tests count
    /// to check that a read or an open does bounded work.
    pub(crate) static WORDS_READ: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A ring inside an immutable byte slice (fuzzing, offline checks).
pub(crate) struct SliceRing<'a> {
    pub(crate) bytes: &'a [u8],
}

impl Ring for SliceRing<'_> {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn word(&self, off: u64) -> u64 {
        let at = off as usize;
        match self.bytes.get(at..at + 8) {
            Some(w) => u64::from_le_bytes(w.try_into().unwrap_or([0; 8])),
            None => 0,
        }
    }

    fn generation(&self) -> Generation {
        // Nothing changes an immutable slice.
        Generation { oldest: 0, tail: 0 }
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

/// Reads the fixed header of the frame at resolved offset `pos` (four
/// words) and checks its magic and lengths, including that the frame lies
/// inside the ring.
pub(crate) fn head<R: Ring>(ring: &R, pos: u64, max_frame: u64) -> Result<FrameHead, FrameError> {
    head_bytes(ring, pos, max_frame, &mut [0; frame::FRAME_HEADER as usize])
}

/// [`head`], leaving the header's bytes in `first`.
fn head_bytes<R: Ring>(
    ring: &R,
    pos: u64,
    max_frame: u64,
    first: &mut [u8; frame::FRAME_HEADER as usize],
) -> Result<FrameHead, FrameError> {
    if pos % 8 != 0 || pos + frame::FRAME_HEADER > ring.len() {
        return Err(FrameError::Length);
    }
    for (i, word) in first.chunks_exact_mut(8).enumerate() {
        word.copy_from_slice(&ring.word(pos + 8 * i as u64).to_le_bytes());
    }
    let head = frame::parse_head(first, max_frame)?;
    if pos + head.padded_len() > ring.len() {
        return Err(FrameError::Length);
    }
    Ok(head)
}

/// Validates the frame at resolved offset `pos`: its header and lengths
/// always; when its seq is above `trusted_upto`, also its checksum and
/// tags, for which it copies the whole frame into `buf`. A trusted frame
/// costs four word loads and leaves `buf` empty.
pub(crate) fn load<R: Ring>(
    ring: &R,
    pos: u64,
    max_frame: u64,
    trusted_upto: u64,
    buf: &mut Vec<u8>,
) -> Result<FrameHead, FrameError> {
    buf.clear();
    let mut first = [0; frame::FRAME_HEADER as usize];
    let head = head_bytes(ring, pos, max_frame, &mut first)?;
    if head.seq <= trusted_upto {
        return Ok(head);
    }
    let padded = head.padded_len();
    // One allocation for the whole frame, not one per doubling.
    buf.reserve(padded as usize);
    buf.extend_from_slice(&first);
    for i in frame::FRAME_HEADER / 8..padded / 8 {
        buf.extend_from_slice(&ring.word(pos + 8 * i).to_le_bytes());
    }
    frame::verify(buf, &head)?;
    frame::check_tags(buf, &head)?;
    Ok(head)
}

/// From the frame of seq `from` at logical position `pos`, follows frame
/// lengths (headers only) to the logical position of seq `to >= from`.
/// `None` if a header on the way does not check or names another seq: the
/// start was stale, or writers reused the bytes. Costs `to - from` header
/// reads; the caller validates frame `to` completely.
pub(crate) fn seek<R: Ring>(
    ring: &R,
    mut pos: u64,
    from: u64,
    to: u64,
    max_frame: u64,
) -> Option<u64> {
    for seq in from..to {
        let at = resolve(ring, pos).ok()?;
        let head = head(ring, at, max_frame).ok()?;
        if head.seq != seq {
            return None;
        }
        pos = at + head.padded_len();
    }
    Some(pos)
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
    if expect < ring.generation().oldest {
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
