//! The client of remote pools: [`RemotePools`] over any `plex/1` session,
//! and [`Follow`], a tail that reconnects and resumes by seq.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::AsyncWriteExt;
use plex_proto::pools::{
    check_tags, Durability, ErrorKind, ErrorRecord, Message, PoolInfo, Record, Request, TailQuery,
    TailStart, WireError, POOLS_PROTOCOL,
};
use plex_runtime::auth::AuthError;
use plex_runtime::{OpenOptions, Session, Stream};
use plex_tokio::ConnectOptions;

use crate::remote::describe::time_of;

/// The longest record a client takes from a server unless told otherwise
/// ([`RemotePools::with_max_record`]): 64 MiB.
pub const DEFAULT_MAX_RECORD: usize = 64 << 20;

/// How much a client reads at once.
const READ_BYTES: usize = 256 * 1024;

/// Why a remote pool operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The server could not be reached.
    #[error("cannot reach {url}: {reason}")]
    Connect {
        /// The server's URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The connection failed during the operation.
    #[error("the connection to the server failed: {0}")]
    Connection(String),
    /// The server refused or failed the operation.
    #[error("{0}")]
    Server(ErrorRecord),
    /// The server did not admit the connection: an access token was
    /// missing, not valid (unknown or revoked), or could not be checked.
    #[error("{url}: {source}")]
    Auth {
        /// The server's URL.
        url: String,
        /// Why.
        source: AuthError,
    },
    /// The server sent bytes that are not the protocol.
    #[error("the server broke the pools protocol: {0}")]
    Protocol(String),
    /// The request does not fit the protocol (too many or too long tags);
    /// nothing was sent.
    #[error("{0}")]
    Invalid(WireError),
    /// The server sent a record (a message, with its envelope) longer than
    /// this client takes: see [`RemotePools::with_max_record`]. It was
    /// refused from its length, before any of it was held.
    #[error("the server sent a record of {len} bytes, over this client's limit of {max}")]
    TooLarge {
        /// The record's length.
        len: usize,
        /// The client's limit.
        max: usize,
    },
}

impl RemoteError {
    /// Whether the connection, rather than the operation, failed: a retry
    /// on a new connection may succeed.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            RemoteError::Connect { .. } | RemoteError::Connection(_)
        )
    }
}

/// Pools served by `plex serve` over a `plex/1` session. Every operation is
/// a stream of its own, so any number run at once on one connection.
///
/// ```no_run
/// # async fn demo() -> Result<(), plex_serve::remote::RemoteError> {
/// use plex_serve::remote::{RemotePools, TailEvent};
/// use plex_proto::pools::{Durability, TailQuery, TailStart};
///
/// let pools = RemotePools::connect("tcp://127.0.0.1:7070").await?;
/// pools.create("demo", 1 << 20, None).await?;
/// let mut appender = pools.appender("demo", Durability::Fast).await?;
/// appender.send(&[(vec!["greeting".into()], "{\"hi\":1}".into())]).await?;
/// let receipt = appender.receipt().await?;
/// appender.finish().await?;
/// let query = TailQuery { start: TailStart::Seq(receipt.first), ..TailQuery::default() };
/// let mut tail = pools.tail("demo", query).await?;
/// while let Some(TailEvent::Message(msg)) = tail.next().await? {
///     println!("{} {:?}", msg.seq, msg.data);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RemotePools {
    session: Session,
    max_record: usize,
}

/// The receipt of an appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchReceipt {
    /// The batch's first seq.
    pub first: u64,
    /// Its message count: seqs `first..first + count`.
    pub count: u32,
    /// The time stored in each.
    pub time: SystemTime,
}

/// What a tail yields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TailEvent {
    /// A message.
    Message(Message),
    /// Seqs `first..next` were lost to retention before they were read.
    Gap {
        /// The first seq lost.
        first: u64,
        /// The seq the tail goes on at.
        next: u64,
    },
    /// The tail's timeout passed with no message; it has ended.
    TimedOut,
    /// A damaged message (its `seq`) could not be read; the tail went on
    /// past it, as a local follow does.
    Damaged(ErrorRecord),
}

impl RemotePools {
    /// Pools over `session`, which may serve other protocols too.
    pub fn new(session: Session) -> RemotePools {
        RemotePools {
            session,
            max_record: DEFAULT_MAX_RECORD,
        }
    }

    /// Takes records of up to `bytes` from the server (default
    /// [`DEFAULT_MAX_RECORD`]): a message read with
    /// [`get`](RemotePools::get) or a tail is held whole, so this bounds
    /// what the server can make the client hold, and a longer one fails
    /// with [`RemoteError::TooLarge`]. A record's envelope adds its seq,
    /// time and tags to the message's data.
    #[must_use]
    pub fn with_max_record(mut self, bytes: usize) -> RemotePools {
        self.max_record = bytes;
        self
    }

    /// Dials `url` (`tcp://HOST:PORT`, `ws://HOST:PORT[/PATH]` or
    /// `tls://HOST:PORT[?fingerprint=sha256:HEX]`) on tokio, without an
    /// access token: enough for a loopback listener.
    pub async fn connect(url: &str) -> Result<RemotePools, RemoteError> {
        RemotePools::connect_with(url, &ConnectOptions::default()).await
    }

    /// Dials `url` with `options` (TLS trust, access token) and
    /// authenticates the connection ([`plex_tokio::connect_with`]); a
    /// server that refuses it gives [`RemoteError::Auth`].
    pub async fn connect_with(
        url: &str,
        options: &ConnectOptions,
    ) -> Result<RemotePools, RemoteError> {
        match plex_tokio::connect_with(url, options).await {
            Ok(session) => Ok(RemotePools::new(session)),
            Err(plex_runtime::Error::Auth(
                source
                @ (AuthError::Required(_) | AuthError::Denied(_) | AuthError::Unavailable(_)),
            )) => Err(RemoteError::Auth {
                url: url.to_owned(),
                source,
            }),
            Err(e) => Err(RemoteError::Connect {
                url: url.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    /// The session underneath.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Creates pool `pool` of `size` bytes.
    pub async fn create(
        &self,
        pool: &str,
        size: u64,
        index_slots: Option<u64>,
    ) -> Result<PoolInfo, RemoteError> {
        let request = Request::Create {
            pool: pool.into(),
            size,
            index_slots,
        };
        self.one_pool(&request).await
    }

    /// Describes pool `pool`, with its count of damaged messages.
    pub async fn info(&self, pool: &str) -> Result<PoolInfo, RemoteError> {
        self.one_pool(&Request::Info { pool: pool.into() }).await
    }

    /// Describes pool `pool` without validating its messages (`damaged`
    /// is `None`).
    pub async fn describe(&self, pool: &str) -> Result<PoolInfo, RemoteError> {
        self.one_pool(&Request::Describe { pool: pool.into() })
            .await
    }

    /// Describes every pool of the server's directory, by name; a pool
    /// the server cannot open is its error, in its place.
    pub async fn list(&self) -> Result<Vec<Result<PoolInfo, ErrorRecord>>, RemoteError> {
        let mut reader = self.request(&Request::List).await?;
        let mut pools = Vec::new();
        loop {
            match reader.next().await? {
                Some(Record::Pool(info)) => pools.push(Ok(info)),
                Some(Record::Error(e)) => pools.push(Err(e)),
                Some(Record::Done) => return Ok(pools),
                // Without Done, the last error was the listing's own.
                None => {
                    return Err(match pools.pop() {
                        Some(Err(e)) => RemoteError::Server(e),
                        _ => unexpected(None),
                    })
                }
                other => return Err(unexpected(other)),
            }
        }
    }

    /// Deletes pool `pool`; returns its name and the path of the file
    /// deleted (the other fields are zero).
    pub async fn delete(&self, pool: &str) -> Result<PoolInfo, RemoteError> {
        self.one_pool(&Request::Delete { pool: pool.into() }).await
    }

    /// Checks that [`delete`](RemotePools::delete) would find pool `pool`
    /// a pool file, without deleting it; returns what `delete` would.
    pub async fn check(&self, pool: &str) -> Result<PoolInfo, RemoteError> {
        self.one_pool(&Request::Check { pool: pool.into() }).await
    }

    /// The message `seq` of pool `pool`.
    pub async fn get(&self, pool: &str, seq: u64) -> Result<Message, RemoteError> {
        let request = Request::Get {
            pool: pool.into(),
            seq,
        };
        match self.request(&request).await?.next().await? {
            Some(Record::Message(msg)) => Ok(msg),
            other => Err(unexpected(other)),
        }
    }

    /// Reads pool `pool` as `query` says.
    pub async fn tail(&self, pool: &str, query: TailQuery) -> Result<Tail, RemoteError> {
        check_tags(&query.tags).map_err(RemoteError::Invalid)?;
        let request = Request::Tail {
            pool: pool.into(),
            query,
        };
        Ok(Tail {
            reader: self.request(&request).await?,
            ended: false,
        })
    }

    /// A long-lived append stream to pool `pool`.
    pub async fn appender(
        &self,
        pool: &str,
        durability: Durability,
    ) -> Result<Appender, RemoteError> {
        let request = Request::Append {
            pool: pool.into(),
            durability,
        };
        let stream = self.open_stream(&request).await?;
        Ok(Appender {
            reader: Reader::new(stream, self.max_record),
            out: Vec::new(),
            in_flight: 0,
        })
    }

    async fn open_stream(&self, request: &Request) -> Result<Stream, RemoteError> {
        let options = OpenOptions::new(POOLS_PROTOCOL, Bytes::new()).handshake(request.to_bytes());
        self.session
            .open_stream(options)
            .await
            .map_err(|e| RemoteError::Connection(e.to_string()))
    }

    /// Opens a stream for `request` and ends our side.
    async fn request(&self, request: &Request) -> Result<Reader, RemoteError> {
        let stream = self.open_stream(request).await?;
        stream
            .finish()
            .map_err(|e| RemoteError::Connection(e.to_string()))?;
        Ok(Reader::new(stream, self.max_record))
    }

    async fn one_pool(&self, request: &Request) -> Result<PoolInfo, RemoteError> {
        match self.request(request).await?.next().await? {
            Some(Record::Pool(info)) => Ok(info),
            other => Err(unexpected(other)),
        }
    }
}

/// The error for a record an operation does not answer with: the
/// server's error, a cut connection, or a protocol break.
fn unexpected(record: Option<Record>) -> RemoteError {
    match record {
        Some(Record::Error(e)) => RemoteError::Server(e),
        None => RemoteError::Connection("the stream ended before its answer".into()),
        Some(other) => RemoteError::Protocol(format!("unexpected record {other:?}")),
    }
}

/// Records read from a stream.
struct Reader {
    stream: Stream,
    buf: Vec<u8>,
    at: usize,
    max_record: usize,
}

impl Reader {
    fn new(stream: Stream, max_record: usize) -> Reader {
        Reader {
            stream,
            buf: Vec::new(),
            at: 0,
            max_record,
        }
    }

    /// The next record; `None` when the server ended the stream cleanly.
    async fn next(&mut self) -> Result<Option<Record>, RemoteError> {
        loop {
            match Record::decode(&self.buf[self.at..], self.max_record) {
                Ok(Some((record, used))) => {
                    self.at += used;
                    return Ok(Some(record));
                }
                Ok(None) => {}
                Err(WireError::TooLarge { len, max }) => {
                    return Err(RemoteError::TooLarge { len, max })
                }
                Err(e) => return Err(RemoteError::Protocol(e.to_string())),
            }
            self.buf.drain(..self.at);
            self.at = 0;
            match self.stream.read_chunk(READ_BYTES).await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                Ok(None) if self.buf.is_empty() => return Ok(None),
                Ok(None) => {
                    return Err(RemoteError::Connection(
                        "the stream ended inside a record".into(),
                    ))
                }
                Err(e) => return Err(RemoteError::Connection(e.to_string())),
            }
        }
    }
}

/// A tail's events, ending after [`TailEvent::TimedOut`] or when the
/// server is done.
pub struct Tail {
    reader: Reader,
    ended: bool,
}

impl Tail {
    /// The next event; `None` once the tail has ended.
    pub async fn next(&mut self) -> Result<Option<TailEvent>, RemoteError> {
        if self.ended {
            return Ok(None);
        }
        let event = match self.reader.next().await? {
            Some(Record::Message(msg)) => TailEvent::Message(msg),
            Some(Record::Gap { first, next }) => TailEvent::Gap { first, next },
            Some(Record::Error(e)) if e.kind == ErrorKind::Corrupt && e.seq.is_some() => {
                TailEvent::Damaged(e)
            }
            Some(Record::TimedOut) => {
                self.ended = true;
                TailEvent::TimedOut
            }
            Some(Record::Done) => {
                self.ended = true;
                return Ok(None);
            }
            other => {
                self.ended = true;
                return Err(unexpected(other));
            }
        };
        Ok(Some(event))
    }
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail").field("ended", &self.ended).finish()
    }
}

/// An append stream: batches go out without waiting for the receipts of
/// earlier ones, which come back in order. Read receipts as you go (the
/// stream's flow control holds a writer that never does).
pub struct Appender {
    reader: Reader,
    out: Vec<u8>,
    in_flight: usize,
}

impl Appender {
    /// Sends one batch, appended by the server as one store batch.
    /// A batch whose tags do not fit the protocol fails with
    /// [`RemoteError::Invalid`] before anything is sent.
    pub async fn send(&mut self, batch: &[(Vec<String>, Bytes)]) -> Result<(), RemoteError> {
        for (tags, _) in batch {
            check_tags(tags).map_err(RemoteError::Invalid)?;
        }
        self.out.clear();
        Record::Batch(batch.to_vec()).encode_into(&mut self.out);
        self.reader
            .stream
            .write_all(&self.out)
            .await
            .map_err(|e| RemoteError::Connection(e.to_string()))?;
        self.in_flight += 1;
        Ok(())
    }

    /// The receipt of the oldest batch sent and not yet acknowledged.
    pub async fn receipt(&mut self) -> Result<BatchReceipt, RemoteError> {
        match self.reader.next().await? {
            Some(Record::Receipt {
                first,
                count,
                time_ns,
            }) => {
                self.in_flight = self.in_flight.saturating_sub(1);
                Ok(BatchReceipt {
                    first,
                    count,
                    time: time_of(time_ns),
                })
            }
            other => Err(unexpected(other)),
        }
    }

    /// Batches sent whose receipts were not read yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Ends the stream once every receipt was read.
    pub async fn finish(mut self) -> Result<(), RemoteError> {
        while self.in_flight > 0 {
            self.receipt().await?;
        }
        self.reader
            .stream
            .finish()
            .map_err(|e| RemoteError::Connection(e.to_string()))?;
        match self.reader.next().await? {
            None => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

impl std::fmt::Debug for Appender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender")
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

/// A tail that survives its connection: after a failure it dials again
/// and resumes after the last seq it delivered, skipping any seq it saw
/// already (at-least-once on the wire, exactly once to the caller).
/// Gaps are reported exactly as the server finds them.
pub struct Follow {
    url: String,
    options: ConnectOptions,
    max_record: usize,
    pool: String,
    query: TailQuery,
    /// The seq after the last message delivered.
    next: Option<u64>,
    /// Messages still to deliver, if the query has a max.
    left: Option<u64>,
    tail: Option<Tail>,
    /// A connection succeeded once: failures since are retried.
    connected: bool,
    ended: bool,
}

/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl Follow {
    /// Follows pool `pool` at `url` as `query` says.
    pub fn new(url: impl Into<String>, pool: impl Into<String>, query: TailQuery) -> Follow {
        Follow::with_options(url, ConnectOptions::default(), pool, query)
    }

    /// [`Follow::new`], connecting (and reconnecting) with `options`.
    pub fn with_options(
        url: impl Into<String>,
        options: ConnectOptions,
        pool: impl Into<String>,
        query: TailQuery,
    ) -> Follow {
        Follow {
            url: url.into(),
            options,
            max_record: DEFAULT_MAX_RECORD,
            pool: pool.into(),
            left: query.max,
            query,
            next: None,
            tail: None,
            connected: false,
            ended: false,
        }
    }

    /// Takes messages of up to `bytes` with their envelope, as
    /// [`RemotePools::with_max_record`] does.
    #[must_use]
    pub fn with_max_record(mut self, bytes: usize) -> Follow {
        self.max_record = bytes;
        self
    }

    /// The next event; `None` once the tail has ended. Fails at once when
    /// the first connection fails or the server refuses the tail; later
    /// connection failures are retried (backing off to one attempt a
    /// second) for as long as the query's timeout allows, or forever.
    pub async fn next(&mut self) -> Result<Option<TailEvent>, RemoteError> {
        let mut backoff = Duration::from_millis(20);
        let mut lost_at: Option<tokio::time::Instant> = None;
        while !self.ended {
            let failed = match self.step().await {
                Ok(Some(event)) => return Ok(Some(event)),
                Ok(None) => {
                    self.ended = true;
                    return Ok(None);
                }
                Err(e) if e.is_connection() && self.connected => e,
                Err(e) => {
                    self.ended = true;
                    return Err(e);
                }
            };
            self.tail = None;
            let since = *lost_at.get_or_insert_with(tokio::time::Instant::now);
            let patience = self.query.timeout_ms.map(Duration::from_millis);
            if patience.is_some_and(|p| since.elapsed() >= p) {
                self.ended = true;
                return Err(failed);
            }
            tracing::debug!(error = %failed, "follow lost its connection; reconnecting");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        Ok(None)
    }

    async fn step(&mut self) -> Result<Option<TailEvent>, RemoteError> {
        loop {
            if self.tail.is_none() {
                let pools = RemotePools::connect_with(&self.url, &self.options)
                    .await?
                    .with_max_record(self.max_record);
                let mut query = self.query.clone();
                if let Some(next) = self.next {
                    query.start = TailStart::Seq(next);
                }
                query.max = self.left;
                let tail = pools.tail(&self.pool, query).await?;
                self.connected = true;
                self.tail = Some(tail);
            }
            let Some(tail) = self.tail.as_mut() else {
                continue;
            };
            match tail.next().await? {
                Some(TailEvent::Message(msg)) => {
                    if self.next.is_some_and(|next| msg.seq < next) {
                        continue;
                    }
                    self.next = Some(msg.seq + 1);
                    if let Some(left) = &mut self.left {
                        *left = left.saturating_sub(1);
                    }
                    return Ok(Some(TailEvent::Message(msg)));
                }
                Some(TailEvent::Gap { first, next }) => {
                    if self.next.is_some_and(|n| next <= n) {
                        continue;
                    }
                    self.next = Some(next);
                    return Ok(Some(TailEvent::Gap { first, next }));
                }
                Some(TailEvent::Damaged(e)) => {
                    // Reported by a tail before this one.
                    let seq = e.seq.unwrap_or_default();
                    if self.next.is_some_and(|n| seq < n) {
                        continue;
                    }
                    self.next = Some(seq + 1);
                    return Ok(Some(TailEvent::Damaged(e)));
                }
                other => return Ok(other),
            }
        }
    }
}

impl std::fmt::Debug for Follow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follow")
            .field("url", &self.url)
            .field("pool", &self.pool)
            .field("next", &self.next)
            .finish()
    }
}
