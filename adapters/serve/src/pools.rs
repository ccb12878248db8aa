//! The pool directory: names, the handles kept open across requests, and
//! the bounded pool of threads every blocking storage call runs on.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use plex_store::{Info, Notifier, Options, Pool, Seq};
use serde::Serialize;
use tokio::sync::{watch, Semaphore};

use crate::error::{ApiError, Kind};

/// The extension of pool files: pool `NAME` is `DIR/NAME.plex`, as for the
/// `plex` CLI.
pub const EXTENSION: &str = "plex";

/// The extension of the `path` reported in pool info. Plasmite's CLI takes
/// a served pool's name from the basename of `path` minus `.plasmite`, so
/// `path` is `DIR/NAME.plasmite`; the file itself is in `file`.
pub const WIRE_EXTENSION: &str = "plasmite";

/// Open handles kept beyond this many are closed when no request uses them.
const MAX_CACHED: usize = 1024;

/// A pool file of the directory: its name, and its open pool or why it
/// could not be opened.
pub(crate) type Scanned = (String, Result<Arc<Entry>, plex_store::Error>);

/// The served directory and its open pools.
#[derive(Debug)]
pub(crate) struct Pools {
    dir: PathBuf,
    open: Mutex<HashMap<String, Arc<Entry>>>,
    storage: Arc<Semaphore>,
}

/// An open pool, shared by the requests and tails that use it.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The pool's name.
    pub(crate) name: String,
    /// The handle, opened for appending.
    pub(crate) pool: Arc<Pool>,
    /// The file's device and inode: a pool deleted and created again under
    /// the same name (by any process) is a new file, opened anew.
    id: (u64, u64),
    /// Wakes tails; started by the first tail.
    notifier: Mutex<Option<Arc<Notifier>>>,
    /// Turns true once the file is known deleted (or replaced): tails of it
    /// end then, rather than wait for appends that cannot come.
    gone: watch::Sender<bool>,
}

impl Pools {
    /// Serves `dir` (already created), with at most `max_calls` storage
    /// calls at once.
    pub(crate) fn new(dir: PathBuf, max_calls: usize) -> Pools {
        Pools {
            dir,
            open: Mutex::default(),
            storage: Arc::new(Semaphore::new(max_calls)),
        }
    }

    /// Runs a blocking storage call on tokio's blocking threads. At most
    /// `max_storage_calls` run at once; one more fails at once with Busy
    /// rather than queueing, as in Plasmite.
    pub(crate) async fn run<T, F>(self: &Arc<Pools>, call: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Pools) -> Result<T, ApiError> + Send + 'static,
    {
        let permit = self
            .storage
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::busy("server storage executor is saturated"))?;
        let pools = self.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            call(&pools)
        });
        task.await
            .map_err(|e| ApiError::new(Kind::Internal, format!("storage call failed: {e}")))?
    }

    /// The file of pool `name`.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.{EXTENSION}"))
    }

    /// The `path` reported for pool `name`; see [`WIRE_EXTENSION`].
    pub(crate) fn wire_path(&self, name: &str) -> String {
        self.dir
            .join(format!("{name}.{WIRE_EXTENSION}"))
            .to_string_lossy()
            .into_owned()
    }

    /// Opens pool `name`, or returns its open handle.
    pub(crate) fn open(&self, name: &str) -> Result<Arc<Entry>, ApiError> {
        self.open_store(name).map_err(|e| self.error(name, &e))
    }

    /// [`Pools::open`], failing with the store's error.
    pub(crate) fn open_store(&self, name: &str) -> Result<Arc<Entry>, plex_store::Error> {
        let path = self.file(name);
        let id = match std::fs::metadata(&path) {
            Ok(meta) => (meta.dev(), meta.ino()),
            Err(e) => {
                if e.kind() == std::io::ErrorKind::NotFound {
                    self.forget(name);
                }
                return Err(self.store_io_error(name, e));
            }
        };
        match self.lock().get(name) {
            Some(entry) if entry.id == id => return Ok(entry.clone()),
            // Deleted and created again since: the old file is gone.
            Some(entry) => entry.mark_gone(),
            None => {}
        }
        let pool = Pool::open_with(&path, Options::new())?;
        Ok(self.insert(name, pool))
    }

    /// Creates pool `name` with `size` bytes.
    pub(crate) fn create(&self, name: &str, size: u64) -> Result<Arc<Entry>, ApiError> {
        self.create_store(name, size, Options::new())
            .map_err(|e| self.error(name, &e))
    }

    /// Creates pool `name` with `size` bytes and `options`, failing with
    /// the store's error.
    pub(crate) fn create_store(
        &self,
        name: &str,
        size: u64,
        options: Options,
    ) -> Result<Arc<Entry>, plex_store::Error> {
        let pool = Pool::create(self.file(name), size, options)?;
        Ok(self.insert(name, pool))
    }

    /// Deletes pool `name`. Tails of it end at their deadline; its file is
    /// freed when the last of them closes it.
    pub(crate) fn delete(&self, name: &str) -> Result<(), ApiError> {
        self.check_deletable(name)?;
        let path = self.file(name);
        std::fs::remove_file(&path).map_err(|e| self.io_error(name, e))?;
        self.forget(name);
        Ok(())
    }

    /// Whether `entry`'s file is still pool `name`'s (not deleted, nor
    /// replaced by another file); forgets it and ends its tails if not.
    pub(crate) fn still_there(&self, entry: &Entry) -> bool {
        let there = std::fs::metadata(self.file(&entry.name))
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == entry.id);
        if !there {
            entry.mark_gone();
            let mut open = self.lock();
            if open.get(&entry.name).is_some_and(|e| e.id == entry.id) {
                open.remove(&entry.name);
            }
        }
        there
    }

    /// Closes the handle of pool `name`, whose file was deleted: its tails
    /// end.
    fn forget(&self, name: &str) {
        if let Some(entry) = self.lock().remove(name) {
            entry.mark_gone();
        }
    }

    /// Checks that pool `name` is a file that starts as a plex pool (a
    /// damaged pool may be deleted; a file of another kind may not).
    pub(crate) fn check_deletable(&self, name: &str) -> Result<(), ApiError> {
        let path = self.file(name);
        match plex_store::is_pool(&path) {
            Ok(true) => Ok(()),
            Ok(false) => {
                let mut err = ApiError::usage(format!(
                    "refusing to delete {}: it is not a plex pool",
                    path.display()
                ));
                err.path = Some(path.to_string_lossy().into_owned());
                Err(err)
            }
            Err(e) => Err(self.error(name, &e)),
        }
    }

    /// Every pool of the directory (`*.plex`), by name. A file that does
    /// not open as a pool is left out of the listing (and logged).
    pub(crate) fn list(&self) -> Result<Vec<Arc<Entry>>, ApiError> {
        let mut pools = Vec::new();
        for (name, opened) in self.scan()? {
            match opened {
                Ok(entry) => pools.push(entry),
                Err(e) => {
                    let e = self.error(&name, &e);
                    tracing::warn!(pool = %name, error = %e, "pool left out of the listing");
                }
            }
        }
        Ok(pools)
    }

    /// Every pool file of the directory (`*.plex`) by name, each opened or
    /// with the store's reason it could not be: for listings that report
    /// the pools they cannot read, as the `plex` CLI does.
    pub(crate) fn scan(&self) -> Result<Vec<Scanned>, ApiError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| {
            ApiError::new(Kind::Io, format!("cannot list {}: {e}", self.dir.display()))
        })?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| {
                ApiError::new(Kind::Io, format!("cannot list {}: {e}", self.dir.display()))
            })?;
            let path = entry.path();
            if path.extension().is_some_and(|x| x == EXTENSION) && path.is_file() {
                if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                    names.push(stem.to_owned());
                }
            }
        }
        names.sort();
        Ok(names
            .into_iter()
            .map(|name| {
                let opened = self.open_store(&name);
                (name, opened)
            })
            .collect())
    }

    /// Syncs every open pool (at shutdown); the first failure is returned
    /// after trying them all.
    pub(crate) fn sync_all(&self) -> Result<(), plex_store::Error> {
        let entries: Vec<Arc<Entry>> = self.lock().values().cloned().collect();
        let mut first = None;
        for entry in entries {
            match entry.pool.sync() {
                Ok(seq) => tracing::debug!(pool = %entry.name, synced = seq.get(), "pool synced"),
                Err(e) => {
                    tracing::error!(pool = %entry.name, error = %e, "sync failed");
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Keeps `pool` open as `name`, closing unused handles beyond
    /// [`MAX_CACHED`].
    fn insert(&self, name: &str, pool: Pool) -> Arc<Entry> {
        let id = std::fs::metadata(pool.path()).map_or((0, 0), |m| (m.dev(), m.ino()));
        let entry = Arc::new(Entry {
            name: name.to_owned(),
            pool: Arc::new(pool),
            id,
            notifier: Mutex::default(),
            gone: watch::channel(false).0,
        });
        let mut open = self.lock();
        if open.len() >= MAX_CACHED {
            open.retain(|_, e| Arc::strong_count(e) > 1);
        }
        open.insert(name.to_owned(), entry.clone());
        entry
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A store error on pool `name`.
    pub(crate) fn error(&self, name: &str, e: &plex_store::Error) -> ApiError {
        ApiError::store(e, &self.file(name))
    }

    /// An OS error on the file of pool `name`.
    fn io_error(&self, name: &str, e: std::io::Error) -> ApiError {
        self.error(name, &self.store_io_error(name, e))
    }

    /// An OS error on the file of pool `name`, as the store reports it.
    fn store_io_error(&self, name: &str, e: std::io::Error) -> plex_store::Error {
        let path = self.file(name);
        match e.kind() {
            std::io::ErrorKind::NotFound => plex_store::Error::NotFound { path: path.clone() },
            std::io::ErrorKind::PermissionDenied => plex_store::Error::Permission {
                path: path.clone(),
                source: e,
            },
            _ => plex_store::Error::Io {
                path: path.clone(),
                source: e,
            },
        }
    }
}

impl Entry {
    /// The notifier of this pool, started on first use.
    pub(crate) fn notifier(&self) -> Result<Arc<Notifier>, plex_store::Error> {
        let mut slot = self.notifier.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = &*slot {
            return Ok(n.clone());
        }
        let n = Arc::new(Notifier::new(self.pool.clone())?);
        *slot = Some(n.clone());
        Ok(n)
    }

    /// Waits until the pool's file is known deleted.
    pub(crate) async fn deleted(&self) {
        // The sender lives as long as `self`.
        let _ = self.gone.subscribe().wait_for(|gone| *gone).await;
    }

    fn mark_gone(&self) {
        self.gone.send_replace(true);
    }

    /// Plasmite's `PoolInfo` of this pool, `path` being `wire_path`.
    pub(crate) fn info(&self, wire_path: String) -> PoolInfo {
        let info = self.pool.info();
        PoolInfo::new(&self.name, wire_path, &info, |seq| {
            self.pool.get(seq).ok().map(|m| m.time)
        })
    }
}

/// Checks a `{pool}` of a request: a name in the directory, never a path.
pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    if name.contains('/') || name.contains('\\') {
        return Err(ApiError::usage(
            "pool name must not contain path separators",
        ));
    }
    let why = if name.is_empty() {
        "is empty"
    } else if name == "." || name == ".." {
        "is a directory reference"
    } else if name.contains('\0') {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(ApiError::usage(format!(
        "invalid pool name `{name}`: it {why}"
    )))
}

/// Plasmite's `PoolInfo`, with plex's real pool file added as `file`.
#[derive(Debug, Serialize)]
pub(crate) struct PoolInfo {
    name: String,
    path: String,
    file: String,
    file_size: u64,
    index_offset: u64,
    index_capacity: u32,
    index_size_bytes: u64,
    ring_offset: u64,
    ring_size: u64,
    bounds: Bounds,
    metrics: Metrics,
}

#[derive(Debug, Serialize)]
struct Bounds {
    #[serde(skip_serializing_if = "Option::is_none")]
    oldest: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    newest: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Metrics {
    message_count: u64,
    seq_span: u64,
    utilization: Utilization,
    age: Age,
}

#[derive(Debug, Serialize)]
struct Utilization {
    used_bytes: u64,
    free_bytes: u64,
    used_percent: f64,
}

#[derive(Debug, Serialize)]
struct Age {
    oldest_time: Option<String>,
    newest_time: Option<String>,
    oldest_age_ms: Option<u64>,
    newest_age_ms: Option<u64>,
}

/// The file offset of the index (`FORMAT.md` §2.1: right after the header).
const INDEX_OFFSET: u64 = 4096;

impl PoolInfo {
    /// Describes a pool from its snapshot; `time_of` reads a message's time.
    fn new(
        name: &str,
        path: String,
        info: &Info,
        time_of: impl Fn(Seq) -> Option<SystemTime>,
    ) -> PoolInfo {
        let ring_offset = info.file_len - info.ring_len;
        let count = info.len();
        let used = if count == 0 {
            0
        } else if info.head > info.tail {
            info.head - info.tail
        } else {
            info.ring_len - info.tail + info.head
        };
        let (oldest, newest) = if count == 0 {
            (None, None)
        } else {
            (time_of(info.oldest), time_of(info.newest))
        };
        let now = SystemTime::now();
        let age_ms = |t: Option<SystemTime>| {
            t.map(|t| {
                let ms = now.duration_since(t).unwrap_or_default().as_millis();
                u64::try_from(ms).unwrap_or(u64::MAX)
            })
        };
        PoolInfo {
            name: name.to_owned(),
            path,
            file: info.path.to_string_lossy().into_owned(),
            file_size: info.file_len,
            index_offset: INDEX_OFFSET,
            // Plasmite's clients read a u32; no pool under 2 TiB has more.
            index_capacity: u32::try_from(info.index_slots).unwrap_or(u32::MAX),
            index_size_bytes: ring_offset - INDEX_OFFSET,
            ring_offset,
            ring_size: info.ring_len,
            bounds: Bounds {
                oldest: (count > 0).then(|| info.oldest.get()),
                newest: (count > 0).then(|| info.newest.get()),
            },
            metrics: Metrics {
                message_count: count,
                seq_span: count,
                utilization: Utilization {
                    used_bytes: used,
                    free_bytes: info.ring_len - used,
                    used_percent: (u128::from(used) * 10_000 / u128::from(info.ring_len)) as f64
                        / 100.0,
                },
                age: Age {
                    oldest_time: oldest.map(crate::wire::rfc3339),
                    newest_time: newest.map(crate::wire::rfc3339),
                    oldest_age_ms: age_ms(oldest),
                    newest_age_ms: age_ms(newest),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_leave_the_directory() {
        for good in ["demo", "a.b", "..x", "with space"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "/", "a\\b", "a\0b"] {
            let err = check_name(bad).unwrap_err();
            assert_eq!(err.kind, Kind::Usage, "{bad:?}");
        }
        assert_eq!(
            check_name("a/b").unwrap_err().message,
            "pool name must not contain path separators"
        );
    }
}
