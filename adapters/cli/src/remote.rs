//! Remote pool refs, `tcp://HOST:PORT/POOL`, `ws://HOST:PORT[/PATH]/POOL`
//! or `tls://HOST:PORT/POOL[?fingerprint=…]`, and the commands on them:
//! through `plex serve`'s `plex/1` listener, with the same records, errors
//! and exit codes as local pools.

use std::ffi::OsStr;
use std::future::Future;
use std::path::PathBuf;

use bytes::Bytes;
use plex_proto::pools::{Durability, ErrorKind, PoolInfo, TailQuery, TailStart};
use plex_serve::remote::{time_of, Appender, Follow, RemoteError, RemotePools, TailEvent};
use plex_store::{Message, Seq};
use tokio::runtime::Runtime;

use crate::access::Access;
use crate::cli::{CreateArgs, DurabilityArg, FeedArgs, FollowArgs};
use crate::commands::feed::{self, Sink};
use crate::commands::Outcome;
use crate::error::{Error, Kind, Result};
use crate::output::Out;
use crate::record::{rfc3339, PoolRecord, Receipt};
use crate::refs::DEFAULT_SIZE;

/// Batches a remote feed sends before it waits for the oldest receipt.
const MAX_IN_FLIGHT: usize = 8;

/// A pool on a `plex serve`.
#[derive(Debug, Clone)]
pub(crate) struct RemoteRef {
    /// The server's URL: the argument up to its last `/`, with the
    /// argument's query (`?fingerprint=…`) if any.
    pub(crate) server: String,
    /// The pool's name: what follows.
    pub(crate) pool: String,
    /// The argument as given.
    pub(crate) arg: String,
}

/// The schemes `plex serve` listens on.
const SCHEMES: [&str; 3] = ["tcp://", "ws://", "tls://"];

impl RemoteRef {
    /// `Some` when `arg` is a URL of a scheme `plex serve` listens on: the
    /// ref, or a Usage error when it names no pool.
    pub(crate) fn parse(arg: &OsStr) -> Option<Result<RemoteRef>> {
        let text = arg.to_str()?;
        let scheme = SCHEMES.iter().find(|s| starts_with_ignore_case(text, s))?;
        let (rest, query) = match text[scheme.len()..].split_once('?') {
            Some((rest, query)) => (rest, format!("?{query}")),
            None => (&text[scheme.len()..], String::new()),
        };
        let parsed = match rest.rsplit_once('/') {
            Some((authority, pool)) if !authority.is_empty() => {
                match plex_proto::pools::check_name(pool) {
                    Ok(()) => Ok(RemoteRef {
                        server: format!("{scheme}{authority}{query}"),
                        pool: pool.to_owned(),
                        arg: text.to_owned(),
                    }),
                    Err(e) => Err(Error::usage(format!("invalid remote pool `{text}`: {e}"))),
                }
            }
            _ => Err(Error::usage(format!(
                "invalid remote pool `{text}`: it names no pool"
            ))),
        };
        Some(parsed.map_err(|e| e.with_hint("a remote pool is like tcp://127.0.0.1:7070/NAME")))
    }

    /// A server URL (`tcp://HOST:PORT`), for `plex pool list`.
    pub(crate) fn is_server(arg: &OsStr) -> bool {
        arg.to_str()
            .is_some_and(|t| SCHEMES.iter().any(|s| starts_with_ignore_case(t, s)))
    }

    /// The error for a pool the server does not have, hinted as locally
    /// (a missing seq keeps its own hint).
    fn not_found(&self, e: Error) -> Error {
        if e.kind() == Kind::NotFound && e.hint().is_none() {
            e.with_hint(format!(
                "create it with `plex pool create {}` (or feed it with --create)",
                self.arg
            ))
        } else {
            e
        }
    }
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// The async runtime of a remote command: one worker, so that the
/// connection keeps being served while the command blocks on its input.
fn runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::new(Kind::Io, format!("cannot start the async runtime: {e}")))
}

/// The longest record the CLI takes from a server: any the wire can carry
/// (its length is 32 bits), as a local read takes any message its pool
/// holds. The bytes are held only as they arrive.
const MAX_RECORD: usize = u32::MAX as usize;

/// Runs `f` with a connection to `server`.
fn with_pools<T, F>(server: &str, access: &Access, f: impl FnOnce(RemotePools) -> F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let options = access.options()?;
    runtime()?.block_on(async {
        let pools = RemotePools::connect_with(server, &options).await?;
        f(pools.with_max_record(MAX_RECORD)).await
    })
}

/// `plex fetch URL/POOL SEQ`.
pub(crate) fn fetch(r: RemoteRef, seq: u64, access: &Access, out: &mut Out) -> Result<Outcome> {
    let r = &r;
    let msg = with_pools(&r.server, access, |pools| async move {
        pools
            .get(&r.pool, seq)
            .await
            .map_err(|e| r.not_found(e.into()))
    })?;
    out.envelope(&message(msg))?;
    Ok(Outcome::Success)
}

/// The store's message of a remote one, to print as local ones print.
fn message(m: plex_proto::pools::Message) -> Message {
    Message {
        seq: Seq(m.seq),
        time: time_of(m.time_ns),
        tags: m.tags,
        data: m.data.to_vec(),
    }
}

/// `plex follow URL/POOL`: as locally, and resuming by seq after the
/// connection fails.
pub(crate) fn follow(r: RemoteRef, args: FollowArgs, out: &mut Out) -> Result<Outcome> {
    let start = match (args.tail, args.since) {
        (Some(n), _) => TailStart::Last(n),
        (None, Some(seq)) => TailStart::Seq(seq),
        (None, None) if args.no_follow => TailStart::Oldest,
        (None, None) => TailStart::End,
    };
    let query = TailQuery {
        start,
        follow: !args.no_follow,
        max: args.one.then_some(1),
        timeout_ms: args
            .timeout
            .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        tags: Vec::new(),
    };
    let options = args.access.options()?;
    let mut follow = Follow::with_options(r.server.clone(), options, r.pool.clone(), query)
        .with_max_record(MAX_RECORD);
    let runtime = runtime()?;
    let mut reported = None;
    loop {
        match runtime.block_on(follow.next()) {
            Ok(Some(TailEvent::Message(m))) => {
                out.envelope(&message(m))?;
                out.flush()?;
            }
            Ok(Some(TailEvent::Gap { first, next })) => {
                out.flush()?;
                let lost = plex_store::Error::RetentionGap {
                    lost: Seq(first)..Seq(next),
                };
                let err = Error::from(lost);
                err.report();
                reported.get_or_insert(err.kind());
            }
            Ok(Some(TailEvent::Damaged(e))) => {
                out.flush()?;
                let err = Error::from(e);
                err.report();
                reported.get_or_insert(err.kind());
            }
            Ok(Some(TailEvent::TimedOut)) => {
                out.flush()?;
                return Ok(reported.map_or(Outcome::TimedOut, Outcome::Reported));
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => return Err(r.not_found(e.into())),
        }
    }
    out.flush()?;
    Ok(reported.map_or(Outcome::Success, Outcome::Reported))
}

/// A pool's record, as `plex pool info|list|create` print it.
fn record(info: PoolInfo) -> PoolRecord {
    PoolRecord {
        name: Some(info.name),
        path: info.path,
        size: info.file_len,
        ring_size: info.ring_len,
        index_capacity: info.index_slots,
        max_message: info.max_frame,
        messages: info.messages,
        oldest: info.oldest,
        newest: info.newest,
        synced: info.synced,
        waiters: info.waiters,
        sync_failed: info.sync_failed,
        damaged: info.damaged,
    }
}

/// The error for a pool that is already there, as locally.
fn already_exists(r: &RemoteRef, path: &str) -> Error {
    Error::new(Kind::AlreadyExists, format!("pool already exists: {path}"))
        .with_path(&PathBuf::from(path))
        .with_hint(format!(
            "choose another name, or delete it first with `plex pool delete {}`",
            r.arg
        ))
}

/// `plex pool create URL/POOL…`: every name is checked free first.
pub(crate) fn create(refs: &[RemoteRef], args: &CreateArgs, out: &mut Out) -> Result<Outcome> {
    let runtime = runtime()?;
    let size = args.size.unwrap_or(DEFAULT_SIZE);
    let options = args.access.options()?;
    let mut created = Vec::new();
    runtime.block_on(async {
        for r in refs {
            let pools = RemotePools::connect_with(&r.server, &options).await?;
            match pools.describe(&r.pool).await {
                Ok(info) => return Err(already_exists(r, &info.path)),
                Err(RemoteError::Server(e)) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        for r in refs {
            let pools = RemotePools::connect_with(&r.server, &options).await?;
            match pools.create(&r.pool, size, args.index_capacity).await {
                Ok(info) => created.push(info),
                Err(RemoteError::Server(e)) if e.kind == ErrorKind::AlreadyExists => {
                    return Err(already_exists(r, e.path.as_deref().unwrap_or(&r.arg)))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    })?;
    for info in created {
        out.record(&record(info))?;
    }
    Ok(Outcome::Success)
}

/// `plex pool info URL/POOL`.
pub(crate) fn info(r: RemoteRef, access: &Access, out: &mut Out) -> Result<Outcome> {
    let r = &r;
    let info = with_pools(&r.server, access, |pools| async move {
        pools.info(&r.pool).await.map_err(|e| r.not_found(e.into()))
    })?;
    out.record(&record(info))?;
    Ok(Outcome::Success)
}

/// `plex pool list URL`: as locally, a pool the server cannot open is
/// reported on stderr and the listing goes on; the exit code is then that
/// of the first such error.
pub(crate) fn list(server: &str, access: &Access, out: &mut Out) -> Result<Outcome> {
    let server = server.trim_end_matches('/');
    let pools = with_pools(
        server,
        access,
        |pools| async move { Ok(pools.list().await?) },
    )?;
    let mut failed = None;
    for listed in pools {
        match listed {
            Ok(mut info) => {
                info.damaged = None;
                out.record(&record(info))?;
            }
            Err(e) => {
                out.flush()?;
                let err = Error::from(e);
                err.report();
                failed.get_or_insert(err.kind());
            }
        }
    }
    Ok(failed.map_or(Outcome::Success, Outcome::Reported))
}

/// What `plex pool delete` prints per pool.
#[derive(serde::Serialize)]
struct Deleted {
    name: String,
    path: String,
}

/// `plex pool delete URL/POOL…`, in order, after checking that every one
/// exists and is a pool (as locally: none is deleted if one fails).
pub(crate) fn delete(refs: &[RemoteRef], access: &Access, out: &mut Out) -> Result<Outcome> {
    let runtime = runtime()?;
    let options = access.options()?;
    runtime.block_on(async {
        for r in refs {
            let pools = RemotePools::connect_with(&r.server, &options).await?;
            pools.check(&r.pool).await.map_err(not_deletable)?;
        }
        Ok::<_, Error>(())
    })?;
    for r in refs {
        let deleted = runtime.block_on(async {
            let pools = RemotePools::connect_with(&r.server, &options).await?;
            pools.delete(&r.pool).await.map_err(not_deletable)
        })?;
        out.record(&Deleted {
            name: deleted.name,
            path: deleted.path,
        })?;
    }
    Ok(Outcome::Success)
}

/// A delete's refusal, hinted as locally.
fn not_deletable(e: RemoteError) -> Error {
    let err = Error::from(e);
    match err.kind() {
        Kind::NotFound => err.with_hint("`plex pool list` shows the pools of the pool directory"),
        Kind::Usage => err.with_hint("remove it with rm if you mean to"),
        _ => err,
    }
}

/// `plex feed URL/POOL`: the lines go out in pipelined batches.
pub(crate) fn feed(
    r: RemoteRef,
    args: FeedArgs,
    argument: Option<&str>,
    out: &mut Out,
) -> Result<Outcome> {
    let runtime = runtime()?;
    let durability = match args.durability {
        DurabilityArg::Flush => Durability::Flush,
        DurabilityArg::Fast => Durability::Fast,
    };
    let options = args.access.options()?;
    let (info, appender) = runtime.block_on(async {
        let pools = RemotePools::connect_with(&r.server, &options).await?;
        let info = open(&pools, &r, args.create, args.create_size).await?;
        let appender = pools.appender(&r.pool, durability).await?;
        Ok::<_, Error>((info, appender))
    })?;
    let sink = RemoteSink {
        runtime,
        appender,
        info,
        tags: Vec::new(),
    };
    feed::feed(Box::new(sink), args, argument, out)
}

/// The pool a feed appends to, created first with `--create`.
async fn open(
    pools: &RemotePools,
    r: &RemoteRef,
    create: bool,
    size: Option<u64>,
) -> Result<PoolInfo> {
    let existing = match pools.describe(&r.pool).await {
        Ok(info) => info,
        Err(RemoteError::Server(e)) if create && e.kind == ErrorKind::NotFound => {
            match pools
                .create(&r.pool, size.unwrap_or(DEFAULT_SIZE), None)
                .await
            {
                Ok(info) => return Ok(info),
                // Another client created it since.
                Err(RemoteError::Server(e)) if e.kind == ErrorKind::AlreadyExists => {
                    pools.describe(&r.pool).await?
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => return Err(r.not_found(e.into())),
    };
    match size {
        Some(size) if create && size != existing.file_len => Err(Error::new(
            Kind::AlreadyExists,
            format!(
                "pool already exists with another size: {} has {} bytes, not {size}",
                existing.path, existing.file_len
            ),
        )
        .with_path(&PathBuf::from(&existing.path))
        .with_hint(format!(
            "omit --create-size to use the pool as it is, or delete it first with `plex pool delete {}`",
            r.arg
        ))),
        _ => Ok(existing),
    }
}

/// A remote pool fed through an append stream.
struct RemoteSink {
    runtime: Runtime,
    appender: Appender,
    info: PoolInfo,
    /// The tags of the batches in flight, oldest first.
    tags: Vec<Vec<String>>,
}

impl RemoteSink {
    /// Prints the receipts of the oldest batch in flight.
    fn receipt(&mut self, out: &mut Out) -> Result<()> {
        let receipt = self.runtime.block_on(self.appender.receipt())?;
        let tags = if self.tags.is_empty() {
            Vec::new()
        } else {
            self.tags.remove(0)
        };
        let time = rfc3339(receipt.time);
        for seq in receipt.first..receipt.first + u64::from(receipt.count) {
            out.record(&Receipt {
                seq,
                time: &time,
                tags: &tags,
            })?;
        }
        Ok(())
    }
}

impl Sink for RemoteSink {
    fn ring_len(&self) -> u64 {
        self.info.ring_len
    }

    fn max_frame(&self) -> u64 {
        self.info.max_frame
    }

    /// The store's own check, on the pool's limit as the server gave it.
    fn check(&self, tags: &[&str], len: usize) -> Result<()> {
        let max = self.info.max_frame;
        let len = 32 + tags.iter().map(|t| 2 + t.len() as u64).sum::<u64>() + len as u64;
        if len > max {
            return Err(Error::usage(format!(
                "message of {len} bytes (with its 32-byte header and tags) exceeds \
                 this pool's limit of {max} bytes"
            )));
        }
        Ok(())
    }

    fn append(
        &mut self,
        tags: &[String],
        data: &[u8],
        ends: &[usize],
        out: &mut Out,
    ) -> Result<()> {
        let mut batch = Vec::with_capacity(ends.len());
        let mut start = 0;
        for &end in ends {
            batch.push((tags.to_vec(), Bytes::copy_from_slice(&data[start..end])));
            start = end;
        }
        self.runtime.block_on(self.appender.send(&batch))?;
        self.tags.push(tags.to_vec());
        while self.appender.in_flight() >= MAX_IN_FLIGHT {
            self.receipt(out)?;
        }
        Ok(())
    }

    fn settle(&mut self, out: &mut Out) -> Result<()> {
        while self.appender.in_flight() > 0 {
            self.receipt(out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_refs_are_urls_ending_in_a_pool() {
        let parse = |s: &str| RemoteRef::parse(OsStr::new(s));
        let r = parse("tcp://127.0.0.1:7070/demo").unwrap().unwrap();
        assert_eq!(
            (r.server.as_str(), r.pool.as_str()),
            ("tcp://127.0.0.1:7070", "demo")
        );
        let r = parse("WS://[::1]:80/plex/demo").unwrap().unwrap();
        assert_eq!(
            (r.server.as_str(), r.pool.as_str()),
            ("ws://[::1]:80/plex", "demo")
        );
        let r = parse("tls://h:7443/demo?fingerprint=sha256:AB")
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.server.as_str(), r.pool.as_str()),
            ("tls://h:7443?fingerprint=sha256:AB", "demo")
        );
        assert!(parse("demo").is_none());
        assert!(parse("./tcp://x").is_none());
        for bad in [
            "tcp://127.0.0.1:7070",
            "tcp://127.0.0.1:7070/",
            "tcp:///demo",
        ] {
            let err = parse(bad).unwrap().unwrap_err();
            assert_eq!(err.kind(), Kind::Usage, "{bad}");
        }
    }
}
