//! Walking the live frames of a ring in seq order, past damaged ones.
//!
//! One walk serves recovery, the readers' fallback scan and the checkers.
//! It follows frame lengths from `TAIL`; where a frame fails validation it
//! resynchronises on the next valid frame of a later published seq, and
//! reports the seqs in between as damaged instead of stopping (`FORMAT.md`
//! §4.1). It never reads past the published `HEAD`, so its work is bounded
//! by the ring length.

use std::ops::Range;

use crate::frame::{self, FrameError, FrameHead, FRAME_MAGIC};
use crate::recover::State;
use crate::ring::{self, Ring};

/// What a walk found next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// A valid frame.
    Frame {
        /// Its seq.
        seq: u64,
        /// Its logical ring position (a wrap marker or the ring end
        /// resolve to 0).
        pos: u64,
        /// Its resolved ring offset.
        at: u64,
        /// Its fixed header.
        head: FrameHead,
    },
    /// These published seqs have no valid frame.
    Damaged {
        /// The seqs, `start` inclusive.
        seqs: Range<u64>,
        /// The logical ring position where the first of them should be.
        pos: u64,
        /// Why the frame there failed.
        reason: FrameError,
    },
}

/// A walk over the frames `oldest..=newest` of a published state.
#[derive(Debug, Clone)]
pub(crate) struct Walk {
    /// Logical position of the next frame.
    pos: u64,
    /// The next seq.
    expect: u64,
    /// The last published seq.
    newest: u64,
    /// Ring bytes left before `HEAD`.
    left: u64,
    /// Whether a frame or a damaged run was reported yet: until then,
    /// frames older than `expect` are a tail left behind by a writer that
    /// died mid-eviction, and a valid frame of a later seq is the oldest.
    started: bool,
}

impl Walk {
    /// Starts at `st.tail`, expecting `st.oldest`, bounded by `st.head`.
    pub(crate) fn new(st: &State, ring_len: u64) -> Walk {
        let left = match st.head.checked_sub(st.tail) {
            Some(0) if st.is_empty() => 0,
            // A full ring: head caught up with tail.
            Some(0) => ring_len,
            Some(d) => d,
            None => ring_len - st.tail + st.head,
        };
        Walk {
            pos: st.tail,
            expect: st.oldest,
            newest: st.newest,
            left,
            started: false,
        }
    }

    /// The next frame or damaged run, or `None` past the newest seq.
    /// Frames at or below `trusted_upto` are checked for structure and seq
    /// only, not for their checksum and tags.
    pub(crate) fn step<R: Ring>(
        &mut self,
        ring: &R,
        max_frame: u64,
        trusted_upto: u64,
        buf: &mut Vec<u8>,
    ) -> Option<Step> {
        // Each lagging frame skipped consumes ring bytes, so `left` bounds
        // this loop; the extra iterations are resynchronisations that found
        // the expected seq further on.
        loop {
            if self.expect > self.newest {
                return None;
            }
            let pos = self.pos;
            let found = self.frame_here(ring, max_frame, trusted_upto, buf);
            let reason = match found {
                Ok((at, head, used)) if head.seq == self.expect => {
                    self.advance(at + head.padded_len(), used);
                    self.expect += 1;
                    self.started = true;
                    return Some(Step::Frame {
                        seq: head.seq,
                        pos,
                        at,
                        head,
                    });
                }
                Ok((at, head, used)) if !self.started && head.seq < self.expect => {
                    self.advance(at + head.padded_len(), used);
                    continue;
                }
                Ok((_, head, _)) if !self.started && head.seq <= self.newest => {
                    // The frame at the tail is the oldest: seqs below it
                    // were evicted, not damaged.
                    self.expect = head.seq;
                    continue;
                }
                Ok(_) => FrameError::Seq,
                Err(e) => e,
            };
            self.started = true;
            match self.resync(ring, max_frame, buf) {
                Some((at, seq, skipped)) => {
                    self.left -= skipped;
                    self.pos = at;
                    if seq == self.expect {
                        // The frame was merely elsewhere (a wrap without a
                        // marker): nothing is missing.
                        continue;
                    }
                    let seqs = self.expect..seq;
                    self.expect = seq;
                    return Some(Step::Damaged { seqs, pos, reason });
                }
                None => {
                    let seqs = self.expect..self.newest + 1;
                    self.expect = self.newest + 1;
                    self.left = 0;
                    return Some(Step::Damaged { seqs, pos, reason });
                }
            }
        }
    }

    /// Validates the frame at the current position: its resolved offset,
    /// header, and the ring bytes it uses (wrap gap included).
    fn frame_here<R: Ring>(
        &self,
        ring: &R,
        max_frame: u64,
        trusted_upto: u64,
        buf: &mut Vec<u8>,
    ) -> Result<(u64, FrameHead, u64), FrameError> {
        let at = ring::resolve(ring, self.pos)?;
        let gap = if at == self.pos {
            0
        } else {
            ring.len() - self.pos
        };
        let head = ring::load(ring, at, max_frame, trusted_upto, buf)?;
        let used = gap + head.padded_len();
        if used > self.left {
            // It runs past HEAD: not a published frame.
            return Err(FrameError::Length);
        }
        Ok((at, head, used))
    }

    /// Moves to `next` after consuming `used` ring bytes.
    fn advance(&mut self, next: u64, used: u64) {
        self.pos = next;
        self.left -= used;
    }

    /// Finds the first 8-aligned ring offset at or after the current
    /// position, within the bytes left before `HEAD`, that holds a fully
    /// valid frame of a seq in `expect..=newest`. Returns its offset, seq
    /// and the ring bytes skipped to reach it.
    ///
    /// Only published frames hold such seqs: stale frames are older than
    /// `OLDEST`, and frames of unpublished seqs are either above `NEWEST` or
    /// were invalidated by recovery. The checksum work is capped at twice
    /// the ring length, so hostile files cannot make it quadratic.
    fn resync<R: Ring>(
        &self,
        ring: &R,
        max_frame: u64,
        buf: &mut Vec<u8>,
    ) -> Option<(u64, u64, u64)> {
        let len = ring.len();
        let mut budget = 2 * len;
        let mut skipped = 0;
        while skipped + frame::FRAME_HEADER <= self.left {
            let at = (self.pos + skipped) % len;
            if at + frame::FRAME_HEADER <= len && ring.word(at) as u32 == FRAME_MAGIC {
                let seq = ring.word(at + 8);
                if (self.expect..=self.newest).contains(&seq) {
                    // Cheap checks passed; the checksum decides.
                    match ring::load(ring, at, max_frame, 0, buf) {
                        Ok(head) if skipped + head.padded_len() <= self.left => {
                            return Some((at, seq, skipped));
                        }
                        Ok(_) => {}
                        Err(_) => {
                            budget = budget.checked_sub(buf.len() as u64 + 32)?;
                        }
                    }
                }
            }
            skipped += 8;
        }
        None
    }
}
