//! The session's input: frames to messages, and what each message does.

use std::time::Instant;

use bytes::Bytes;

use super::{
    detach, slot, Channel, ChannelEnd, ChannelId, Key, LocalSlot, MuxCloseReason, MuxError,
    MuxEvent, Session, State, MESSAGE_OVERHEAD,
};
use crate::protomux::Message;

impl Session {
    /// Takes bytes read from the transport: length-prefixed Protomux
    /// messages, however the reads split them. A protocol violation ends
    /// the connection ([`MuxEvent::Closed`]); input after that is ignored.
    pub fn handle_input(&mut self, now: Instant, input: Bytes) {
        if self.closed.is_some() {
            return;
        }
        self.stats.bytes_received += input.len() as u64;
        self.frames.push(input);
        loop {
            let frame = match self.frames.next() {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(e) => return self.violation(e.into()),
            };
            // Zero-length frames are delivered and ignored by Protomux.
            if frame.is_empty() {
                continue;
            }
            let result = Message::decode(frame)
                .map_err(MuxError::from)
                .and_then(|message| self.handle_message(now, message));
            if let Err(e) = result {
                return self.violation(e);
            }
        }
    }

    /// The peer ended the byte stream: every channel ends.
    pub fn handle_eof(&mut self) {
        self.shut(MuxCloseReason::Eof);
    }

    fn violation(&mut self, error: MuxError) {
        self.shut(MuxCloseReason::Violation(error));
    }

    fn handle_message(&mut self, now: Instant, message: Message) -> Result<(), MuxError> {
        match message {
            Message::Batch(items) => {
                for item in items {
                    self.handle_message(now, item)?;
                }
                Ok(())
            }
            message => {
                self.stats.messages_received += 1;
                match message {
                    Message::Open {
                        channel,
                        protocol,
                        id,
                        handshake,
                    } => self.on_open(now, channel, (protocol, id), handshake),
                    Message::Reject { channel } => self.on_reject(channel),
                    Message::Close { channel } => {
                        self.on_close(channel);
                        Ok(())
                    }
                    Message::Data {
                        channel,
                        kind,
                        payload,
                    } => {
                        self.on_data(channel, kind, payload);
                        Ok(())
                    }
                    _ => {
                        // Control types Protomux does not define.
                        self.stats.ignored += 1;
                        Ok(())
                    }
                }
            }
        }
    }

    fn on_open(
        &mut self,
        now: Instant,
        remote: u64,
        key: Key,
        handshake: Bytes,
    ) -> Result<(), MuxError> {
        if remote == 0 {
            // The control channel cannot be opened: Protomux rejects it.
            self.output
                .push(Message::Reject { channel: 0 }, self.config.max_message_size);
            self.stats.rejected += 1;
            return Ok(());
        }
        // The peer may grow its ids by one at a time, into free slots only.
        let index = slot(remote);
        if index == self.remote.len() {
            if self.remote.len() >= self.config.max_channels {
                let max = self.config.max_channels;
                return Err(MuxError::TooManyChannels { max });
            }
            self.remote.push(None);
        }
        if index >= self.remote.len() || self.remote[index].is_some() {
            return Err(MuxError::InvalidOpen { channel: remote });
        }
        if let Some(local) = self.pop_outgoing(&key) {
            self.answered(local, remote, handshake);
            return Ok(());
        }
        // Nothing of ours waits: the peer's OPEN waits for a listener.
        let channel = self.new_handle();
        self.remote[index] = Some(channel);
        let state = State::Incoming {
            claimed: false,
            handshake,
        };
        self.incoming
            .entry(key.clone())
            .or_default()
            .push_back(channel);
        self.channels
            .insert(channel, Channel::new(key, None, Some(remote), state));
        self.pending += 1;
        let listened = self.listens(&self.channels[&channel].key);
        if self.pending > self.config.max_pending_opens {
            self.reject_incoming(channel);
        } else if listened {
            self.claim(channel);
        } else if let Some(grace) = self.claim_grace {
            self.unclaimed.push_back((channel, now + grace));
        } else {
            self.reject_incoming(channel);
        }
        Ok(())
    }

    /// The oldest of our OPENs for `key` still waiting for the peer's.
    fn pop_outgoing(&mut self, key: &Key) -> Option<u64> {
        let waiting = self.outgoing.get_mut(key)?;
        let local = waiting.pop_front();
        if waiting.is_empty() {
            self.outgoing.remove(key);
        }
        local
    }

    /// The peer's OPEN answers ours on `local`.
    fn answered(&mut self, local: u64, remote: u64, handshake: Bytes) {
        match self.local[slot(local)] {
            LocalSlot::Channel(channel) => {
                self.remote[slot(remote)] = Some(channel);
                let ch = self
                    .channels
                    .get_mut(&channel)
                    .expect("slots name live channels");
                ch.remote = Some(remote);
                ch.state = State::Open;
                self.events
                    .push_back(MuxEvent::Opened { channel, handshake });
            }
            LocalSlot::Reserved => {
                // We closed it while our OPEN was on its way. Protomux
                // ignores a CLOSE for a channel it has not accepted yet, so
                // it may have opened its side since: close it again before
                // the id is reused, or our next OPEN with it would be
                // "Invalid open message" there.
                self.output.push(
                    Message::Close { channel: local },
                    self.config.max_message_size,
                );
                self.free_local(local);
            }
            LocalSlot::Free => unreachable!("an outgoing id is never free"),
        }
    }

    fn on_reject(&mut self, local: u64) -> Result<(), MuxError> {
        let pending = local >= 1
            && (slot(local)) < self.local.len()
            && match self.local[slot(local)] {
                LocalSlot::Channel(channel) => self.channels[&channel].state == State::Opening,
                LocalSlot::Reserved => true,
                LocalSlot::Free => false,
            };
        if !pending {
            return Err(MuxError::InvalidReject { channel: local });
        }
        let slot_state = self.local[slot(local)];
        if let LocalSlot::Channel(channel) = slot_state {
            let key = self.channels[&channel].key.clone();
            self.remove_outgoing(&key, local);
            self.end(channel, ChannelEnd::Rejected);
        } else {
            let key = self
                .outgoing
                .iter()
                .find(|(_, ids)| ids.contains(&local))
                .map(|(key, _)| key.clone());
            if let Some(key) = key {
                self.remove_outgoing(&key, local);
            }
        }
        self.free_local(local);
        Ok(())
    }

    fn remove_outgoing(&mut self, key: &Key, local: u64) {
        if let Some(waiting) = self.outgoing.get_mut(key) {
            waiting.retain(|&id| id != local);
            if waiting.is_empty() {
                self.outgoing.remove(key);
            }
        }
    }

    fn on_close(&mut self, remote: u64) {
        let Some(channel) = self.remote_channel(remote) else {
            // Already closed, or never opened: Protomux ignores it.
            self.stats.ignored += 1;
            return;
        };
        let ch = &self.channels[&channel];
        match ch.state {
            // Gone before we answered. Answer anyway, or the peer would pair
            // our next OPEN for this key with this one: protomux keeps a
            // closed channel's OPEN waiting for its answer.
            State::Incoming { .. } => self.reject_incoming(channel),
            _ => {
                self.remote[slot(remote)] = None;
                let local = ch.local.expect("a paired channel has a local id");
                self.free_local(local);
                self.end(channel, ChannelEnd::Closed);
            }
        }
    }

    fn on_data(&mut self, remote: u64, kind: u64, payload: Bytes) {
        let Some(channel) = self.remote_channel(remote) else {
            self.stats.ignored += 1;
            return;
        };
        if kind != 0 {
            // neonplex channels have one message type; others are ignored.
            self.stats.ignored += 1;
            return;
        }
        let limit = self.config.channel_buffer;
        let ch = self
            .channels
            .get_mut(&channel)
            .expect("slots name live channels");
        let counted = payload.len() + MESSAGE_OVERHEAD;
        let was_over = ch.queued > limit;
        let was_empty = ch.queue.is_empty();
        ch.queue.push_back(detach(payload));
        ch.queued += counted;
        self.buffered += counted;
        if !was_over && ch.queued > limit {
            self.over_limit += 1;
        }
        if was_empty && ch.state == State::Open {
            self.events.push_back(MuxEvent::Readable { channel });
        }
    }

    /// The live channel the peer's wire id names.
    fn remote_channel(&self, remote: u64) -> Option<ChannelId> {
        let index = usize::try_from(remote.checked_sub(1)?).ok()?;
        self.remote.get(index).copied().flatten()
    }

    /// Ends a channel the peer ended; its messages stay readable.
    fn end(&mut self, channel: ChannelId, end: ChannelEnd) {
        let ch = self
            .channels
            .get_mut(&channel)
            .expect("ended channels are live");
        ch.state = State::Ended(end.clone());
        self.events.push_back(MuxEvent::Ended { channel, end });
    }
}
