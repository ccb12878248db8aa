//! [`PoolStore`]: a store port over a plex-store pool, append-only.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use plex_peer::store::{
    append_key, parse_append_key, Caps, Entries, Entry, Range, StoreFuture, StorePort,
};
use plex_peer::{Code, Error};
use plex_store::{ErrorKind, Pool, Seq, Start};

use crate::batches::{Batches, Empty, Source, SCAN_BATCH};

/// A store port over a [`Pool`]: its log is the pool's messages.
///
/// [`StorePort::append`] appends the value as a message's data (no tags)
/// and returns [`append_key`] of its seq; [`StorePort::get`] and
/// [`StorePort::scan`] see exactly the append keys of the messages the
/// pool still holds (the ring overwrites the oldest). Pools are
/// append-only: put and del fail with [`Code::NotAvailable`].
///
/// An append is as durable as the pool's [`plex_store::Durability`] says
/// when its future resolves. Every pool call runs on the `blocking`
/// thread pool, since it may touch the disk or wait for a sync.
#[derive(Debug, Clone)]
pub struct PoolStore {
    pool: Arc<Pool>,
}

impl PoolStore {
    /// A port over `pool`, which must be open for appending
    /// ([`Pool::open`] or [`Pool::create`]) for appends to succeed.
    pub fn new(pool: impl Into<Arc<Pool>>) -> PoolStore {
        PoolStore { pool: pool.into() }
    }

    /// The pool.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
}

impl StorePort for PoolStore {
    fn get(&self, key: Bytes, _caps: Caps) -> StoreFuture<'_, Option<Bytes>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let Some(seq) = parse_append_key(&key).filter(|&seq| seq > 0) else {
                return Ok(None);
            };
            blocking::unblock(move || match pool.get(Seq(seq)) {
                Ok(message) => Ok(Some(message.data.into())),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(pool_error(e)),
            })
            .await
        })
    }

    fn put(&self, _key: Bytes, _value: Bytes, _caps: Caps) -> StoreFuture<'_, ()> {
        Box::pin(async { Err(append_only()) })
    }

    fn del(&self, _key: Bytes, _caps: Caps) -> StoreFuture<'_, ()> {
        Box::pin(async { Err(append_only()) })
    }

    fn append(&self, value: Bytes, _caps: Caps) -> StoreFuture<'_, Bytes> {
        let pool = self.pool.clone();
        Box::pin(blocking::unblock(move || {
            let seq = pool.append(&[], &value).map_err(|e| match e {
                // With no tags, the only misuse an append can make: a value
                // larger than the pool's largest message.
                plex_store::Error::Usage(why) => Error::failed(Code::PayloadTooLarge, why),
                e => pool_error(e),
            })?;
            Ok(append_key(seq.get()))
        }))
    }

    fn scan(&self, range: Range, _caps: Caps) -> StoreFuture<'_, Entries> {
        let seqs = range
            .bounds()
            .and_then(|(lower, upper)| seq_interval(&lower, &upper));
        let entries = match seqs {
            Some((first, last)) => Entries::new(Batches::new(PoolScan {
                pool: self.pool.clone(),
                next: if range.reverse { last } else { first },
                end: if range.reverse { first } else { last },
                reverse: range.reverse,
                done: false,
            })),
            None => Entries::new(Empty),
        };
        Box::pin(async move { Ok(entries) })
    }
}

/// The first and last seq whose append keys lie between `lower` and
/// `upper`, `None` if none does. Append keys sort as their seqs do, so
/// each end is a binary search over the seqs.
fn seq_interval(lower: &Bound<Bytes>, upper: &Bound<Bytes>) -> Option<(u64, u64)> {
    let above = |seq: u64| match lower {
        Bound::Included(b) => append_key(seq) >= b,
        Bound::Excluded(b) => append_key(seq) > b,
        Bound::Unbounded => true,
    };
    let below = |seq: u64| match upper {
        Bound::Included(b) => append_key(seq) <= b,
        Bound::Excluded(b) => append_key(seq) < b,
        Bound::Unbounded => true,
    };
    let first = first_false(|seq| !above(seq))?;
    let last = first_false(below).map_or(u64::MAX, |after| after - 1);
    (first <= last).then_some((first, last))
}

/// The least seq in `1..=u64::MAX` for which `pred` is false, where
/// `pred` holds for a (possibly empty) run of the least seqs and for no
/// other; `None` if it holds for all.
fn first_false(pred: impl Fn(u64) -> bool) -> Option<u64> {
    if pred(u64::MAX) {
        return None;
    }
    // Invariant: every seq below `lo` satisfies `pred`, `hi` does not.
    let (mut lo, mut hi) = (1u64, u64::MAX);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Some(lo)
}

/// A scan's remaining seqs: from `next` towards `end`, both inclusive.
struct PoolScan {
    pool: Arc<Pool>,
    next: u64,
    end: u64,
    reverse: bool,
    done: bool,
}

impl Source for PoolScan {
    fn next_batch(&mut self) -> Result<Vec<Entry>, Error> {
        if self.done {
            return Ok(Vec::new());
        }
        let mut batch = Vec::new();
        if self.reverse {
            self.backward(&mut batch)?;
        } else {
            self.forward(&mut batch)?;
        }
        if batch.is_empty() {
            self.done = true;
        }
        Ok(batch)
    }
}

impl PoolScan {
    /// Reads up with a cursor, skipping overwritten seqs, until `end` or
    /// the newest message.
    fn forward(&mut self, batch: &mut Vec<Entry>) -> Result<(), Error> {
        let mut cursor = self.pool.cursor(Start::Seq(Seq(self.next)));
        while batch.len() < SCAN_BATCH {
            match cursor.try_next() {
                Ok(Some(message)) if message.seq.get() <= self.end => {
                    batch.push(entry(message.seq.get(), message.data));
                    if message.seq.get() == self.end {
                        self.done = true;
                        return Ok(());
                    }
                }
                Ok(_) => {
                    self.done = true;
                    return Ok(());
                }
                // Overwritten before we got there; the cursor moved past.
                Err(plex_store::Error::RetentionGap { .. }) => {}
                Err(e) => return Err(pool_error(e)),
            }
        }
        self.next = cursor.next_seq().get();
        Ok(())
    }

    /// Reads down by seq until `end` or the oldest message held.
    fn backward(&mut self, batch: &mut Vec<Entry>) -> Result<(), Error> {
        while batch.len() < SCAN_BATCH {
            if self.next < self.end {
                self.done = true;
                return Ok(());
            }
            match self.pool.get(Seq(self.next)) {
                Ok(message) => batch.push(entry(self.next, message.data)),
                Err(plex_store::Error::SeqNotFound { newest, .. }) => {
                    // Past the newest: start there. Otherwise everything
                    // from here down was overwritten (or the pool is empty).
                    if self.next > newest.get() && newest.get() >= self.end {
                        self.next = newest.get();
                        continue;
                    }
                    self.done = true;
                    return Ok(());
                }
                Err(e) => return Err(pool_error(e)),
            }
            if self.next == self.end {
                self.done = true;
                return Ok(());
            }
            self.next -= 1;
        }
        Ok(())
    }
}

fn entry(seq: u64, data: Vec<u8>) -> Entry {
    Entry {
        key: append_key(seq),
        value: data.into(),
    }
}

fn append_only() -> Error {
    Error::failed(Code::NotAvailable, "pools are append-only")
}

/// A pool failure, as the port reports it.
fn pool_error(e: plex_store::Error) -> Error {
    Error::failed(Code::DriverError, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(range: Range) -> Option<(u64, u64)> {
        let (lower, upper) = range.bounds()?;
        seq_interval(&lower, &upper)
    }

    #[test]
    fn ranges_become_the_seqs_of_the_append_keys_inside_them() {
        assert_eq!(interval(Range::all()), Some((1, u64::MAX)));
        assert_eq!(interval(Range::prefix("log/")), Some((1, u64::MAX)));
        assert_eq!(interval(Range::prefix("mog/")), None);
        assert_eq!(
            interval(Range::prefix("log/0000000000000000001")),
            Some((10, 19))
        );
        assert_eq!(
            interval(Range::all().gt(append_key(5))),
            Some((6, u64::MAX))
        );
        assert_eq!(
            interval(Range::all().gte(append_key(5)).lt(append_key(9))),
            Some((5, 8))
        );
        assert_eq!(interval(Range::all().lte(append_key(9))), Some((1, 9)));
        assert_eq!(interval(Range::all().lt(append_key(1))), None);
        assert_eq!(interval(Range::all().gt(append_key(u64::MAX))), None);
        // Bounds between append keys, and beyond the largest seq.
        assert_eq!(
            interval(Range::all().lt("log/00000000000000000010\0")),
            Some((1, 10))
        );
        assert_eq!(
            interval(Range::all().gte("log/1")),
            Some((10_000_000_000_000_000_000, u64::MAX))
        );
        assert_eq!(interval(Range::all().gte("log/99")), None);
    }
}
