//! The pool handle: create, open, recovery, reads by seq, and introspection.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::error::{Error, Location, Result};
use crate::frame::FrameError;
use crate::header::{self, Geometry, HeaderError};
use crate::map::Mapping;
use crate::message::{now_ns, Message};
use crate::recover::{self, State};
use crate::ring::{self, Fetch, MapRing, Ring};
use crate::Seq;

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Acknowledged once published in the shared mapping: survives the
    /// process crashing, not the machine losing power.
    #[default]
    Fast,
    /// Acknowledged only after everything needed to read the message back
    /// is on stable storage. Concurrent flushing appenders, in any process,
    /// share syncs (group commit).
    Flush,
}

/// Settings for [`Pool::create`] and [`Pool::open_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Index slots; `None` picks one per 512 bytes of ring. Ignored by open.
    pub index_slots: Option<u64>,
    /// When appends through this handle are acknowledged.
    pub durability: Durability,
    /// The longest a follower sleeps between checks when no wake-up arrives.
    /// Wake-ups normally come through the futex broadcast; this bounds the
    /// delay if one is ever missed.
    pub poll_interval: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            index_slots: None,
            durability: Durability::Fast,
            poll_interval: Duration::from_millis(100),
        }
    }
}

impl Options {
    /// The defaults: automatic index size, [`Durability::Fast`], 100 ms poll.
    pub fn new() -> Options {
        Options::default()
    }

    /// Sets the number of index slots.
    pub fn index_slots(mut self, slots: u64) -> Options {
        self.index_slots = Some(slots);
        self
    }

    /// Sets the durability of appends.
    pub fn durability(mut self, durability: Durability) -> Options {
        self.durability = durability;
        self
    }

    /// Sets the fallback poll interval of followers.
    pub fn poll_interval(mut self, interval: Duration) -> Options {
        self.poll_interval = interval;
        self
    }
}

/// A snapshot of a pool's geometry and published state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Info {
    /// The pool file.
    pub path: PathBuf,
    /// File length in bytes.
    pub file_len: u64,
    /// Ring length in bytes.
    pub ring_len: u64,
    /// Number of index slots.
    pub index_slots: u64,
    /// The largest encoded message (32-byte frame header, tags, data).
    pub max_frame: u64,
    /// Oldest readable seq (`newest + 1` when empty).
    pub oldest: Seq,
    /// Newest published seq (0 before the first append).
    pub newest: Seq,
    /// Every seq up to this one is on stable storage.
    pub synced: Seq,
    /// Ring offset of the next frame.
    pub head: u64,
    /// Ring offset of the oldest frame.
    pub tail: u64,
    /// Followers currently registered for wake-ups, across processes.
    pub waiters: u32,
}

impl Info {
    /// Messages currently held.
    pub fn len(&self) -> u64 {
        (self.newest.0 + 1).saturating_sub(self.oldest.0)
    }

    /// True when the pool holds no message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A pool: a bounded ring log in a memory-mapped file, shared by processes.
///
/// Methods by group:
/// - lifecycle: [`Pool::create`], [`Pool::open`], [`Pool::open_with`];
/// - getters: [`Pool::info`], [`Pool::path`], [`Pool::get`];
/// - mutators: [`Pool::append`], [`Pool::append_batch`];
/// - reading in order and following: [`Pool::cursor`], [`Pool::wait_for`],
///   and [`crate::Notifier`] for async code.
///
/// A `Pool` is `Send + Sync`: share it between threads by reference or `Arc`.
/// Appends are serialised across threads and processes; reads take no lock.
/// Truncating or shrinking the file while it is mapped is outside the
/// contract (the OS raises `SIGBUS`, as for every mmap-based store).
#[derive(Debug)]
pub struct Pool {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    pub(crate) map: Mapping,
    pub(crate) geo: Geometry,
    pub(crate) options: Options,
    /// In-process writer serialisation (flock is per open file description)
    /// and the frame scratch buffer.
    pub(crate) writer: Mutex<Vec<u8>>,
    /// Set once a sync failed: the kernel may have dropped the dirty pages,
    /// so no later `Flush` append can be acknowledged through this handle.
    pub(crate) sync_failed: AtomicBool,
}

impl Pool {
    /// Creates a pool file of `size` bytes (a multiple of 4096) and opens it.
    ///
    /// The file appears atomically: it is prepared under a temporary name
    /// and linked into place, so no opener ever sees a half-written header.
    pub fn create(path: impl AsRef<Path>, size: u64, options: Options) -> Result<Pool> {
        let path = path.as_ref();
        let geo = Geometry::plan(size, options.index_slots, now_ns())
            .map_err(|why| Error::Usage(format!("cannot create a pool of {size} bytes: {why}")))?;
        let tmp = temp_path(path);
        let prepared = prepare(&tmp, &geo).and_then(|()| {
            std::fs::hard_link(&tmp, path)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        });
        let _ = std::fs::remove_file(&tmp);
        prepared.map_err(|e| Error::io(path, e))?;
        Pool::open_with(path, options)
    }

    /// Opens an existing pool with default [`Options`], recovering it if a
    /// writer died mid-append or power was lost.
    pub fn open(path: impl AsRef<Path>) -> Result<Pool> {
        Pool::open_with(path, Options::default())
    }

    /// Opens an existing pool, validating the header and the frames above
    /// the last synced seq, and repairing the published state (see
    /// `FORMAT.md` §6).
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Pool> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let actual = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let mut head = [0u8; 128];
        let got = read_prefix(&file, &mut head).map_err(|e| Error::io(&path, e))?;
        let geo = Geometry::decode(&head[..got], actual).map_err(|e| header_error(&path, e))?;
        let map = Mapping::new(&file).map_err(|e| Error::io(&path, e))?;
        if map.len() != geo.file_len {
            return Err(header_error(&path, HeaderError::Length));
        }
        let pool = Pool {
            path,
            file,
            map,
            geo,
            options,
            writer: Mutex::new(Vec::new()),
            sync_failed: AtomicBool::new(false),
        };
        {
            let guard = pool.lock()?;
            pool.repair(&guard)?;
        }
        Ok(pool)
    }

    /// The pool file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A snapshot of the geometry and published state.
    pub fn info(&self) -> Info {
        let st = self.state(Ordering::Acquire);
        Info {
            path: self.path.clone(),
            file_len: self.geo.file_len,
            ring_len: self.geo.ring_len,
            index_slots: self.geo.index_slots,
            max_frame: self.geo.max_frame(),
            oldest: Seq(st.oldest),
            newest: Seq(st.newest),
            synced: Seq(self.load(header::SYNCED, Ordering::Acquire)),
            head: st.head,
            tail: st.tail,
            waiters: self.map.u32_at(header::WAITERS).load(Ordering::Relaxed),
        }
    }

    /// Reads message `seq` in O(1) through the index, falling back to a
    /// validated scan when the slot is stale or damaged.
    ///
    /// Fails with [`Error::SeqNotFound`] if `seq` is not yet written or was
    /// overwritten, and [`Error::Corrupt`] if the frame fails validation.
    pub fn get(&self, seq: Seq) -> Result<Message> {
        let mut buf = Vec::new();
        self.read(seq.0, None, &mut buf)
            .map(|(msg, _)| msg)
            .map_err(|e| self.read_error(seq, e))
    }

    /// Empties the handle's view of a failed read into a public error.
    fn read_error(&self, seq: Seq, e: ReadError) -> Error {
        match e {
            ReadError::Missing | ReadError::Gone { .. } => {
                let st = self.state(Ordering::Acquire);
                Error::SeqNotFound {
                    seq,
                    oldest: Seq(st.oldest),
                    newest: Seq(st.newest),
                }
            }
            ReadError::Corrupt(at, why) => self.corrupt(at, why),
        }
    }

    /// Reads message `seq`, trying `hint` (the logical ring position of the
    /// frame, from a cursor) first, then the index, then a scan.
    pub(crate) fn read(
        &self,
        seq: u64,
        hint: Option<u64>,
        buf: &mut Vec<u8>,
    ) -> Result<(Message, u64), ReadError> {
        let newest = self.load(header::NEWEST, Ordering::Acquire);
        if seq == 0 || seq > newest {
            return Err(ReadError::Missing);
        }
        let ring = self.ring();
        let max = self.geo.max_frame();
        let gone = || ReadError::Gone {
            oldest: ring.oldest_after_read(),
        };
        if let Some(pos) = hint {
            match ring::fetch(&ring, pos, seq, max, buf) {
                Ok(found) => return Ok(found),
                Err(Fetch::Gone) => return Err(gone()),
                Err(Fetch::Bad(..)) => {}
            }
        }
        let slot = self.slot(seq);
        // Relaxed: the acquire load of NEWEST above orders this after the
        // slot's publication; a newer value only means the slot moved on.
        let slot_seq = u64::from_le(self.map.u64_at(slot).load(Ordering::Relaxed));
        if slot_seq == seq {
            let pos = u64::from_le(self.map.u64_at(slot + 8).load(Ordering::Relaxed));
            match ring::fetch(&ring, pos, seq, max, buf) {
                Ok(found) => return Ok(found),
                Err(Fetch::Gone) => return Err(gone()),
                Err(Fetch::Bad(..)) => {}
            }
        }
        self.scan(seq, buf)
    }

    /// Finds `seq` by walking from the oldest frame. Retries while the ring
    /// is being overwritten under it; a failure with `OLDEST` unchanged
    /// means the bytes were stable, hence corrupt.
    fn scan(&self, seq: u64, buf: &mut Vec<u8>) -> Result<(Message, u64), ReadError> {
        let ring = self.ring();
        let max = self.geo.max_frame();
        for _ in 0..SCAN_ATTEMPTS {
            let oldest = self.load(header::OLDEST, Ordering::Acquire);
            if seq < oldest {
                return Err(ReadError::Gone { oldest });
            }
            let tail = self.load(header::TAIL, Ordering::Acquire);
            let first = ring::resolve(&ring, tail)
                .and_then(|p| ring::load(&ring, p, max, 0, buf))
                .map(|head| head.seq);
            let walked = match first {
                Ok(first) if first <= seq => ring::walk_to(&ring, tail, first, seq, max, buf),
                Ok(_) => Err(Fetch::Gone),
                Err(e) => Err(Fetch::Bad(tail, e)),
            };
            match walked {
                Ok(found) => return Ok(found),
                Err(Fetch::Gone) => {}
                Err(Fetch::Bad(pos, e)) => {
                    if ring.oldest_after_read() == oldest {
                        return Err(ReadError::Corrupt(self.geo.ring_off + pos, e));
                    }
                }
            }
            std::thread::yield_now();
        }
        Err(ReadError::Gone {
            oldest: self.load(header::OLDEST, Ordering::Acquire),
        })
    }

    /// Takes the writer lock: the in-process mutex, then the file lock.
    pub(crate) fn lock(&self) -> Result<WriterGuard<'_>> {
        let buf = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match rustix::fs::flock(&self.file, rustix::fs::FlockOperation::LockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io(&self.path, e.into())),
            }
        }
        Ok(WriterGuard { pool: self, buf })
    }

    /// Under the writer lock: validates the published state against the
    /// ring and stores the repaired state.
    pub(crate) fn repair(&self, _guard: &WriterGuard<'_>) -> Result<State> {
        let st = self.state(Ordering::Relaxed);
        let synced = self.load(header::SYNCED, Ordering::Relaxed);
        let rec = recover::recover(&self.ring(), st, synced, self.geo.max_frame()).map_err(
            |(at, why)| Error::Corrupt {
                path: self.path.clone(),
                at,
                reason: why,
            },
        )?;
        let new = rec.state;
        if rec.truncated {
            // Slots naming dropped seqs could later point readers at stale
            // frames of the same seq: clear them before anything reuses it.
            for i in 0..self.geo.index_slots {
                let slot = self.geo.index_off + i * header::SLOT_LEN;
                let word = self.map.u64_at(slot);
                if u64::from_le(word.load(Ordering::Relaxed)) > new.newest {
                    word.store(0, Ordering::Relaxed);
                }
            }
        }
        if new != st {
            self.store(header::OLDEST, new.oldest, Ordering::Relaxed);
            self.store(header::TAIL, new.tail, Ordering::Relaxed);
            self.store(header::HEAD, new.head, Ordering::Relaxed);
            self.store(header::NEWEST, new.newest, Ordering::Release);
        }
        self.store(header::DIRTY, 0, Ordering::Release);
        Ok(new)
    }

    /// The ring of this pool's mapping.
    pub(crate) fn ring(&self) -> MapRing<'_> {
        MapRing {
            map: &self.map,
            off: self.geo.ring_off,
            len: self.geo.ring_len,
        }
    }

    /// File offset of the index slot for `seq`.
    pub(crate) fn slot(&self, seq: u64) -> u64 {
        self.geo.index_off + (seq % self.geo.index_slots) * header::SLOT_LEN
    }

    /// Loads a published header word.
    pub(crate) fn load(&self, off: u64, order: Ordering) -> u64 {
        u64::from_le(self.word(off).load(order))
    }

    /// Stores a published header word.
    pub(crate) fn store(&self, off: u64, value: u64, order: Ordering) {
        self.word(off).store(value.to_le(), order);
    }

    /// A header word.
    pub(crate) fn word(&self, off: u64) -> &AtomicU64 {
        self.map.u64_at(off)
    }

    /// The published state (not a consistent snapshot unless locked).
    pub(crate) fn state(&self, order: Ordering) -> State {
        State {
            newest: self.load(header::NEWEST, order),
            oldest: self.load(header::OLDEST, order),
            tail: self.load(header::TAIL, order),
            head: self.load(header::HEAD, order),
        }
    }

    /// A corruption error at a file offset.
    pub(crate) fn corrupt(&self, off: u64, e: FrameError) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            at: Location::Offset(off),
            reason: e.reason(),
        }
    }
}

/// Attempts of a scan racing with writers before giving up on the seq.
const SCAN_ATTEMPTS: usize = 10_000;

/// Why an internal read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// Not yet published.
    Missing,
    /// Overwritten; `oldest` is the oldest seq seen.
    Gone {
        /// The oldest seq when the loss was seen.
        oldest: u64,
    },
    /// Failed validation at this file offset.
    Corrupt(u64, FrameError),
}

/// Proof of holding the writer lock; releases it on drop.
pub(crate) struct WriterGuard<'a> {
    pool: &'a Pool,
    /// The frame scratch buffer.
    pub(crate) buf: MutexGuard<'a, Vec<u8>>,
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        // Unlocking cannot fail on a valid descriptor; if it did, closing the
        // file would still release the lock.
        let _ = rustix::fs::flock(&self.pool.file, rustix::fs::FlockOperation::Unlock);
    }
}

/// Writes a fresh pool file at `tmp`.
fn prepare(tmp: &Path, geo: &Geometry) -> std::io::Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(tmp)?;
    file.set_len(geo.file_len)?;
    file.write_all_at(&geo.encode(), 0)?;
    // Empty pool: next seq 1, oldest 1, newest 0, head = tail = 0.
    file.write_all_at(&1u64.to_le_bytes(), header::OLDEST)?;
    file.sync_all()
}

/// A temporary sibling of `path`, unique per process and call.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".creating-{}-{n}", std::process::id()));
    path.with_file_name(name)
}

/// Reads up to `buf.len()` bytes from offset 0.
fn read_prefix(file: &File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Maps a header validation failure to the public error.
fn header_error(path: &Path, e: HeaderError) -> Error {
    match e {
        HeaderError::Version(found) => Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported: header::VERSION,
        },
        e => Error::Corrupt {
            path: path.to_path_buf(),
            at: Location::Offset(e.offset()),
            reason: e.reason(),
        },
    }
}
