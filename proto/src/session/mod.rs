//! The session state machine: one end of a plex connection.

mod claim;
mod close;
pub(crate) mod hasher;
mod recv;
mod send;
mod stop;
mod timer;

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasherDefault;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::budget::{Bucket, Budgets};
use crate::codec::Decoder;
use crate::config::Config;
use crate::error::{CloseReason, ConfigError, LocalError, ReadError, ResetReason, WriteError};
use crate::event::{Event, SessionStats, StreamWindows};
use crate::flow::RecvWindow;
use crate::frame::{
    Frame, SettingsFrame, INITIAL_CONNECTION_WINDOW, MIN_INITIAL_WINDOW, MIN_MAX_FRAME_SIZE,
};
use crate::id::{ErrorCode, Role, StreamId};
use crate::stream::{Fin, Pairing, RecvBuf, Stream};
use hasher::StreamIdHasher;
use timer::{Timer, Timers};

/// Most PINGs of ours that may be unanswered at once.
const MAX_PINGS_IN_FLIGHT: usize = 16;

/// One end of a plex connection: a sans-IO state machine.
///
/// It reads no clock and touches no socket. The caller moves bytes and time
/// in and out:
///
/// - **Getters**: [`role`](Self::role), [`stats`](Self::stats),
///   [`stream_windows`](Self::stream_windows), [`priority`](Self::priority),
///   [`rtt`](Self::rtt), [`is_closed`](Self::is_closed).
/// - **Inputs**: [`handle_input`](Self::handle_input) with bytes from the
///   transport, [`handle_timeout`](Self::handle_timeout) when the deadline from
///   `poll_timeout` passes, [`handle_eof`](Self::handle_eof) when the
///   transport ends.
/// - **Mutators**: [`open`](Self::open), [`accept`](Self::accept),
///   [`refuse`](Self::refuse), [`listen`](Self::listen), [`write`](Self::write),
///   [`finish`](Self::finish), [`reset`](Self::reset), [`read`](Self::read),
///   [`stop`](Self::stop), [`set_priority`](Self::set_priority),
///   [`ping`](Self::ping), [`go_away`](Self::go_away).
/// - **Outputs**, polled after every input or mutation, in this order until
///   each returns `None`: [`poll_transmit`](Self::poll_transmit) (bytes to
///   write), [`poll_event`](Self::poll_event), then
///   [`poll_timeout`](Self::poll_timeout) (when to call `handle_timeout`).
///
/// `now` must never go backwards between calls; an earlier instant is treated
/// as the latest one seen.
#[derive(Debug)]
pub struct Session {
    role: Role,
    config: Config,
    now: Instant,
    closed: Option<CloseReason>,
    decoder: Decoder,
    got_settings: bool,
    settings_unacked: u32,
    peer: PeerSettings,
    streams: HashMap<StreamId, Stream, BuildHasherDefault<StreamIdHasher>>,
    next_local_id: u64,
    last_remote_id: u32,
    local_active: u32,
    remote_active: u32,
    /// Streams the peer opened that await `accept`, with the peer's
    /// handshake for the `RemoteOpen` event: kept here, not in every
    /// stream's state.
    pending_accepts: HashMap<StreamId, Bytes, BuildHasherDefault<StreamIdHasher>>,
    listeners: HashSet<(Bytes, Bytes)>,
    /// Opens waiting for a listener, oldest first ([`Session::set_claim_grace`]).
    unclaimed: VecDeque<claim::Unclaimed>,
    claim_grace: Option<Duration>,
    goaway_sent: bool,
    /// The last stream id of the GOAWAY we sent; later ones never exceed it.
    goaway_last: Option<StreamId>,
    goaway_received: bool,
    send_window: i64,
    recv_window: RecvWindow,
    conn_update_queued: bool,
    preface_sent: bool,
    /// Control frames to send first; `true` marks replies the peer caused.
    control: VecDeque<(Frame, bool)>,
    queued_replies: u32,
    updates: Vec<StreamId>,
    ready: VecDeque<StreamId>,
    /// Bytes written and not yet framed, across streams.
    send_buffered: usize,
    /// Streams blocked by the connection's send-buffer cap, in order.
    send_waiters: VecDeque<StreamId>,
    scratch: BytesMut,
    timers: Timers,
    pings: VecDeque<(u64, Option<Instant>)>,
    next_ping: u64,
    rtt: Option<Duration>,
    budgets: Budgets,
    events: VecDeque<Event>,
    stats: SessionStats,
}

/// What the peer told us in SETTINGS; spec defaults until then.
#[derive(Debug, Clone, Copy)]
struct PeerSettings {
    max_concurrent_streams: u32,
    initial_window: u32,
    max_frame_size: u32,
}

/// Parameters of a stream to open. Empty protocol and id make an anonymous
/// stream, accepted by a peer with `accept_any`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    protocol: Bytes,
    id: Bytes,
    handshake: Bytes,
    priority: Option<u8>,
}

impl OpenOptions {
    /// A stream for `protocol` and channel `id` (each at most 255 bytes).
    pub fn new(protocol: impl Into<Bytes>, id: impl Into<Bytes>) -> OpenOptions {
        OpenOptions {
            protocol: protocol.into(),
            id: id.into(),
            ..OpenOptions::default()
        }
    }

    /// Bytes the peer receives with the open, before any data.
    pub fn handshake(mut self, handshake: impl Into<Bytes>) -> OpenOptions {
        self.handshake = handshake.into();
        self
    }

    /// Send priority; the config's default otherwise.
    pub fn priority(mut self, priority: u8) -> OpenOptions {
        self.priority = Some(priority);
        self
    }
}

impl Session {
    /// A session for the side that dialled the transport.
    pub fn client(config: Config, now: Instant) -> Result<Session, ConfigError> {
        Session::new(Role::Client, config, now)
    }

    /// A session for the side that accepted the transport.
    pub fn server(config: Config, now: Instant) -> Result<Session, ConfigError> {
        Session::new(Role::Server, config, now)
    }

    /// A session of the given role. The preface, SETTINGS, the connection
    /// window and a first PING (to learn the round-trip time) are queued.
    pub fn new(role: Role, config: Config, now: Instant) -> Result<Session, ConfigError> {
        config.validate()?;
        let limits = &config.limits;
        let budgets = Budgets {
            resets: Bucket::new(limits.resets, now),
            local_resets: Bucket::new(limits.local_resets, now),
            empty_data: Bucket::new(limits.empty_data, now),
            settings: Bucket::new(limits.settings, now),
            pings: Bucket::new(limits.pings, now),
            ignored: Bucket::new(limits.ignored, now),
        };
        let mut session = Session {
            role,
            now,
            closed: None,
            decoder: Decoder::with_preface(config.max_frame_size),
            got_settings: false,
            settings_unacked: 1,
            peer: PeerSettings {
                max_concurrent_streams: 100,
                initial_window: MIN_INITIAL_WINDOW,
                max_frame_size: MIN_MAX_FRAME_SIZE,
            },
            streams: HashMap::default(),
            next_local_id: u64::from(role.first_stream_id()),
            last_remote_id: 0,
            local_active: 0,
            remote_active: 0,
            pending_accepts: HashMap::default(),
            listeners: HashSet::new(),
            unclaimed: VecDeque::new(),
            claim_grace: None,
            goaway_sent: false,
            goaway_last: None,
            goaway_received: false,
            send_window: i64::from(INITIAL_CONNECTION_WINDOW),
            recv_window: RecvWindow::new(config.connection_window, INITIAL_CONNECTION_WINDOW, now),
            conn_update_queued: config.connection_window > INITIAL_CONNECTION_WINDOW,
            preface_sent: false,
            control: VecDeque::new(),
            queued_replies: 0,
            updates: Vec::new(),
            ready: VecDeque::new(),
            send_buffered: 0,
            send_waiters: VecDeque::new(),
            scratch: BytesMut::with_capacity(send::SCRATCH_CAPACITY),
            timers: Timers::default(),
            pings: VecDeque::new(),
            next_ping: 0,
            rtt: None,
            budgets,
            events: VecDeque::new(),
            stats: SessionStats::default(),
            config,
        };
        let settings = Frame::Settings(SettingsFrame {
            max_concurrent_streams: Some(session.config.max_concurrent_streams),
            initial_window_size: Some(session.config.initial_window),
            max_frame_size: Some(session.config.max_frame_size),
        });
        session.control.push_back((settings, false));
        session
            .timers
            .set(Timer::SettingsAck, now + session.config.settings_timeout);
        session.touch_liveness();
        // Learn the RTT early: window auto-tuning needs it.
        session
            .queue_ping()
            .expect("a new session has no pings in flight");
        Ok(session)
    }

    // ---- getters ----

    /// Which side this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Counters and windows.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            active_streams: self.streams.len() as u32,
            last_rtt: self.rtt,
            connection_window: self.recv_window.window(),
            remote_window: self.send_window,
            send_buffered: self.send_buffered as u64,
            ..self.stats
        }
    }

    /// A live stream's windows.
    pub fn stream_windows(&self, stream: StreamId) -> Option<StreamWindows> {
        self.streams.get(&stream).map(|s| StreamWindows {
            send: s.send.window - s.send.buf.len() as i64,
            receive: s.recv.window.window(),
        })
    }

    /// A live stream's send priority.
    pub fn priority(&self, stream: StreamId) -> Option<u8> {
        self.streams.get(&stream).map(|s| s.priority)
    }

    /// The latest measured round-trip time.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) has something to send.
    ///
    /// Drivers check it after a mutation (a `read` may free window credit, a
    /// `write` queues data) to decide whether the connection task needs a
    /// wake-up.
    pub fn wants_transmit(&self) -> bool {
        let data = !self.ready.is_empty() && self.closed.is_none();
        let updates =
            self.closed.is_none() && (self.conn_update_queued || !self.updates.is_empty());
        !self.preface_sent || !self.control.is_empty() || updates || data
    }

    /// Whether the connection is closed (a `Closed` event was queued).
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Bytes of state a live stream costs, buffers excluded.
    pub fn stream_state_size() -> usize {
        Stream::STATE_SIZE
    }

    // ---- mutators ----

    /// Opens a stream. Data may be written at once; it flows within the
    /// peer's initial window and is delivered after the peer accepts.
    pub fn open(&mut self, options: OpenOptions) -> Result<StreamId, LocalError> {
        self.check_open()?;
        if self.goaway_sent || self.goaway_received {
            return Err(LocalError::GoingAway);
        }
        if self.local_active >= self.peer.max_concurrent_streams {
            return Err(LocalError::StreamLimit);
        }
        let OpenOptions {
            protocol,
            id,
            handshake,
            priority,
        } = options;
        if protocol.len() > 255 || id.len() > 255 {
            return Err(LocalError::NameTooLong);
        }
        let len = 2 + protocol.len() + id.len() + handshake.len();
        if len > self.peer.max_frame_size as usize {
            return Err(LocalError::OpenTooLarge {
                len,
                max: self.peer.max_frame_size,
            });
        }
        if self.next_local_id > u64::from(StreamId::MAX.value()) {
            return Err(LocalError::IdsExhausted);
        }
        let stream = StreamId::new(self.next_local_id as u32);
        self.next_local_id += 2;
        let priority = priority.unwrap_or(self.config.default_priority);
        self.insert_stream(stream, Pairing::AwaitingAck, priority);
        self.local_active += 1;
        self.control.push_back((
            Frame::Open {
                stream,
                protocol,
                id,
                handshake,
            },
            false,
        ));
        Ok(stream)
    }

    /// Accepts a stream announced by [`Event::Incoming`], answering with our
    /// handshake. Emits [`Event::RemoteOpen`] with the peer's.
    pub fn accept(
        &mut self,
        stream: StreamId,
        handshake: impl Into<Bytes>,
    ) -> Result<(), LocalError> {
        self.check_open()?;
        let handshake = handshake.into();
        if handshake.len() > self.peer.max_frame_size as usize {
            return Err(LocalError::OpenTooLarge {
                len: handshake.len(),
                max: self.peer.max_frame_size,
            });
        }
        let s = self
            .streams
            .get_mut(&stream)
            .ok_or(LocalError::UnknownStream(stream))?;
        if s.pairing != Pairing::AwaitingAccept {
            return Err(LocalError::NotPending(stream));
        }
        s.pairing = Pairing::Paired;
        let theirs = self.pending_accepts.remove(&stream).unwrap_or_default();
        self.control
            .push_back((Frame::OpenAck { stream, handshake }, false));
        self.events.push_back(Event::RemoteOpen {
            stream,
            handshake: theirs,
        });
        if !s.recv.buf.is_empty() {
            s.recv.notified = true;
            self.events.push_back(Event::Readable { stream });
        }
        if s.recv.fin {
            self.events.push_back(Event::Finished { stream });
        }
        self.apply_stop_sending(stream);
        Ok(())
    }

    /// Refuses a stream announced by [`Event::Incoming`] with REFUSED_STREAM;
    /// data it carried is dropped.
    pub fn refuse(&mut self, stream: StreamId) -> Result<(), LocalError> {
        self.check_open()?;
        match self.streams.get(&stream) {
            None => return Err(LocalError::UnknownStream(stream)),
            Some(s) if s.is_accepted() => return Err(LocalError::NotPending(stream)),
            Some(_) => {}
        }
        self.remove_stream(stream);
        self.control.push_back((
            Frame::RstStream {
                stream,
                code: ErrorCode::REFUSED_STREAM,
            },
            false,
        ));
        Ok(())
    }

    /// Accepts peer streams opened for `protocol` and `id` even when
    /// `accept_any` is off.
    ///
    /// Streams of that protocol and id waiting for a listener (see
    /// [`set_claim_grace`](Session::set_claim_grace)) are announced now.
    pub fn listen(&mut self, protocol: impl Into<Bytes>, id: impl Into<Bytes>) {
        let key = (protocol.into(), id.into());
        self.claim(|p, i| *p == key.0 && *i == key.1);
        self.listeners.insert(key);
    }

    /// Stops accepting `protocol` and `id` (unless `accept_any` is on).
    pub fn unlisten(&mut self, protocol: &[u8], id: &[u8]) {
        self.listeners
            .retain(|(p, i)| p.as_ref() != protocol || i.as_ref() != id);
    }

    /// Turns accepting streams of any protocol and id on or off. Turned on,
    /// it announces the streams waiting for a listener.
    pub fn set_accept_any(&mut self, accept_any: bool) {
        self.config.accept_any = accept_any;
        if accept_any {
            self.claim(|_, _| true);
        }
    }

    /// Queues bytes on a stream; returns how many were taken, which may be
    /// fewer than offered.
    ///
    /// A write takes at most what the peer's window, the stream's send
    /// buffer ([`Config::stream_send_buffer`]) and the connection's
    /// ([`Config::connection_send_buffer`]) leave room for. When that is
    /// nothing it returns [`WriteError::Blocked`], and [`Event::Writable`]
    /// follows once room returns: frames left or the peer granted credit.
    /// Streams blocked by the connection's buffer are woken in the order
    /// they blocked.
    pub fn write(&mut self, stream: StreamId, data: &[u8]) -> Result<usize, WriteError> {
        self.check_open()?;
        let (cap, connection) = (self.config.stream_send_buffer, self.connection_room());
        let s = self.live_accepted(stream)?;
        if let Some(code) = s.send.stopped {
            return Err(WriteError::Stopped(code));
        }
        if s.send.fin != Fin::Open {
            return Err(LocalError::Finished(stream).into());
        }
        if data.is_empty() {
            return Ok(0);
        }
        let room = s.send_room(cap);
        let n = room.min(connection).min(data.len());
        if n == 0 {
            s.send.blocked = true;
            if room > 0 {
                self.wait_for_connection_room(stream);
            }
            return Err(WriteError::Blocked);
        }
        s.send.buf.extend_from_slice(&data[..n]);
        self.send_buffered += n;
        self.schedule(stream);
        Ok(n)
    }

    /// Ends our side of the stream once written data is sent (END_STREAM).
    pub fn finish(&mut self, stream: StreamId) -> Result<(), LocalError> {
        self.check_open()?;
        let s = self.live_accepted(stream)?;
        if s.send.fin != Fin::Open {
            return Err(LocalError::Finished(stream));
        }
        s.send.fin = Fin::Queued;
        self.schedule(stream);
        Ok(())
    }

    /// Ends the stream abruptly in both directions with `code`; unsent and
    /// unread data is dropped and the stream is forgotten.
    pub fn reset(&mut self, stream: StreamId, code: ErrorCode) -> Result<(), LocalError> {
        self.check_open()?;
        if !self.streams.contains_key(&stream) {
            return Err(LocalError::UnknownStream(stream));
        }
        self.remove_stream(stream);
        self.control
            .push_back((Frame::RstStream { stream, code }, false));
        Ok(())
    }

    /// Copies buffered data into `buf`. `Ok(None)` is end-of-stream.
    pub fn read(&mut self, stream: StreamId, buf: &mut [u8]) -> Result<Option<usize>, ReadError> {
        self.read_with(stream, buf.len(), |data| data.copy_to(buf))
    }

    /// Takes up to `max` buffered bytes without copying. `Ok(None)` is
    /// end-of-stream.
    pub fn read_chunk(&mut self, stream: StreamId, max: usize) -> Result<Option<Bytes>, ReadError> {
        let mut out = Bytes::new();
        let taken = self.read_with(stream, max, |data| {
            out = data.pop(max).unwrap_or_default();
            out.len()
        })?;
        Ok(taken.map(|_| out))
    }

    /// Sets a stream's send priority. Streams with data take turns, and a
    /// stream with priority `p` sends `p + 1` shares per round.
    pub fn set_priority(&mut self, stream: StreamId, priority: u8) -> Result<(), LocalError> {
        let s = self
            .streams
            .get_mut(&stream)
            .ok_or(LocalError::UnknownStream(stream))?;
        s.priority = priority;
        Ok(())
    }

    /// Sends a PING; [`Event::Pong`] reports the round-trip time.
    pub fn ping(&mut self) -> Result<(), LocalError> {
        self.check_open()?;
        self.queue_ping()
    }

    // ---- outputs ----

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        self.timers.next()
    }

    // ---- shared internals ----

    fn advance(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    fn check_open(&self) -> Result<(), LocalError> {
        match self.closed {
            Some(_) => Err(LocalError::Closed),
            None => Ok(()),
        }
    }

    fn live_accepted(&mut self, stream: StreamId) -> Result<&mut Stream, LocalError> {
        let s = self
            .streams
            .get_mut(&stream)
            .ok_or(LocalError::UnknownStream(stream))?;
        if !s.is_accepted() {
            return Err(LocalError::NotAccepted(stream));
        }
        Ok(s)
    }

    fn insert_stream(&mut self, stream: StreamId, pairing: Pairing, priority: u8) {
        let s = Stream::new(
            pairing,
            priority,
            self.peer.initial_window,
            self.config.initial_window,
            self.now,
        );
        self.streams.insert(stream, s);
        self.stats.streams_opened += 1;
    }

    /// Lets `take` remove up to `max` buffered bytes (at least one when
    /// any is buffered and `max > 0`) and returns how many it took;
    /// `Ok(None)` is end-of-stream.
    fn read_with(
        &mut self,
        stream: StreamId,
        max: usize,
        take: impl FnOnce(&mut RecvBuf) -> usize,
    ) -> Result<Option<usize>, ReadError> {
        let s = self.live_accepted(stream)?;
        s.recv.notified = false;
        if s.recv.buf.is_empty() {
            if s.recv.fin || s.recv.stopped {
                s.recv.done = true;
                self.maybe_forget(stream);
                return Ok(None);
            }
            return if max == 0 {
                Ok(Some(0))
            } else {
                Err(ReadError::Blocked)
            };
        }
        if max == 0 {
            // Room for nothing: not the end while data is buffered.
            return Ok(Some(0));
        }
        let taken = take(&mut s.recv.buf);
        self.consume(stream, taken);
        Ok(Some(taken))
    }

    /// Returns `n` consumed bytes of credit to the stream and the connection.
    fn consume(&mut self, stream: StreamId, n: usize) {
        let n = n as u32;
        if n == 0 {
            return;
        }
        if let Some(s) = self.streams.get_mut(&stream) {
            // A stream the peer finished needs no more credit.
            if s.recv.window.consume(n) && !s.recv.fin && !s.recv.update_queued {
                s.recv.update_queued = true;
                self.updates.push(stream);
            }
        }
        self.consume_connection(n);
    }

    fn consume_connection(&mut self, n: u32) {
        if self.recv_window.consume(n) {
            self.conn_update_queued = true;
        }
    }

    /// Puts a stream in the send rotation if it has something to send.
    fn schedule(&mut self, stream: StreamId) {
        if let Some(s) = self.streams.get_mut(&stream) {
            if !s.send.queued && s.sendable() {
                s.send.queued = true;
                self.ready.push_back(stream);
            }
        }
    }

    /// Forgets a stream once nothing more can happen on it.
    fn maybe_forget(&mut self, stream: StreamId) {
        if let Some(s) = self.streams.get_mut(&stream) {
            if s.counted && s.wire_closed() {
                s.counted = false;
                match stream.initiator() == self.role {
                    true => self.local_active -= 1,
                    false => self.remote_active -= 1,
                }
            }
            if s.finished() {
                self.streams.remove(&stream);
                self.stats.streams_closed += 1;
            }
        }
        self.check_drained();
    }

    /// Reports a live stream's reset to the application and drops it. The
    /// event goes first: dropping the last stream of a drain closes the
    /// session, and `Closed` must be the last event.
    fn reset_stream(&mut self, stream: StreamId, reason: ResetReason) {
        if self.streams.contains_key(&stream) {
            self.events.push_back(Event::Reset { stream, reason });
            self.remove_stream(stream);
        }
    }

    /// Drops a stream at once (reset or refused), fixing every count and
    /// returning the credit of data the application never read.
    fn remove_stream(&mut self, stream: StreamId) {
        let Some(s) = self.streams.remove(&stream) else {
            return;
        };
        if s.pairing == Pairing::AwaitingAccept {
            self.pending_accepts.remove(&stream);
            self.forget_unclaimed(stream);
        }
        if s.counted {
            match stream.initiator() == self.role {
                true => self.local_active -= 1,
                false => self.remote_active -= 1,
            }
        }
        self.stats.streams_closed += 1;
        self.consume_connection(s.recv.buf.len() as u32);
        self.release_send_buffer(stream, s.send.buf.len());
        self.check_drained();
    }

    fn queue_ping(&mut self) -> Result<(), LocalError> {
        if self.pings.len() >= MAX_PINGS_IN_FLIGHT {
            return Err(LocalError::PingsInFlight);
        }
        let token = self.next_ping;
        self.next_ping += 1;
        self.pings.push_back((token, None));
        self.control.push_back((
            Frame::Ping {
                ack: false,
                payload: token.to_be_bytes(),
            },
            false,
        ));
        Ok(())
    }

    /// Something arrived from the peer: it is alive.
    fn touch_liveness(&mut self) {
        if let Some(interval) = self.config.ping_interval {
            self.timers.set(Timer::KeepAlive, self.now + interval);
        }
        if let Some(idle) = self.config.idle_timeout {
            self.timers.set(Timer::Idle, self.now + idle);
        }
    }
}
