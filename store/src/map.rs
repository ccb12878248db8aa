//! The only module with `unsafe`: a shared file mapping viewed as atomic words.
//!
//! Every byte of the mapping may be changed at any time by another process,
//! so nothing here hands out plain references to mapped memory. All access
//! goes through `AtomicU64` / `AtomicU32` views, which makes concurrent
//! access from other processes a data race-free atomic access in the Rust
//! memory model. Callers treat every loaded value as untrusted.
//!
//! A mapping is read-write or read-only. Loads are always relaxed atomic
//! loads of at most pointer width, with fences for stronger orderings: the
//! only atomic operations Rust guarantees to work on read-only memory. Every
//! write goes through a `*_mut` accessor that refuses a read-only mapping.
//! A read-only mapping may come with a small read-write mapping of the
//! header page, through which every header word is then accessed and only
//! the coordination words (`FORMAT.md` §2.3) are written.
//!
//! It also holds the other system call that needs `unsafe`: byte-range
//! locks owned by an open file description ([`lock_byte`]).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use memmap2::{MmapOptions, MmapRaw};

// Relaxed 64-bit loads are plain loads, which read-only memory allows, only
// where 64-bit atomics are native and at most pointer-sized.
const _: () = assert!(
    usize::BITS >= 64,
    "plex-store needs a 64-bit target: it loads 64-bit words from read-only mappings"
);

/// Bytes of the header page, which a read-only mapping may map read-write.
const HEADER_PAGE: u64 = 4096;
/// The first coordination word: the only ones written through the header
/// page of a read-only mapping.
const COORD_START: u64 = 256;

/// A `MAP_SHARED` mapping of a whole pool file.
#[derive(Debug)]
pub(crate) struct Mapping {
    raw: MmapRaw,
    writable: bool,
    /// With a read-only `raw`: the header page mapped read-write, so that a
    /// read-only handle can register as a follower.
    header: Option<MmapRaw>,
}

impl Mapping {
    /// Maps all of `file`, which must be non-empty and a multiple of 8
    /// bytes, read-write if `writable` (the file must then be open for
    /// writing), else read-only. A read-only mapping with
    /// `writable_header` also maps the first 4096 bytes read-write (the
    /// file must then be open for writing).
    pub(crate) fn new(file: &File, writable: bool, writable_header: bool) -> io::Result<Mapping> {
        let raw = if writable {
            MmapOptions::new().map_raw(file)?
        } else {
            MmapOptions::new().map_raw_read_only(file)?
        };
        let header = if writable_header && !writable && raw.len() as u64 >= HEADER_PAGE {
            Some(MmapOptions::new().len(HEADER_PAGE as usize).map_raw(file)?)
        } else {
            None
        };
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
        Ok(Mapping {
            raw,
            writable,
            header,
        })
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.raw.len() as u64
    }

    /// Whether the mapping may be written.
    #[cfg(test)]
    pub(crate) fn is_writable(&self) -> bool {
        self.writable
    }

    /// Whether the coordination words may be written (the whole mapping,
    /// or its header page, is writable).
    pub(crate) fn coordination_writable(&self) -> bool {
        self.writable || self.header.is_some()
    }

    /// Loads the little-endian 8-byte word at `off`. `Acquire` and `SeqCst`
    /// are a relaxed load followed by a fence of that strength, which orders
    /// every later access at least as strongly as the load would.
    pub(crate) fn load(&self, off: u64, order: Ordering) -> u64 {
        let value = u64::from_le(self.u64_view(off).load(Ordering::Relaxed));
        if order != Ordering::Relaxed {
            fence(order);
        }
        value
    }

    /// Copies `dst.len()` bytes from `off` with relaxed 8-byte loads, as
    /// [`Mapping::load`] would word by word but with one bounds check for
    /// the whole range: the bytes as they lie in the file. Callers validate
    /// what they copied (a concurrent writer may change any of it).
    ///
    /// # Panics
    /// If `off` or `dst.len()` is not a multiple of 8 or the range leaves
    /// the mapping (a bug, see [`Mapping::u64_view`]).
    pub(crate) fn load_bytes(&self, off: u64, dst: &mut [u8]) {
        let base = self.words(off, dst.len());
        for (i, chunk) in dst.chunks_exact_mut(8).enumerate() {
            // SAFETY: `words` checked that all `dst.len() / 8` words from
            // `base` lie in the mapping, aligned, and not in a separately
            // mapped header page; the rest is as in `u64_view`.
            let word = unsafe { AtomicU64::from_ptr(base.add(i)) };
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
        }
    }

    /// Asks the CPU to start loading the cache lines of `off..off + len`,
    /// so that a copy of them waits for memory once rather than line by
    /// line. A hint only: it accesses no memory in the language's sense,
    /// and the part of the range outside the mapping is skipped.
    pub(crate) fn prefetch(&self, off: u64, len: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let end = off.saturating_add(len).min(self.len());
            let base = self.raw.as_ptr();
            for line in (off & !63..end).step_by(64) {
                let at = base.wrapping_add(line as usize).cast::<i8>();
                // SAFETY: SSE, which the intrinsic needs, is part of every
                // x86_64 target; a prefetch never faults and reads nothing
                // the program can observe, whatever the address.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(at) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (off, len);
    }

    /// Stores `src` (a multiple of 8 bytes) at `off` with relaxed 8-byte
    /// stores: the bulk form of storing through [`Mapping::u64_mut`].
    ///
    /// # Panics
    /// If the mapping is read-only, or as [`Mapping::load_bytes`].
    pub(crate) fn store_bytes(&self, off: u64, src: &[u8]) {
        assert!(self.writable, "write through a read-only mapping");
        let base = self.words(off, src.len());
        for (i, chunk) in src.chunks_exact(8).enumerate() {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(chunk);
            // SAFETY: as in `load_bytes`; the mapping is writable (asserted
            // above), so storing is allowed.
            let word = unsafe { AtomicU64::from_ptr(base.add(i)) };
            word.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
        }
    }

    /// Loads the host-order 4-byte word at `off` (a coordination word).
    pub(crate) fn load_u32(&self, off: u64) -> u32 {
        self.u32_view(off).load(Ordering::Relaxed)
    }

    /// The 8-byte word at `off`, for writing.
    ///
    /// # Panics
    /// If the mapping is read-only: the pool refuses writes through a
    /// read-only handle before reaching the mapping, so this is a bug.
    pub(crate) fn u64_mut(&self, off: u64) -> &AtomicU64 {
        assert!(self.may_write(off), "write through a read-only mapping");
        self.u64_view(off)
    }

    /// The 4-byte word at `off`, for writing (futex and counter words).
    ///
    /// # Panics
    /// If the mapping is read-only (a bug, see [`Mapping::u64_mut`]).
    pub(crate) fn u32_mut(&self, off: u64) -> &AtomicU32 {
        assert!(self.may_write(off), "write through a read-only mapping");
        self.u32_view(off)
    }

    /// Whether the word at `off` may be written: anywhere in a writable
    /// mapping, only coordination words through a writable header page.
    fn may_write(&self, off: u64) -> bool {
        self.writable || (self.header.is_some() && (COORD_START..HEADER_PAGE).contains(&off))
    }

    /// The base of the mapping that serves the word at `off..off + size`:
    /// the writable header page when there is one and the word lies in it,
    /// so that each word is accessed through one address only.
    fn base(&self, off: u64, size: u64) -> *mut u8 {
        match &self.header {
            Some(page) if off + size <= HEADER_PAGE => page.as_mut_ptr(),
            _ => self.raw.as_mut_ptr(),
        }
    }

    /// Sleeps while the 4-byte word at `off` equals `expected`, for at most
    /// `timeout`, or until a wake-up. `FUTEX_WAIT` only reads the word, so
    /// this works on read-only mappings too (shared file-backed futexes are
    /// keyed by inode and offset, not by mapping).
    pub(crate) fn wait(&self, off: u64, expected: u32, timeout: Duration) {
        let word = self.u32_view(off);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::thread::futex;
            let ts = futex::Timespec {
                tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(timeout.subsec_nanos()),
            };
            // EAGAIN (value changed), ETIMEDOUT and EINTR all mean "re-check".
            let _ = futex::wait(word, futex::Flags::empty(), expected, Some(&ts));
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            // No cross-process futex here: bounded polling only.
            if word.load(Ordering::Relaxed) == expected {
                std::thread::sleep(timeout.min(Duration::from_millis(1)));
            }
        }
    }

    /// Wakes every waiter on the 4-byte word at `off`, in any process, and
    /// returns how many there were. `FUTEX_WAKE` writes nothing, so
    /// read-only mappings may use it.
    pub(crate) fn wake(&self, off: u64) -> usize {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::thread::futex;
            // Errors only mean nobody could be woken.
            futex::wake(self.u32_view(off), futex::Flags::empty(), i32::MAX as u32).unwrap_or(0)
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = off;
            0
        }
    }

    /// Writes every dirty page of the mapping to stable storage (`msync(MS_SYNC)`).
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.raw.flush()
    }

    /// The 8-byte word at `off`. Only [`Mapping::load`] and
    /// [`Mapping::u64_mut`] use it, which keeps read-only mappings to
    /// relaxed loads.
    ///
    /// # Panics
    /// If `off` is unaligned or out of bounds: callers validate offsets that
    /// come from the file first, so this is a bug, and refusing it keeps the
    /// access sound.
    fn u64_view(&self, off: u64) -> &AtomicU64 {
        assert!(
            off % 8 == 0 && off.checked_add(8).is_some_and(|end| end <= self.len()),
            "word offset {off} outside the mapping of {} bytes",
            self.len()
        );
        // SAFETY: `off + 8 <= len` keeps the pointer inside the live mapping
        // (`base` picks the header page only when `off + 8` lies within it),
        // which outlives `&self` (it is unmapped only when `self` drops). The
        // base is page-aligned and `off % 8 == 0`, so the pointer is aligned
        // for `AtomicU64`. Every access to mapped memory in this process goes
        // through atomic views of the same size at the same offsets (the
        // layout assigns each offset one width), and other processes are
        // outside the Rust abstract machine; their writes are, at worst,
        // arbitrary values, which every caller validates. A read-only
        // mapping is only ever loaded from, with relaxed loads of a
        // pointer-sized word (asserted above), which Rust allows on
        // read-only memory; writes require `u64_mut`, which refuses it
        // (through a writable header page, it allows coordination words
        // only, which lie in that page).
        unsafe { AtomicU64::from_ptr(self.base(off, 8).add(off as usize).cast::<u64>()) }
    }

    /// The first of the 8-byte words that cover `off..off + len`, for the
    /// bulk accessors: `raw.as_ptr() + off` as a word pointer.
    ///
    /// # Panics
    /// If `off` or `len` is not a multiple of 8, if the range leaves the
    /// mapping, or if it starts in a header page that is mapped apart
    /// (whose words must be accessed through that mapping only).
    fn words(&self, off: u64, len: usize) -> *mut u64 {
        assert!(
            off % 8 == 0
                && len % 8 == 0
                && off
                    .checked_add(len as u64)
                    .is_some_and(|end| end <= self.len())
                && (self.header.is_none() || off >= HEADER_PAGE),
            "word range {off}+{len} outside the mapping of {} bytes",
            self.len()
        );
        // SAFETY: `off <= len` of the live mapping (asserted above), so the
        // pointer stays inside it or one past its end.
        unsafe { self.raw.as_mut_ptr().add(off as usize).cast::<u64>() }
    }

    /// The 4-byte word at `off` (futex and counter words only).
    ///
    /// # Panics
    /// If `off` is unaligned or out of bounds (a bug, see `u64_view`).
    fn u32_view(&self, off: u64) -> &AtomicU32 {
        assert!(
            off % 4 == 0 && off.checked_add(4).is_some_and(|end| end <= self.len()),
            "word offset {off} outside the mapping of {} bytes",
            self.len()
        );
        // SAFETY: as in `u64_view`: in bounds, 4-aligned (page-aligned base),
        // the mapping outlives `&self`, and these offsets (coordination
        // words) are only ever accessed as `AtomicU32`. On a read-only
        // mapping the view is only loaded from (relaxed) or handed to the
        // kernel's `FUTEX_WAIT` / `FUTEX_WAKE`, which only read it; writes
        // require `u32_mut`, which refuses it.
        unsafe { AtomicU32::from_ptr(self.base(off, 4).add(off as usize).cast::<u32>()) }
    }
}

/// What [`lock_byte`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteLock {
    /// Takes an exclusive lock without waiting; `Ok(false)` if another open
    /// file description holds one.
    Try,
    /// Releases this open file description's lock.
    Release,
    /// Tests, without locking, whether another open file description holds
    /// a lock (`Ok(true)`); this one's own lock does not count.
    Probe,
}

/// An open-file-description lock (`F_OFD_SETLK`, Linux ≥ 3.15) on the one
/// byte at `off` of `file`: owned by the open file description, released
/// when it closes, so by the kernel when its process dies. It neither reads
/// nor writes the byte, and is independent of `flock(2)`. `Try` and
/// `Release` need `file` open for writing.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn lock_byte(file: &File, off: u64, op: ByteLock) -> io::Result<bool> {
    let (cmd, l_type) = match op {
        ByteLock::Try => (libc::F_OFD_SETLK, libc::F_WRLCK),
        ByteLock::Release => (libc::F_OFD_SETLK, libc::F_UNLCK),
        ByteLock::Probe => (libc::F_OFD_GETLK, libc::F_WRLCK),
    };
    let mut lock = libc::flock {
        l_type: l_type as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: libc::off_t::try_from(off).map_err(|_| io::Error::other("lock offset"))?,
        l_len: 1,
        // Must be 0 for OFD locks.
        l_pid: 0,
    };
    loop {
        // SAFETY: `fcntl` with `F_OFD_SETLK`/`F_OFD_GETLK` takes a pointer
        // to a `struct flock`, which `lock` is (libc's definition for this
        // target), valid and exclusively borrowed for the duration of the
        // call; the kernel reads it, and for `F_OFD_GETLK` writes it back in
        // place. The descriptor is borrowed from `file`, open throughout.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut lock as *mut libc::flock) };
        if r != -1 {
            return Ok(match op {
                ByteLock::Probe => lock.l_type != libc::F_UNLCK as libc::c_short,
                ByteLock::Try | ByteLock::Release => true,
            });
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN | libc::EACCES) if op == ByteLock::Try => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Without OFD locks there is no lock a dead process releases: `Try`
/// always fails, so followers wait unregistered (`FORMAT.md` §7).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn lock_byte(_file: &File, _off: u64, op: ByteLock) -> io::Result<bool> {
    Ok(op == ByteLock::Release)
}
