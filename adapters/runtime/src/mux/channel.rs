//! Protomux channel and listener handles.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use plex_proto::protomux::{ChannelEnd, ChannelId, MuxLocalError, Recv};

use super::conn::{end_result, ListenKey, MuxConn, Registration, Slot, WaitKind};
use crate::conn::Wakeups;
use crate::Error;

/// One Protomux channel: whole messages both ways. Dropping it closes the
/// channel (CLOSE to the peer).
///
/// Protomux's CLOSE is one-way and ends both directions: there is no
/// half-close. After the peer closes, [`recv`](MuxChannel::recv) returns
/// the messages that arrived before, then `None`.
pub struct MuxChannel {
    conn: Arc<MuxConn>,
    id: ChannelId,
}

impl MuxChannel {
    pub(super) fn new(conn: Arc<MuxConn>, id: ChannelId) -> MuxChannel {
        conn.add_handle();
        MuxChannel { conn, id }
    }

    /// The session's name for the channel.
    pub fn id(&self) -> ChannelId {
        self.id
    }

    /// Waits until the peer has answered our OPEN with its own, and
    /// returns its handshake. [`Error::Rejected`] if the peer rejected it.
    pub async fn opened(&self) -> Result<Bytes, Error> {
        let mut registration = Registration::new(WaitKind::Opened(self.id));
        let result = poll_fn(|cx| {
            let mut inner = self.conn.lock();
            let Some(slot) = inner.slots.get(&self.id) else {
                return Poll::Ready(Err(Error::MuxLocal(MuxLocalError::UnknownChannel)));
            };
            if let Some(handshake) = &slot.opened {
                let handshake = handshake.clone();
                registration.done(&mut inner);
                return Poll::Ready(Ok(handshake));
            }
            if let Some(end) = &slot.ended {
                let end = end_result(end).and(Err(Error::MuxLocal(MuxLocalError::ChannelEnded)));
                registration.done(&mut inner);
                return Poll::Ready(end);
            }
            if let Some(e) = inner.closed_error() {
                registration.done(&mut inner);
                return Poll::Ready(Err(e));
            }
            registration.wait(&mut inner, cx.waker());
            Poll::Pending
        })
        .await;
        registration.cancel(&self.conn);
        result
    }

    /// Sends one message, waiting while the connection's output is over
    /// its limit. Empty messages are refused (neonplex may hold one back
    /// for ever). Cancel-safe: a dropped send sent nothing or all.
    pub async fn send(&self, message: Bytes) -> Result<(), Error> {
        let mut registration = Registration::new(WaitKind::Writers);
        let result = poll_fn(|cx| self.poll_send(cx, &message, &mut registration)).await;
        registration.cancel(&self.conn);
        result
    }

    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        message: &Bytes,
        registration: &mut Registration,
    ) -> Poll<Result<(), Error>> {
        let mut inner = self.conn.lock();
        let mut wake = Wakeups::default();
        let result = match inner.session.send(self.id, message.clone()) {
            Ok(()) => {
                inner.wake_driver(&mut wake);
                Ok(())
            }
            Err(MuxLocalError::Blocked) => {
                registration.wait(&mut inner, cx.waker());
                return Poll::Pending;
            }
            Err(MuxLocalError::Closed(reason)) => Err(Error::MuxClosed(reason)),
            Err(MuxLocalError::UnknownChannel | MuxLocalError::ChannelEnded) => {
                let ended = inner.slots.get(&self.id).and_then(|s| s.ended.clone());
                match ended {
                    Some(end) => {
                        end_result(&end).and(Err(Error::MuxLocal(MuxLocalError::ChannelEnded)))
                    }
                    None => Err(Error::MuxLocal(MuxLocalError::ChannelEnded)),
                }
            }
            Err(e) => Err(Error::MuxLocal(e)),
        };
        registration.done(&mut inner);
        drop(inner);
        wake.wake();
        Poll::Ready(result)
    }

    /// The next message; `None` once the peer closed the channel (or the
    /// connection ended cleanly) and every message was read. One task
    /// reads a channel at a time: a second reader takes the first's
    /// wake-ups.
    pub async fn recv(&self) -> Result<Option<Bytes>, Error> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The poll form of [`recv`](MuxChannel::recv).
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Error>> {
        let mut inner = self.conn.lock();
        let mut wake = Wakeups::default();
        let result = match inner.session.recv(self.id) {
            Ok(Recv::Message(message)) => {
                if inner.paused && inner.session.wants_input() {
                    // Back under the limit: the driver may read again.
                    inner.paused = false;
                    inner.wake_driver(&mut wake);
                }
                Ok(Some(message))
            }
            Ok(Recv::Empty) => {
                let slot = inner.slots.entry(self.id).or_default();
                if !slot
                    .reader
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    slot.reader = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            Ok(Recv::Ended(end)) => {
                let result = end_result(&end).map(|()| None);
                if let Some(slot) = inner.slots.get_mut(&self.id) {
                    slot.ended = Some(end);
                }
                result
            }
            Err(MuxLocalError::UnknownChannel) => {
                match inner.slots.get(&self.id).and_then(|s| s.ended.clone()) {
                    Some(end) => end_result(&end).map(|()| None),
                    None => Err(Error::MuxLocal(MuxLocalError::UnknownChannel)),
                }
            }
            Err(e) => Err(Error::MuxLocal(e)),
        };
        drop(inner);
        wake.wake();
        Poll::Ready(result)
    }

    /// Closes the channel now (as dropping it does), also for other
    /// holders of the handle: their `recv` returns `None`, their `send`
    /// fails.
    pub fn close(&self) {
        let mut inner = self.conn.lock();
        let _ = inner.session.close_channel(self.id);
        let mut wake = Wakeups::default();
        if let Some(slot) = inner.slots.get_mut(&self.id) {
            slot.ended.get_or_insert(ChannelEnd::Closed);
            wake.push(slot.reader.take());
            wake.extend(slot.open_waiters.drain());
        }
        inner.wake_driver(&mut wake);
        drop(inner);
        wake.wake();
    }
}

impl Drop for MuxChannel {
    fn drop(&mut self) {
        let mut inner = self.conn.lock();
        // Closed already, or the connection is gone: nothing to say.
        let _ = inner.session.close_channel(self.id);
        inner.slots.remove(&self.id);
        let mut wake = Wakeups::default();
        inner.wake_driver(&mut wake);
        drop(inner);
        wake.wake();
        self.conn.drop_handle();
    }
}

impl std::fmt::Debug for MuxChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxChannel").field("id", &self.id).finish()
    }
}

/// The channels the peer opens for one protocol and id (or any id).
/// Dropping the last listener of a key stops listening and rejects the
/// channels still waiting.
pub struct MuxListener {
    conn: Arc<MuxConn>,
    key: ListenKey,
}

impl MuxListener {
    pub(super) fn new(conn: Arc<MuxConn>, key: ListenKey) -> MuxListener {
        conn.add_handle();
        MuxListener { conn, key }
    }

    /// The next channel, accepted with an empty handshake.
    pub async fn accept(&self) -> Result<MuxChannel, Error> {
        self.accept_with(|_| Bytes::new())
            .await
            .map(|(channel, _)| channel)
    }

    /// The next channel, accepted with the handshake `answer` makes from
    /// the peer's; returns the channel and the peer's handshake. Channels
    /// are accepted in the order they were opened, which Protomux's
    /// pairing needs. An error means the connection closed.
    pub async fn accept_with(
        &self,
        mut answer: impl FnMut(&Bytes) -> Bytes,
    ) -> Result<(MuxChannel, Bytes), Error> {
        self.accept_batch(|theirs| (answer(theirs), Vec::new()))
            .await
    }

    /// Like [`accept_with`](MuxListener::accept_with), with messages sent
    /// in one BATCH with our OPEN, as a Protomux listener that writes from
    /// its open handler while corked. Empty messages are skipped.
    pub async fn accept_batch(
        &self,
        mut answer: impl FnMut(&Bytes) -> (Bytes, Vec<Bytes>),
    ) -> Result<(MuxChannel, Bytes), Error> {
        let mut registration = Registration::new(WaitKind::Listener(self.key.clone()));
        let result = poll_fn(|cx| {
            let mut inner = self.conn.lock();
            let mut wake = Wakeups::default();
            loop {
                let next = inner
                    .listeners
                    .get_mut(&self.key)
                    .and_then(|l| l.queue.pop_front());
                let Some((channel, theirs)) = next else {
                    break;
                };
                let (ours, messages) = answer(&theirs);
                // A BATCH only when messages go with the OPEN: a plain
                // accept is the plain OPEN neonplex sends.
                let batch = messages.iter().any(|m| !m.is_empty());
                if batch {
                    inner.session.cork();
                }
                let accepted = inner.session.accept(channel, ours);
                if accepted.is_ok() {
                    for message in messages.into_iter().filter(|m| !m.is_empty()) {
                        // Over the send buffer or the size limit: the
                        // batch is the caller's to size.
                        if let Err(e) = inner.session.send(channel, message) {
                            let _ = inner.session.close_channel(channel);
                            inner.session.uncork();
                            registration.done(&mut inner);
                            return Poll::Ready(Err(Error::MuxLocal(e)));
                        }
                    }
                }
                if batch {
                    inner.session.uncork();
                }
                match accepted {
                    Ok(()) => {
                        let slot = Slot {
                            opened: Some(theirs.clone()),
                            ..Slot::default()
                        };
                        inner.slots.insert(channel, slot);
                        inner.wake_driver(&mut wake);
                        registration.done(&mut inner);
                        drop(inner);
                        wake.wake();
                        let accepted = MuxChannel::new(self.conn.clone(), channel);
                        return Poll::Ready(Ok((accepted, theirs)));
                    }
                    Err(MuxLocalError::Closed(reason)) => {
                        registration.done(&mut inner);
                        return Poll::Ready(Err(Error::MuxClosed(reason)));
                    }
                    // Taken by a local open of the same key, or gone: the
                    // next one, then.
                    Err(_) => {}
                }
            }
            if let Some(e) = inner.closed_error() {
                registration.done(&mut inner);
                return Poll::Ready(Err(e));
            }
            registration.wait(&mut inner, cx.waker());
            Poll::Pending
        })
        .await;
        registration.cancel(&self.conn);
        result
    }
}

impl Clone for MuxListener {
    fn clone(&self) -> MuxListener {
        if let Some(listening) = self.conn.lock().listeners.get_mut(&self.key) {
            listening.handles += 1;
        }
        MuxListener::new(self.conn.clone(), self.key.clone())
    }
}

impl Drop for MuxListener {
    fn drop(&mut self) {
        let mut inner = self.conn.lock();
        let last = inner.listeners.get_mut(&self.key).is_some_and(|l| {
            l.handles -= 1;
            l.handles == 0
        });
        if last {
            let listening = inner.listeners.remove(&self.key).expect("present above");
            inner.session.unlisten(&self.key.0, self.key.1.as_ref());
            for (channel, _) in listening.queue {
                let _ = inner.session.reject(channel);
            }
            let mut wake = Wakeups::default();
            inner.wake_driver(&mut wake);
            drop(inner);
            wake.wake();
        } else {
            drop(inner);
        }
        self.conn.drop_handle();
    }
}

impl std::fmt::Debug for MuxListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxListener")
            .field("protocol", &self.key.0)
            .field("id", &self.key.1)
            .finish()
    }
}
