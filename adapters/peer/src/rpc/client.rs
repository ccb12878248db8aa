//! RPC calls, driven by the sans-IO [`plex_proto::rpc::Client`] that owns
//! request ids, limits and deadlines: on `plex/1` one stream per call; on
//! Protomux one lane channel shared by every call, replies routed by
//! request id.

use std::collections::{HashMap, HashSet};
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use plex_proto::rpc::{
    self, CallError, ClientEvent, ClientStats, DecodeError, Envelope, Frame, Method, Reply,
};
use plex_runtime::mux::{Mux, MuxChannel};
use plex_runtime::{ErrorCode, OpenOptions, Runtime, Session, Sleep};

use crate::channel::{MessageChannel, StreamChannel};
use crate::{Code, Error, Peer, Wire};

/// The result of a call: neonplex's ok envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// The value, if the result had one.
    pub value: Option<Bytes>,
    /// neonplex's `meta.key`: the key an append wrote, a scan item's key.
    pub key: Option<Bytes>,
}

/// Calls to one service on one lane of a peer. Cheap to clone; clones
/// share request ids and limits.
///
/// On `plex/1` every call opens its own stream, so a slow call or a slow
/// consumer of a scan never holds up another; dropping a call's future,
/// or its [`Replies`], cancels it at the server (RST_STREAM CANCEL). On
/// Protomux the calls share one lane channel, opened at the first call
/// and again after it ends, as neonplex's do: a dropped call sends a
/// CANCEL frame. A call that outlives its timeout is cancelled and fails
/// with [`Error::Timeout`]; [`close`](RpcClient::close) or the connection
/// closing fails every pending call at once.
#[derive(Clone, Debug)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

struct Inner {
    path: Path,
    runtime: Arc<dyn Runtime>,
    protocol: Bytes,
    id: Bytes,
    max_message: usize,
    state: Mutex<State>,
}

/// How calls reach the server.
enum Path {
    /// A `plex/1` stream per call.
    Streams(Session),
    /// One Protomux lane channel for every call.
    Lane(Mux),
}

struct State {
    core: rpc::Client,
    /// The task waiting on each call.
    wakers: HashMap<u32, Waker>,
    /// On Protomux: the lane channel and the calls sent on it.
    lane: Option<Lane>,
    /// The lane's reader, waiting for a call to take the reply it holds.
    lane_reader: Option<Waker>,
    runtime: Arc<dyn Runtime>,
}

struct Lane {
    channel: Arc<MuxChannel>,
    calls: HashSet<u32>,
}

impl RpcClient {
    pub(crate) fn new(peer: &Peer, protocol: Bytes, id: Bytes, first_rid: u32) -> RpcClient {
        // `Peer::with_config` validated the config.
        let core = rpc::Client::starting_at(peer.config().client.clone(), first_rid)
            .expect("a peer's client config is valid");
        let path = match peer.wire() {
            Wire::Plex(session) => Path::Streams(session.clone()),
            Wire::Protomux(mux) => Path::Lane(mux.clone()),
        };
        let runtime = peer.runtime();
        RpcClient {
            inner: Arc::new(Inner {
                path,
                runtime: runtime.clone(),
                protocol,
                id,
                max_message: peer.config().max_message_size,
                state: Mutex::new(State {
                    core,
                    wakers: HashMap::new(),
                    lane: None,
                    lane_reader: None,
                    runtime,
                }),
            }),
        }
    }

    /// The request id the next call will use (ids are never reused).
    pub(crate) fn next_rid(&self) -> u32 {
        self.inner.lock().core.next_rid().unwrap_or(u32::MAX)
    }

    /// Calls `method` with a request `body` and waits for its one answer,
    /// with the configured timeout. An error envelope from the server is
    /// [`Error::Failed`].
    pub async fn call(&self, method: Method, body: Bytes) -> Result<Answer, Error> {
        let timeout = self.inner.lock().core.config().timeout;
        self.call_with_timeout(method, body, timeout).await
    }

    /// [`call`](RpcClient::call) with its own timeout (`None`: none).
    pub async fn call_with_timeout(
        &self,
        method: Method,
        body: Bytes,
        timeout: Option<Duration>,
    ) -> Result<Answer, Error> {
        let mut call = self.start(method, body, timeout).await?;
        match call.next_reply().await? {
            Reply::Done(result) => call.finish(result).map(|answer| answer.unwrap_or_default()),
            Reply::Item(_) => {
                call.abort();
                Err(Error::Protocol("a scan item answered a unary call"))
            }
            _ => Err(Error::Protocol("an unknown reply kind")),
        }
    }

    /// Calls a streaming method (a scan): its answers arrive one by one
    /// through [`Replies`], as fast as they are consumed. The timeout
    /// bounds each wait for the next answer; time the consumer spends
    /// between answers does not count.
    pub async fn call_stream(
        &self,
        method: Method,
        body: Bytes,
        timeout: Option<Duration>,
    ) -> Result<Replies, Error> {
        let call = self.start(method, body, timeout).await?;
        Ok(Replies {
            call,
            ended: false,
            held: false,
        })
    }

    /// The configured per-call timeout.
    pub fn timeout(&self) -> Option<Duration> {
        self.inner.lock().core.config().timeout
    }

    /// Closes the lane: every pending call fails with [`Error::Closed`] at
    /// once, and later calls too.
    pub fn close(&self) {
        let mut state = self.inner.lock();
        state.core.close();
        state.wake_readable();
        state.unblock_lane();
        if let Some(lane) = state.lane.take() {
            lane.channel.close();
        }
    }

    /// Whether [`close`](RpcClient::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().core.is_closed()
    }

    /// Calls in flight.
    pub fn in_flight(&self) -> usize {
        self.inner.lock().core.in_flight()
    }

    /// Counters: calls, timeouts, cancels, late replies dropped, …
    pub fn stats(&self) -> ClientStats {
        self.inner.lock().core.stats()
    }

    async fn start(
        &self,
        method: Method,
        body: Bytes,
        timeout: Option<Duration>,
    ) -> Result<Call, Error> {
        let inner = &self.inner;
        let now = inner.runtime.now();
        let (rid, request) = {
            let mut state = inner.lock();
            let rid = state
                .core
                .call_with_timeout(now, method, body, timeout)
                .map_err(call_error)?;
            // Every caller drains under the lock, so only this call's REQ
            // and CANCELs of calls given up can be queued: the CANCELs go
            // out on Protomux, and are RST_STREAMs on plex/1.
            let mut request = None;
            let mut others = Vec::new();
            while let Some(frame) = state.core.poll_transmit() {
                match frame {
                    Frame::Request { rid: r, .. } if r == rid => request = Some(frame.to_bytes()),
                    other => others.push(other),
                }
            }
            state.send_on_lane(others);
            (rid, request)
        };
        let deadline = timeout.and_then(|after| now.checked_add(after));
        let mut call = Call {
            inner: inner.clone(),
            rid,
            channel: None,
            timeout,
            timer: deadline.map(|at| inner.runtime.sleep_until(at)),
            done: false,
        };
        let Some(request) = request else {
            call.abort();
            return Err(Error::Local("the call core queued no request"));
        };
        let session = match &inner.path {
            Path::Streams(session) => session,
            Path::Lane(mux) => {
                let channel = inner
                    .lane_channel(mux, rid)
                    .map_err(|e| call.transport_failed(e))?;
                return match call.race(channel.send(request)).await {
                    Ok(Ok(())) => Ok(call),
                    Ok(Err(e)) => Err(call.transport_failed(e.into())),
                    Err(e) => Err(e),
                };
            }
        };
        let options = OpenOptions::new(inner.protocol.clone(), inner.id.clone());
        let opening = session.open_stream(options);
        let stream = call
            .race(opening)
            .await?
            .map_err(|e| call.transport_failed(e.into()))?;
        let mut channel = StreamChannel::new(stream, inner.max_message);
        let sent = call
            .race(async {
                channel.send(request).await?;
                channel.finish()
            })
            .await;
        call.channel = Some(channel);
        match sent {
            Ok(Ok(())) => Ok(call),
            // The server stopped reading our request early (it is over
            // its limit); its answer follows on the stream.
            Ok(Err(Error::Transport(plex_runtime::Error::Stopped(_)))) => Ok(call),
            Ok(Err(e)) => Err(call.transport_failed(e)),
            Err(e) => {
                call.reset();
                Err(e)
            }
        }
    }
}

/// The answers of a streaming call. Dropping it before the end cancels
/// the call at the server.
#[derive(Debug)]
pub struct Replies {
    call: Call,
    ended: bool,
    /// The consumer holds an answer and has not asked for the next: the
    /// call's deadline is suspended.
    held: bool,
}

impl Replies {
    /// The next answer; `None` after the last. A server error ends the
    /// stream as its last item.
    pub async fn next(&mut self) -> Option<Result<Answer, Error>> {
        poll_fn(|cx| self.poll_answer(cx)).await
    }

    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Answer, Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if std::mem::take(&mut self.held) {
            self.call.wait();
        }
        let reply = match std::task::ready!(self.call.poll_reply(cx)) {
            Ok(reply) => reply,
            Err(e) => {
                self.ended = true;
                return Poll::Ready(Some(Err(e)));
            }
        };
        Poll::Ready(match reply {
            Reply::Item(envelope) => match answer(envelope) {
                Ok(answer) => {
                    self.call.hold();
                    self.held = true;
                    Some(Ok(answer))
                }
                Err(e) => {
                    // An error item: the server meant the end.
                    self.ended = true;
                    self.call.abort();
                    Some(Err(e))
                }
            },
            Reply::Done(result) => {
                self.ended = true;
                match self.call.finish(result) {
                    // The empty end of a scan (or a bare `ok()`).
                    Ok(None) => None,
                    Ok(Some(answer)) if answer == Answer::default() => None,
                    Ok(Some(answer)) => Some(Ok(answer)),
                    Err(e) => Some(Err(e)),
                }
            }
            _ => {
                self.ended = true;
                self.call.abort();
                Some(Err(Error::Protocol("an unknown reply kind")))
            }
        })
    }
}

impl futures_core::Stream for Replies {
    type Item = Result<Answer, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_answer(cx)
    }
}

/// One call in flight: its request id, stream (on `plex/1`) and deadline.
struct Call {
    inner: Arc<Inner>,
    rid: u32,
    channel: Option<StreamChannel>,
    /// The call's timeout and its timer, armed while the caller waits.
    timeout: Option<Duration>,
    timer: Option<Sleep>,
    /// The core has delivered the call's `Done`, or it was cancelled.
    done: bool,
}

impl Call {
    /// The next reply: the core's, or one read from the stream when the
    /// core wants one. Reads only when asked, so a slow consumer holds
    /// back the server through the stream's flow control.
    async fn next_reply(&mut self) -> Result<Reply, Error> {
        poll_fn(|cx| self.poll_reply(cx)).await
    }

    fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<Result<Reply, Error>> {
        loop {
            if let Poll::Ready(reply) = self.poll_core(cx) {
                return Poll::Ready(Ok(reply));
            }
            let Some(channel) = self.channel.as_mut() else {
                return Poll::Pending;
            };
            let message = match channel.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(Some(message))) => message,
                Poll::Ready(Ok(None)) => {
                    let e = Error::BadReply(DecodeError::Truncated {
                        what: "a call stream that ended without a final reply",
                    });
                    return Poll::Ready(Err(self.transport_failed(e)));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(self.transport_failed(e))),
            };
            let now = self.inner.runtime.now();
            let mut state = self.inner.lock();
            match Frame::decode(message) {
                Ok(frame) => state.core.handle_frame(now, frame),
                Err(e) => {
                    state.core.fail(self.rid, CallError::BadReply(e));
                }
            }
            state.wake_readable();
        }
    }

    /// Checks the deadline and takes a reply the core holds for the call.
    fn poll_core(&mut self, cx: &mut Context<'_>) -> Poll<Reply> {
        let expired = self
            .timer
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
        let mut state = self.inner.lock();
        if expired {
            self.timer = None;
            state.core.handle_timeout(self.inner.runtime.now());
            state.wake_readable();
        }
        if let Some(reply) = state.core.poll_reply(self.rid) {
            state.wakers.remove(&self.rid);
            state.unblock_lane();
            if matches!(reply, Reply::Done(_)) {
                self.done = true;
                state.forget_on_lane(self.rid);
            }
            return Poll::Ready(reply);
        }
        let waker = state
            .wakers
            .entry(self.rid)
            .or_insert_with(|| cx.waker().clone());
        if !waker.will_wake(cx.waker()) {
            waker.clone_from(cx.waker());
        }
        Poll::Pending
    }

    /// Runs `work` (opening or writing) until it completes or the core
    /// ends the call first (timeout, close).
    async fn race<T>(&mut self, work: impl std::future::Future<Output = T>) -> Result<T, Error> {
        let mut work = std::pin::pin!(work);
        let reply = poll_fn(|cx| {
            if let Poll::Ready(out) = work.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            self.poll_core(cx).map(Err)
        })
        .await;
        match reply {
            Ok(out) => Ok(out),
            Err(Reply::Done(result)) => Err(self.finish(result).err().unwrap_or(Error::Protocol(
                "the call ended before its request was sent",
            ))),
            Err(_) => {
                self.abort();
                Err(Error::Protocol(
                    "a reply arrived before the request was sent",
                ))
            }
        }
    }

    /// Maps the call's final result; a failed call's stream is reset so
    /// the server stops.
    fn finish(&mut self, result: Result<Envelope, CallError>) -> Result<Option<Answer>, Error> {
        self.done = true;
        match result {
            Ok(Envelope::Ok { value, key }) => Ok(Some(Answer { value, key })),
            Ok(envelope @ Envelope::Err { .. }) => answer(envelope).map(Some),
            Err(e) => {
                if matches!(
                    e,
                    CallError::Timeout { .. }
                        | CallError::Overflow
                        | CallError::BadReply(_)
                        | CallError::Closed
                ) {
                    self.reset();
                }
                Err(call_error(e))
            }
        }
    }

    /// The caller holds an answer: its deadline stops.
    fn hold(&mut self) {
        self.inner.lock().core.hold(self.rid);
        self.timer = None;
    }

    /// The caller waits again: the full timeout runs from now.
    fn wait(&mut self) {
        let now = self.inner.runtime.now();
        if self.inner.lock().core.wait(now, self.rid) {
            let deadline = self.timeout.and_then(|after| now.checked_add(after));
            self.timer = deadline.map(|at| self.inner.runtime.sleep_until(at));
        }
    }

    /// Gives up on the call: the core forgets it, the stream is reset.
    fn abort(&mut self) {
        if !self.done {
            self.done = true;
            let mut state = self.inner.lock();
            state.core.cancel(self.rid);
            state.wakers.remove(&self.rid);
            state.forget_on_lane(self.rid);
            // Sends the CANCEL frame the core queued on Protomux; on
            // plex/1 the reset below is the cancel.
            state.wake_readable();
        }
        self.reset();
    }

    /// The stream failed under the call: the core fails it and forgets it.
    fn transport_failed(&mut self, e: Error) -> Error {
        let failure = match &e {
            Error::Unavailable => CallError::Unavailable,
            Error::Closed(_) => CallError::Closed,
            Error::Transport(plex_runtime::Error::Reset(plex_proto::ResetReason::Remote(code))) => {
                CallError::Reset(*code)
            }
            _ => CallError::Reset(ErrorCode::INTERNAL_ERROR),
        };
        let mut state = self.inner.lock();
        state.core.fail(self.rid, failure);
        // Pops the `Done` the failure queued, so the slot is free.
        let _ = state.core.poll_reply(self.rid);
        state.wakers.remove(&self.rid);
        state.forget_on_lane(self.rid);
        drop(state);
        self.done = true;
        if !matches!(e, Error::Unavailable | Error::Closed(_)) {
            self.reset();
        }
        e
    }

    fn reset(&mut self) {
        if let Some(channel) = self.channel.as_mut() {
            channel.reset(ErrorCode::CANCEL);
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.done {
            self.abort();
        }
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("protocol", &self.protocol)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("rid", &self.rid)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lane channel, opened (with its reader task) if there is none,
    /// with `rid` counted among its calls: if the channel ends, its calls
    /// fail at once.
    fn lane_channel(self: &Arc<Self>, mux: &Mux, rid: u32) -> Result<Arc<MuxChannel>, Error> {
        let mut state = self.lock();
        if state.lane.is_none() {
            let protocol = std::str::from_utf8(&self.protocol)
                .map_err(|_| Error::Local("a lane protocol that is not UTF-8"))?;
            let channel = Arc::new(mux.open(protocol, self.id.clone(), Bytes::new())?);
            let reader = read_lane(Arc::downgrade(self), channel.clone());
            self.runtime.spawn(Box::pin(reader));
            state.lane = Some(Lane {
                channel,
                calls: HashSet::new(),
            });
        }
        let lane = state.lane.as_mut().expect("opened above");
        lane.calls.insert(rid);
        Ok(lane.channel.clone())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The reader task holds the channel: closing ends it.
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(lane) = state.lane.take() {
            lane.channel.close();
        }
    }
}

/// Reads a Protomux lane channel for as long as it is the client's: every
/// reply goes to the core, which routes it by request id. When the channel
/// ends, the calls sent on it fail.
async fn read_lane(inner: Weak<Inner>, channel: Arc<MuxChannel>) {
    loop {
        let received = channel.recv().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match received {
            Ok(Some(message)) => {
                // A frame that does not decode names no call it could
                // fail on a shared lane: it is dropped, as neonplex drops
                // a reply without a route.
                let Ok(frame) = Frame::decode(message) else {
                    continue;
                };
                // While the call has not taken its last reply, the lane
                // waits: a slow consumer of a scan holds back the channel,
                // and through it the transport and the server, instead of
                // growing memory here (Protomux has no flow control).
                let rid = frame.rid();
                poll_fn(|cx| inner.lock().room_for(rid, cx)).await;
                let now = inner.runtime.now();
                let mut state = inner.lock();
                state.core.handle_frame(now, frame);
                state.wake_readable();
            }
            ended => {
                let mut state = inner.lock();
                let failure = match ended {
                    Err(plex_runtime::Error::Rejected) => CallError::Unavailable,
                    _ => CallError::Closed,
                };
                let ours = state
                    .lane
                    .as_ref()
                    .is_some_and(|lane| Arc::ptr_eq(&lane.channel, &channel));
                if ours {
                    let lane = state.lane.take().expect("checked above");
                    for rid in lane.calls {
                        state.core.fail(rid, failure.clone());
                    }
                }
                state.wake_readable();
                return;
            }
        }
    }
}

impl State {
    /// Wakes the tasks of calls the core has something for.
    fn wake_readable(&mut self) {
        while let Some(event) = self.core.poll_event() {
            let ClientEvent::Readable { rid } = event else {
                continue;
            };
            if let Some(waker) = self.wakers.remove(&rid) {
                waker.wake();
            }
        }
        // CANCEL frames from timeouts and dropped calls: on plex/1 each
        // call's owner resets its stream instead.
        let frames: Vec<Frame> = std::iter::from_fn(|| self.core.poll_transmit()).collect();
        self.send_on_lane(frames);
    }

    /// Sends `frames` on the Protomux lane, in order, in a task of their
    /// own (the callers hold the lock); on `plex/1` they are dropped.
    fn send_on_lane(&mut self, frames: Vec<Frame>) {
        let Some(lane) = &self.lane else {
            return;
        };
        if frames.is_empty() {
            return;
        }
        let channel = lane.channel.clone();
        self.runtime.spawn(Box::pin(async move {
            for frame in frames {
                if channel.send(frame.to_bytes()).await.is_err() {
                    return;
                }
            }
        }));
    }

    /// The call ended: the lane no longer fails it when it ends.
    fn forget_on_lane(&mut self, rid: u32) {
        if let Some(lane) = &mut self.lane {
            lane.calls.remove(&rid);
        }
        self.unblock_lane();
    }

    /// Ready when the lane may hand `rid` its next reply: the call took
    /// the last one, or is over (its late replies are counted and dropped).
    fn room_for(&mut self, rid: u32, cx: &mut Context<'_>) -> Poll<()> {
        if !self.core.is_pending(rid) || self.core.wants_replies(rid) {
            return Poll::Ready(());
        }
        self.lane_reader = Some(cx.waker().clone());
        Poll::Pending
    }

    /// A call took a reply or ended: a waiting lane reader looks again.
    fn unblock_lane(&mut self) {
        if let Some(waker) = self.lane_reader.take() {
            waker.wake();
        }
    }
}

/// An ok envelope as an answer; an error envelope as [`Error::Failed`].
fn answer(envelope: Envelope) -> Result<Answer, Error> {
    match envelope {
        Envelope::Ok { value, key } => Ok(Answer { value, key }),
        Envelope::Err { code, message } => Err(Error::Failed {
            code: Code::parse(&code),
            message,
        }),
    }
}

fn call_error(e: CallError) -> Error {
    match e {
        CallError::PayloadTooLarge { len, max } => Error::PayloadTooLarge { len, max },
        CallError::NotReady { limit } => Error::NotReady { limit },
        CallError::Timeout { after } => Error::Timeout { after },
        CallError::Closed => Error::LaneClosed,
        CallError::Overflow => Error::Protocol("too many replies queued for one call"),
        CallError::BadReply(e) => Error::BadReply(e),
        CallError::RidsExhausted => Error::Local("request ids exhausted on this lane"),
        CallError::Unavailable => Error::Unavailable,
        CallError::Reset(code) => Error::Transport(plex_runtime::Error::Reset(
            plex_proto::ResetReason::Remote(code),
        )),
        _ => Error::Protocol("an unknown call error"),
    }
}
