//! Reading frames out of a ring, over a live mapping or a plain byte slice.

use std::sync::atomic::{fence, Ordering};

use crate::frame::{self, FrameError, FrameHead, WRAP_MAGIC};
use crate::header;
use crate::map::Mapping;
use crate::message::MessageBuf;
use crate::Seq;

/// Word-level read access to a ring.
pub(crate) trait Ring {
    /// Ring length in bytes (a multiple of 8).
    fn len(&self) -> u64;
    /// The little-endian word at ring offset `off` (8-aligned, `< len`).
    fn word(&self, off: u64) -> u64;
    /// Hints that ring bytes `off..off + len` are about to be copied.
    fn prefetch(&self, _off: u64, _len: u64) {}
    /// The bytes at ring offset `off` (8-aligned) into `dst` (a multiple of
    /// 8 long, ending inside the ring): [`Ring::word`] in bulk.
    fn copy(&self, off: u64, dst: &mut [u8]) {
        for (i, chunk) in dst.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&self.word(off + 8 * i as u64).to_le_bytes());
        }
    }
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

    fn prefetch(&self, off: u64, len: u64) {
        self.map
            .prefetch(self.off + off, len.min(self.len.saturating_sub(off)));
    }

    fn copy(&self, off: u64, dst: &mut [u8]) {
        #[cfg(test)]
        WORDS_READ.with(|n| n.set(n.get() + dst.len() as u64 / 8));
        // Callers bound frames by the ring; the mapping bounds the copy
        // again, so a bug cannot read outside it.
        debug_assert!(off + dst.len() as u64 <= self.len);
        self.map.load_bytes(self.off + off, dst);
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
    let mut first = [0; frame::FRAME_HEADER as usize];
    let head = head_bytes(ring, pos, max_frame, &mut first).inspect_err(|_| buf.clear())?;
    if head.seq <= trusted_upto {
        buf.clear();
        return Ok(head);
    }
    // Only new bytes are zeroed; the copy overwrites all of them.
    buf.resize(head.padded_len() as usize, 0);
    let (fixed, rest) = buf.split_at_mut(first.len());
    fixed.copy_from_slice(&first);
    ring.copy(pos + frame::FRAME_HEADER, rest);
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

/// Reads message `expect` from logical position `pos` into `out`,
/// seqlock-style: the bytes are copied, then checked against `OLDEST` so a
/// frame overwritten mid-copy is reported as [`Fetch::Gone`], never
/// returned. On success returns the logical position of the next frame;
/// on failure `out` holds no message.
pub(crate) fn fetch<R: Ring>(
    ring: &R,
    pos: u64,
    expect: u64,
    max_frame: u64,
    out: &mut MessageBuf,
) -> Result<u64, Fetch> {
    let loaded = resolve(ring, pos).and_then(|p| Ok((p, copy_message(ring, p, max_frame, out)?)));
    let found = match loaded {
        _ if expect < ring.generation().oldest => Err(Fetch::Gone),
        Err(e) => Err(Fetch::Bad(pos, e)),
        Ok((p, head)) if head.seq != expect => Err(Fetch::Bad(p, FrameError::Seq)),
        Ok((p, head)) => Ok(p + head.padded_len()),
    };
    if found.is_err() {
        out.clear();
    }
    found
}

/// Copies the frame at resolved offset `pos` into `out` and validates it
/// (header, lengths, checksum, tags). Each ring byte is loaded once: the
/// whole words of the tag area go to `out.tags`, the words from there to
/// the end of the frame to `out.data`, the checksum is computed over both,
/// then the few tag bytes at the front of `out.data` move over and the
/// payload moves to its front (within the buffer, already in cache).
fn copy_message<R: Ring>(
    ring: &R,
    pos: u64,
    max_frame: u64,
    out: &mut MessageBuf,
) -> Result<FrameHead, FrameError> {
    let mut first = [0; frame::FRAME_HEADER as usize];
    let head = head_bytes(ring, pos, max_frame, &mut first)?;
    let data_start = frame::FRAME_HEADER + u64::from(head.tags_len);
    let split = data_start & !7;
    // The header is in cache now; fetch the frame's other lines at once.
    ring.prefetch(pos, head.padded_len());
    // Resizing without clearing first: only new bytes are zeroed, and the
    // copies overwrite all of them.
    out.tags.resize((split - frame::FRAME_HEADER) as usize, 0);
    ring.copy(pos + frame::FRAME_HEADER, &mut out.tags);
    out.data.resize((head.padded_len() - split) as usize, 0);
    ring.copy(pos + split, &mut out.data);
    // Frame bytes in `out.data`, and tag bytes at its front.
    let body = (head.len() - split) as usize;
    let lead = (data_start - split) as usize;
    if frame::checksum_parts(&first[..4], &[&first[8..], &out.tags, &out.data[..body]]) != head.crc
    {
        return Err(FrameError::Checksum);
    }
    out.tags.extend_from_slice(&out.data[..lead]);
    frame::check_tag_area(&out.tags)?;
    if lead > 0 {
        out.data.copy_within(lead..body, 0);
    }
    out.data.truncate(head.data_len as usize);
    out.seq = Seq(head.seq);
    out.time_ns = head.time_ns;
    Ok(head)
}
