//! The only module with `unsafe`: a shared file mapping viewed as atomic words.
//!
//! Every byte of the mapping may be changed at any time by another process,
//! so nothing here hands out plain references to mapped memory. All access
//! goes through `AtomicU64` / `AtomicU32` views, which makes concurrent
//! access from other processes a data race-free atomic access in the Rust
//! memory model. Callers treat every loaded value as untrusted.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64};

use memmap2::MmapRaw;

/// A read-write `MAP_SHARED` mapping of a whole pool file.
#[derive(Debug)]
pub(crate) struct Mapping {
    raw: MmapRaw,
}

impl Mapping {
    /// Maps all of `file`, which must be non-empty and a multiple of 8 bytes.
    pub(crate) fn new(file: &File) -> io::Result<Mapping> {
        let raw = MmapRaw::map_raw(file)?;
        if raw.len() == 0 || raw.len() % 8 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "pool file length is not a non-zero multiple of 8",
            ));
        }
        // The base is page-aligned, so word offsets that are multiples of 8
        // (or 4) are aligned for the atomic views below.
        if raw.as_ptr().align_offset(8) != 0 {
            return Err(io::Error::other("mapping is not 8-byte aligned"));
        }
        Ok(Mapping { raw })
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.raw.len() as u64
    }

    /// The 8-byte word at `off`.
    ///
    /// # Panics
    /// If `off` is unaligned or out of bounds: callers validate offsets that
    /// come from the file first, so this is a bug, and refusing it keeps the
    /// access sound.
    pub(crate) fn u64_at(&self, off: u64) -> &AtomicU64 {
        assert!(
            off % 8 == 0 && off.checked_add(8).is_some_and(|end| end <= self.len()),
            "word offset {off} outside the mapping of {} bytes",
            self.len()
        );
        // SAFETY: `off + 8 <= len` keeps the pointer inside the live mapping,
        // which outlives `&self` (it is unmapped only when `self` drops). The
        // base is page-aligned and `off % 8 == 0`, so the pointer is aligned
        // for `AtomicU64`. Every access to mapped memory in this process goes
        // through atomic views of the same size at the same offsets (the
        // layout assigns each offset one width), and other processes are
        // outside the Rust abstract machine; their writes are, at worst,
        // arbitrary values, which every caller validates.
        unsafe { AtomicU64::from_ptr(self.raw.as_mut_ptr().add(off as usize).cast::<u64>()) }
    }

    /// The 4-byte word at `off` (used only for futex words).
    ///
    /// # Panics
    /// If `off` is unaligned or out of bounds (a bug, see [`Mapping::u64_at`]).
    pub(crate) fn u32_at(&self, off: u64) -> &AtomicU32 {
        assert!(
            off % 4 == 0 && off.checked_add(4).is_some_and(|end| end <= self.len()),
            "word offset {off} outside the mapping of {} bytes",
            self.len()
        );
        // SAFETY: as in `u64_at`: in bounds, 4-aligned (page-aligned base),
        // the mapping outlives `&self`, and these offsets (futex words) are
        // only ever accessed as `AtomicU32`.
        unsafe { AtomicU32::from_ptr(self.raw.as_mut_ptr().add(off as usize).cast::<u32>()) }
    }

    /// Writes every dirty page of the mapping to stable storage (`msync(MS_SYNC)`).
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.raw.flush()
    }
}
