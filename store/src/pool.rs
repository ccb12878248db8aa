//! The pool handle: create, open, recovery, reads by seq, and introspection.

use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use crate::error::{Error, Location, Result};
use crate::frame::FrameError;
use crate::header::{self, Geometry, HeaderError};
use crate::map::Mapping;
use crate::message::{now_ns, Message, MessageBuf};
use crate::notifier::Local;
use crate::recover::{Recovery, State};
use crate::ring::{self, Fetch, MapRing, Ring};
use crate::waiters::Registry;
use crate::walk::{Step, Walk};
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

/// Settings for [`Pool::create`], [`Pool::open_with`] and
/// [`Pool::open_read_only_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Slots of the fine index (one per seq, `FORMAT.md` §3); `None` sizes
    /// it from [`Options::message_size`]. Ignored by open.
    pub index_slots: Option<u64>,
    /// The typical size of a message's data and tags, in bytes, which sizes
    /// the fine index at create unless [`Options::index_slots`] is set: one
    /// slot per frame of that size (`FORMAT.md` §3), so that a read by seq
    /// finds every held message through its own slot while messages are
    /// at least that large. Smaller messages are found through the coarse
    /// index (a slot per 16 seqs, always sized for the smallest frames,
    /// about 3% of the file) and at most 15 frame headers. `None` means
    /// 480 bytes (one slot per 512 bytes of ring, another 3%). Ignored by
    /// open.
    pub message_size: Option<u64>,
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
            message_size: None,
            durability: Durability::Fast,
            poll_interval: Duration::from_millis(100),
        }
    }
}

impl Options {
    /// The defaults: an index sized for 480-byte messages,
    /// [`Durability::Fast`], 100 ms poll.
    pub fn new() -> Options {
        Options::default()
    }

    /// Sets the number of index slots.
    pub fn index_slots(mut self, slots: u64) -> Options {
        self.index_slots = Some(slots);
        self
    }

    /// Sets the typical message size (data and tags) the index is sized for.
    pub fn message_size(mut self, bytes: u64) -> Options {
        self.message_size = Some(bytes);
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
    /// Slots of the fine index (one seq each).
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
    /// Followers registered for wake-ups right now, across processes: a
    /// follower killed while registered is not counted (`FORMAT.md` §7).
    pub waiters: u32,
    /// A sync of the pool failed once, in some process: appends with
    /// [`Durability::Flush`] fail with [`Error::SyncFailed`] for good.
    pub sync_failed: bool,
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
/// - lifecycle: [`Pool::create`], [`Pool::open`], [`Pool::open_with`],
///   [`Pool::open_read_only`], [`Pool::open_read_only_with`];
/// - getters: [`Pool::info`], [`Pool::path`], [`Pool::is_read_only`],
///   [`Pool::recovery`], [`Pool::get`], [`Pool::get_into`] (into reused
///   buffers), [`Pool::damaged`];
/// - mutators: [`Pool::append`], [`Pool::append_receipt`],
///   [`Pool::append_batch`], [`Pool::append_batch_receipt`],
///   [`Pool::try_append_batch_receipt`] (never waits for the lock), and
///   [`Pool::check_message`] to test a message against the limits first;
/// - reading in order and following: [`Pool::cursor`], [`Pool::wait_for`],
///   and [`crate::Notifier`] for async code.
///
/// A `Pool` is `Send + Sync`: share it between threads by reference or `Arc`.
/// Appends are serialised across threads and processes; reads take no lock.
/// Truncating or shrinking the file, or punching holes in it, while it is
/// mapped is outside the contract (the OS may raise `SIGBUS`, as for every
/// mmap-based store).
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
    /// This handle's follower registration (`FORMAT.md` §7).
    pub(crate) waiters: Registry,
    /// This handle's [`crate::Notifier`]s, which its appends wake directly.
    pub(crate) local: Local,
    /// Opened with [`Pool::open_read_only`]: appends are refused.
    pub(crate) read_only: bool,
    /// What recovery found at open; `None` for read-only handles.
    recovery: Option<Recovery>,
}

impl Pool {
    /// Creates a pool file of `size` bytes (a multiple of 4096) and opens it.
    ///
    /// The file appears atomically: it is prepared under a temporary name
    /// and linked into place, so no opener ever sees a half-written header.
    /// Every block of it is allocated first (`fallocate`): when the
    /// filesystem cannot hold it, this fails with [`Error::Io`] and leaves
    /// no file behind, and appends never need disk space later.
    pub fn create(path: impl AsRef<Path>, size: u64, options: Options) -> Result<Pool> {
        let path = path.as_ref();
        let slots = options.index_slots.or_else(|| {
            options
                .message_size
                .map(|bytes| Geometry::slots_for(size, bytes))
        });
        let geo = Geometry::plan(size, slots, now_ns())
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

    /// Opens an existing pool for appending and reading: validates the
    /// header, takes the writer lock, and recovers the published state
    /// (`FORMAT.md` §6) if a writer died mid-append or the machine
    /// restarted since a writer last checked the pool; otherwise it trusts
    /// the published state and reads no frame. What recovery found is in
    /// [`Pool::recovery`].
    ///
    /// Allocates any hole in the file first (a file created sparse by an
    /// older build), failing with [`Error::Io`] if the filesystem is full.
    /// Blocks punched out of the file while it is open are outside the
    /// contract, like truncation: a store into them may raise `SIGBUS`.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Pool> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let mut pool = Pool::map(path, file, Access::Write, options)?;
        // A file created sparse by an older build, or punched while closed,
        // would fault on a full filesystem at the first store into a hole.
        crate::space::reserve_existing(&pool.file, pool.geo.file_len)
            .map_err(|e| Error::io(&pool.path, e))?;
        let report = {
            let guard = pool.lock()?;
            pool.recover_at_open(&guard)?
        };
        pool.reap_waiters();
        pool.recovery = Some(report);
        Ok(pool)
    }

    /// Opens an existing pool for reading only, with default [`Options`];
    /// see [`Pool::open_read_only_with`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Pool> {
        Pool::open_read_only_with(path, Options::default())
    }

    /// Opens an existing pool for reading only: takes no lock, runs no
    /// recovery and never writes the published state, the index or the
    /// ring, so it never waits for writers and works without write
    /// permission. It trusts the published state and validates every frame
    /// it reads; frames a crashed writer left unpublished stay invisible
    /// until a writer opens the pool. Appends fail with [`Error::ReadOnly`].
    ///
    /// The file is mapped read-only. Followers need to register in the
    /// header to be woken by writers (`FORMAT.md` §7): when the file is
    /// writable, the handle also maps its first page read-write for that
    /// purpose only; otherwise its followers are woken only alongside
    /// registered ones, and otherwise notice appends within
    /// [`Options::poll_interval`].
    pub fn open_read_only_with(path: impl AsRef<Path>, options: Options) -> Result<Pool> {
        let path = path.as_ref().to_path_buf();
        let writable = OpenOptions::new().read(true).write(true).open(&path);
        let (file, writable) = match writable {
            Ok(file) => (file, true),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
                (file, false)
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        // The ring is mapped read-only either way; the header page is
        // mapped writable too when the file is, for follower registration.
        let mut pool = Pool::map(path, file, Access::ReadOnly { register: writable }, options)?;
        pool.read_only = true;
        Ok(pool)
    }

    /// Validates the header of an open pool file and maps it.
    fn map(path: PathBuf, file: File, access: Access, options: Options) -> Result<Pool> {
        let actual = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let mut head = [0u8; 128];
        let got = read_prefix(&file, &mut head).map_err(|e| Error::io(&path, e))?;
        let geo = Geometry::decode(&head[..got], actual).map_err(|e| header_error(&path, e))?;
        let map = match access {
            Access::Write => Mapping::new(&file, true, false),
            Access::ReadOnly { register } => Mapping::new(&file, false, register),
        }
        .map_err(|e| Error::io(&path, e))?;
        if map.len() != geo.file_len {
            return Err(header_error(&path, HeaderError::Length));
        }
        Ok(Pool {
            path,
            file,
            map,
            geo,
            options,
            writer: Mutex::new(Vec::new()),
            waiters: Registry::default(),
            local: Local::default(),
            read_only: false,
            recovery: None,
        })
    }

    /// The pool file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this handle was opened with [`Pool::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// What recovery found when this handle opened the pool: damaged
    /// published frames, discarded unpublished ones, a repaired state.
    /// An open that found the last writer's state consistent reads no
    /// frame and reports nothing ([`Recovery::walked`] is false; reads
    /// still validate every frame, and [`Pool::damaged`] checks them all).
    /// `None` for read-only handles, which run no recovery.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recovery.as_ref()
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
            waiters: self.live_waiters(),
            sync_failed: self.sync_failed(),
        }
    }

    /// Reads message `seq` through the index: one slot and at most a few
    /// frame headers (see [`Options::message_size`]), falling back to a
    /// walk over frame headers from the oldest message when the slot is
    /// stale or damaged. Copies and validates only the frame of `seq`.
    ///
    /// Fails with [`Error::SeqNotFound`] if `seq` is not yet written or was
    /// overwritten, and [`Error::Corrupt`] at [`Location::Seq`] if its frame
    /// fails validation while it is still held.
    pub fn get(&self, seq: Seq) -> Result<Message> {
        let mut out = MessageBuf::new();
        self.get_into(seq, &mut out)?;
        Ok(out.into_message())
    }

    /// Reads message `seq` like [`Pool::get`], into `out`, reusing its
    /// buffers: no allocation once they have grown to the message's size.
    /// Validates the same and fails the same; after a failure `out` holds
    /// no message.
    pub fn get_into(&self, seq: Seq, out: &mut MessageBuf) -> Result<()> {
        self.read(seq.0, None, out)
            .map(|_| ())
            .map_err(|e| self.read_error(seq, e))
    }

    /// Validates every message held (checksums and tags included) and
    /// returns the seqs whose frames fail, in order: the seqs for which
    /// [`Pool::get`] would fail with [`Error::Corrupt`]. Reads the whole
    /// ring; safe while writers append (seqs overwritten meanwhile are
    /// not reported).
    pub fn damaged(&self) -> Result<Vec<Range<Seq>>> {
        let ring = self.ring();
        let snap = self.snapshot();
        let mut walk = Walk::new(&snap, ring.len());
        let mut buf = Vec::new();
        let mut out = MessageBuf::new();
        let mut found: Vec<Range<Seq>> = Vec::new();
        while let Some(step) = walk.step(&ring, self.geo.max_frame(), 0, &mut buf) {
            let Step::Damaged { seqs, .. } = step else {
                continue;
            };
            // The walk may have raced with writers: each candidate is
            // confirmed by the reading routine, which tells damage from
            // overwrites.
            let mut seq = seqs.start;
            while seq < seqs.end {
                match self.read(seq, None, &mut out) {
                    Ok(_) => seq += 1,
                    Err(ReadError::Damaged { seqs: bad, .. }) => {
                        seq = bad.end;
                        match found.last_mut() {
                            Some(last) if last.end.0 == bad.start => last.end = Seq(bad.end),
                            _ => found.push(Seq(bad.start)..Seq(bad.end)),
                        }
                    }
                    Err(ReadError::Gone { oldest }) => seq = oldest.max(seq + 1),
                    Err(ReadError::Missing) => break,
                }
            }
        }
        Ok(found)
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
            ReadError::Damaged { reason, .. } => Error::Corrupt {
                path: self.path.clone(),
                at: Location::Seq(seq),
                reason: reason.reason(),
            },
        }
    }

    /// Reads message `seq` into `out`, trying `hint` (the logical ring
    /// position of the frame, from a cursor) first, then the index, then a
    /// walk from the tail; returns the logical position of the next frame.
    /// The one validation routine behind every read: a frame that fails
    /// validation is reported as damaged only if the published
    /// `(OLDEST, TAIL)` did not move while it was read (`FORMAT.md` §5.3);
    /// otherwise a writer was reusing the bytes and the read is retried.
    /// After a failure `out` holds no message.
    pub(crate) fn read(
        &self,
        seq: u64,
        hint: Option<u64>,
        out: &mut MessageBuf,
    ) -> Result<u64, ReadError> {
        let found = self.read_attempts(seq, hint, out);
        if found.is_err() {
            out.clear();
        }
        found
    }

    /// The body of [`Pool::read`].
    fn read_attempts(
        &self,
        seq: u64,
        hint: Option<u64>,
        out: &mut MessageBuf,
    ) -> Result<u64, ReadError> {
        let ring = self.ring();
        let max = self.geo.max_frame();
        for _ in 0..READ_ATTEMPTS {
            let snap = self.snapshot();
            if seq == 0 || seq > snap.newest {
                return Err(ReadError::Missing);
            }
            if seq < snap.oldest {
                return Err(ReadError::Gone {
                    oldest: snap.oldest,
                });
            }
            // Hints first, cheapest first: a failure there only means the
            // hint is stale.
            let fine = self.geo.fine_slot(seq);
            for source in 0..3 {
                let pos = match source {
                    0 => hint,
                    1 => (self.load(fine, Ordering::Relaxed) == seq)
                        .then(|| self.load(fine + 8, Ordering::Relaxed)),
                    _ => self.coarse(&ring, seq, &snap),
                };
                let Some(pos) = pos else { continue };
                match ring::fetch(&ring, pos, seq, max, out) {
                    Ok(found) => return Ok(found),
                    Err(Fetch::Gone) => {
                        return Err(ReadError::Gone {
                            oldest: ring.generation().oldest,
                        })
                    }
                    Err(Fetch::Bad(..)) => {}
                }
            }
            let bad = match self.scan(&ring, seq, &snap, out) {
                Ok(found) => return Ok(found),
                Err(bad) => bad,
            };
            if let Some(damaged) = bad {
                let gen = ring.generation();
                if (gen.oldest, gen.tail) == (snap.oldest, snap.tail) {
                    return Err(damaged);
                }
            }
            std::thread::yield_now();
        }
        // Lapped by writers on every attempt.
        Err(ReadError::Gone {
            oldest: ring.generation().oldest,
        })
    }

    /// The logical position of `seq` through the coarse index: the slot of
    /// the indexed seq at or below it, then at most `COARSE_STRIDE - 1`
    /// frame headers (`FORMAT.md` §3). `None` when the slot is stale or the
    /// seq before it was evicted; the walk from the tail, at most
    /// `COARSE_STRIDE` frames long in that case, takes over.
    fn coarse(&self, ring: &MapRing<'_>, seq: u64, snap: &State) -> Option<u64> {
        let base = seq - seq % header::COARSE_STRIDE;
        if base < snap.oldest {
            return None;
        }
        let slot = self.geo.coarse_slot(base);
        if self.load(slot, Ordering::Relaxed) != base {
            return None;
        }
        let pos = self.load(slot + 8, Ordering::Relaxed);
        ring::seek(ring, pos, base, seq, self.geo.max_frame())
    }

    /// Walks from the tail of `snap` to `seq`. Fails with `None` when the
    /// walk lost a race with writers, or with [`ReadError::Damaged`] for the
    /// damaged seqs from `seq` on, which the caller confirms.
    fn scan(
        &self,
        ring: &MapRing<'_>,
        seq: u64,
        snap: &State,
        out: &mut MessageBuf,
    ) -> Result<u64, Option<ReadError>> {
        let max = self.geo.max_frame();
        let mut walk = Walk::new(snap, ring.len());
        // Frames before `seq` only need their lengths (which leaves the
        // scratch buffer empty); `fetch` validates `seq` itself completely.
        while let Some(step) = walk.step(ring, max, u64::MAX, &mut out.data) {
            match step {
                Step::Frame { seq: s, pos, .. } if s == seq => {
                    return ring::fetch(ring, pos, seq, max, out).map_err(|e| match e {
                        Fetch::Gone => None,
                        Fetch::Bad(_, reason) => Some(ReadError::Damaged {
                            seqs: seq..seq + 1,
                            reason,
                        }),
                    });
                }
                Step::Frame { seq: s, .. } if s < seq => {}
                Step::Damaged { seqs, reason, .. } if seqs.contains(&seq) => {
                    return Err(Some(ReadError::Damaged {
                        seqs: seq..seqs.end,
                        reason,
                    }));
                }
                Step::Damaged { seqs, .. } if seqs.end <= seq => {}
                // The walk started past `seq`: it was overwritten meanwhile.
                _ => return Err(None),
            }
        }
        Err(None)
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

    /// Takes the writer lock if nobody holds it right now, in this process
    /// (the mutex) or another (the file lock): `None` instead of waiting.
    pub(crate) fn try_lock(&self) -> Result<Option<WriterGuard<'_>>> {
        let buf = match self.writer.try_lock() {
            Ok(buf) => buf,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(None),
        };
        loop {
            match rustix::fs::flock(
                &self.file,
                rustix::fs::FlockOperation::NonBlockingLockExclusive,
            ) {
                Ok(()) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
                Err(e) => return Err(Error::io(&self.path, e.into())),
            }
        }
        Ok(Some(WriterGuard { pool: self, buf }))
    }

    /// The ring of this pool's mapping.
    pub(crate) fn ring(&self) -> MapRing<'_> {
        MapRing {
            map: &self.map,
            off: self.geo.ring_off,
            len: self.geo.ring_len,
        }
    }

    /// Loads a header or index word.
    pub(crate) fn load(&self, off: u64, order: Ordering) -> u64 {
        self.map.load(off, order)
    }

    /// Stores a header or index word (writers only).
    pub(crate) fn store(&self, off: u64, value: u64, order: Ordering) {
        self.map.u64_mut(off).store(value.to_le(), order);
    }

    /// The published state for a read: `NEWEST` first (acquire), so the
    /// other words are at least as new as the frames it publishes.
    fn snapshot(&self) -> State {
        let newest = self.load(header::NEWEST, Ordering::Acquire);
        State {
            newest,
            oldest: self.load(header::OLDEST, Ordering::Acquire),
            tail: self.load(header::TAIL, Ordering::Acquire),
            head: self.load(header::HEAD, Ordering::Acquire),
        }
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

/// How a handle maps its pool file.
#[derive(Debug, Clone, Copy)]
enum Access {
    /// All of it read-write: a writable handle.
    Write,
    /// All of it read-only; with `register`, the header page read-write too.
    ReadOnly {
        /// Whether the file is open for writing, so that followers of this
        /// handle can register.
        register: bool,
    },
}

/// Attempts of a read racing with writers before giving up on the seq.
const READ_ATTEMPTS: usize = 10_000;

/// Why an internal read failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// Not yet published.
    Missing,
    /// Overwritten; `oldest` is the oldest seq seen.
    Gone {
        /// The oldest seq when the loss was seen.
        oldest: u64,
    },
    /// Published and still held, but without a valid frame.
    Damaged {
        /// The requested seq and the damaged seqs right after it.
        seqs: Range<u64>,
        /// Why the frame failed.
        reason: FrameError,
    },
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

/// The first 8 bytes of every pool file (`FORMAT.md` §2.1).
pub const MAGIC: [u8; 8] = header::MAGIC;

/// Whether the file at `path` starts with [`MAGIC`]: a cheap test that it
/// is meant to be a pool, which says nothing about its integrity (opening
/// it validates that). Files shorter than the magic are not pools; failing
/// to open or read the file is an error.
pub fn is_pool(path: impl AsRef<Path>) -> Result<bool> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut magic = [0u8; 8];
    let got = read_prefix(&file, &mut magic).map_err(|e| Error::io(path, e))?;
    Ok(got == magic.len() && magic == MAGIC)
}

/// Writes a fresh pool file at `tmp`.
fn prepare(tmp: &Path, geo: &Geometry) -> std::io::Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(tmp)?;
    // Allocated, not sparse: a store into the mapping never needs a block.
    crate::space::reserve_new(&file, geo.file_len)?;
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

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
