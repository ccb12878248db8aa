//! The server side of remote pools: one task per operation stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::AsyncWriteExt;
use plex_proto::pools::{
    Durability as WireDurability, ErrorKind, ErrorRecord, Message, PoolInfo, Record, Request,
    TailQuery, TailStart,
};
use plex_runtime::{Incoming, Stream};
use plex_store::{
    BatchReceipt, Durability, Error as StoreError, Location, Options, Seq, Start, TryAppend,
};
use tracing::Instrument;

use crate::error::ApiError;
use crate::pools::{Entry, Pools};
use crate::remote::describe::{error_record, nanos, pool_info, skipped_record};
use crate::routes::App;

/// A tail sends its messages in writes of about this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;

/// How much an append stream reads at once.
const READ_BYTES: usize = 256 * 1024;

/// Serves one operation stream to its end.
pub(crate) async fn serve(app: Arc<App>, incoming: Incoming) {
    let request = Request::decode(incoming.handshake());
    let Ok(mut stream) = incoming.accept(Bytes::new()) else {
        return;
    };
    let request = match request {
        Ok(request) => request,
        Err(e) => {
            let record = ErrorRecord::new(ErrorKind::Usage, format!("bad request: {e}"));
            return end(&mut stream, &[Record::Error(record)]).await;
        }
    };
    let span = tracing::debug_span!("pool stream", op = ?kind_of(&request), pool = request.pool());
    async move {
        tracing::debug!("started");
        match request {
            Request::Append { pool, durability } => append(&app, stream, pool, durability).await,
            Request::Tail { pool, query } => tail(&app, stream, pool, query).await,
            other => {
                let records = unary(&app, other).await;
                end(&mut stream, &records).await;
            }
        }
        tracing::debug!("ended");
    }
    .instrument(span)
    .await;
}

/// The operation's name, for logs.
fn kind_of(request: &Request) -> &'static str {
    match request {
        Request::Create { .. } => "create",
        Request::Info { .. } => "info",
        Request::Describe { .. } => "describe",
        Request::List => "list",
        Request::Delete { .. } => "delete",
        Request::Check { .. } => "check",
        Request::Append { .. } => "append",
        Request::Get { .. } => "get",
        Request::Tail { .. } => "tail",
        _ => "unknown",
    }
}

/// Writes `records` and finishes the stream; a client that left is fine.
async fn end(stream: &mut Stream, records: &[Record]) {
    let mut out = Vec::new();
    for r in records {
        r.encode_into(&mut out);
    }
    if stream.write_all(&out).await.is_ok() {
        let _ = stream.finish();
    }
}

/// Runs a blocking storage call within the server's storage limit.
async fn storage<T: Send + 'static>(
    app: &App,
    call: impl FnOnce(&Pools) -> Result<T, ErrorRecord> + Send + 'static,
) -> Result<T, ErrorRecord> {
    app.pools
        .run(move |pools| Ok(call(pools)))
        .await
        .map_err(|e| api_record(&e))?
}

/// An HTTP-side error as a record: the same kinds.
fn api_record(e: &ApiError) -> ErrorRecord {
    let kind = e.kind;
    let mut record = ErrorRecord::new(kind, e.message.clone());
    record.path.clone_from(&e.path);
    record.seq = e.seq;
    if kind == ErrorKind::Busy {
        record.hint = Some("retry".into());
    }
    record
}

/// Create, info, list, delete and get: their records.
async fn unary(app: &App, request: Request) -> Vec<Record> {
    let max_record = app.limits.max_record_bytes;
    let pool_info = move |name: &str, info: &plex_store::Info, damaged: Option<u64>| {
        served(pool_info(name, info, damaged), max_record)
    };
    let answer = storage(app, move |pools| {
        Ok(match request {
            Request::Create {
                pool,
                size,
                index_slots,
            } => {
                let mut options = Options::new();
                if let Some(slots) = index_slots {
                    options = options.index_slots(slots);
                }
                let entry = pools
                    .create_store(&pool, size, options)
                    .map_err(|e| error_record(&e))?;
                vec![Record::Pool(pool_info(&pool, &entry.pool.info(), None))]
            }
            Request::Info { pool } => {
                let entry = pools.open_store(&pool).map_err(|e| error_record(&e))?;
                let damaged = entry
                    .pool
                    .damaged()
                    .map_err(|e| error_record(&e))?
                    .iter()
                    .map(|r| r.end.get() - r.start.get())
                    .sum();
                vec![Record::Pool(pool_info(
                    &pool,
                    &entry.pool.info(),
                    Some(damaged),
                ))]
            }
            Request::Describe { pool } => {
                let entry = pools.open_store(&pool).map_err(|e| error_record(&e))?;
                vec![Record::Pool(pool_info(&pool, &entry.pool.info(), None))]
            }
            Request::List => {
                // A pool that cannot be opened is reported in its place.
                let mut records: Vec<Record> = pools
                    .scan()
                    .map_err(|e| api_record(&e))?
                    .into_iter()
                    .map(|(name, opened)| match opened {
                        Ok(e) => Record::Pool(pool_info(&name, &e.pool.info(), None)),
                        Err(e) => Record::Error(error_record(&e)),
                    })
                    .collect();
                records.push(Record::Done);
                records
            }
            Request::Delete { pool } => {
                pools.delete(&pool).map_err(|e| api_record(&e))?;
                vec![deleted(pools, pool)]
            }
            Request::Check { pool } => {
                pools.check_deletable(&pool).map_err(|e| api_record(&e))?;
                vec![deleted(pools, pool)]
            }
            Request::Get { pool, seq } => {
                let entry = pools.open_store(&pool).map_err(|e| error_record(&e))?;
                let msg = entry.pool.get(Seq(seq)).map_err(|e| error_record(&e))?;
                vec![Record::Message(Message {
                    seq: msg.seq.get(),
                    time_ns: nanos(msg.time),
                    tags: msg.tags,
                    data: msg.data.into(),
                })]
            }
            _ => vec![Record::Error(ErrorRecord::new(
                ErrorKind::Usage,
                "not a one-answer operation",
            ))],
        })
    })
    .await;
    answer.unwrap_or_else(|e| vec![Record::Error(e)])
}

/// A pool as it is served: its largest message is also bounded by the
/// longest append record the server takes (`max_record`), so that a client
/// refuses a larger one as it would a message over the pool's own limit
/// (a one-message batch record is shorter than the message's frame).
fn served(mut info: PoolInfo, max_record: usize) -> PoolInfo {
    info.max_frame = info
        .max_frame
        .min(u64::try_from(max_record).unwrap_or(u64::MAX));
    info
}

/// The answer of a delete (or its check): the pool's name and file.
fn deleted(pools: &Pools, pool: String) -> Record {
    let path = pools.file(&pool).to_string_lossy().into_owned();
    Record::Pool(plex_proto::pools::PoolInfo {
        name: pool,
        path,
        ..Default::default()
    })
}

/// Appends the batches the client writes, answering each with a receipt
/// in order, until the client finishes its side.
async fn append(app: &App, mut stream: Stream, pool: String, durability: WireDurability) {
    let name = pool.clone();
    let entry = match storage(app, move |pools| {
        pools.open_store(&name).map_err(|e| error_record(&e))
    })
    .await
    {
        Ok(entry) => entry,
        Err(e) => return end(&mut stream, &[Record::Error(e)]).await,
    };
    let durability = match durability {
        WireDurability::Flush => Durability::Flush,
        _ => Durability::Fast,
    };
    let max = app.limits.max_record_bytes;
    let mut input: Vec<u8> = Vec::new();
    loop {
        let chunk = match stream.read_chunk(READ_BYTES).await {
            Ok(Some(chunk)) => chunk,
            // The client finished: every batch has its receipt.
            Ok(None) => return end(&mut stream, &[]).await,
            Err(e) => {
                tracing::debug!(error = %e, "append stream failed");
                return;
            }
        };
        input.extend_from_slice(&chunk);
        let mut batches = Vec::new();
        let mut used = 0;
        loop {
            match Record::decode(&input[used..], max) {
                Ok(Some((Record::Batch(batch), n))) => {
                    batches.push(batch);
                    used += n;
                }
                Ok(None) => break,
                Ok(Some(_)) => {
                    let e = ErrorRecord::new(ErrorKind::Usage, "an append stream takes batches");
                    return end(&mut stream, &[Record::Error(e)]).await;
                }
                Err(e) => {
                    let e = ErrorRecord::new(ErrorKind::Usage, format!("bad batch: {e}"));
                    return end(&mut stream, &[Record::Error(e)]).await;
                }
            }
        }
        input.drain(..used);
        if batches.is_empty() {
            continue;
        }
        let answered = append_batches(app, &entry, batches, durability).await;
        match answered {
            Ok(out) => {
                if stream.write_all(&out).await.is_err() {
                    return;
                }
            }
            Err(e) => return end(&mut stream, &[Record::Error(e)]).await,
        }
    }
}

/// A batch as an append stream carries it.
type Batch = Vec<(Vec<String>, Bytes)>;

/// Appends `batches` in order and returns their receipts, encoded.
///
/// Fast batches are appended on this task while the pool's writer lock is
/// free, which spares the hop to a blocking thread and back; once another
/// writer (a thread, or another process) holds the lock, the rest goes
/// through the storage executor, which may wait for it. Flush batches
/// always do, for their sync.
async fn append_batches(
    app: &App,
    entry: &Arc<Entry>,
    batches: Vec<Batch>,
    durability: Durability,
) -> Result<Vec<u8>, ErrorRecord> {
    let mut out = Vec::with_capacity(batches.len() * 24);
    let mut batches = batches.into_iter().peekable();
    if durability == Durability::Fast {
        while let Some(batch) = batches.peek() {
            let tried = with_items(batch, |items| entry.pool.try_append_batch_receipt(items));
            match tried.map_err(|e| error_record(&e))? {
                TryAppend::Appended(receipt) => encode_receipt(&receipt, &mut out),
                _ => break,
            }
            batches.next();
        }
    }
    let rest: Vec<Batch> = batches.collect();
    if rest.is_empty() {
        return Ok(out);
    }
    let entry = entry.clone();
    storage(app, move |_| {
        for batch in rest {
            let receipt = with_items(&batch, |items| entry.pool.append_batch_receipt(items))
                .map_err(|e| error_record(&e))?;
            // The served handle appends fast; a flush batch syncs.
            if durability == Durability::Flush {
                entry.pool.sync().map_err(|e| error_record(&e))?;
            }
            encode_receipt(&receipt, &mut out);
        }
        Ok(out)
    })
    .await
}

/// Calls `append` with `batch` as the store takes it.
fn with_items<T>(batch: &Batch, append: impl FnOnce(&[(&[&str], &[u8])]) -> T) -> T {
    let tags: Vec<Vec<&str>> = batch
        .iter()
        .map(|(tags, _)| tags.iter().map(String::as_str).collect())
        .collect();
    let items: Vec<(&[&str], &[u8])> = batch
        .iter()
        .zip(&tags)
        .map(|((_, data), tags)| (&tags[..], &data[..]))
        .collect();
    append(&items)
}

/// Encodes the receipt record of an appended batch.
fn encode_receipt(receipt: &BatchReceipt, out: &mut Vec<u8>) {
    Record::Receipt {
        first: receipt.seqs.start.get(),
        count: u32::try_from(receipt.seqs.end.get() - receipt.seqs.start.get()).unwrap_or(u32::MAX),
        time_ns: nanos(receipt.time),
    }
    .encode_into(out);
}

/// Streams messages from the query's start: live when it follows, until
/// `max` messages, its timeout without a message, the client leaving, or
/// the server shutting down.
async fn tail(app: &App, mut stream: Stream, pool: String, query: TailQuery) {
    let Ok(_slot) = app.tails.clone().try_acquire_owned() else {
        let mut e = ErrorRecord::new(ErrorKind::Busy, "too many concurrent tails");
        e.hint = Some("retry".into());
        return end(&mut stream, &[Record::Error(e)]).await;
    };
    let start = match query.start {
        TailStart::Oldest => Start::Oldest,
        TailStart::Seq(seq) => Start::Seq(Seq(seq)),
        TailStart::Last(n) => Start::Last(n),
        _ => Start::End,
    };
    let name = pool.clone();
    let opened = storage(app, move |pools| {
        let entry = pools.open_store(&name).map_err(|e| error_record(&e))?;
        // Placed before the notifier waits: a writer that sees this tail
        // among the pool's waiters knows its next append will be read.
        let next = entry.pool.cursor(start).next_seq();
        let notifier = entry.notifier().map_err(|e| error_record(&e))?;
        Ok((entry, notifier, next))
    })
    .await;
    let (entry, notifier, mut next) = match opened {
        Ok(opened) => opened,
        Err(e) => return end(&mut stream, &[Record::Error(e)]).await,
    };
    let mut left = query.max;
    let mut shutdown = app.shutdown.clone();
    let mut out = Vec::new();
    loop {
        let mut cursor = entry.pool.cursor(Start::Seq(next));
        let mut failed = None;
        while out.len() < CHUNK_BYTES && left != Some(0) {
            let at = cursor.next_seq();
            match cursor.try_next() {
                Ok(Some(msg)) => {
                    if query.tags.iter().all(|t| msg.tags.contains(t)) {
                        let time = nanos(msg.time);
                        Message::encode_parts(msg.seq.get(), time, &msg.tags, &msg.data, &mut out);
                        if let Some(left) = &mut left {
                            *left -= 1;
                        }
                    }
                }
                Ok(None) => break,
                Err(StoreError::RetentionGap { lost }) => Record::Gap {
                    first: lost.start.get(),
                    next: lost.end.get(),
                }
                .encode_into(&mut out),
                // Lapped by writers on every retry: read again.
                Err(StoreError::Busy { .. }) => break,
                // A damaged message the cursor moved past: reported, and
                // the tail goes on, as a local follow does.
                Err(
                    e @ StoreError::Corrupt {
                        at: Location::Seq(_),
                        ..
                    },
                ) if cursor.next_seq() > at => {
                    Record::Error(skipped_record(&e, cursor.next_seq().get()))
                        .encode_into(&mut out);
                }
                Err(e) => {
                    failed = Some(error_record(&e));
                    break;
                }
            }
        }
        next = cursor.next_seq();
        let caught_up = out.len() < CHUNK_BYTES;
        if let Some(e) = failed {
            Record::Error(e).encode_into(&mut out);
            return write_end(&mut stream, out).await;
        }
        if left == Some(0) || (caught_up && !query.follow) {
            Record::Done.encode_into(&mut out);
            return write_end(&mut stream, out).await;
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if !caught_up {
            continue;
        }
        let patience = query
            .timeout_ms
            .map_or(Duration::MAX, Duration::from_millis);
        let timer = async {
            match tokio::time::Instant::now().checked_add(patience) {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let stopped = std::future::poll_fn(|cx| stream.poll_stopped(cx));
        let woke = tokio::select! {
            () = notifier.wait_for(next) => Woke::Appended,
            () = timer => Woke::TimedOut,
            _ = shutdown.wait_for(|stop| *stop) => Woke::Shutdown,
            _ = stopped => Woke::ClientLeft,
        };
        match woke {
            Woke::Appended => {}
            Woke::TimedOut => {
                Record::TimedOut.encode_into(&mut out);
                return write_end(&mut stream, out).await;
            }
            // Without Done: the client sees its tail cut, and resumes
            // from a server that is up again.
            Woke::Shutdown => return write_end(&mut stream, out).await,
            Woke::ClientLeft => return,
        }
    }
}

/// Why a waiting tail woke.
enum Woke {
    Appended,
    TimedOut,
    Shutdown,
    ClientLeft,
}

/// Writes `out` and finishes the stream.
async fn write_end(stream: &mut Stream, out: Vec<u8>) {
    if stream.write_all(&out).await.is_ok() {
        let _ = stream.finish();
    }
}
