//! Recovery: validate the published state against the ring and repair it,
//! and the byte-slice checker built on the same walk. See `FORMAT.md` §6.

use std::ops::Range;

use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use crate::error::{Error, Location, Result};
use crate::header::{self, Geometry};
use crate::pool::{Pool, WriterGuard};
use crate::ring::{self, Ring, SliceRing};
use crate::walk::{Step, Walk};
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

    /// The bounds recovery checks first (`FORMAT.md` §6 step 1), which
    /// writers check before every append.
    pub(crate) fn in_bounds(&self, ring_len: u64) -> bool {
        self.head % 8 == 0
            && self.head <= ring_len
            && self.tail % 8 == 0
            && self.tail <= ring_len
            && self.oldest >= 1
            && self.newest < u64::MAX - (1 << 32)
            && self.oldest <= self.newest + 1
    }
}

/// What recovery found when a writer opened a pool; see [`crate::Pool::recovery`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// Published seqs without a valid frame, in order. They stay published
    /// and are never dropped silently: reads of them fail with
    /// [`Error::Corrupt`] until the ring evicts them like any other message.
    pub damaged: Vec<Range<Seq>>,
    /// Seqs of complete frames found after the newest published one and
    /// discarded. A writer wrote them and died before publishing them, so
    /// they were never acknowledged; or, under
    /// [`crate::Durability::Fast`], power was lost before the header
    /// reached the disk. The next appends reuse these seqs.
    pub discarded: Range<Seq>,
    /// Whether the published state was rewritten (a writer died
    /// mid-append, or the words disagreed with the ring).
    pub repaired: bool,
    /// Whether the ring was walked. An open walks it only when a writer
    /// died mid-append (or mid-recovery), or when the machine restarted
    /// since a writer last checked the pool (power may have been lost);
    /// otherwise the published state is consistent and no frame is read.
    pub walked: bool,
}

impl Recovery {
    /// True when recovery found nothing worth reporting: no damaged and no
    /// discarded frame (a repaired state alone loses nothing).
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.discarded.is_empty()
    }

    /// How many published seqs are damaged.
    pub fn damaged_count(&self) -> u64 {
        self.damaged.iter().map(|r| r.end.0 - r.start.0).sum()
    }
}

impl Pool {
    /// Under the writer lock, at a writable open: the full recovery of
    /// [`Pool::repair`] if a writer died mid-append (`DIRTY`), or if
    /// `CHECKED` does not name this boot of the machine (`FORMAT.md` §6);
    /// otherwise only the bounds of the published state are checked.
    pub(crate) fn recover_at_open(&self, guard: &WriterGuard<'_>) -> Result<Recovery> {
        let clean = self.load(header::DIRTY, Ordering::Relaxed) == 0;
        let checked = self.load(header::CHECKED, Ordering::Relaxed);
        let in_bounds = self.state(Ordering::Relaxed).in_bounds(self.geo.ring_len);
        if clean && boot_tag().is_some_and(|boot| boot == checked) && in_bounds {
            return Ok(Recovery::default());
        }
        self.repair(guard)
    }

    /// Under the writer lock: validates the published state against the
    /// ring, invalidates frames that were never published, and stores the
    /// repaired state (`FORMAT.md` §6). `DIRTY` stays set until it is done,
    /// so a writer killed during it leaves the next one to start over.
    pub(crate) fn repair(&self, _guard: &WriterGuard<'_>) -> Result<Recovery> {
        let st = self.state(Ordering::Relaxed);
        let synced = self.load(header::SYNCED, Ordering::Relaxed);
        let rec =
            recover(&self.ring(), st, synced, self.geo.max_frame()).map_err(|(at, why)| {
                Error::Corrupt {
                    path: self.path.clone(),
                    at,
                    reason: why,
                }
            })?;
        self.store(header::DIRTY, 1, Ordering::Relaxed);
        let new = rec.state;
        // Seqs above NEWEST will be reused: no frame or slot may still name
        // them, or a reader could be pointed at the old bytes.
        for &at in &rec.discarded_at {
            self.map
                .u64_mut(self.geo.ring_off + at)
                .store(0, Ordering::Relaxed);
        }
        for i in 0..self.geo.all_slots() {
            let slot = self.geo.index_off + i * header::SLOT_LEN;
            if self.load(slot, Ordering::Relaxed) > new.newest {
                self.store(slot, 0, Ordering::Relaxed);
            }
        }
        let repaired = new != st;
        if repaired {
            self.store(header::OLDEST, new.oldest, Ordering::Relaxed);
            self.store(header::TAIL, new.tail, Ordering::Relaxed);
            self.store(header::HEAD, new.head, Ordering::Relaxed);
            self.store(header::NEWEST, new.newest, Ordering::Release);
        }
        // From here on, a writable open in this boot may trust the state.
        self.store(header::CHECKED, boot_tag().unwrap_or(0), Ordering::Relaxed);
        self.store(header::DIRTY, 0, Ordering::Release);
        Ok(Recovery {
            damaged: rec
                .damaged
                .iter()
                .map(|r| Seq(r.start)..Seq(r.end))
                .collect(),
            discarded: Seq(rec.discarded.start)..Seq(rec.discarded.end),
            repaired,
            walked: true,
        })
    }
}

/// A non-zero tag of this boot of the machine (`CHECKED`, `FORMAT.md`
/// §6): the kernel's random boot id folded to 64 bits. `None` where there
/// is none, and then every writable open runs the full recovery.
pub(crate) fn boot_tag() -> Option<u64> {
    static TAG: OnceLock<Option<u64>> = OnceLock::new();
    *TAG.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
        let id = u128::from_str_radix(&hex, 16).ok()?;
        let tag = (id as u64) ^ ((id >> 64) as u64);
        Some(tag.max(1))
    })
}

/// The outcome of a successful recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// The repaired state.
    pub(crate) state: State,
    /// Published seqs without a valid frame, in order.
    pub(crate) damaged: Vec<Range<u64>>,
    /// The seqs of complete frames found after the newest published one:
    /// never published, hence never acknowledged.
    pub(crate) discarded: Range<u64>,
    /// Ring offsets of the discarded frames, which the writer invalidates
    /// because their seqs will be reused.
    pub(crate) discarded_at: Vec<u64>,
}

/// A corruption recovery cannot repair: where, and why.
pub(crate) type Unrepairable = (Location, &'static str);

/// Checks `st` against the ring without writing anything: skips a tail
/// left behind by a writer that died mid-eviction, walks every published
/// frame (checksums only above `synced`, which is known durable and intact)
/// and finds the frames written after `NEWEST`. Damaged published frames
/// are reported, never dropped (`FORMAT.md` §6).
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
    if st.oldest == 0 || st.newest >= u64::MAX - (1 << 32) || st.oldest > st.newest + 1 {
        return Err((Location::Offset(header::OLDEST), "oldest seq out of range"));
    }
    let mut buf = Vec::new();
    let mut state = State {
        tail: st.head,
        ..st
    };
    let mut damaged = Vec::new();
    let mut walk = Walk::new(&st, len);
    let mut first = true;
    let mut end = None;
    while let Some(step) = walk.step(ring, max_frame, synced, &mut buf) {
        let (seq, pos) = match &step {
            Step::Frame { seq, pos, .. } => (*seq, *pos),
            Step::Damaged { seqs, pos, .. } => (seqs.start, *pos),
        };
        if first {
            first = false;
            state.oldest = seq;
            state.tail = pos;
        }
        end = match step {
            Step::Frame { at, head, .. } => Some(at + head.padded_len()),
            Step::Damaged { seqs, .. } => {
                damaged.push(seqs);
                None
            }
        };
    }
    // HEAD follows the newest frame when it was found; otherwise the
    // published HEAD is the best knowledge of where it ends.
    if let Some(end) = end {
        state.head = end;
    }
    if first {
        // Empty, or every frame at the tail was older than OLDEST.
        state.oldest = st.newest + 1;
        state.tail = state.head;
    }
    let (discarded, discarded_at) = unpublished(ring, &state, max_frame, &mut buf);
    Ok(Recovered {
        state,
        damaged,
        discarded,
        discarded_at,
    })
}

/// The complete frames written after `NEWEST` in the free space at `HEAD`:
/// a writer died after writing them and before publishing them.
fn unpublished<R: Ring>(
    ring: &R,
    st: &State,
    max_frame: u64,
    buf: &mut Vec<u8>,
) -> (Range<u64>, Vec<u64>) {
    let len = ring.len();
    let mut free = match st.tail.checked_sub(st.head) {
        _ if st.is_empty() => len,
        Some(0) => 0,
        Some(d) => d,
        None => len - st.head + st.tail,
    };
    let mut pos = st.head;
    let mut found = Vec::new();
    let next = st.newest + 1;
    loop {
        let step = ring::resolve(ring, pos).and_then(|at| {
            let head = ring::load(ring, at, max_frame, 0, buf)?;
            let gap = if at == pos { 0 } else { len - pos };
            Ok((at, head, gap + head.padded_len()))
        });
        match step {
            Ok((at, head, used)) if head.seq == next + found.len() as u64 && used <= free => {
                found.push(at);
                free -= used;
                pos = at + head.padded_len();
            }
            _ => break,
        }
    }
    (next..next + found.len() as u64, found)
}

/// What [`check_bytes`] found in a pool image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// The oldest seq held (`newest + 1` when empty).
    pub oldest: Seq,
    /// The newest published seq (0 before the first append).
    pub newest: Seq,
    /// How many messages validated fully (checksum and tags included).
    pub messages: u64,
    /// How many published seqs have no valid frame: reads of them fail with
    /// [`Error::Corrupt`].
    pub damaged: u64,
    /// How many complete frames follow the newest published one; recovery
    /// discards them (they were never acknowledged).
    pub discarded: u64,
    /// True if recovery would change the published state or discard frames.
    pub needs_repair: bool,
    /// A sync of the pool failed once (`SYNC_FAILED`): appends with
    /// [`crate::Durability::Flush`] are refused for good.
    pub sync_failed: bool,
}

/// Validates a whole pool file image held in memory, without a file.
///
/// Decodes the header and runs recovery without writing anything,
/// validating every published frame completely. Accepts arbitrary bytes: garbage yields an error,
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
    let ring_bytes = &bytes[geo.ring_off as usize..(geo.ring_off + geo.ring_len) as usize];
    let ring = SliceRing { bytes: ring_bytes };
    // Checksums everywhere: a checker trusts nothing, not even SYNCED.
    let rec = recover(&ring, st, 0, geo.max_frame()).map_err(|(at, why)| corrupt(at, why))?;
    let held = (rec.state.newest + 1).saturating_sub(rec.state.oldest);
    let damaged: u64 = rec.damaged.iter().map(|r| r.end - r.start).sum();
    Ok(CheckReport {
        oldest: Seq(rec.state.oldest),
        newest: Seq(rec.state.newest),
        messages: held - damaged,
        damaged,
        discarded: rec.discarded.end - rec.discarded.start,
        needs_repair: rec.state != st || !rec.discarded.is_empty(),
        sync_failed: word(header::SYNC_FAILED) != 0,
    })
}
