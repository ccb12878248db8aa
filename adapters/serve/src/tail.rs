//! Tails: messages from a seq, live, as JSON Lines (`GET
//! /v0/pools/{pool}/tail`) or as server-sent events (the page's
//! `GET /v0/ui/pools/{pool}/events`, in [`Format::Sse`]).
//!
//! A tail holds a slot of `max_tails` for as long as its response body
//! lives, and reads the pool in the connection's task: cursor reads are
//! loads from the shared mapping, and waits are on the pool's [`Notifier`],
//! so a tail sleeps until an append wakes it, its deadline passes, the
//! server shuts down, or the client goes away (hyper then drops the body,
//! and with it the slot).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, Stream};
use plex_store::{Error as StoreError, Message, Notifier, Seq, Start};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::{ApiError, Kind};
use crate::pools::{Entry, Pools};
use crate::wire;

/// A chunk of the body holds at most about this many bytes of lines.
const CHUNK_BYTES: usize = 64 * 1024;

/// What to do when messages were overwritten before the tail read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GapPolicy {
    /// Skip them and go on.
    Continue,
    /// End the tail with a RetentionGap error line.
    Error,
}

/// A tail's query: `since_seq`, `max`, `timeout_ms`, `gap_policy`, `tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TailQuery {
    /// The first seq (inclusive); `None`: the oldest held.
    pub(crate) since: Option<u64>,
    /// Stop after this many messages (after filtering).
    pub(crate) max: Option<u64>,
    /// The lifetime of the stream; `None`: the server's limit.
    pub(crate) timeout: Option<Duration>,
    /// What a retention gap does.
    pub(crate) gaps: GapPolicy,
    /// Tags every message must carry (all of them).
    pub(crate) tags: Vec<String>,
}

impl TailQuery {
    /// Parses a raw query string; unknown parameters are ignored.
    pub(crate) fn parse(query: Option<&str>) -> Result<TailQuery, ApiError> {
        let mut q = TailQuery {
            since: None,
            max: None,
            timeout: None,
            gaps: GapPolicy::Continue,
            tags: Vec::new(),
        };
        let number = |key: &str, value: &str| {
            value.parse::<u64>().map_err(|_| {
                ApiError::usage(format!("invalid {key}: expected an unsigned integer"))
            })
        };
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*key {
                "since_seq" => q.since = Some(number("since_seq", &value)?),
                "max" => q.max = Some(number("max", &value)?),
                "timeout_ms" => {
                    q.timeout = Some(Duration::from_millis(number("timeout_ms", &value)?));
                }
                "gap_policy" => {
                    q.gaps = match &*value {
                        "continue" => GapPolicy::Continue,
                        "error" => GapPolicy::Error,
                        _ => return Err(ApiError::usage("invalid tail gap policy")),
                    }
                }
                "tag" => {
                    let tag = value.trim();
                    if !tag.is_empty() {
                        q.tags.push(tag.to_owned());
                    }
                }
                _ => {}
            }
        }
        Ok(q)
    }
}

/// How a tail writes its messages and its terminal error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// JSON Lines: an envelope per line; an error envelope as the last line.
    JsonLines,
    /// Server-sent events: `event: message` with the seq as its `id` and the
    /// envelope as its `data`; `event: error` with the error envelope;
    /// comments to keep an idle stream alive.
    Sse {
        /// How long the stream may stay silent before a `: keep-alive`
        /// comment.
        keep_alive: Duration,
    },
}

impl Format {
    /// Appends `msg` in this format.
    fn message_into(self, msg: &Message, out: &mut Vec<u8>) {
        match self {
            Format::JsonLines => {
                wire::envelope_into(msg, out);
                out.push(b'\n');
            }
            Format::Sse { .. } => {
                // Envelopes are one line: their JSON is compacted, and
                // strings escape their newlines.
                out.extend_from_slice(b"event: message\nid: ");
                out.extend_from_slice(msg.seq.get().to_string().as_bytes());
                out.extend_from_slice(b"\ndata: ");
                wire::envelope_into(msg, out);
                out.extend_from_slice(b"\n\n");
            }
        }
    }

    /// `err` in this format: the terminal line or event of a stream.
    pub(crate) fn error(self, err: &ApiError) -> Bytes {
        let envelope = err.envelope();
        let mut out = Vec::with_capacity(envelope.len() + 24);
        if let Format::Sse { .. } = self {
            out.extend_from_slice(b"event: error\ndata: ");
            out.extend_from_slice(&envelope);
            out.extend_from_slice(b"\n\n");
        } else {
            out.extend_from_slice(&envelope);
            out.push(b'\n');
        }
        Bytes::from(out)
    }
}

/// Why a waiting tail woke, when it does not simply read on.
#[derive(PartialEq, Eq)]
enum Woke {
    /// Its pool was deleted through this server.
    Deleted,
    /// It has been silent for the keep-alive interval.
    Silent,
}

/// A tail admitted by the limits, ready to stream.
pub(crate) struct Tail {
    /// The pools.
    pub(crate) pools: Arc<Pools>,
    pub(crate) name: String,
    pub(crate) query: TailQuery,
    /// When the stream ends; `None`: at shutdown or disconnect only.
    pub(crate) deadline: Option<Instant>,
    pub(crate) format: Format,
    /// The tail's slot of `max_tails`, freed when the body is dropped.
    pub(crate) _slot: OwnedSemaphorePermit,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// Where a running tail is.
struct State {
    tail: Tail,
    /// The pool and its notifier, once opened.
    open: Option<(Arc<Entry>, Arc<Notifier>)>,
    /// The next seq to read; `None` until the pool is open.
    next: Option<u64>,
    /// Messages still to send, if `max` was given.
    left: Option<u64>,
    /// Nothing more to send.
    done: bool,
    /// The tail's span, entered while it reads and waits.
    span: tracing::Span,
}

impl Tail {
    /// The body: chunks of JSON Lines, ending cleanly at the deadline, after
    /// `max` messages, or at shutdown, or after one error line.
    pub(crate) fn into_stream(self) -> impl Stream<Item = Bytes> + Send + 'static {
        let left = self.query.max;
        let span = tracing::debug_span!("tail", pool = %self.name);
        let state = State {
            tail: self,
            open: None,
            next: None,
            left,
            done: false,
            span,
        };
        stream::unfold(state, |mut st| async move {
            if st.done || st.left == Some(0) {
                return None;
            }
            let span = st.span.clone();
            let chunk = st.step().instrument(span).await;
            chunk.map(|c| (c, st))
        })
    }
}

impl State {
    /// The next chunk, or `None` when the tail ends without one.
    async fn step(&mut self) -> Option<Bytes> {
        if self.open.is_none() {
            match self.open().await {
                Ok(open) => self.open = Some(open),
                Err(e) => return Some(self.fail(&e)),
            }
        }
        let (entry, notifier) = self.open.clone()?;
        // Silence is counted from the last chunk sent, however many
        // wake-ups brought only messages the tags filter out.
        let keep_alive = match self.tail.format {
            Format::Sse { keep_alive } => Some(Instant::now() + keep_alive),
            Format::JsonLines => None,
        };
        loop {
            let mut out = Vec::new();
            let since = self.next.map_or(
                self.tail
                    .query
                    .since
                    .map_or(Start::Oldest, |s| Start::Seq(Seq(s))),
                |n| Start::Seq(Seq(n)),
            );
            let mut cursor = entry.pool.cursor(since);
            let ended = loop {
                if out.len() >= CHUNK_BYTES || self.left == Some(0) {
                    break None;
                }
                match cursor.try_next() {
                    Ok(Some(msg)) => {
                        if self.tail.query.tags.iter().all(|t| msg.tags.contains(t)) {
                            self.tail.format.message_into(&msg, &mut out);
                            if let Some(left) = &mut self.left {
                                *left -= 1;
                            }
                        }
                    }
                    Ok(None) => break None,
                    Err(StoreError::RetentionGap { lost }) => {
                        if self.tail.query.gaps == GapPolicy::Error {
                            let (first, next) = (lost.start.get(), lost.end.get());
                            let err = ApiError::new(
                                Kind::RetentionGap,
                                format!(
                                    "messages {first}-{} are no longer retained; the next \
                                     available message is {next}",
                                    next - 1
                                ),
                            )
                            .with_seq(first);
                            break Some(err);
                        }
                    }
                    // Lapped by writers on every retry: read again.
                    Err(StoreError::Busy { .. }) => break None,
                    Err(e) => break Some(self.tail.pools.error(&entry.name, &e)),
                }
            };
            self.next = Some(cursor.next_seq().get());
            if let Some(err) = ended {
                out.extend_from_slice(&self.fail(&err));
                return Some(Bytes::from(out));
            }
            if !out.is_empty() {
                return Some(Bytes::from(out));
            }
            if self.left == Some(0) {
                return None;
            }
            let wait = notifier.wait_for(cursor.next_seq());
            let deadline = self.tail.deadline;
            let expired = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let silent = async move {
                match keep_alive {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let woke = tokio::select! {
                () = wait => continue,
                () = expired => return None,
                _ = self.tail.shutdown.wait_for(|stop| *stop) => return None,
                () = entry.deleted() => Woke::Deleted,
                () = silent => Woke::Silent,
            };
            // A file deleted by another process is noticed at a keep-alive.
            if woke == Woke::Silent && self.still_there(&entry).await {
                return Some(Bytes::from_static(b": keep-alive\n\n"));
            }
            let gone = self.gone(&entry);
            return Some(self.fail(&gone));
        }
    }

    /// Opens the pool, on the storage threads.
    async fn open(&self) -> Result<(Arc<Entry>, Arc<Notifier>), ApiError> {
        let name = self.tail.name.clone();
        self.tail
            .pools
            .run(move |pools| {
                let entry = pools.open(&name)?;
                let notifier = entry.notifier().map_err(|e| pools.error(&name, &e))?;
                Ok((entry, notifier))
            })
            .await
    }

    /// Whether the pool's file is still there; yes if the storage threads
    /// are too busy to look.
    async fn still_there(&self, entry: &Arc<Entry>) -> bool {
        let entry = entry.clone();
        self.tail
            .pools
            .run(move |pools| Ok(pools.still_there(&entry)))
            .await
            .unwrap_or(true)
    }

    /// The error a tail of a deleted pool ends with.
    fn gone(&self, entry: &Entry) -> ApiError {
        let mut err = ApiError::new(Kind::NotFound, format!("pool {} was deleted", entry.name));
        err.path = Some(self.tail.pools.wire_path(&entry.name));
        err
    }

    /// Ends the tail with `err` as its terminal line or event.
    fn fail(&mut self, err: &ApiError) -> Bytes {
        self.done = true;
        tracing::debug!(pool = %self.tail.name, error = %err, "tail ended with an error");
        self.tail.format.error(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let q = TailQuery::parse(Some(
            "since_seq=3&max=2&timeout_ms=50&gap_policy=error&tag=a&tag=+b+&tag=&tag=c%2Cd&x=1",
        ))
        .unwrap();
        assert_eq!(q.since, Some(3));
        assert_eq!(q.max, Some(2));
        assert_eq!(q.timeout, Some(Duration::from_millis(50)));
        assert_eq!(q.gaps, GapPolicy::Error);
        assert_eq!(q.tags, ["a", "b", "c,d"]);
        let q = TailQuery::parse(None).unwrap();
        assert_eq!((q.since, q.max, q.timeout), (None, None, None));
        assert_eq!(q.gaps, GapPolicy::Continue);
        for bad in ["since_seq=x", "max=-1", "timeout_ms=1.5", "gap_policy=skip"] {
            let err = TailQuery::parse(Some(bad)).unwrap_err();
            assert_eq!(err.kind, Kind::Usage, "{bad}");
        }
        assert_eq!(
            TailQuery::parse(Some("gap_policy=x")).unwrap_err().message,
            "invalid tail gap policy"
        );
    }
}
