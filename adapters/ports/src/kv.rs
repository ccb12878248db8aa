//! [`RedbStore`]: a store port in a redb file.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use async_channel::Sender;
use bytes::Bytes;
use plex_peer::store::{bounds_cross, Caps, Entries, Entry, Range, StoreFuture, StorePort};
use plex_peer::{Code, Error};
use redb::Database;

use crate::batches::{Batches, Empty, Source, SCAN_BATCH};
use crate::writer::{self, Counters, Pending, Write, APPENDED, DATA, META, QUEUE};
use crate::OpenError;

/// A store port in one redb file: keys and values in one table, the
/// append counter in another.
///
/// Every put, del and append is committed with
/// [`redb::Durability::Immediate`] before its future resolves. Writes go
/// through one writer thread that commits whatever is queued in one
/// transaction (group commit), so concurrent writers share an fsync; the
/// queue holds [`RedbStore::QUEUE`] writes, and writers beyond that wait.
/// A batch commits whole or not at all: if redb refuses one of its writes,
/// every write in that batch fails with the error.
/// Reads and scan batches run on the `blocking` thread pool, in read
/// transactions that never wait for the writer: a read may wait on the
/// disk, which must not stall the executor, and running reads on the
/// writer thread would queue them behind commits. `blocking` is
/// runtime-agnostic (smol and async-std use it themselves), so the store
/// works the same under every runtime.
///
/// Clones share the file and the writer thread; the thread stops when the
/// last clone drops, after committing what is queued. A running scan keeps
/// the file open until it is dropped.
#[derive(Debug, Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

/// What a [`RedbStore`]'s writer has done since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Write transactions committed.
    pub commits: u64,
    /// Writes (puts, dels and appends) committed; more than `commits`
    /// when concurrent writes shared a commit.
    pub writes: u64,
    /// Writes that found the queue full and waited for room.
    pub waited: u64,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    db: Arc<Database>,
    queue: Sender<Pending>,
    counters: Arc<Counters>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl RedbStore {
    /// How many writes the queue holds before writers wait.
    pub const QUEUE: usize = QUEUE;

    /// Opens the store at `path`, creating the file if there is none, and
    /// starts its writer thread. Blocks on file IO: from async code, call
    /// it through `blocking::unblock` or the runtime's equivalent.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, OpenError> {
        let path = path.as_ref().to_path_buf();
        let fail = |e: redb::Error| OpenError::from_redb(path.clone(), e);
        let db = Database::create(&path).map_err(|e| fail(e.into()))?;
        let txn = db.begin_write().map_err(|e| fail(e.into()))?;
        txn.open_table(DATA).map_err(|e| fail(e.into()))?;
        txn.open_table(META).map_err(|e| fail(e.into()))?;
        txn.commit().map_err(|e| fail(e.into()))?;

        let db = Arc::new(db);
        let counters = Arc::new(Counters::default());
        let (queue, pending) = async_channel::bounded(QUEUE);
        let thread = std::thread::Builder::new()
            .name("plex-redb-writer".into())
            .spawn({
                let (db, counters) = (db.clone(), counters.clone());
                move || writer::run(db, pending, counters)
            })
            .map_err(|source| OpenError::Thread {
                path: path.clone(),
                source,
            })?;
        Ok(RedbStore {
            inner: Arc::new(Inner {
                path,
                db,
                queue,
                counters,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// What the writer has done since the store was opened.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            commits: c.commits.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            waited: c.waited.load(Ordering::Relaxed),
        }
    }

    /// The seq of the last append, 0 before the first.
    pub async fn appended(&self) -> Result<u64, Error> {
        let db = self.inner.db.clone();
        blocking::unblock(move || {
            let txn = db.begin_read().map_err(driver_error)?;
            let meta = txn.open_table(META).map_err(driver_error)?;
            let seq = meta.get(APPENDED).map_err(driver_error)?;
            Ok(seq.map_or(0, |seq| seq.value()))
        })
        .await
    }

    async fn write(&self, write: Write) -> Result<Option<u64>, Error> {
        writer::submit(&self.inner.queue, &self.inner.counters, write).await
    }
}

impl StorePort for RedbStore {
    fn get(&self, key: Bytes, _caps: Caps) -> StoreFuture<'_, Option<Bytes>> {
        let db = self.inner.db.clone();
        Box::pin(blocking::unblock(move || {
            let txn = db.begin_read().map_err(driver_error)?;
            let data = txn.open_table(DATA).map_err(driver_error)?;
            let value = data.get(&*key).map_err(driver_error)?;
            Ok(value.map(|v| Bytes::copy_from_slice(v.value())))
        }))
    }

    fn put(&self, key: Bytes, value: Bytes, _caps: Caps) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.write(Write::Put(key, value)).await.map(drop) })
    }

    fn del(&self, key: Bytes, _caps: Caps) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.write(Write::Del(key)).await.map(drop) })
    }

    fn append(&self, value: Bytes, _caps: Caps) -> StoreFuture<'_, Bytes> {
        Box::pin(async move {
            match self.write(Write::Append(value)).await? {
                Some(seq) => Ok(plex_peer::store::append_key(seq)),
                None => Err(Error::failed(
                    Code::DriverError,
                    "the writer answered an append without a seq",
                )),
            }
        })
    }

    fn scan(&self, range: Range, _caps: Caps) -> StoreFuture<'_, Entries> {
        let entries = match range.bounds() {
            Some((lower, upper)) => Entries::new(Batches::new(RedbScan {
                db: self.inner.db.clone(),
                lower,
                upper,
                reverse: range.reverse,
            })),
            None => Entries::new(Empty),
        };
        Box::pin(async move { Ok(entries) })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer drains what is queued, then sees the queue closed.
        self.queue.close();
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            // A writer that panicked has nothing left to commit.
            let _ = thread.join();
        }
    }
}

/// A redb failure, as the port reports it.
pub(crate) fn driver_error(e: impl Into<redb::Error>) -> Error {
    Error::failed(Code::DriverError, e.into().to_string())
}

/// A scan's remaining range: each batch is read in a fresh read
/// transaction, starting after the last key of the previous one.
struct RedbScan {
    db: Arc<Database>,
    lower: Bound<Bytes>,
    upper: Bound<Bytes>,
    reverse: bool,
}

impl Source for RedbScan {
    fn next_batch(&mut self) -> Result<Vec<Entry>, Error> {
        // redb panics on crossed bounds, and an exhausted scan crosses them.
        if bounds_cross(&self.lower, &self.upper) {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_read().map_err(driver_error)?;
        let data = txn.open_table(DATA).map_err(driver_error)?;
        let bounds = (as_slice(&self.lower), as_slice(&self.upper));
        let range = data.range::<&[u8]>(bounds).map_err(driver_error)?;
        let entry = |item: Result<_, redb::StorageError>| {
            let (k, v): (redb::AccessGuard<'_, &[u8]>, redb::AccessGuard<'_, &[u8]>) =
                item.map_err(driver_error)?;
            Ok(Entry {
                key: Bytes::copy_from_slice(k.value()),
                value: Bytes::copy_from_slice(v.value()),
            })
        };
        let batch: Vec<Entry> = if self.reverse {
            range
                .rev()
                .take(SCAN_BATCH)
                .map(entry)
                .collect::<Result<_, Error>>()?
        } else {
            range
                .take(SCAN_BATCH)
                .map(entry)
                .collect::<Result<_, Error>>()?
        };
        match batch.last() {
            Some(last) if self.reverse => self.upper = Bound::Excluded(last.key.clone()),
            Some(last) => self.lower = Bound::Excluded(last.key.clone()),
            None => {}
        }
        Ok(batch)
    }
}

fn as_slice(bound: &Bound<Bytes>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key),
        Bound::Excluded(key) => Bound::Excluded(key),
        Bound::Unbounded => Bound::Unbounded,
    }
}
