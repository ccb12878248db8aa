//! The pool header: static geometry (checksummed) and the offsets of the
//! published words. See `FORMAT.md` §2.

/// Bytes reserved for the header; the index starts right after.
pub(crate) const HEADER_LEN: u64 = 4096;
/// Magic at offset 0.
pub(crate) const MAGIC: [u8; 8] = *b"PLEXPOOL";
/// The only format version this build reads and writes.
pub(crate) const VERSION: u32 = 2;
/// Written little-endian; reads back unchanged only if the writer used LE.
pub(crate) const ENDIAN_MARKER: u64 = 0x0102_0304_0506_0708;
/// Bytes covered by the static checksum (the checksum itself follows).
pub(crate) const STATIC_LEN: usize = 124;
/// Bytes of an index slot: seq then ring offset.
pub(crate) const SLOT_LEN: u64 = 16;
/// The smallest ring accepted.
pub(crate) const MIN_RING: u64 = 4096;
/// The message size (data and tags) the default index is sized for: one
/// slot per 512 bytes of ring.
pub(crate) const DEFAULT_MESSAGE_SIZE: u64 = 480;
/// Seqs per coarse index slot (`FORMAT.md` §3): the most frame headers a
/// read walks when the fine index misses.
pub(crate) const COARSE_STRIDE: u64 = 16;
/// Rings are page-aligned in the file.
const PAGE: u64 = 4096;

// Published words (persistent, little-endian u64), one cache line.
/// Ring offset where the next frame goes.
pub(crate) const HEAD: u64 = 128;
/// Ring offset of the oldest frame.
pub(crate) const TAIL: u64 = 136;
/// Seq of the oldest frame (`NEWEST + 1` when empty).
pub(crate) const OLDEST: u64 = 144;
/// Seq of the newest published frame (0 before the first append).
pub(crate) const NEWEST: u64 = 152;
/// Non-zero while a writer is mutating; the next lock holder recovers.
pub(crate) const DIRTY: u64 = 160;
/// Every seq up to this one is on stable storage.
pub(crate) const SYNCED: u64 = 168;
/// The boot of the machine in which a writer last ran the full recovery
/// (a tag of the kernel's boot id; 0 for none): while it matches and
/// `DIRTY` is clear, the published state is consistent with the ring.
pub(crate) const CHECKED: u64 = 176;
/// Non-zero once a sync of the pool failed: `SYNCED` never rises again.
pub(crate) const SYNC_FAILED: u64 = 184;
// Coordination words (host-order u32, meaningless across restarts).
/// Futex word bumped by a writer that saw waiters.
pub(crate) const NOTIFY: u64 = 256;
/// The waiter bitmap: [`WAITER_SLOTS`] bits in eight u64 words, bit `i`
/// set while the owner of waiter slot `i` is registered on `NOTIFY`.
pub(crate) const WAITER_BITS: u64 = 384;
/// Waiter slots: one bit each in [`WAITER_BITS`].
pub(crate) const WAITER_SLOTS: u64 = 512;
/// File offset of the lock byte of waiter slot 0 (slot `i` at `+ i`): an
/// open-file-description lock on it owns the slot.
pub(crate) const WAITER_LOCKS: u64 = 1024;
/// Group-commit futex word: odd while a sync leader runs.
pub(crate) const SYNC_STATE: u64 = 320;
/// Appenders blocked on `SYNC_STATE`.
pub(crate) const SYNC_WAITERS: u64 = 324;

/// Static layout of a pool file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Total file length in bytes.
    pub(crate) file_len: u64,
    /// File offset of the index.
    pub(crate) index_off: u64,
    /// Number of index slots.
    pub(crate) index_slots: u64,
    /// File offset of the ring.
    pub(crate) ring_off: u64,
    /// Ring length in bytes.
    pub(crate) ring_len: u64,
    /// Creation time, nanoseconds since the Unix epoch.
    pub(crate) created_ns: u64,
}

/// Why a header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// Fewer bytes than a header.
    Short,
    /// The magic is wrong: not a pool.
    Magic,
    /// A version this build does not read.
    Version(u32),
    /// Written with another byte order.
    Endian,
    /// The static checksum does not match.
    Checksum,
    /// The geometry is inconsistent.
    Geometry(&'static str),
    /// The file length differs from the recorded one.
    Length,
}

impl HeaderError {
    /// The file offset of the offending field.
    pub(crate) fn offset(self) -> u64 {
        match self {
            HeaderError::Short | HeaderError::Magic => 0,
            HeaderError::Version(_) => 8,
            HeaderError::Endian => 16,
            HeaderError::Checksum => STATIC_LEN as u64,
            HeaderError::Geometry(_) => 24,
            HeaderError::Length => 24,
        }
    }

    /// A short description.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            HeaderError::Short => "file shorter than a pool header",
            HeaderError::Magic => "bad magic: not a plex pool",
            HeaderError::Version(_) => "unsupported version",
            HeaderError::Endian => "byte-order marker mismatch",
            HeaderError::Checksum => "header checksum mismatch",
            HeaderError::Geometry(why) => why,
            HeaderError::Length => "file length differs from the header (truncated or extended)",
        }
    }
}

impl Geometry {
    /// Index slots for a pool of `file_len` bytes whose messages (data and
    /// tags) are typically `message_size` bytes: one slot, and its 16
    /// bytes, per such frame.
    pub(crate) fn slots_for(file_len: u64, message_size: u64) -> u64 {
        let per_slot = crate::frame::pad8(crate::frame::FRAME_HEADER.saturating_add(message_size))
            .saturating_add(SLOT_LEN);
        (file_len.saturating_sub(HEADER_LEN) / per_slot).max(1)
    }

    /// Slots of the coarse index (`FORMAT.md` §3), after the `index_slots`
    /// slots of the fine one: one per [`COARSE_STRIDE`] seqs of the most
    /// frames the ring can hold (one per 32 bytes of the file after the
    /// header, an upper bound of the ring).
    pub(crate) fn coarse_slots(file_len: u64) -> u64 {
        file_len
            .saturating_sub(HEADER_LEN)
            .div_ceil(crate::frame::FRAME_HEADER * COARSE_STRIDE)
            .max(1)
    }

    /// File offset of the fine index slot of `seq`.
    pub(crate) fn fine_slot(&self, seq: u64) -> u64 {
        self.index_off + (seq % self.index_slots) * SLOT_LEN
    }

    /// File offset of the coarse index slot of `seq`, which holds it only
    /// if `seq` is a multiple of [`COARSE_STRIDE`].
    pub(crate) fn coarse_slot(&self, seq: u64) -> u64 {
        let i = (seq / COARSE_STRIDE) % Geometry::coarse_slots(self.file_len);
        self.index_off + (self.index_slots + i) * SLOT_LEN
    }

    /// Slots of both indexes.
    pub(crate) fn all_slots(&self) -> u64 {
        self.index_slots + Geometry::coarse_slots(self.file_len)
    }

    /// Lays out a pool of `file_len` bytes; `index_slots` defaults to
    /// [`Geometry::slots_for`] messages of [`DEFAULT_MESSAGE_SIZE`] bytes.
    pub(crate) fn plan(
        file_len: u64,
        index_slots: Option<u64>,
        created_ns: u64,
    ) -> Result<Geometry, &'static str> {
        if file_len % PAGE != 0 {
            return Err("pool size must be a multiple of 4096");
        }
        if file_len <= HEADER_LEN {
            return Err("pool size too small");
        }
        let slots = match index_slots {
            Some(0) => return Err("index needs at least one slot"),
            Some(n) => n,
            None => Geometry::slots_for(file_len, DEFAULT_MESSAGE_SIZE),
        };
        let index_len = slots
            .checked_add(Geometry::coarse_slots(file_len))
            .and_then(|n| n.checked_mul(SLOT_LEN))
            .and_then(|l| l.checked_next_multiple_of(PAGE))
            .ok_or("index too large")?;
        let ring_off = HEADER_LEN.checked_add(index_len).ok_or("index too large")?;
        let ring_len = file_len
            .checked_sub(ring_off)
            .filter(|&r| r >= MIN_RING)
            .ok_or("pool size leaves less than 4096 bytes of ring after the index")?;
        Ok(Geometry {
            file_len,
            index_off: HEADER_LEN,
            index_slots: slots,
            ring_off,
            ring_len,
            created_ns,
        })
    }

    /// The largest frame (header, tags, data; unpadded) the ring accepts.
    pub(crate) fn max_frame(&self) -> u64 {
        self.ring_len.min(u64::from(u32::MAX) & !7)
    }

    /// Encodes the static header, checksum included.
    pub(crate) fn encode(&self) -> [u8; 128] {
        let mut out = [0u8; 128];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        let fields = [
            ENDIAN_MARKER,
            self.file_len,
            self.index_off,
            self.index_slots,
            self.ring_off,
            self.ring_len,
            self.created_ns,
        ];
        for (i, v) in fields.iter().enumerate() {
            out[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        let crc = crc_fast::crc32_iscsi(&out[..STATIC_LEN]);
        out[STATIC_LEN..128].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and validates a static header; `actual_len` is the file length.
    pub(crate) fn decode(bytes: &[u8], actual_len: u64) -> Result<Geometry, HeaderError> {
        let b = bytes.get(..128).ok_or(HeaderError::Short)?;
        if b[0..8] != MAGIC {
            return Err(HeaderError::Magic);
        }
        let version = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        if version != VERSION {
            return Err(HeaderError::Version(version));
        }
        let stored = u32::from_le_bytes([b[124], b[125], b[126], b[127]]);
        if crc_fast::crc32_iscsi(&b[..STATIC_LEN]) != stored {
            return Err(HeaderError::Checksum);
        }
        let u64_at = |off: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[off..off + 8]);
            u64::from_le_bytes(w)
        };
        if u64_at(16) != ENDIAN_MARKER {
            return Err(HeaderError::Endian);
        }
        if u32::from_le_bytes([b[12], b[13], b[14], b[15]]) != HEADER_LEN as u32 {
            return Err(HeaderError::Geometry("unexpected header length"));
        }
        let geo = Geometry {
            file_len: u64_at(24),
            index_off: u64_at(32),
            index_slots: u64_at(40),
            ring_off: u64_at(48),
            ring_len: u64_at(56),
            created_ns: u64_at(64),
        };
        // The checksum matched, so a mismatch here is a bug in the writer,
        // not bit rot; still never trust it.
        let planned = Geometry::plan(geo.file_len, Some(geo.index_slots), geo.created_ns)
            .map_err(HeaderError::Geometry)?;
        if planned != geo {
            return Err(HeaderError::Geometry("inconsistent geometry"));
        }
        if geo.file_len != actual_len {
            return Err(HeaderError::Length);
        }
        Ok(geo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_and_round_trip() {
        let geo = Geometry::plan(1 << 20, None, 7).unwrap();
        assert_eq!(geo.index_off, HEADER_LEN);
        assert_eq!(geo.ring_off % PAGE, 0);
        assert_eq!(geo.ring_off + geo.ring_len, 1 << 20);
        assert!(geo.ring_off >= geo.index_off + geo.all_slots() * SLOT_LEN);
        let bytes = geo.encode();
        assert_eq!(Geometry::decode(&bytes, 1 << 20), Ok(geo));
    }

    #[test]
    fn plan_rejects_bad_sizes() {
        assert!(Geometry::plan(4096, None, 0).is_err());
        assert!(Geometry::plan(10_000, None, 0).is_err());
        assert!(Geometry::plan(8192, Some(0), 0).is_err());
        assert!(Geometry::plan(8192, Some(u64::MAX), 0).is_err());
        assert!(Geometry::plan(3 * 4096, Some(1), 0).is_ok());
    }

    #[test]
    fn decode_rejects_every_flipped_byte() {
        let geo = Geometry::plan(1 << 16, Some(16), 42).unwrap();
        let good = geo.encode();
        for i in 0..128 {
            let mut bad = good;
            bad[i] ^= 0x01;
            assert!(Geometry::decode(&bad, 1 << 16).is_err(), "byte {i}");
        }
    }

    #[test]
    fn decode_names_version_and_length() {
        let geo = Geometry::plan(1 << 16, Some(16), 0).unwrap();
        let mut bytes = geo.encode();
        bytes[8] = 9;
        assert_eq!(
            Geometry::decode(&bytes, 1 << 16),
            Err(HeaderError::Version(9))
        );
        let bytes = geo.encode();
        assert_eq!(Geometry::decode(&bytes, 1 << 15), Err(HeaderError::Length));
        assert_eq!(
            Geometry::decode(&bytes[..100], 1 << 16),
            Err(HeaderError::Short)
        );
    }
}
