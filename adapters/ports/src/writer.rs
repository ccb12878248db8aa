//! The redb writer thread: group commit of queued writes.
//!
//! Async writers push a [`Pending`] write onto a bounded queue and await
//! its reply. One thread takes whatever is queued (up to [`MAX_BATCH`]),
//! applies it in one write transaction, commits it durably once, and then
//! answers every write in the batch: concurrent writers share one fsync.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_channel::{Receiver, Sender, TrySendError};
use bytes::Bytes;
use plex_peer::store::append_key;
use plex_peer::Error;
use redb::{Database, Durability, ReadableTable, TableDefinition};

use crate::kv::driver_error;

/// Keys and values, appended entries included.
pub(crate) const DATA: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("data");
/// The append counter, under [`APPENDED`].
pub(crate) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// The seq of the last append.
pub(crate) const APPENDED: &str = "appended";

/// Writes the queue holds before writers wait.
pub(crate) const QUEUE: usize = 1024;
/// The most writes one transaction applies.
const MAX_BATCH: usize = 256;

/// One write.
pub(crate) enum Write {
    Put(Bytes, Bytes),
    Del(Bytes),
    Append(Bytes),
}

/// A write and where to send its outcome: the seq for an append.
pub(crate) struct Pending {
    write: Write,
    reply: Sender<Result<Option<u64>, Error>>,
}

/// What the writer has done, shared with the handles.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) commits: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) waited: AtomicU64,
}

/// Queues `write` and waits until it is committed (or failed).
pub(crate) async fn submit(
    queue: &Sender<Pending>,
    counters: &Counters,
    write: Write,
) -> Result<Option<u64>, Error> {
    let (reply, outcome) = async_channel::bounded(1);
    match queue.try_send(Pending { write, reply }) {
        Ok(()) => {}
        Err(TrySendError::Full(pending)) => {
            counters.waited.fetch_add(1, Ordering::Relaxed);
            queue.send(pending).await.map_err(|_| stopped())?;
        }
        Err(TrySendError::Closed(_)) => return Err(stopped()),
    }
    outcome.recv().await.map_err(|_| stopped())?
}

/// The writer thread's loop; returns when the queue is closed and drained.
pub(crate) fn run(db: Arc<Database>, queue: Receiver<Pending>, counters: Arc<Counters>) {
    while let Ok(first) = queue.recv_blocking() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        match commit(&db, &batch) {
            Ok(seqs) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters
                    .writes
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                for (pending, seq) in batch.into_iter().zip(seqs) {
                    // A writer that stopped waiting dropped its receiver.
                    let _ = pending.reply.try_send(Ok(seq));
                }
            }
            Err(e) => {
                for pending in batch {
                    let _ = pending.reply.try_send(Err(e.clone()));
                }
            }
        }
    }
}

/// Applies `batch` in one transaction and commits it durably; the seq of
/// each append, in batch order. The append counter is stored in the same
/// transaction, so a seq is never handed out twice, even after a crash.
/// Any failure aborts the whole batch.
fn commit(db: &Database, batch: &[Pending]) -> Result<Vec<Option<u64>>, Error> {
    let mut txn = db.begin_write().map_err(driver_error)?;
    txn.set_durability(Durability::Immediate);
    let mut seqs = Vec::with_capacity(batch.len());
    {
        let mut data = txn.open_table(DATA).map_err(driver_error)?;
        let mut meta = txn.open_table(META).map_err(driver_error)?;
        let before = meta
            .get(APPENDED)
            .map_err(driver_error)?
            .map_or(0, |seq| seq.value());
        let mut last = before;
        for pending in batch {
            let seq = match &pending.write {
                Write::Put(key, value) => {
                    data.insert(&**key, &**value).map_err(driver_error)?;
                    None
                }
                Write::Del(key) => {
                    data.remove(&**key).map_err(driver_error)?;
                    None
                }
                Write::Append(value) => {
                    last += 1;
                    data.insert(&*append_key(last), &**value)
                        .map_err(driver_error)?;
                    Some(last)
                }
            };
            seqs.push(seq);
        }
        if last != before {
            meta.insert(APPENDED, last).map_err(driver_error)?;
        }
    }
    txn.commit().map_err(driver_error)?;
    Ok(seqs)
}

fn stopped() -> Error {
    Error::failed(
        plex_peer::Code::DriverError,
        "the store's writer thread stopped",
    )
}
