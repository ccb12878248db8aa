//! The in-memory backend: an ordered map, for tests and examples.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;

use super::{append_key, bounds_cross, Caps, Entries, Entry, Range, StoreFuture, StorePort};
use crate::Error;

/// How many entries a scan copies out per visit to the map.
const SCAN_BATCH: usize = 64;

/// A store port in memory: an ordered map behind a lock. Clones share the
/// map. It holds everything it is given; nothing survives the process.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    map: BTreeMap<Bytes, Bytes>,
    /// The seq of the last append.
    appended: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.read(|inner| inner.map.len())
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read<T>(&self, f: impl FnOnce(&Inner) -> T) -> T {
        // No code panics while holding the lock; a poisoned map is intact.
        f(&self.inner.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.write().unwrap_or_else(PoisonError::into_inner))
    }
}

impl StorePort for MemoryStore {
    fn get(&self, key: Bytes, _caps: Caps) -> StoreFuture<'_, Option<Bytes>> {
        let value = self.read(|inner| inner.map.get(&key).cloned());
        Box::pin(async move { Ok(value) })
    }

    fn put(&self, key: Bytes, value: Bytes, _caps: Caps) -> StoreFuture<'_, ()> {
        self.write(|inner| inner.map.insert(key, value));
        Box::pin(async { Ok(()) })
    }

    fn del(&self, key: Bytes, _caps: Caps) -> StoreFuture<'_, ()> {
        self.write(|inner| inner.map.remove(&key));
        Box::pin(async { Ok(()) })
    }

    fn append(&self, value: Bytes, _caps: Caps) -> StoreFuture<'_, Bytes> {
        let key = self.write(|inner| {
            inner.appended += 1;
            let key = append_key(inner.appended);
            inner.map.insert(key.clone(), value);
            key
        });
        Box::pin(async move { Ok(key) })
    }

    fn scan(&self, range: Range, _caps: Caps) -> StoreFuture<'_, Entries> {
        let scan = range.bounds().map(|(lower, upper)| MemoryScan {
            store: self.clone(),
            reverse: range.reverse,
            range,
            lower,
            upper,
            batch: VecDeque::new(),
        });
        Box::pin(async move {
            Ok(match scan {
                Some(scan) => Entries::new(scan),
                None => Entries::new(Empty),
            })
        })
    }
}

/// A scan that copies out [`SCAN_BATCH`] entries at a time, resuming after
/// the last key it saw, so a slow consumer holds no lock and no snapshot.
struct MemoryScan {
    store: MemoryStore,
    range: Range,
    reverse: bool,
    lower: Bound<Bytes>,
    upper: Bound<Bytes>,
    batch: VecDeque<Entry>,
}

impl MemoryScan {
    fn refill(&mut self) {
        let (lower, upper) = (self.lower.clone(), self.upper.clone());
        if bounds_cross(&lower, &upper) {
            return;
        }
        let batch: VecDeque<Entry> = self.store.read(|inner| {
            let entries = inner.map.range((lower, upper));
            let take = |(k, v): (&Bytes, &Bytes)| Entry {
                key: k.clone(),
                value: v.clone(),
            };
            if self.reverse {
                entries.rev().take(SCAN_BATCH).map(take).collect()
            } else {
                entries.take(SCAN_BATCH).map(take).collect()
            }
        });
        if let Some(last) = batch.back() {
            if self.reverse {
                self.upper = Bound::Excluded(last.key.clone());
            } else {
                self.lower = Bound::Excluded(last.key.clone());
            }
        } else {
            // Exhausted: make the bounds cross so no later visit looks again.
            self.lower = Bound::Excluded(Bytes::new());
            self.upper = Bound::Excluded(Bytes::new());
        }
        debug_assert!(batch.iter().all(|e| self.range.contains(&e.key)));
        self.batch = batch;
    }
}

impl Stream for MemoryScan {
    type Item = Result<Entry, Error>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.batch.is_empty() {
            self.refill();
        }
        Poll::Ready(self.batch.pop_front().map(Ok))
    }
}

/// The entries of an empty range.
struct Empty;

impl Stream for Empty {
    type Item = Result<Entry, Error>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(None)
    }
}
