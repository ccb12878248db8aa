//! Inputs: bytes from the transport, timeouts and end-of-file.

use std::time::Instant;

use bytes::Bytes;

use super::timer::Timer;
use super::Session;
use crate::error::{CloseReason, Flood, ProtocolError, ResetReason};
use crate::event::Event;
use crate::frame::{Frame, FrameType, SettingsFrame, FLAG_ACK, MAX_WINDOW};
use crate::id::{ErrorCode, StreamId};
use crate::stream::Pairing;

/// DATA on a closed stream at least this long is not charged to the
/// ignored-frames budget.
const IGNORED_DATA_FREE: u32 = 1024;

/// What we know of a stream id that is not live.
pub(super) enum Known {
    Live,
    /// Opened before and gone since: late frames are ignored.
    Closed,
    /// Never opened.
    Idle,
}

impl Session {
    /// Feeds bytes received from the transport. Input may be split anywhere.
    pub fn handle_input(&mut self, now: Instant, mut input: Bytes) {
        self.advance(now);
        if self.closed.is_some() || input.is_empty() {
            return;
        }
        self.stats.bytes_received += input.len() as u64;
        self.touch_liveness();
        let mut completed = false;
        while self.closed.is_none() {
            match self.decoder.decode(&mut input) {
                Ok(Some(frame)) => {
                    completed = true;
                    self.stats.frames_received += 1;
                    if let Err(e) = self.on_frame(frame) {
                        self.violation(e);
                    }
                }
                Ok(None) => break,
                Err(e) => self.violation(e),
            }
        }
        self.track_frame_progress(completed);
    }

    /// Arms the frame-progress deadline when a frame starts and clears it
    /// when the input ends on a frame boundary. More bytes of the same
    /// frame do not move it: a slow drip cannot hold the connection (§12).
    fn track_frame_progress(&mut self, completed: bool) {
        let Some(timeout) = self.config.frame_timeout else {
            return;
        };
        if self.decoder.buffered() == 0 {
            self.timers.stop(Timer::FrameProgress);
        } else if completed || !self.timers.is_set(Timer::FrameProgress) {
            self.timers.set(Timer::FrameProgress, self.now + timeout);
        }
    }

    /// Runs the timers due at `now`: keep-alive PINGs, the idle timeout, the
    /// SETTINGS acknowledgement deadline and the frame-progress deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        if self.closed.is_some() {
            return;
        }
        for timer in Timer::ALL {
            if !self.timers.expire(timer, self.now) {
                continue;
            }
            match timer {
                Timer::SettingsAck => self.violation(ProtocolError::SettingsTimeout),
                Timer::Idle => self.close(CloseReason::IdleTimeout, None),
                Timer::FrameProgress => self.violation(ProtocolError::FrameTimeout),
                Timer::Unclaimed => self.refuse_unclaimed(Some(self.now)),
                Timer::KeepAlive => {
                    // A full ping queue already proves we are probing.
                    let _ = self.queue_ping();
                    if let Some(interval) = self.config.ping_interval {
                        self.timers.set(Timer::KeepAlive, self.now + interval);
                    }
                }
            }
        }
    }

    /// The transport ended (EOF or error). Live streams fail.
    pub fn handle_eof(&mut self, now: Instant) {
        self.advance(now);
        self.close(CloseReason::TransportClosed, None);
    }

    /// Applies a peer violation: a stream error resets that stream, a
    /// connection error closes with GOAWAY.
    fn violation(&mut self, e: ProtocolError) {
        let stream = match &e {
            ProtocolError::WindowExceeded(s)
            | ProtocolError::WindowOverflow(s)
            | ProtocolError::ZeroWindowIncrement(s)
            | ProtocolError::DataAfterEnd(s)
                if !e.is_connection_error() =>
            {
                *s
            }
            _ => {
                let code = e.code();
                self.close(CloseReason::Violation(e), Some(code));
                return;
            }
        };
        if !self.budgets.local_resets.take(self.now) {
            let flood = ProtocolError::Flood(Flood::LocalResets);
            let code = flood.code();
            self.close(CloseReason::Violation(flood), Some(code));
            return;
        }
        let code = e.code();
        self.reset_stream(stream, ResetReason::Violation(e));
        self.queue_reply(Frame::RstStream { stream, code });
    }

    fn on_frame(&mut self, frame: Frame) -> Result<(), ProtocolError> {
        if !self.got_settings {
            match &frame {
                Frame::Settings(_) => {}
                other => {
                    let header = other.header();
                    return Err(ProtocolError::MissingSettings {
                        ty: header.ty,
                        ack: header.flags & FLAG_ACK != 0,
                    });
                }
            }
        }
        match frame {
            Frame::Data {
                stream,
                end_stream,
                payload,
            } => self.on_data(stream, end_stream, payload),
            Frame::Open {
                stream,
                protocol,
                id,
                handshake,
            } => self.on_open(stream, protocol, id, handshake),
            Frame::OpenAck { stream, handshake } => self.on_open_ack(stream, handshake),
            Frame::RstStream { stream, code } => self.on_reset(stream, code),
            Frame::Settings(settings) => self.on_settings(settings),
            Frame::SettingsAck => self.on_settings_ack(),
            Frame::Ping { ack, payload } => self.on_ping(ack, payload),
            Frame::GoAway {
                last_stream,
                code,
                debug,
            } => {
                self.on_go_away(last_stream, code, debug);
                Ok(())
            }
            Frame::WindowUpdate { stream, increment } => self.on_window_update(stream, increment),
            Frame::StopSending { stream, code } => self.on_stop_sending(stream, code),
            // Unknown frame types are ignored, for extensibility.
            Frame::Unknown { .. } => self.ignore(),
        }
    }

    /// A stream kept only for its unread data (END_STREAM crossed both
    /// ways) is closed on the wire: frames for it are ignored however soon
    /// the application reads (§4).
    pub(super) fn classify(&self, stream: StreamId) -> Known {
        if let Some(s) = self.streams.get(&stream) {
            match s.wire_closed() {
                true => Known::Closed,
                false => Known::Live,
            }
        } else if stream.initiator() == self.role {
            if u64::from(stream.value()) < self.next_local_id {
                Known::Closed
            } else {
                Known::Idle
            }
        } else if stream.value() <= self.last_remote_id {
            Known::Closed
        } else {
            Known::Idle
        }
    }

    fn on_data(&mut self, id: StreamId, end: bool, payload: Bytes) -> Result<(), ProtocolError> {
        let len = payload.len() as u32;
        if !self.recv_window.receive(len) {
            return Err(ProtocolError::WindowExceeded(StreamId::CONNECTION));
        }
        if len == 0 && !end && !self.budgets.empty_data.take(self.now) {
            return Err(ProtocolError::Flood(Flood::EmptyData));
        }
        match self.classify(id) {
            Known::Idle => {
                return Err(ProtocolError::IdleStream {
                    ty: FrameType::Data,
                    stream: id,
                })
            }
            Known::Closed => {
                // Late data for a closed stream: counted as consumed at once;
                // the credit returns with the usual batching (§4, §8).
                self.consume_connection(len);
                return self.ignore_small(len);
            }
            Known::Live => {}
        }
        let Some(s) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        let violation = if matches!(s.pairing, Pairing::AwaitingAck) {
            // The acceptor sends OPEN ACK before any DATA: this is out of order.
            self.consume_connection(len);
            return Err(ProtocolError::DataBeforeAck(id));
        } else if s.recv.fin {
            Some(ProtocolError::DataAfterEnd(id))
        } else if !s.recv.window.receive(len) {
            Some(ProtocolError::WindowExceeded(id))
        } else {
            None
        };
        if let Some(e) = violation {
            self.consume_connection(len);
            return Err(e);
        }
        s.recv.fin = end;
        let accepted = s.is_accepted();
        if s.recv.stopped {
            // Stream credit is no longer granted: the peer gets one window.
            self.consume_connection(len);
        } else if len > 0 {
            s.recv.buf.push(payload);
            if accepted && !s.recv.notified {
                s.recv.notified = true;
                self.events.push_back(Event::Readable { stream: id });
            }
        }
        if end {
            if accepted {
                self.events.push_back(Event::Finished { stream: id });
            }
            self.maybe_forget(id);
        }
        Ok(())
    }

    fn on_open(
        &mut self,
        stream: StreamId,
        protocol: Bytes,
        id: Bytes,
        handshake: Bytes,
    ) -> Result<(), ProtocolError> {
        if stream.initiator() == self.role || stream.value() <= self.last_remote_id {
            return Err(ProtocolError::BadOpenId(stream));
        }
        self.last_remote_id = stream.value();
        let wanted =
            self.config.accept_any || self.listeners.contains(&(protocol.clone(), id.clone()));
        // Not wanted yet: it may wait for a listener until this deadline.
        let claim_by = self.claim_grace.and_then(|g| self.now.checked_add(g));
        let refuse = self.goaway_sent
            || !(wanted || claim_by.is_some())
            || self.remote_active >= self.config.max_concurrent_streams
            || self.pending_accepts.len() >= self.config.max_pending_accepts as usize;
        if refuse {
            self.queue_reply(Frame::RstStream {
                stream,
                code: ErrorCode::REFUSED_STREAM,
            });
            return Ok(());
        }
        self.insert_stream(
            stream,
            Pairing::AwaitingAccept,
            self.config.default_priority,
        );
        self.remote_active += 1;
        self.pending_accepts.insert(stream, handshake.clone());
        match claim_by {
            Some(deadline) if !wanted => {
                self.park_unclaimed(deadline, stream, protocol, id, handshake);
            }
            _ => self.events.push_back(Event::Incoming {
                stream,
                protocol,
                id,
                handshake,
            }),
        }
        Ok(())
    }

    fn on_open_ack(&mut self, stream: StreamId, handshake: Bytes) -> Result<(), ProtocolError> {
        if stream.initiator() != self.role {
            return Err(ProtocolError::UnexpectedOpenAck(stream));
        }
        match self.classify(stream) {
            Known::Idle => Err(ProtocolError::UnexpectedOpenAck(stream)),
            Known::Closed => Ok(()),
            Known::Live => {
                let Some(s) = self.streams.get_mut(&stream) else {
                    return Ok(());
                };
                if !matches!(s.pairing, Pairing::AwaitingAck) {
                    return Err(ProtocolError::UnexpectedOpenAck(stream));
                }
                s.pairing = Pairing::Paired;
                self.events
                    .push_back(Event::RemoteOpen { stream, handshake });
                Ok(())
            }
        }
    }

    fn on_reset(&mut self, stream: StreamId, code: ErrorCode) -> Result<(), ProtocolError> {
        if !self.budgets.resets.take(self.now) {
            return Err(ProtocolError::Flood(Flood::Resets));
        }
        match self.classify(stream) {
            Known::Idle => Err(ProtocolError::IdleStream {
                ty: FrameType::RstStream,
                stream,
            }),
            Known::Closed => Ok(()),
            Known::Live => {
                self.reset_stream(stream, ResetReason::Remote(code));
                Ok(())
            }
        }
    }

    fn on_settings(&mut self, settings: SettingsFrame) -> Result<(), ProtocolError> {
        if !self.budgets.settings.take(self.now) {
            return Err(ProtocolError::Flood(Flood::Settings));
        }
        self.got_settings = true;
        if let Some(max) = settings.max_concurrent_streams {
            self.peer.max_concurrent_streams = max;
        }
        if let Some(max) = settings.max_frame_size {
            self.peer.max_frame_size = max;
        }
        if let Some(window) = settings.initial_window_size {
            let delta = i64::from(window) - i64::from(self.peer.initial_window);
            self.peer.initial_window = window;
            if delta != 0 {
                // Streams closed on the wire (kept for unread data) have no
                // send window left to adjust.
                let ids: Vec<StreamId> = self
                    .streams
                    .iter()
                    .filter(|(_, s)| !s.wire_closed())
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    // Overflow here is the SETTINGS frame's fault: a connection error.
                    self.grow_send_window(id, delta)
                        .map_err(|_| ProtocolError::InitialWindowOverflow(id))?;
                }
            }
        }
        self.queue_reply(Frame::SettingsAck);
        Ok(())
    }

    fn on_settings_ack(&mut self) -> Result<(), ProtocolError> {
        self.settings_unacked = self
            .settings_unacked
            .checked_sub(1)
            .ok_or(ProtocolError::UnexpectedSettingsAck)?;
        if self.settings_unacked == 0 {
            self.timers.stop(Timer::SettingsAck);
        }
        Ok(())
    }

    fn on_ping(&mut self, ack: bool, payload: [u8; 8]) -> Result<(), ProtocolError> {
        if !ack {
            if !self.budgets.pings.take(self.now) {
                return Err(ProtocolError::Flood(Flood::Pings));
            }
            self.queue_reply(Frame::Ping { ack: true, payload });
            return Ok(());
        }
        let token = u64::from_be_bytes(payload);
        // Answers to PINGs we never sent, or not yet sent, are ignored (budgeted).
        if let Some(pos) = self
            .pings
            .iter()
            .position(|(t, sent)| *t == token && sent.is_some())
        {
            if let Some((_, Some(sent))) = self.pings.remove(pos) {
                let rtt = self.now.saturating_duration_since(sent);
                self.rtt = Some(rtt);
                self.events.push_back(Event::Pong { rtt });
            }
            return Ok(());
        }
        self.ignore()
    }

    /// Charges a frame that is ignored to the budget of [`Flood::Ignored`].
    pub(super) fn ignore(&mut self) -> Result<(), ProtocolError> {
        match self.budgets.ignored.take(self.now) {
            true => Ok(()),
            false => Err(ProtocolError::Flood(Flood::Ignored)),
        }
    }

    /// Charges ignored DATA when it is small: full frames on a stream we
    /// reset are a legitimate burst, and cost work in proportion to bytes.
    fn ignore_small(&mut self, len: u32) -> Result<(), ProtocolError> {
        match len < IGNORED_DATA_FREE {
            true => self.ignore(),
            false => Ok(()),
        }
    }

    fn on_go_away(&mut self, last_stream: StreamId, code: ErrorCode, debug: Bytes) {
        self.events.push_back(Event::GoAway {
            last_stream,
            code,
            debug: debug.clone(),
        });
        if code != ErrorCode::NO_ERROR {
            self.close(CloseReason::Remote { code, debug }, None);
            return;
        }
        self.goaway_received = true;
        // Streams of ours past `last_stream` were never processed: safe to retry.
        let unprocessed: Vec<StreamId> = self
            .streams
            .keys()
            .copied()
            .filter(|id| id.initiator() == self.role && *id > last_stream)
            .collect();
        for stream in unprocessed {
            self.reset_stream(stream, ResetReason::GoneAway);
        }
        self.check_drained();
    }

    fn on_window_update(&mut self, stream: StreamId, increment: u32) -> Result<(), ProtocolError> {
        if stream.is_connection() {
            if increment == 0 {
                return Err(ProtocolError::ZeroWindowIncrement(stream));
            }
            self.send_window += i64::from(increment);
            if self.send_window > i64::from(MAX_WINDOW) {
                return Err(ProtocolError::WindowOverflow(stream));
            }
            return Ok(());
        }
        match self.classify(stream) {
            Known::Idle => Err(ProtocolError::IdleStream {
                ty: FrameType::WindowUpdate,
                stream,
            }),
            Known::Closed => Ok(()),
            Known::Live if increment == 0 => Err(ProtocolError::ZeroWindowIncrement(stream)),
            Known::Live => self.grow_send_window(stream, i64::from(increment)),
        }
    }

    /// Adds (or with a SETTINGS change, removes) send credit on a stream.
    fn grow_send_window(&mut self, stream: StreamId, delta: i64) -> Result<(), ProtocolError> {
        let Some(s) = self.streams.get_mut(&stream) else {
            return Ok(());
        };
        let window = s.send.window + delta;
        if window > i64::from(MAX_WINDOW) {
            return Err(ProtocolError::WindowOverflow(stream));
        }
        s.send.window = window;
        self.unblock(stream);
        self.schedule(stream);
        Ok(())
    }

    /// Queues a control frame the peer caused. Their number is bounded: a
    /// peer that makes us queue more than the limit (for example by not
    /// reading while sending PINGs) is flooding.
    pub(super) fn queue_reply(&mut self, frame: Frame) {
        // A peer within its stream limit may burst opens past our accept
        // backlog; refusing each is legitimate, so RST_STREAM may also
        // queue one per stream the peer may have open.
        let limit = match frame {
            Frame::RstStream { .. } => self
                .config
                .limits
                .max_queued_replies
                .saturating_add(self.config.max_concurrent_streams),
            _ => self.config.limits.max_queued_replies,
        };
        if self.queued_replies >= limit {
            let kind = match frame {
                Frame::Ping { .. } => "PING ACK",
                Frame::SettingsAck => "SETTINGS ACK",
                _ => "RST_STREAM",
            };
            self.violation(ProtocolError::Flood(Flood::ControlQueue(kind)));
            return;
        }
        self.queued_replies += 1;
        self.control.push_back((frame, true));
    }
}
