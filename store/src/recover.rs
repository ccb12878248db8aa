//! Recovery: validate the published state against the ring and repair it,
//! and the byte-slice checker built on the same walk. See `FORMAT.md` §6.

use crate::error::{Error, Location, Result};
use crate::frame::{self, FrameError};
use crate::header::{self, Geometry};
use crate::ring::{self, Ring, SliceRing};
use crate::Seq;

/// The published state of a pool (the `HEAD..NEWEST` words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct State {
    /// Ring offset where the next frame goes.
    pub(crate) head: u64,
    /// Ring offset of the oldest frame.
    pub(crate) tail: u64,
    /// Oldest seq (`newest + 1` when empty).
    pub(crate) oldest: u64,
    /// Newest published seq.
    pub(crate) newest: u64,
}

impl State {
    /// True when the pool holds no message.
    pub(crate) fn is_empty(&self) -> bool {
        self.oldest > self.newest
    }
}

/// The outcome of a successful recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// The repaired state.
    pub(crate) state: State,
    /// Frames after `state.newest` were dropped as torn or corrupt.
    pub(crate) truncated: bool,
}

/// A corruption recovery cannot repair: where, and why.
pub(crate) type Unrepairable = (Location, &'static str);

/// Checks `st` against the ring: skips a tail left behind by a writer that
/// died mid-eviction, validates every frame from oldest to newest (checksums
/// only above `synced`, which is known durable and intact) and truncates at
/// the first invalid frame above `synced`.
pub(crate) fn recover<R: Ring>(
    ring: &R,
    st: State,
    synced: u64,
    max_frame: u64,
) -> Result<Recovered, Unrepairable> {
    let len = ring.len();
    if st.head % 8 != 0 || st.head > len {
        return Err((Location::Offset(header::HEAD), "head offset out of bounds"));
    }
    if st.tail % 8 != 0 || st.tail > len {
        return Err((Location::Offset(header::TAIL), "tail offset out of bounds"));
    }
    if st.oldest == 0 || st.newest == u64::MAX || st.oldest > st.newest + 1 {
        return Err((Location::Offset(header::OLDEST), "oldest seq out of range"));
    }
    if st.is_empty() {
        let state = State {
            tail: st.head,
            ..st
        };
        return Ok(Recovered {
            state,
            truncated: false,
        });
    }
    let mut buf = Vec::new();
    let max_steps = len / frame::FRAME_HEADER + 2;
    let bad = |pos: u64, e: FrameError| (Location::Offset(ring.base() + pos), e.reason());

    // The tail frame: at most a few frames behind `oldest` after a crash
    // between storing OLDEST and TAIL.
    let mut pos = st.tail;
    let mut steps = 0;
    let first = loop {
        let p = ring::resolve(ring, pos).map_err(|e| bad(pos, e))?;
        let head = ring::load(ring, p, max_frame, synced, &mut buf).map_err(|e| bad(p, e))?;
        if head.seq >= st.oldest {
            break head.seq;
        }
        pos = p + head.padded_len();
        steps += 1;
        if steps > max_steps {
            return Err(bad(pos, FrameError::Length));
        }
    };
    let tail = pos;
    if first > st.newest {
        return Err((
            Location::Offset(ring.base() + pos),
            "tail frame newer than newest seq",
        ));
    }

    let mut seq = first;
    let mut walked = 0u64;
    while seq <= st.newest {
        let step = ring::resolve(ring, pos).and_then(|p| {
            let head = ring::load(ring, p, max_frame, synced, &mut buf)?;
            if head.seq != seq {
                return Err(FrameError::Seq);
            }
            Ok((p, head.padded_len()))
        });
        match step {
            Ok((p, padded)) => {
                walked += padded + if p == pos { 0 } else { len - pos };
                if walked > len {
                    return Err((Location::Seq(Seq(seq)), "frame chain longer than the ring"));
                }
                pos = p + padded;
                seq += 1;
            }
            Err(e) if seq <= synced => {
                return Err((Location::Seq(Seq(seq)), e.reason()));
            }
            Err(_) => {
                // Torn or corrupt and never acknowledged as durable: drop it
                // and everything after it.
                let newest = seq - 1;
                let tail = if first > newest { pos } else { tail };
                let state = State {
                    head: pos,
                    tail,
                    oldest: first,
                    newest,
                };
                return Ok(Recovered {
                    state,
                    truncated: true,
                });
            }
        }
    }
    let state = State {
        head: pos,
        tail,
        oldest: first,
        newest: st.newest,
    };
    Ok(Recovered {
        state,
        truncated: false,
    })
}

/// What [`check_bytes`] found in a valid pool image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckReport {
    /// The oldest readable seq (`newest + 1` when empty).
    pub oldest: Seq,
    /// The newest readable seq (0 before the first append).
    pub newest: Seq,
    /// How many messages were read and validated.
    pub messages: u64,
    /// True if recovery would drop torn frames or fix the published state.
    pub needs_repair: bool,
}

/// Validates a whole pool file image held in memory, without a file.
///
/// Decodes the header, runs recovery (without writing anything) and reads
/// every message it keeps. Accepts arbitrary bytes: garbage yields an error,
/// never a panic, and time and memory stay bounded by the input size. This
/// is the entry point for fuzzing.
pub fn check_bytes(bytes: &[u8]) -> Result<CheckReport> {
    let corrupt = |at, reason| Error::Corrupt {
        path: Default::default(),
        at,
        reason,
    };
    let geo = Geometry::decode(bytes, bytes.len() as u64).map_err(|e| match e {
        header::HeaderError::Version(found) => Error::UnsupportedVersion {
            path: Default::default(),
            found,
            supported: header::VERSION,
        },
        e => corrupt(Location::Offset(e.offset()), e.reason()),
    })?;
    let word = |off: u64| {
        let at = off as usize;
        u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]))
    };
    let st = State {
        head: word(header::HEAD),
        tail: word(header::TAIL),
        oldest: word(header::OLDEST),
        newest: word(header::NEWEST),
    };
    let synced = word(header::SYNCED);
    let ring_bytes = &bytes[geo.ring_off as usize..(geo.ring_off + geo.ring_len) as usize];
    let ring = SliceRing {
        bytes: ring_bytes,
        base: geo.ring_off,
    };
    let rec = recover(&ring, st, synced, geo.max_frame()).map_err(|(at, why)| corrupt(at, why))?;
    let state = rec.state;
    let mut buf = Vec::new();
    let mut messages = 0;
    if !state.is_empty() {
        let mut pos = state.tail;
        for seq in state.oldest..=state.newest {
            let (_, next) = ring::fetch(&ring, pos, seq, geo.max_frame(), &mut buf)
                .map_err(|_| corrupt(Location::Seq(Seq(seq)), "frame failed validation"))?;
            pos = next;
            messages += 1;
        }
    }
    Ok(CheckReport {
        oldest: Seq(state.oldest),
        newest: Seq(state.newest),
        messages,
        needs_repair: rec.truncated || state != st,
    })
}
