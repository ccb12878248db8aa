//! Disk space for the mapping: every byte of a pool file is allocated
//! before it is mapped, so that storing into the mapping never needs a new
//! block. A store into a hole of a sparse file on a full filesystem kills
//! the process with `SIGBUS`; reserving the space turns that into an
//! [`std::io::Error`] at create or open. See `FORMAT.md` §5.4.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use rustix::fs::FallocateFlags;
use rustix::io::Errno;

/// Allocates every block of a new, empty file of `len` bytes, extending it
/// to `len`. Where the filesystem has no `fallocate`, writes zeros instead,
/// which allocates the blocks on every filesystem that overwrites in place.
pub(crate) fn reserve_new(file: &File, len: u64) -> io::Result<()> {
    match allocate(file, len) {
        Err(e) if unsupported(&e) => write_zeros(file, len),
        other => other,
    }
}

/// Allocates the holes of an existing pool file of `len` bytes without
/// changing any byte: a file created sparse by an older build, or whose
/// blocks were punched while no writer had it open. Filesystems without
/// `fallocate` are left as they are (the file cannot be filled without
/// racing with readers, and has no holes if this build created it).
pub(crate) fn reserve_existing(file: &File, len: u64) -> io::Result<()> {
    match allocate(file, len) {
        Err(e) if unsupported(&e) => Ok(()),
        other => other,
    }
}

/// `fallocate(2)` in its default mode over `0..len`, retried on `EINTR`.
fn allocate(file: &File, len: u64) -> io::Result<()> {
    loop {
        match rustix::fs::fallocate(file, FallocateFlags::empty(), 0, len) {
            Err(Errno::INTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Whether the filesystem or kernel lacks `fallocate`.
fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw_os_error),
        Some(Errno::OPNOTSUPP | Errno::NOSYS)
    )
}

/// Writes `len` zero bytes from offset 0.
fn write_zeros(file: &File, len: u64) -> io::Result<()> {
    const CHUNK: u64 = 1 << 20;
    let zeros = vec![0u8; CHUNK.min(len) as usize];
    let mut at = 0;
    while at < len {
        let n = CHUNK.min(len - at) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}
