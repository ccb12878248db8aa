//! Serving RPC calls, with the sans-IO [`plex_proto::rpc::Server`]
//! deciding limits and cancels: on `plex/1` a task per call stream; on
//! Protomux a task per lane channel and one per call.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use plex_proto::rpc::{self, Action, Body, Envelope, Frame, Method, ServerStats};
use plex_runtime::{ErrorCode, Incoming, Listener, Runtime};

use super::lane_server::LaneTask;
use crate::channel::{MessageChannel, StreamChannel};
use crate::peer::Listening;
use crate::{Error, Peer};

/// A call as the service sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method called.
    pub method: Method,
    /// Its decoded body.
    pub body: Body,
}

/// A service's answer.
pub enum Response {
    /// One envelope: `RES more=0`.
    Unary(Envelope),
    /// A stream of envelopes: `RES more=1` for each ok one, then the end.
    /// An error envelope ends the stream as its last reply.
    Stream(Pin<Box<dyn Stream<Item = Envelope> + Send>>),
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Response::Unary(envelope) => f.debug_tuple("Unary").field(envelope).finish(),
            Response::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// What answers calls. A call whose client cancels has its future dropped.
pub trait Service: Send + Sync + 'static {
    /// Answers one call.
    fn call(&self, request: Request) -> Pin<Box<dyn Future<Output = Response> + Send>>;
}

/// Calls to one service on one lane, not yet being served.
pub struct RpcListener {
    listening: Listening,
    runtime: Arc<dyn Runtime>,
    config: rpc::ServerConfig,
    max_message: usize,
    request_timeout: Duration,
}

impl RpcListener {
    pub(crate) fn new(peer: &Peer, listening: Listening) -> RpcListener {
        RpcListener {
            listening,
            runtime: peer.runtime(),
            config: peer.config().server.clone(),
            max_message: peer.config().max_message_size,
            request_timeout: peer.config().request_timeout,
        }
    }

    /// Serves calls with `service` on the connection's runtime, a task per
    /// call, until the returned handle is dropped or the connection closes.
    pub fn serve(self, service: impl Service) -> Serving {
        // `Peer::with_config` validated the config.
        let core = rpc::Server::new(self.config).expect("a peer's server config is valid");
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            stopped: AtomicBool::new(false),
            wakers: Mutex::new(Wakers::default()),
        });
        let runtime = self.runtime.clone();
        let service = Arc::new(service);
        let calls = match self.listening {
            Listening::Plex(listener) => {
                let calls = Arc::new(Calls {
                    service,
                    shared: shared.clone(),
                    runtime: self.runtime,
                    max_message: self.max_message,
                    request_timeout: self.request_timeout,
                });
                let accept = AcceptLoop {
                    listener,
                    calls: calls.clone(),
                };
                runtime.spawn(Box::pin(accept.run()));
                let calls: Arc<dyn Adopt> = calls;
                Some(calls)
            }
            Listening::Protomux(listener) => {
                let lanes =
                    LaneTask::accept_loop(listener, service, shared.clone(), runtime.clone());
                runtime.spawn(Box::pin(lanes));
                None
            }
        };
        Serving { shared, calls }
    }
}

impl std::fmt::Debug for RpcListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcListener")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A service being served. Dropping it (or [`stop`](Serving::stop)) stops
/// listening, refuses calls not yet started and cancels running ones.
pub struct Serving {
    shared: Arc<Shared>,
    /// Serves a call stream on `plex/1`; `None` over Protomux.
    calls: Option<Arc<dyn Adopt>>,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl Serving {
    /// Serves a `plex/1` call stream that this side took by other means
    /// (say [`plex_runtime::Session::accept_incoming`]) as one its listener
    /// accepted, within the same limits: for a server that exposes a
    /// service on demand, when the first call for it arrives. Over
    /// Protomux, or once serving stopped, the stream is refused.
    pub fn adopt(&self, incoming: Incoming) {
        match &self.calls {
            Some(calls) if !self.shared.stopped.load(Ordering::Acquire) => calls.adopt(incoming),
            _ => incoming.refuse(),
        }
    }

    /// Counters: requests, refusals by kind, cancels, suppressed answers.
    pub fn stats(&self) -> ServerStats {
        self.shared.core().stats()
    }

    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        self.shared.core().in_flight()
    }

    /// Stops serving (what dropping does).
    pub fn stop(&self) {
        self.shared.stop();
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.shared.stop();
    }
}

#[derive(Debug)]
pub(super) struct Shared {
    core: Mutex<rpc::Server>,
    stopped: AtomicBool,
    wakers: Mutex<Wakers>,
}

/// Tasks to wake when serving stops, one slot per task.
#[derive(Debug, Default)]
struct Wakers {
    next: u64,
    waiting: std::collections::HashMap<u64, Waker>,
}

impl Shared {
    pub(super) fn core(&self) -> MutexGuard<'_, rpc::Server> {
        // No code panics while holding the lock.
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wakers(&self) -> MutexGuard<'_, Wakers> {
        self.wakers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stop(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let _cancelled = self.core().close();
        let waiting = std::mem::take(&mut self.wakers().waiting);
        waiting.into_values().for_each(Waker::wake);
    }

    pub(super) fn watch(self: &Arc<Self>) -> StopWatch {
        let mut wakers = self.wakers();
        wakers.next += 1;
        StopWatch {
            shared: self.clone(),
            slot: wakers.next,
        }
    }
}

/// Resolves when serving stops.
pub(super) struct StopWatch {
    shared: Arc<Shared>,
    slot: u64,
}

impl StopWatch {
    pub(super) fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        let mut wakers = self.shared.wakers();
        let waker = wakers
            .waiting
            .entry(self.slot)
            .or_insert_with(|| cx.waker().clone());
        if !waker.will_wake(cx.waker()) {
            waker.clone_from(cx.waker());
        }
        drop(wakers);
        // Stopped between the check and the registration: `stop` took the
        // wakers before ours went in.
        if self.shared.stopped.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for StopWatch {
    fn drop(&mut self) {
        self.shared.wakers().waiting.remove(&self.slot);
    }
}

struct AcceptLoop<S> {
    listener: Listener,
    calls: Arc<Calls<S>>,
}

impl<S: Service> AcceptLoop<S> {
    async fn run(self) {
        let watch = self.calls.shared.watch();
        loop {
            let accepting = pin!(self.listener.accept());
            match first(accepting, &watch).await {
                Some(Ok(incoming)) => self.calls.adopt(incoming),
                // Stopped, or the session closed.
                Some(Err(_)) | None => return,
            }
        }
    }
}

/// What serves a `plex/1` service's call streams, a task each.
struct Calls<S> {
    service: Arc<S>,
    shared: Arc<Shared>,
    runtime: Arc<dyn Runtime>,
    max_message: usize,
    request_timeout: Duration,
}

/// [`Calls`] of any service.
trait Adopt: Send + Sync {
    /// Accepts `incoming` and serves its call in a task of its own.
    fn adopt(&self, incoming: Incoming);
}

impl<S: Service> Adopt for Calls<S> {
    fn adopt(&self, incoming: Incoming) {
        let Ok(stream) = incoming.accept(Bytes::new()) else {
            return;
        };
        let mut channel = StreamChannel::new(stream, self.max_message);
        channel.set_read_timeout(Some(self.request_timeout));
        let call = CallTask {
            channel,
            service: self.service.clone(),
            shared: self.shared.clone(),
        };
        self.runtime.spawn(Box::pin(call.run()));
    }
}

/// Polls `work` until it completes (`Some`) or serving stops (`None`).
pub(super) async fn first<T>(
    mut work: Pin<&mut impl Future<Output = T>>,
    watch: &StopWatch,
) -> Option<T> {
    poll_fn(|cx| {
        if let Poll::Ready(out) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        watch.poll_stopped(cx).map(|()| None)
    })
    .await
}

/// One call stream: read the request, run the service, write the answer.
struct CallTask<S> {
    channel: StreamChannel,
    service: Arc<S>,
    shared: Arc<Shared>,
}

impl<S: Service> CallTask<S> {
    async fn run(mut self) {
        let watch = self.shared.watch();
        let max_request = self.shared.core().max_message_len();
        let received = {
            let receiving = pin!(recv_bounded(&mut self.channel, max_request));
            first(receiving, &watch).await
        };
        let message = match received {
            Some(Ok(Received::Message(message))) => message,
            Some(Ok(Received::Oversized(head))) => {
                let refusal = self.shared.core().handle_oversized(&head);
                match refusal {
                    // Dropping the channel then stops the client's sending
                    // (STOP_SENDING) while the answer goes out.
                    Some(frame) => self.answer_and_finish(frame, &watch).await,
                    None => self.channel.reset(ErrorCode::PROTOCOL_ERROR),
                }
                return;
            }
            // Stopped, reset, ended without a request.
            _ => return self.channel.reset(ErrorCode::CANCEL),
        };
        // The request is in; the client has nothing more to send.
        self.channel.set_read_timeout(None);
        let action = self.shared.core().handle_message(message);
        let (rid, method, body) = match action {
            Ok(Some(Action::Dispatch { rid, method, body })) => (rid, method, body),
            Ok(Some(Action::Reply(frame))) => return self.answer_and_finish(frame, &watch).await,
            Ok(_) => return self.channel.finish().unwrap_or(()),
            Err(_) => return self.channel.reset(ErrorCode::PROTOCOL_ERROR),
        };
        let mut call = ActiveCall {
            channel: self.channel,
            shared: self.shared,
            rid,
            method,
            watch,
            client_done: false,
        };
        let response = call
            .run_handler(self.service.call(Request { method, body }))
            .await;
        let Some(response) = response else {
            return call.cancelled();
        };
        match response {
            Response::Unary(envelope) => {
                call.respond(false, Some(&envelope)).await;
            }
            Response::Stream(items) => call.stream(items).await,
        }
    }

    async fn answer_and_finish(&mut self, frame: Frame, watch: &StopWatch) {
        let sent = {
            let sending = pin!(self.channel.send(frame.to_bytes()));
            first(sending, watch).await
        };
        if let Some(Ok(())) = sent {
            let _ = self.channel.finish();
        }
    }
}

/// A dispatched call: the core holds its rid until it ends.
struct ActiveCall {
    channel: StreamChannel,
    shared: Arc<Shared>,
    rid: u32,
    method: Method,
    watch: StopWatch,
    /// The client ended its side (its one REQ was all it sends).
    client_done: bool,
}

impl ActiveCall {
    /// Runs the handler until it answers, or the client cancels (`None`).
    async fn run_handler(
        &mut self,
        handler: Pin<Box<dyn Future<Output = Response> + Send>>,
    ) -> Option<Response> {
        let mut handler = handler;
        poll_fn(|cx| {
            if let Poll::Ready(response) = handler.as_mut().poll(cx) {
                return Poll::Ready(Some(response));
            }
            if self.poll_cancelled(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await
    }

    /// Ready once the client has cancelled: reset the stream, sent a
    /// CANCEL frame, broke the protocol, or serving stopped.
    fn poll_cancelled(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.watch.poll_stopped(cx).is_ready() {
            return Poll::Ready(());
        }
        while !self.client_done {
            match self.channel.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(None)) => self.client_done = true,
                Poll::Ready(Ok(Some(message))) => {
                    // On plex/1 a client cancels with RST_STREAM, but a
                    // CANCEL frame on the call stream means the same, and
                    // anything else after the REQ breaks the protocol: the
                    // call ends either way.
                    let _ = self.shared.core().handle_message(message);
                    return Poll::Ready(());
                }
                Poll::Ready(Err(_)) => return Poll::Ready(()),
            }
        }
        // The client has sent all it will; only a reset or a stop is left.
        self.channel.poll_stopped(cx).map(drop)
    }

    /// The client gave up: free the call's slot and stop the stream.
    fn cancelled(mut self) {
        let cancel = Frame::Cancel {
            rid: self.rid,
            method: self.method,
        };
        // Frees the rid if a CANCEL frame did not already.
        let _ = self.shared.core().handle_message(cancel.to_bytes());
        self.channel.reset(ErrorCode::CANCEL);
    }

    /// Sends one RES; without `more` it is the last and the stream ends.
    /// Returns whether the call goes on.
    async fn respond(&mut self, more: bool, envelope: Option<&Envelope>) -> bool {
        let frame = match self.shared.core().respond(self.rid, more, envelope) {
            Ok(Some(frame)) => frame,
            // Cancelled (or serving stopped) meanwhile.
            Ok(None) => return false,
            Err(e) => {
                // A value the envelope cannot carry: fail the call instead.
                let failure = Envelope::err("BadArg", e.to_string());
                match self.shared.core().respond(self.rid, false, Some(&failure)) {
                    Ok(Some(frame)) => frame,
                    _ => return false,
                }
            }
        };
        let last = !more || matches!(&frame, Frame::Response { more: false, .. });
        let sent = {
            let sending = pin!(self.channel.send(frame.to_bytes()));
            first(sending, &self.watch).await
        };
        match sent {
            Some(Ok(())) if last => {
                let _ = self.channel.finish();
                false
            }
            Some(Ok(())) => true,
            _ => {
                self.cancel_unanswered();
                false
            }
        }
    }

    /// Streams `items`, one RES each, as fast as the client reads.
    async fn stream(mut self, mut items: Pin<Box<dyn Stream<Item = Envelope> + Send>>) {
        loop {
            let next = poll_fn(|cx| {
                if let Poll::Ready(item) = items.as_mut().poll_next(cx) {
                    return Poll::Ready(Some(item));
                }
                self.poll_cancelled(cx).map(|()| None)
            })
            .await;
            let goes_on = match next {
                None => return self.cancelled(),
                Some(Some(item @ Envelope::Ok { .. })) => self.respond(true, Some(&item)).await,
                Some(Some(error)) => {
                    self.respond(false, Some(&error)).await;
                    false
                }
                Some(None) => {
                    self.respond(false, None).await;
                    false
                }
            };
            if !goes_on {
                return;
            }
        }
    }

    /// A send failed (the client reset the stream, or serving stopped).
    fn cancel_unanswered(&mut self) {
        let cancel = Frame::Cancel {
            rid: self.rid,
            method: self.method,
        };
        let _ = self.shared.core().handle_message(cancel.to_bytes());
        self.channel.reset(ErrorCode::CANCEL);
    }
}

enum Received {
    Message(Bytes),
    /// The first bytes of a request too large to buffer.
    Oversized(Bytes),
}

/// Reads one message of at most `max` bytes; past it, only its head.
async fn recv_bounded(channel: &mut StreamChannel, max: usize) -> Result<Received, Error> {
    match channel.recv_limited(max).await {
        Ok(Some(message)) => Ok(Received::Message(message)),
        Ok(None) => Err(Error::Truncated),
        Err(Error::MessageTooLarge { .. }) => {
            Ok(Received::Oversized(channel.oversized_head(6).await?))
        }
        Err(e) => Err(e),
    }
}
