//! [`PoolPort`]: a store port that routes each call through the pool, and
//! fails over to another member when one fails.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_core::Stream;

use super::{MemberId, Outcome, PeerPool, Policy, Selector};
use crate::store::{Caps, Entries, Entry, Range, StoreFuture, StorePort};
use crate::Error;

/// Store `id` on a lane, reached through a [`PeerPool`].
///
/// Each call picks a member with the port's [`Policy`]; under
/// [`Policy::Sticky`] the call's key is the key of `get`, `put` and `del`
/// and the prefix of `scan`, and `append` (which has no key) goes
/// round-robin.
///
/// A call that fails with an error for which
/// [`Error::is_peer_failure`] holds counts as a failure of that member,
/// which cools down, and is retried on another eligible member, never the
/// same one twice, up to [`PoolConfig::max_attempts`](super::PoolConfig::max_attempts);
/// once no member is left the last failure is returned. `get`, `put`,
/// `del` and `scan` are retried (a scan only before its first entry
/// arrived: once entries flowed, a retry would repeat them; so a scan's
/// future resolves once its first entry, or its end, has arrived). `append` is
/// not idempotent, so it is retried only after [`Error::Unavailable`] or
/// [`Error::NotReady`], which prove the request never reached a store;
/// after any other failure the append may have happened, and the error is
/// returned. An error about the request itself (such as
/// [`Code::BadArg`](crate::Code::BadArg)) is returned as it is and is not
/// held against the member. With no eligible member a call fails at once
/// with [`Error::NoPeers`].
#[derive(Debug, Clone)]
pub struct PoolPort {
    pool: PeerPool,
    id: Bytes,
    lane: Arc<str>,
    policy: Policy,
}

/// Which failures a call may be retried after.
#[derive(Debug, Clone, Copy)]
enum Retry {
    /// Every peer failure: the call is idempotent.
    Idempotent,
    /// Only failures that prove the request was not delivered.
    Undelivered,
}

impl Retry {
    fn allows(self, error: &Error) -> bool {
        match self {
            Retry::Idempotent => true,
            Retry::Undelivered => matches!(error, Error::Unavailable | Error::NotReady { .. }),
        }
    }
}

impl PoolPort {
    pub(super) fn new(pool: PeerPool, id: Bytes, lane: Arc<str>) -> PoolPort {
        let policy = pool.policy();
        PoolPort {
            pool,
            id,
            lane,
            policy,
        }
    }

    /// The same port with `policy`.
    pub fn with_policy(mut self, policy: Policy) -> PoolPort {
        self.policy = policy;
        self
    }

    /// The store id.
    pub fn id(&self) -> &Bytes {
        &self.id
    }

    /// The lane.
    pub fn lane(&self) -> &str {
        &self.lane
    }

    /// The policy its calls pick members with.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Runs `op` on one member after another until it succeeds, fails with
    /// an error that is not a peer failure, or may not be retried.
    async fn call<T>(
        &self,
        key: &[u8],
        retry: Retry,
        op: impl for<'a> Fn(&'a dyn StorePort) -> StoreFuture<'a, T>,
    ) -> Result<T, Error> {
        let mut attempts = Attempts::new(self);
        loop {
            let call = attempts.begin(key)?;
            let port = call.port(self);
            match op(&*port).await {
                Ok(value) => {
                    call.answered();
                    return Ok(value);
                }
                Err(error) => attempts.failed(call, error, retry)?,
            }
        }
    }

    /// A scan, retried on another member until its first entry (or its end)
    /// arrives; the entries then come from that member alone.
    async fn scan_call(&self, range: Range, caps: Caps) -> Result<Entries, Error> {
        let mut attempts = Attempts::new(self);
        loop {
            let mut call = attempts.begin(&range.prefix)?;
            let port = call.port(self);
            let first = match port.scan(range.clone(), caps.clone()).await {
                Ok(mut entries) => match entries.next().await {
                    Some(Err(error)) => Err(error),
                    first => Ok((first, entries)),
                },
                Err(error) => Err(error),
            };
            match first {
                Ok((first, rest)) => {
                    call.mark_answered();
                    let call = match first {
                        Some(_) => Some(call),
                        None => {
                            call.answered();
                            None
                        }
                    };
                    return Ok(Entries::new(PoolEntries { first, rest, call }));
                }
                Err(error) => attempts.failed(call, error, Retry::Idempotent)?,
            }
        }
    }
}

impl StorePort for PoolPort {
    fn get(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, Option<Bytes>> {
        Box::pin(async move {
            self.call(&key, Retry::Idempotent, |port| {
                port.get(key.clone(), caps.clone())
            })
            .await
        })
    }

    fn put(&self, key: Bytes, value: Bytes, caps: Caps) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.call(&key, Retry::Idempotent, |port| {
                port.put(key.clone(), value.clone(), caps.clone())
            })
            .await
        })
    }

    fn del(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.call(&key, Retry::Idempotent, |port| {
                port.del(key.clone(), caps.clone())
            })
            .await
        })
    }

    fn append(&self, value: Bytes, caps: Caps) -> StoreFuture<'_, Bytes> {
        Box::pin(async move {
            self.call(&[], Retry::Undelivered, |port| {
                port.append(value.clone(), caps.clone())
            })
            .await
        })
    }

    fn scan(&self, range: Range, caps: Caps) -> StoreFuture<'_, Entries> {
        Box::pin(self.scan_call(range, caps))
    }
}

/// One call's walk over the members.
struct Attempts<'a> {
    port: &'a PoolPort,
    tried: Vec<MemberId>,
    last_error: Option<Error>,
}

impl<'a> Attempts<'a> {
    fn new(port: &'a PoolPort) -> Attempts<'a> {
        Attempts {
            port,
            tried: Vec::new(),
            last_error: None,
        }
    }

    /// Starts the next attempt on a member not tried yet; when there is
    /// none, the last failure (or [`Error::NoPeers`] for a first attempt).
    fn begin(&mut self, key: &[u8]) -> Result<MemberCall, Error> {
        let limit_reached = self
            .port
            .pool
            .max_attempts()
            .is_some_and(|max| self.tried.len() >= max);
        let begun = if limit_reached {
            None
        } else {
            let selector = Selector::new(self.port.policy)
                .key(key)
                .exclude(&self.tried);
            self.port.pool.begin(&selector).ok()
        };
        match begun {
            Some((id, member)) => Ok(MemberCall {
                pool: self.port.pool.clone(),
                id,
                member,
                started: Instant::now(),
                answered_after: None,
                finished: false,
            }),
            None => Err(self.last_error.take().unwrap_or(Error::NoPeers)),
        }
    }

    /// Records `error` from `call`; `Ok` if the call should go on to
    /// another member, else the error to return.
    fn failed(&mut self, call: MemberCall, error: Error, retry: Retry) -> Result<(), Error> {
        if !error.is_peer_failure() {
            call.answered();
            return Err(error);
        }
        self.tried.push(call.id);
        call.failed();
        if !retry.allows(&error) {
            return Err(error);
        }
        self.last_error = Some(error);
        Ok(())
    }
}

/// A call in flight on one member. Dropped before it finished (the
/// caller dropped the call's future or the scan's entries), it records the
/// answer if one had arrived and a cancelled call otherwise.
struct MemberCall {
    pool: PeerPool,
    id: MemberId,
    member: Arc<dyn super::Member>,
    started: Instant,
    answered_after: Option<Duration>,
    finished: bool,
}

impl MemberCall {
    fn port(&self, port: &PoolPort) -> Arc<dyn StorePort> {
        self.member.store_port(&port.id, &port.lane)
    }

    /// Notes that the member answered, the first time it does.
    fn mark_answered(&mut self) -> Duration {
        *self
            .answered_after
            .get_or_insert_with(|| self.started.elapsed())
    }

    /// The member answered; the call is over.
    fn answered(mut self) {
        let latency = self.mark_answered();
        self.finish(Outcome::Answered { latency });
    }

    /// The member failed; the call is over.
    fn failed(mut self) {
        let latency = self.started.elapsed();
        self.finish(Outcome::Failed { latency });
    }

    fn finish(&mut self, outcome: Outcome) {
        if !self.finished {
            self.finished = true;
            self.pool.finish(self.id, outcome);
        }
    }
}

impl Drop for MemberCall {
    fn drop(&mut self) {
        let outcome = match self.answered_after {
            Some(latency) => Outcome::Answered { latency },
            None => Outcome::Cancelled,
        };
        self.finish(outcome);
    }
}

/// The entries of a scan through the pool: the first one, read while the
/// scan could still fail over, then the rest from the same member. The
/// call stays in flight until the entries end, fail at the member or are
/// dropped; after that they yield nothing more.
struct PoolEntries {
    first: Option<Result<Entry, Error>>,
    rest: Entries,
    call: Option<MemberCall>,
}

impl Stream for PoolEntries {
    type Item = Result<Entry, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(first));
        }
        if self.call.is_none() {
            // Ended, or failed at the member.
            return Poll::Ready(None);
        }
        let item = match Pin::new(&mut self.rest).poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        match &item {
            None => {
                if let Some(call) = self.call.take() {
                    call.answered();
                }
            }
            Some(Err(error)) if error.is_peer_failure() => {
                if let Some(call) = self.call.take() {
                    call.failed();
                }
            }
            Some(_) => {}
        }
        Poll::Ready(item)
    }
}
