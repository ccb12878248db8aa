//! The client side of RPC calls: a sans-IO state machine.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::call::{CallError, ClientConfig, ClientEvent, ClientStats, Reply};
use super::{Envelope, Frame, Method};
use crate::ConfigError;

/// The client side of one RPC lane: starts calls, matches replies to them,
/// times them out. No IO, no clock.
///
/// - **Getters**: [`in_flight`](Self::in_flight), [`is_pending`](Self::is_pending),
///   [`wants_replies`](Self::wants_replies), [`is_closed`](Self::is_closed),
///   [`stats`](Self::stats), [`config`](Self::config).
/// - **Inputs**: [`handle_frame`](Self::handle_frame) with every frame
///   from the server, [`handle_timeout`](Self::handle_timeout) when the
///   deadline from `poll_timeout` passes.
/// - **Mutators**: [`call`](Self::call), [`call_with_timeout`](Self::call_with_timeout),
///   [`cancel`](Self::cancel), [`fail`](Self::fail), [`close`](Self::close).
/// - **Outputs**, polled after every input or mutation until each returns
///   `None`: [`poll_transmit`](Self::poll_transmit) (REQ and CANCEL frames,
///   in order), [`poll_event`](Self::poll_event) (whom to wake), then
///   [`poll_reply`](Self::poll_reply) for each woken call, and
///   [`poll_timeout`](Self::poll_timeout).
///
/// A call is *held* from [`call`](Self::call) until its [`Reply::Done`] is
/// polled or the caller cancels it. Held calls, finished or not, count
/// towards `max_in_flight`: so a caller that never polls finished calls
/// cannot grow the client, it gets [`CallError::NotReady`]. Each call
/// resolves exactly once: one `Done`, or a [`cancel`](Self::cancel) that
/// returns `true`, never both. Nothing is delivered for a call after it
/// is cancelled or done; replies that arrive later are counted in
/// [`ClientStats::late_replies`] and dropped.
///
/// Both wires use it. On the shared Protomux channel, replies of all calls
/// arrive interleaved and the per-call queue bound
/// ([`ClientConfig::max_queued_replies`], [`ClientConfig::max_queued_bytes`])
/// is the last resort against a caller that stops reading: a scan item
/// that would take the queue past either bound fails the call with
/// [`CallError::Overflow`] (an empty queue takes any one item, and the
/// final reply always fits: there is one per call). On plex/1 each call has its own stream:
/// the adapter feeds a call's next reply only while
/// [`wants_replies`](Self::wants_replies) holds and leaves the rest to the
/// stream's flow control, so the bound is never hit.
///
/// `now` must never go backwards between calls; an earlier instant is
/// treated as the latest one seen.
///
/// A GET answered by a [`Server`](super::Server), then a call that times out:
///
/// ```
/// use std::time::{Duration, Instant};
/// use bytes::Bytes;
/// use plex_proto::rpc::{
///     Action, Body, CallError, Client, ClientConfig, ClientEvent, Envelope, Method, Reply,
///     Server, ServerConfig,
/// };
///
/// let mut now = Instant::now();
/// let mut client = Client::new(ClientConfig::default())?;
/// let mut server = Server::new(ServerConfig::default())?;
///
/// let body = Body::Get { key: Bytes::from_static(b"k1"), caps: Bytes::new() };
/// let rid = client.call(now, Method::GET, body.to_bytes())?;
/// let request = client.poll_transmit().expect("the REQ");
///
/// let Some(Action::Dispatch { rid: served, .. }) = server.handle_message(request.to_bytes())?
/// else {
///     unreachable!("a valid GET is dispatched");
/// };
/// let value = Envelope::Ok { value: Some(Bytes::from_static(b"v1")), key: None };
/// let response = server.respond(served, false, Some(&value))?.expect("the call is active");
///
/// client.handle_frame(now, response);
/// assert_eq!(client.poll_event(), Some(ClientEvent::Readable { rid }));
/// assert_eq!(client.poll_reply(rid), Some(Reply::Done(Ok(value))));
/// assert_eq!(client.in_flight(), 0);
///
/// // No answer: at the deadline the call fails and a CANCEL goes out.
/// let rid = client.call_with_timeout(now, Method::GET, body.to_bytes(), Some(Duration::from_secs(1)))?;
/// let _request = client.poll_transmit();
/// now = client.poll_timeout().expect("a deadline");
/// client.handle_timeout(now);
/// assert!(matches!(client.poll_transmit(), Some(plex_proto::rpc::Frame::Cancel { .. })));
/// assert_eq!(
///     client.poll_reply(rid),
///     Some(Reply::Done(Err(CallError::Timeout { after: Duration::from_secs(1) })))
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    now: Option<Instant>,
    closed: bool,
    /// The next request id; `None` once `u32::MAX` has been used.
    next_rid: Option<u32>,
    calls: HashMap<u32, Call>,
    deadlines: BTreeSet<(Instant, u32)>,
    /// Calls with a reply queued and not yet announced by `poll_event`.
    readable: BTreeSet<u32>,
    transmit: VecDeque<Frame>,
    stats: ClientStats,
}

#[derive(Debug)]
struct Call {
    method: Method,
    /// `(deadline, timeout)` while pending with a timeout and not held.
    deadline: Option<(Instant, Duration)>,
    /// The call's timeout, kept while [`Client::hold`] suspends the deadline.
    timeout: Option<Duration>,
    /// Replies not yet polled, each with the payload bytes it holds.
    replies: VecDeque<(Reply, usize)>,
    queued_bytes: usize,
    /// A `Done` is queued: the call takes no more replies.
    done: bool,
}

impl Client {
    /// A client with these limits.
    pub fn new(config: ClientConfig) -> Result<Client, ConfigError> {
        config.validate()?;
        Ok(Client {
            config,
            now: None,
            closed: false,
            next_rid: Some(1),
            calls: HashMap::new(),
            deadlines: BTreeSet::new(),
            readable: BTreeSet::new(),
            transmit: VecDeque::new(),
            stats: ClientStats::default(),
        })
    }

    /// A client whose first request id is `first_rid` (not 0): a lane
    /// reopened after [`close`](Self::close) continues its predecessor's
    /// [`next_rid`](Self::next_rid), so a server never sees an id twice.
    pub fn starting_at(config: ClientConfig, first_rid: u32) -> Result<Client, ConfigError> {
        let mut client = Client::new(config)?;
        client.next_rid = Some(first_rid.max(1));
        Ok(client)
    }

    /// The request id the next call will get; `None` once all are used.
    pub fn next_rid(&self) -> Option<u32> {
        self.next_rid
    }

    /// Its limits.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Calls held: started, and neither cancelled nor done-and-polled.
    pub fn in_flight(&self) -> usize {
        self.calls.len()
    }

    /// Whether `rid` is waiting for replies (started, not ended).
    pub fn is_pending(&self, rid: u32) -> bool {
        self.calls.get(&rid).is_some_and(|call| !call.done)
    }

    /// Whether the transport should hand over the call's next reply now:
    /// the call is pending and nothing is queued for it. The plex/1
    /// adapter reads a call's stream only while this holds.
    pub fn wants_replies(&self, rid: u32) -> bool {
        self.calls
            .get(&rid)
            .is_some_and(|call| !call.done && call.replies.is_empty())
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Its counters.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// Starts a call with the default timeout; returns its request id.
    pub fn call(&mut self, now: Instant, method: Method, body: Bytes) -> Result<u32, CallError> {
        self.call_with_timeout(now, method, body, self.config.timeout)
    }

    /// Starts a call that fails with [`CallError::Timeout`] `timeout`
    /// after `now` (never, with `None`); returns its request id.
    ///
    /// Fails, sending nothing, if the body is over `max_request_bytes`,
    /// `max_in_flight` calls are held, the client is closed or the ids are
    /// used up. Request ids count from 1 and are never reused.
    pub fn call_with_timeout(
        &mut self,
        now: Instant,
        method: Method,
        body: Bytes,
        timeout: Option<Duration>,
    ) -> Result<u32, CallError> {
        let now = self.advance(now);
        if self.closed {
            return Err(CallError::Closed);
        }
        if body.len() > self.config.max_request_bytes {
            return Err(CallError::PayloadTooLarge {
                len: body.len(),
                max: self.config.max_request_bytes,
            });
        }
        if self.calls.len() >= self.config.max_in_flight {
            return Err(CallError::NotReady {
                limit: self.config.max_in_flight,
            });
        }
        let rid = self.next_rid.ok_or(CallError::RidsExhausted)?;
        self.next_rid = rid.checked_add(1);
        // A timeout too far out to represent is no timeout.
        let deadline = timeout.and_then(|after| Some((now.checked_add(after)?, after)));
        if let Some((at, _)) = deadline {
            self.deadlines.insert((at, rid));
        }
        self.calls.insert(
            rid,
            Call {
                method,
                deadline,
                timeout: deadline.map(|(_, after)| after),
                replies: VecDeque::new(),
                queued_bytes: 0,
                done: false,
            },
        );
        self.transmit
            .push_back(Frame::Request { rid, method, body });
        self.stats.calls += 1;
        Ok(rid)
    }

    /// Takes one frame from the server.
    ///
    /// A RES for a pending call queues a reply; anything that does not
    /// decode fails the call with [`CallError::BadReply`] and cancels it.
    /// The echoed method is not checked (neonplex does not check it). A RES
    /// for no pending call is counted as late and dropped. REQ and CANCEL
    /// frames are counted and dropped: a client serves nothing, and,
    /// unlike neonplex (which resolves a pending call with *any* frame
    /// carrying its rid, a REQ reading as `ok()`), only a RES may end a call.
    pub fn handle_frame(&mut self, now: Instant, frame: Frame) {
        self.advance(now);
        let Frame::Response {
            rid, more, payload, ..
        } = frame
        else {
            self.stats.unexpected_frames += 1;
            return;
        };
        if !self.is_pending(rid) {
            self.stats.late_replies += 1;
            self.stats.late_bytes += payload.len() as u64;
            return;
        }
        let len = payload.len();
        let envelope = match (more, payload.is_empty()) {
            (false, true) => Ok(Envelope::OK),
            _ => Envelope::decode(payload),
        };
        let envelope = match envelope {
            Ok(envelope) => envelope,
            Err(e) => {
                self.stats.bad_replies += 1;
                self.resolve(rid, CallError::BadReply(e), true);
                return;
            }
        };
        if more && !self.has_room(rid, len) {
            self.stats.overflows += 1;
            self.resolve(rid, CallError::Overflow, true);
            return;
        }
        if more {
            self.push(rid, Reply::Item(envelope), len);
        } else {
            self.stats.completed += 1;
            if matches!(envelope, Envelope::Err { .. }) {
                self.stats.remote_errors += 1;
            }
            self.finish(rid, Ok(envelope), len);
        }
    }

    /// Fails every pending call whose deadline is at or before `now` with
    /// [`CallError::Timeout`], and cancels it.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        while let Some(&(at, rid)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let after = self
                .calls
                .get(&rid)
                .and_then(|call| call.deadline)
                .map_or(Duration::ZERO, |(_, after)| after);
            self.stats.timeouts += 1;
            self.resolve(rid, CallError::Timeout { after }, true);
        }
    }

    /// The caller gave up on `rid`: queues a CANCEL if it was pending and
    /// forgets it, queued replies included; nothing is delivered for it
    /// afterwards. Returns whether it was pending.
    pub fn cancel(&mut self, rid: u32) -> bool {
        let Some(call) = self.forget(rid) else {
            return false;
        };
        if call.done {
            return false;
        }
        self.stats.cancelled += 1;
        if !self.closed {
            self.transmit.push_back(Frame::Cancel {
                rid,
                method: call.method,
            });
        }
        true
    }

    /// The caller holds the scan item it was given and is not waiting for
    /// the next: the call's deadline is suspended, so a slow consumer is
    /// not mistaken for a silent server. Returns whether it was pending.
    pub fn hold(&mut self, rid: u32) -> bool {
        let Some(call) = self.calls.get_mut(&rid).filter(|call| !call.done) else {
            return false;
        };
        if let Some((at, _)) = call.deadline.take() {
            self.deadlines.remove(&(at, rid));
        }
        true
    }

    /// The caller waits for the call's next reply again: a deadline
    /// suspended by [`hold`](Self::hold) restarts, the full timeout from
    /// `now`. So a scan's timeout bounds each wait for its next reply.
    /// Returns whether it was pending.
    pub fn wait(&mut self, now: Instant, rid: u32) -> bool {
        let now = self.advance(now);
        let Some(call) = self.calls.get_mut(&rid).filter(|call| !call.done) else {
            return false;
        };
        if call.deadline.is_none() {
            if let Some(after) = call.timeout {
                if let Some(at) = now.checked_add(after) {
                    call.deadline = Some((at, after));
                    self.deadlines.insert((at, rid));
                }
            }
        }
        true
    }

    /// The transport ended `rid` (plex/1: its stream was refused, giving
    /// [`CallError::Unavailable`], or reset, giving [`CallError::Reset`]):
    /// the call fails with `error`; no CANCEL is sent, the stream is gone.
    /// Returns whether it was pending.
    pub fn fail(&mut self, rid: u32, error: CallError) -> bool {
        if !self.is_pending(rid) {
            return false;
        }
        self.stats.transport_failures += 1;
        self.resolve(rid, error, false);
        true
    }

    /// The lane or session closed: every pending call fails with
    /// [`CallError::Closed`] at once, unsent frames are dropped, and later
    /// calls fail with `Closed`.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.transmit.clear();
        let mut pending: Vec<u32> = self
            .calls
            .iter()
            .filter(|(_, call)| !call.done)
            .map(|(&rid, _)| rid)
            .collect();
        pending.sort_unstable();
        for rid in pending {
            self.stats.closed += 1;
            self.resolve(rid, CallError::Closed, false);
        }
    }

    /// The next frame to send, REQs and CANCELs in the order they were made.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Frame> {
        self.transmit.pop_front()
    }

    /// The next call with something to [`poll_reply`](Self::poll_reply),
    /// each announced once per batch of replies.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        let rid = self.readable.pop_first()?;
        Some(ClientEvent::Readable { rid })
    }

    /// Pops the call's next reply. After its [`Reply::Done`] the call is
    /// forgotten (its slot is free) and this returns `None` for it.
    #[must_use]
    pub fn poll_reply(&mut self, rid: u32) -> Option<Reply> {
        let call = self.calls.get_mut(&rid)?;
        let (reply, len) = call.replies.pop_front()?;
        call.queued_bytes -= len;
        if matches!(reply, Reply::Done(_)) {
            self.forget(rid);
        } else if call.replies.is_empty() {
            self.readable.remove(&rid);
        }
        Some(reply)
    }

    /// The earliest call deadline, for [`handle_timeout`](Self::handle_timeout).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    #[cfg(test)]
    pub(crate) fn set_next_rid(&mut self, rid: u32) {
        self.next_rid = Some(rid);
    }

    fn advance(&mut self, now: Instant) -> Instant {
        let now = self.now.map_or(now, |seen| seen.max(now));
        self.now = Some(now);
        now
    }

    /// Whether one more item of `len` payload bytes fits the call's queue.
    /// An empty queue always takes one, so a large item passes (its size
    /// is bounded by the transport's message limit). The final reply is
    /// not checked: there is one per call, and calls are bounded.
    fn has_room(&self, rid: u32, len: usize) -> bool {
        self.calls.get(&rid).is_some_and(|call| {
            call.replies.is_empty()
                || (call.replies.len() < self.config.max_queued_replies
                    && call.queued_bytes.saturating_add(len) <= self.config.max_queued_bytes)
        })
    }

    fn push(&mut self, rid: u32, reply: Reply, len: usize) {
        if let Some(call) = self.calls.get_mut(&rid) {
            call.replies.push_back((reply, len));
            call.queued_bytes += len;
            self.readable.insert(rid);
        }
    }

    /// Fails the call; with `cancel`, tells the server to stop too.
    fn resolve(&mut self, rid: u32, error: CallError, cancel: bool) {
        let method = self.finish(rid, Err(error), 0);
        if let (Some(method), true, false) = (method, cancel, self.closed) {
            self.transmit.push_back(Frame::Cancel { rid, method });
        }
    }

    /// Queues the call's `Done` (holding `len` payload bytes) and stops its
    /// timer; returns the call's method.
    fn finish(
        &mut self,
        rid: u32,
        result: Result<Envelope, CallError>,
        len: usize,
    ) -> Option<Method> {
        let call = self.calls.get_mut(&rid)?;
        call.done = true;
        call.replies.push_back((Reply::Done(result), len));
        call.queued_bytes += len;
        if let Some((at, _)) = call.deadline.take() {
            self.deadlines.remove(&(at, rid));
        }
        self.readable.insert(rid);
        Some(call.method)
    }

    fn forget(&mut self, rid: u32) -> Option<Call> {
        let call = self.calls.remove(&rid)?;
        if let Some((at, _)) = call.deadline {
            self.deadlines.remove(&(at, rid));
        }
        self.readable.remove(&rid);
        Some(call)
    }
}
