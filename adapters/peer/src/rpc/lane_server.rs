//! Serving RPC on a Protomux lane: one task reads the lane channel and
//! feeds the core; each dispatched call runs in a task of its own and
//! sends its answers on the shared channel; a CANCEL frame, the lane
//! ending or serving stopping drops its handler.

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use plex_proto::rpc::{Action, Envelope, Frame, Method};
use plex_runtime::mux::{MuxChannel, MuxListener};
use plex_runtime::Runtime;

use super::server::{first, Request, Response, Service, Shared, StopWatch};

/// The first byte of a CANCEL frame.
const CANCEL: u8 = 2;

/// The running calls of one lane, by request id.
type Calls = Arc<Mutex<HashMap<u32, Arc<Cancel>>>>;

/// One lane channel being served.
pub(super) struct LaneTask<S> {
    channel: Arc<MuxChannel>,
    service: Arc<S>,
    shared: Arc<Shared>,
    runtime: Arc<dyn Runtime>,
    calls: Calls,
}

impl<S: Service> LaneTask<S> {
    /// Accepts lane channels until serving stops or the connection closes,
    /// serving each in a task of its own.
    pub(super) async fn accept_loop(
        listener: MuxListener,
        service: Arc<S>,
        shared: Arc<Shared>,
        runtime: Arc<dyn Runtime>,
    ) {
        let watch = shared.watch();
        loop {
            let accepting = pin!(listener.accept());
            let Some(Ok(channel)) = first(accepting, &watch).await else {
                return;
            };
            let task = LaneTask {
                channel: Arc::new(channel),
                service: service.clone(),
                shared: shared.clone(),
                runtime: runtime.clone(),
                calls: Calls::default(),
            };
            runtime.spawn(Box::pin(task.run()));
        }
    }

    async fn run(self) {
        let watch = self.shared.watch();
        loop {
            let received = {
                let receiving = pin!(self.channel.recv());
                first(receiving, &watch).await
            };
            // Closed by the client, the connection gone, or serving stopped.
            let Some(Ok(Some(message))) = received else {
                break;
            };
            // A CANCEL of a running call goes to the call's task: it stops
            // its handler, then frees the core's slot, so nothing is
            // produced once the call no longer counts as in flight.
            let cancel = message.first() == Some(&CANCEL);
            if let Some(Ok(Frame::Cancel { rid, .. })) =
                cancel.then(|| Frame::decode(message.clone()))
            {
                if let Some(cancel) = lock(&self.calls).remove(&rid) {
                    cancel.cancel();
                    continue;
                }
            }
            let action = self.shared.core().handle_message(message);
            match action {
                Ok(Some(Action::Dispatch { rid, method, body })) => {
                    let cancel = Arc::new(Cancel::default());
                    lock(&self.calls).insert(rid, cancel.clone());
                    let call = LaneCall {
                        channel: self.channel.clone(),
                        shared: self.shared.clone(),
                        calls: self.calls.clone(),
                        cancel,
                        rid,
                        method,
                    };
                    let handler = self.service.call(Request { method, body });
                    self.runtime.spawn(Box::pin(call.run(handler)));
                }
                Ok(Some(Action::Reply(frame))) => {
                    let sending = pin!(self.channel.send(frame.to_bytes()));
                    if !matches!(first(sending, &watch).await, Some(Ok(()))) {
                        break;
                    }
                }
                // What a server does not act on (a reply, an unknown frame
                // type, bytes that are no frame) is ignored, as neonplex
                // ignores it: the lane goes on.
                _ => {}
            }
        }
        // Every call on the lane stops; the client learns from the CLOSE.
        let calls = std::mem::take(&mut *lock(&self.calls));
        calls.into_values().for_each(|cancel| cancel.cancel());
        self.channel.close();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding these locks.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Set when a call's client cancels it or its lane ends.
#[derive(Default)]
struct Cancel {
    cancelled: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Cancel {
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        if let Some(waker) = lock(&self.waker).take() {
            waker.wake();
        }
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.cancelled.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        *lock(&self.waker) = Some(cx.waker().clone());
        // Cancelled between the check and the registration.
        if self.cancelled.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// One dispatched call on a lane.
struct LaneCall {
    channel: Arc<MuxChannel>,
    shared: Arc<Shared>,
    calls: Calls,
    cancel: Arc<Cancel>,
    rid: u32,
    method: Method,
}

impl LaneCall {
    async fn run(self, mut handler: Pin<Box<dyn Future<Output = Response> + Send>>) {
        let watch = self.shared.watch();
        let response = poll_fn(|cx| {
            if let Poll::Ready(response) = handler.as_mut().poll(cx) {
                return Poll::Ready(Some(response));
            }
            self.poll_cancelled(cx, &watch).map(|()| None)
        })
        .await;
        match response {
            None => self.cancelled(),
            Some(Response::Unary(envelope)) => {
                self.respond(false, Some(&envelope), &watch).await;
            }
            Some(Response::Stream(items)) => self.stream(items, &watch).await,
        }
        lock(&self.calls).remove(&self.rid);
    }

    fn poll_cancelled(&self, cx: &mut Context<'_>, watch: &StopWatch) -> Poll<()> {
        if self.cancel.poll(cx).is_ready() || watch.poll_stopped(cx).is_ready() {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Frees the call's slot in the core if a CANCEL frame did not.
    fn cancelled(&self) {
        let cancel = Frame::Cancel {
            rid: self.rid,
            method: self.method,
        };
        let _ = self.shared.core().handle_message(cancel.to_bytes());
    }

    /// Sends one RES; returns whether the call goes on.
    async fn respond(&self, more: bool, envelope: Option<&Envelope>, watch: &StopWatch) -> bool {
        let frame = match self.shared.core().respond(self.rid, more, envelope) {
            Ok(Some(frame)) => frame,
            // Cancelled (or serving stopped) meanwhile: nothing is sent.
            Ok(None) => return false,
            Err(e) => {
                let failure = Envelope::err("BadArg", e.to_string());
                match self.shared.core().respond(self.rid, false, Some(&failure)) {
                    Ok(Some(frame)) => frame,
                    _ => return false,
                }
            }
        };
        let last = matches!(&frame, Frame::Response { more: false, .. });
        // A send waiting for room on the lane ends with a cancel too.
        let sent = {
            let mut sending = pin!(self.channel.send(frame.to_bytes()));
            poll_fn(|cx| {
                if let Poll::Ready(sent) = sending.as_mut().poll(cx) {
                    return Poll::Ready(Some(sent));
                }
                self.poll_cancelled(cx, watch).map(|()| None)
            })
            .await
        };
        match sent {
            Some(Ok(())) => !last,
            _ => {
                self.cancelled();
                false
            }
        }
    }

    /// Streams `items`, one RES each; the shared channel's send buffer is
    /// the only brake (Protomux has no per-channel flow control).
    async fn stream(
        &self,
        mut items: Pin<Box<dyn Stream<Item = Envelope> + Send>>,
        watch: &StopWatch,
    ) {
        loop {
            // Cancellation first: a cancelled scan takes no further item.
            let next = poll_fn(|cx| {
                if self.poll_cancelled(cx, watch).is_ready() {
                    return Poll::Ready(None);
                }
                items.as_mut().poll_next(cx).map(Some)
            })
            .await;
            let goes_on = match next {
                None => {
                    self.cancelled();
                    false
                }
                Some(Some(item @ Envelope::Ok { .. })) => {
                    self.respond(true, Some(&item), watch).await
                }
                Some(Some(error)) => {
                    self.respond(false, Some(&error), watch).await;
                    false
                }
                Some(None) => {
                    self.respond(false, None, watch).await;
                    false
                }
            };
            if !goes_on {
                return;
            }
        }
    }
}
