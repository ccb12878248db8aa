//! The two pool implementations behind one small interface, each driven
//! through its public library API.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use plasmite::api::{self as pls, CursorResult, PoolApiExt};
use plex_store::{MessageBuf, Options, Seq, Start};

use super::Result;

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Once visible to other processes.
    Fast,
    /// Once on stable storage.
    Flush,
}

/// A pool implementation under test.
pub(crate) trait Backend {
    /// The name in the report.
    const NAME: &'static str;
    /// An open pool that appends and reads; one per writer thread.
    type Handle: Send;

    /// Creates an empty pool of `size` bytes at `path`.
    fn create(path: &Path, size: u64) -> Result<()>;
    /// Opens the pool at `path` for appending and reading.
    fn open(path: &Path, durability: Durability) -> Result<Self::Handle>;
    /// Appends one message.
    fn append(handle: &mut Self::Handle, payload: &[u8]) -> Result<()>;
    /// Reads message `seq` (the first message is 1) through the library's
    /// fastest read by seq; returns its length.
    fn get(handle: &mut Self::Handle, seq: u64) -> Result<usize>;
    /// Reads every message held, oldest first, through the library's
    /// fastest cursor; returns how many, after checking that each is `len`
    /// bytes long.
    fn read_all(handle: &mut Self::Handle, len: usize) -> Result<u64>;
    /// Follows the pool at `path` from its oldest message, in this
    /// process, calling `on_message` with each payload as it wakes for it
    /// until that returns `false`. Fails after `limit`.
    fn follow(
        path: &Path,
        limit: Duration,
        on_message: &mut dyn FnMut(&[u8]) -> Result<bool>,
    ) -> Result<()>;
}

/// `plex-store`.
pub(crate) struct Plex;

/// A plex pool and the message buffer its reads reuse.
pub(crate) struct PlexHandle {
    pool: plex_store::Pool,
    message: MessageBuf,
}

impl Backend for Plex {
    const NAME: &'static str = crate::report::PLEX;
    type Handle = PlexHandle;

    fn create(path: &Path, size: u64) -> Result<()> {
        plex_store::Pool::create(path, size, Options::new())?;
        Ok(())
    }

    fn open(path: &Path, durability: Durability) -> Result<Self::Handle> {
        let durability = match durability {
            Durability::Fast => plex_store::Durability::Fast,
            Durability::Flush => plex_store::Durability::Flush,
        };
        Ok(PlexHandle {
            pool: plex_store::Pool::open_with(path, Options::new().durability(durability))?,
            message: MessageBuf::new(),
        })
    }

    fn append(handle: &mut Self::Handle, payload: &[u8]) -> Result<()> {
        handle.pool.append(&[], payload)?;
        Ok(())
    }

    fn get(handle: &mut Self::Handle, seq: u64) -> Result<usize> {
        // Into the handle's buffer: no allocation per message.
        handle.pool.get_into(Seq(seq), &mut handle.message)?;
        Ok(handle.message.data().len())
    }

    fn read_all(handle: &mut Self::Handle, len: usize) -> Result<u64> {
        let mut cursor = handle.pool.cursor(Start::Oldest);
        let mut read = 0;
        while cursor.try_next_into(&mut handle.message)? {
            check_len(handle.message.data().len(), len)?;
            read += 1;
        }
        Ok(read)
    }

    fn follow(
        path: &Path,
        limit: Duration,
        on_message: &mut dyn FnMut(&[u8]) -> Result<bool>,
    ) -> Result<()> {
        // Followers need no writer lock: the read-only handle still
        // registers for the futex broadcast.
        let pool = plex_store::Pool::open_read_only(path)?;
        let mut cursor = pool.cursor(Start::Oldest);
        let deadline = Instant::now() + limit;
        loop {
            let msg = cursor
                .next_timeout(deadline.saturating_duration_since(Instant::now()))?
                .ok_or("plex follower timed out")?;
            if !on_message(&msg.data)? {
                return Ok(());
            }
        }
    }
}

/// The `plasmite` crate.
pub(crate) struct Plasmite;

/// A plasmite pool handle and the durability of its appends.
pub(crate) struct PlasmiteHandle {
    pool: pls::Pool,
    durability: pls::Durability,
}

impl Backend for Plasmite {
    const NAME: &'static str = "plasmite";
    type Handle = PlasmiteHandle;

    fn create(path: &Path, size: u64) -> Result<()> {
        pls::Pool::create(path, pls::PoolOptions::new(size))?;
        Ok(())
    }

    fn open(path: &Path, durability: Durability) -> Result<Self::Handle> {
        let durability = match durability {
            Durability::Fast => pls::Durability::Fast,
            Durability::Flush => pls::Durability::Flush,
        };
        Ok(PlasmiteHandle {
            pool: pls::Pool::open(path)?,
            durability,
        })
    }

    fn append(handle: &mut Self::Handle, payload: &[u8]) -> Result<()> {
        // The payload is a Lite3 message encoded once, as plasmite's own
        // benchmark appends it; stamped with the wall clock, as plex does.
        let options = pls::AppendOptions::new(unix_ns(), handle.durability);
        handle.pool.append_with_options(payload, options)?;
        Ok(())
    }

    fn get(handle: &mut Self::Handle, seq: u64) -> Result<usize> {
        // Its only read by seq: an owned copy of the payload.
        Ok(handle.pool.get(seq)?.payload.len())
    }

    fn read_all(handle: &mut Self::Handle, len: usize) -> Result<u64> {
        let mut cursor = pls::Cursor::new();
        let mut read = 0;
        loop {
            match cursor.next(&handle.pool)? {
                CursorResult::Message(frame) => {
                    check_len(frame.payload.len(), len)?;
                    read += 1;
                }
                CursorResult::WouldBlock => return Ok(read),
                CursorResult::FellBehind => return Err("plasmite reader fell behind".into()),
            }
        }
    }

    fn follow(
        path: &Path,
        limit: Duration,
        on_message: &mut dyn FnMut(&[u8]) -> Result<bool>,
    ) -> Result<()> {
        let pool = pls::Pool::open(path)?;
        let mut options = pls::TailOptions::new();
        options.timeout = Some(limit);
        // Its follow mode: a named semaphore wake-up, polling as a fallback.
        let mut tail = pool.tail_lite3(options);
        loop {
            let frame = tail.next_frame()?.ok_or("plasmite follower timed out")?;
            if !on_message(&frame.payload)? {
                return Ok(());
            }
        }
    }
}

fn check_len(got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(format!("read a {got}-byte message, expected {want} bytes").into())
    }
}

/// Nanoseconds since the Unix epoch.
fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
