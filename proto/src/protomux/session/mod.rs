//! A sans-IO Protomux session (neonplex wire §4–§5): channels paired by
//! protocol and id over one length-prefixed byte stream.
//!
//! The same shape as the `plex/1` [`Session`](crate::Session): bytes go in
//! through [`handle_input`](Session::handle_input), bytes come out of
//! [`poll_transmit`](Session::poll_transmit), and what the application must
//! know comes out of [`poll_event`](Session::poll_event). Time only drives
//! the claim grace ([`set_claim_grace`](Session::set_claim_grace)).
//!
//! Protomux has no flow control. The session bounds what a peer can make
//! it hold instead: received messages wait per channel, and once a channel
//! (or all of them together) holds more than its limit, or our output is
//! not being written, [`wants_input`](Session::wants_input) turns false and
//! the driver stops reading the transport until the application catches
//! up. The transport's own backpressure then reaches the peer.

mod input;
mod output;
#[cfg(test)]
mod tests;
mod types;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{FrameDecoder, Message, COMPACT_BELOW};
pub use types::{
    ChannelEnd, ChannelId, MuxCloseReason, MuxConfig, MuxError, MuxEvent, MuxLocalError, MuxStats,
    Recv, MESSAGE_OVERHEAD,
};

use output::Output;

/// The pairing key: protocol and id (an empty id stands for `null` too).
type Key = (String, Bytes);

/// One Protomux connection's state: channels paired by protocol and id
/// over one length-prefixed byte stream.
///
/// The same shape as the `plex/1` [`Session`](crate::Session): bytes in
/// through [`handle_input`](Session::handle_input), bytes out of
/// [`poll_transmit`](Session::poll_transmit), what the application must
/// know out of [`poll_event`](Session::poll_event). Protomux has no flow
/// control: once a channel (or all of them) holds more received bytes than
/// its limit, or our output is not being written,
/// [`wants_input`](Session::wants_input) turns false and the driver stops
/// reading until the application catches up. `proto/PROTOMUX.md` has the
/// rules.
#[derive(Debug)]
pub struct Session {
    config: MuxConfig,
    frames: FrameDecoder,
    output: Output,
    events: VecDeque<MuxEvent>,
    channels: HashMap<ChannelId, Channel>,
    next_handle: u64,
    /// Our wire ids: index `id - 1`.
    local: Vec<LocalSlot>,
    /// Our freed wire ids, reused last-freed first (as Protomux does).
    free: Vec<u64>,
    /// The peer's wire ids in use: index `id - 1`.
    remote: Vec<Option<ChannelId>>,
    /// Our OPENs waiting for the peer's, by key, oldest first.
    outgoing: HashMap<Key, VecDeque<u64>>,
    /// What this side listens for: exact keys, and protocols with any id.
    listening: HashSet<Key>,
    listening_any: HashSet<String>,
    /// The peer's OPENs nobody listens for yet, oldest first, with the
    /// moment each is rejected.
    unclaimed: VecDeque<(ChannelId, Instant)>,
    claim_grace: Option<Duration>,
    /// The peer's OPENs not yet answered, by key, oldest first. Protomux
    /// pairs an OPEN by key with the oldest one waiting for an answer, so
    /// ours must answer them in this order.
    incoming: HashMap<Key, VecDeque<ChannelId>>,
    /// How many OPENs `incoming` holds.
    pending: usize,
    /// Received bytes held, as counted.
    buffered: usize,
    /// Channels holding more than `channel_buffer`.
    over_limit: usize,
    stats: MuxStats,
    closed: Option<MuxCloseReason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LocalSlot {
    Free,
    /// In use by a channel.
    Channel(ChannelId),
    /// Closed by us before the peer answered its OPEN: reserved until the
    /// answer, so the peer's reply cannot reach a newer channel.
    Reserved,
}

#[derive(Debug)]
struct Channel {
    key: Key,
    /// Our wire id, once we have sent our OPEN.
    local: Option<u64>,
    /// The peer's wire id, once paired or while it waits for us.
    remote: Option<u64>,
    state: State,
    queue: VecDeque<Bytes>,
    /// Bytes of `queue`, as counted against the limits.
    queued: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// We sent OPEN; the peer has not answered.
    Opening,
    /// The peer opened it; we have not accepted or rejected it. `claimed`
    /// once a listener heard of it (an `Incoming` event).
    Incoming { claimed: bool, handshake: Bytes },
    /// Both OPENs are through.
    Open,
    /// It ended; what was received can still be read.
    Ended(ChannelEnd),
}

impl Session {
    /// A session with `config`.
    pub fn new(config: MuxConfig) -> Result<Session, crate::ConfigError> {
        config.validate()?;
        let claim_grace = config.claim_grace;
        Ok(Session {
            frames: FrameDecoder::new(config.max_message_size),
            output: Output::default(),
            config,
            events: VecDeque::new(),
            channels: HashMap::new(),
            next_handle: 1,
            local: Vec::new(),
            free: Vec::new(),
            remote: Vec::new(),
            outgoing: HashMap::new(),
            listening: HashSet::new(),
            listening_any: HashSet::new(),
            unclaimed: VecDeque::new(),
            claim_grace,
            incoming: HashMap::new(),
            pending: 0,
            buffered: 0,
            over_limit: 0,
            stats: MuxStats::default(),
            closed: None,
        })
    }

    /// The config.
    pub fn config(&self) -> &MuxConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> MuxStats {
        MuxStats {
            buffered: self.buffered,
            queued: self.output.queued() + self.output.batched(),
            ..self.stats.clone()
        }
    }

    /// Why the connection ended, once it has.
    pub fn close_reason(&self) -> Option<&MuxCloseReason> {
        self.closed.as_ref()
    }

    /// Whether the connection has ended (queued output may remain).
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Whether the driver should read more input now. False while the
    /// received messages held are over a limit or our output waits
    /// unwritten over [`MuxConfig::send_buffer`]: reading then would only
    /// grow memory.
    pub fn wants_input(&self) -> bool {
        self.closed.is_none()
            && self.over_limit == 0
            && self.buffered <= self.config.max_buffered
            && self.output.queued() <= self.config.send_buffer
    }

    /// How long an OPEN nobody listens for waits for a listener before it
    /// is rejected ([`MuxConfig::claim_grace`] at first). `None` rejects
    /// it at once, as Protomux does; a grace lets a peer open a channel
    /// the moment it connects, before this side has started listening.
    /// Applies to OPENs that arrive later.
    pub fn set_claim_grace(&mut self, grace: Option<Duration>) {
        self.claim_grace = grace;
    }

    /// Accepts the peer's channels for `protocol` with `id`, or with any id
    /// if `id` is `None`: each arrives as [`MuxEvent::Incoming`]. Channels
    /// waiting in the claim grace that match are announced at once.
    pub fn listen(&mut self, protocol: &str, id: Option<Bytes>) {
        match id {
            Some(id) => self.listening.insert((protocol.to_owned(), id)),
            None => self.listening_any.insert(protocol.to_owned()),
        };
        let waiting: Vec<ChannelId> = self.unclaimed.iter().map(|&(c, _)| c).collect();
        for channel in waiting {
            if self
                .channels
                .get(&channel)
                .is_some_and(|c| self.listens(&c.key))
            {
                self.claim(channel);
            }
        }
        self.unclaimed
            .retain(|(c, _)| matches!(self.channels.get(c), Some(ch) if !ch.is_claimed()));
    }

    /// Stops accepting what [`listen`](Session::listen) accepted. Channels
    /// already announced are the application's to accept or reject.
    pub fn unlisten(&mut self, protocol: &str, id: Option<&Bytes>) {
        match id {
            Some(id) => self.listening.remove(&(protocol.to_owned(), id.clone())),
            None => self.listening_any.remove(protocol),
        };
    }

    /// Opens a channel for `protocol` and `id`, sending `handshake` (its
    /// bytes as they are: the raw encoding neonplex uses by default).
    ///
    /// If the peer has opened the same protocol and id and it waits for an
    /// answer, the two pair now and the result is that channel (with an
    /// [`MuxEvent::Opened`] carrying the peer's handshake): the peer pairs
    /// our OPEN with its oldest waiting one whatever we mean by it, as
    /// Protomux does. A listener that was told of it then finds it taken
    /// ([`MuxLocalError::NotIncoming`]). Messages may be sent at once; the
    /// peer buffers them until it accepts.
    pub fn open(
        &mut self,
        protocol: &str,
        id: Bytes,
        handshake: Bytes,
    ) -> Result<ChannelId, MuxLocalError> {
        self.check_open()?;
        let key = (protocol.to_owned(), id);
        if let Some(&channel) = self.incoming.get(&key).and_then(VecDeque::front) {
            // The peer pairs our OPEN with its oldest unanswered one for
            // this key: this open answers it, as Protomux's does.
            let theirs = match &self.channels[&channel].state {
                State::Incoming { handshake, .. } => handshake.clone(),
                _ => unreachable!("waiting channels are incoming"),
            };
            self.accept_incoming(channel, handshake)?;
            let handshake = theirs;
            self.events
                .push_back(MuxEvent::Opened { channel, handshake });
            return Ok(channel);
        }
        let local = self.allocate_local()?;
        let channel = self.new_handle();
        self.output.push(
            Message::Open {
                channel: local,
                protocol: key.0.clone(),
                id: key.1.clone(),
                handshake,
            },
            self.config.max_message_size,
        );
        self.outgoing
            .entry(key.clone())
            .or_default()
            .push_back(local);
        self.local[slot(local)] = LocalSlot::Channel(channel);
        self.channels.insert(
            channel,
            Channel::new(key, Some(local), None, State::Opening),
        );
        self.stats.channels_opened += 1;
        Ok(channel)
    }

    /// Accepts an incoming channel, answering with our OPEN and
    /// `handshake`. Messages the peer sent before are delivered.
    ///
    /// Channels of one protocol and id must be accepted in the order they
    /// arrived ([`MuxLocalError::OutOfOrder`] otherwise): the peer pairs
    /// our OPEN with its oldest waiting one, so answering a later one first
    /// would cross the pairs.
    pub fn accept(&mut self, channel: ChannelId, handshake: Bytes) -> Result<(), MuxLocalError> {
        self.check_open()?;
        self.accept_incoming(channel, handshake)
    }

    /// Rejects an incoming channel (REJECT); what it sent is dropped.
    pub fn reject(&mut self, channel: ChannelId) -> Result<(), MuxLocalError> {
        self.check_open()?;
        let ch = self
            .channels
            .get(&channel)
            .ok_or(MuxLocalError::UnknownChannel)?;
        if !matches!(ch.state, State::Incoming { .. }) {
            return Err(MuxLocalError::NotIncoming);
        }
        self.reject_incoming(channel);
        Ok(())
    }

    /// Closes the channel: CLOSE to the peer, and both directions end
    /// (Protomux's CLOSE is one-way and final). Unread messages are
    /// dropped. An incoming channel not yet accepted is rejected instead.
    /// Closing an ended channel just forgets it.
    pub fn close_channel(&mut self, channel: ChannelId) -> Result<(), MuxLocalError> {
        let ch = self
            .channels
            .get(&channel)
            .ok_or(MuxLocalError::UnknownChannel)?;
        match ch.state {
            State::Incoming { .. } if self.closed.is_none() => {
                self.reject_incoming(channel);
            }
            State::Opening | State::Open if self.closed.is_none() => {
                let local = ch.local.expect("an opening or open channel has a local id");
                let (opening, remote) = (ch.state == State::Opening, ch.remote);
                self.output.push(
                    Message::Close { channel: local },
                    self.config.max_message_size,
                );
                if opening {
                    // The peer's answer to our OPEN is still coming.
                    self.local[slot(local)] = LocalSlot::Reserved;
                } else {
                    self.free_local(local);
                }
                if let Some(remote) = remote {
                    self.remote[slot(remote)] = None;
                }
                self.forget(channel);
            }
            _ => self.forget(channel),
        }
        Ok(())
    }

    /// Sends one message on the channel. Allowed before the peer answers
    /// our OPEN (the peer buffers it), not on an incoming channel before
    /// [`accept`](Session::accept).
    pub fn send(&mut self, channel: ChannelId, message: Bytes) -> Result<(), MuxLocalError> {
        self.check_open()?;
        let ch = self
            .channels
            .get(&channel)
            .ok_or(MuxLocalError::UnknownChannel)?;
        let local = match ch.state {
            State::Opening | State::Open => ch.local.expect("has a local id"),
            State::Incoming { .. } => return Err(MuxLocalError::NotAccepted),
            State::Ended(_) => return Err(MuxLocalError::ChannelEnded),
        };
        if message.is_empty() {
            return Err(MuxLocalError::EmptyMessage);
        }
        let len = crate::rpc::uint_len(local) + 1 + message.len();
        if len > self.config.max_message_size {
            let max = self.config.max_message_size;
            return Err(MuxLocalError::TooLarge { len, max });
        }
        if self.output.queued() > self.config.send_buffer {
            self.output.blocked = true;
            return Err(MuxLocalError::Blocked);
        }
        self.output.push(
            Message::Data {
                channel: local,
                kind: 0,
                payload: message,
            },
            self.config.max_message_size,
        );
        Ok(())
    }

    /// Whether [`send`](Session::send) would take a message now.
    pub fn can_send(&self) -> bool {
        self.output.queued() <= self.config.send_buffer
    }

    /// The next message received on the channel.
    pub fn recv(&mut self, channel: ChannelId) -> Result<Recv, MuxLocalError> {
        let ch = self
            .channels
            .get_mut(&channel)
            .ok_or(MuxLocalError::UnknownChannel)?;
        if let State::Incoming { .. } = ch.state {
            return Ok(Recv::Empty);
        }
        if let Some(message) = ch.queue.pop_front() {
            let counted = message.len() + MESSAGE_OVERHEAD;
            let was_over = ch.queued > self.config.channel_buffer;
            ch.queued -= counted;
            self.buffered -= counted;
            if was_over && ch.queued <= self.config.channel_buffer {
                self.over_limit -= 1;
            }
            return Ok(Recv::Message(message));
        }
        match &ch.state {
            State::Ended(end) => {
                let end = end.clone();
                self.forget(channel);
                Ok(Recv::Ended(end))
            }
            _ => Ok(Recv::Empty),
        }
    }

    /// The peer's handshake-independent facts about a channel: its
    /// protocol and id.
    pub fn channel_key(&self, channel: ChannelId) -> Option<(&str, &Bytes)> {
        self.channels
            .get(&channel)
            .map(|ch| (ch.key.0.as_str(), &ch.key.1))
    }

    /// Channels the session tracks (open, waiting, or ended with unread
    /// messages).
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Ends the connection: every channel ends, and nothing more is
    /// accepted. Output already queued can still be written.
    pub fn close(&mut self) {
        self.shut(MuxCloseReason::Local);
    }

    /// Starts a batch: messages queued until the matching
    /// [`uncork`](Session::uncork) leave as one BATCH (as Protomux's
    /// `cork`), as long as it stays under the message size limit. Nests.
    pub fn cork(&mut self) {
        self.output.cork();
    }

    /// Ends a batch started by [`cork`](Session::cork).
    pub fn uncork(&mut self) {
        self.output.uncork(self.config.max_message_size);
    }

    /// The next bytes to write to the transport: one length-prefixed
    /// message, its header in `head` and, for a DATA message, the payload
    /// as it was sent in `payload` (zero-copy, for vectored writes).
    /// Output queued before the connection ended is still returned.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<crate::Transmit> {
        let transmit = self.output.pop()?;
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += transmit.len() as u64;
        if self.output.blocked && self.can_send() {
            self.output.blocked = false;
            if self.closed.is_none() {
                self.events.push_back(MuxEvent::Writable);
            }
        }
        Some(transmit)
    }

    /// Whether [`poll_transmit`](Session::poll_transmit) has bytes.
    pub fn wants_transmit(&self) -> bool {
        self.output.has_transmit()
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<MuxEvent> {
        self.events.pop_front()
    }

    /// The next moment [`handle_timeout`](Session::handle_timeout) has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.unclaimed.front().map(|&(_, at)| at)
    }

    /// Rejects the OPENs whose claim grace has run out by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(channel, at)) = self.unclaimed.front() {
            if at > now {
                break;
            }
            if self.closed.is_none() && self.channels.contains_key(&channel) {
                self.reject_incoming(channel);
            }
        }
    }

    fn check_open(&self) -> Result<(), MuxLocalError> {
        match &self.closed {
            Some(reason) => Err(MuxLocalError::Closed(reason.clone())),
            None => Ok(()),
        }
    }

    fn new_handle(&mut self) -> ChannelId {
        let handle = ChannelId(self.next_handle);
        self.next_handle += 1;
        handle
    }

    fn allocate_local(&mut self) -> Result<u64, MuxLocalError> {
        if let Some(local) = self.free.pop() {
            return Ok(local);
        }
        if self.local.len() >= self.config.max_channels {
            let max = self.config.max_channels;
            return Err(MuxLocalError::TooManyChannels { max });
        }
        self.local.push(LocalSlot::Free);
        Ok(self.local.len() as u64)
    }

    fn free_local(&mut self, local: u64) {
        self.local[slot(local)] = LocalSlot::Free;
        self.free.push(local);
    }

    fn listens(&self, key: &Key) -> bool {
        self.listening.contains(key) || self.listening_any.contains(&key.0)
    }

    /// Announces an incoming channel to the listeners.
    fn claim(&mut self, channel: ChannelId) {
        let Some(ch) = self.channels.get_mut(&channel) else {
            return;
        };
        let State::Incoming { claimed, handshake } = &mut ch.state else {
            return;
        };
        *claimed = true;
        self.events.push_back(MuxEvent::Incoming {
            channel,
            protocol: ch.key.0.clone(),
            id: ch.key.1.clone(),
            handshake: handshake.clone(),
        });
    }

    fn accept_incoming(
        &mut self,
        channel: ChannelId,
        handshake: Bytes,
    ) -> Result<(), MuxLocalError> {
        let ch = self
            .channels
            .get(&channel)
            .ok_or(MuxLocalError::UnknownChannel)?;
        if !matches!(ch.state, State::Incoming { .. }) {
            return Err(MuxLocalError::NotIncoming);
        }
        if self.incoming.get(&ch.key).and_then(VecDeque::front) != Some(&channel) {
            return Err(MuxLocalError::OutOfOrder);
        }
        let local = self.allocate_local()?;
        self.unanswered(channel);
        let ch = self.channels.get_mut(&channel).expect("checked above");
        ch.local = Some(local);
        ch.state = State::Open;
        self.output.push(
            Message::Open {
                channel: local,
                protocol: ch.key.0.clone(),
                id: ch.key.1.clone(),
                handshake,
            },
            self.config.max_message_size,
        );
        self.local[slot(local)] = LocalSlot::Channel(channel);
        if !ch.queue.is_empty() {
            self.events.push_back(MuxEvent::Readable { channel });
        }
        self.stats.channels_opened += 1;
        Ok(())
    }

    /// Takes an incoming channel off the lists of unanswered OPENs.
    fn unanswered(&mut self, channel: ChannelId) {
        let key = &self.channels[&channel].key;
        if let Some(waiting) = self.incoming.get_mut(key) {
            waiting.retain(|&c| c != channel);
            if waiting.is_empty() {
                self.incoming.remove(key);
            }
        }
        self.unclaimed.retain(|&(c, _)| c != channel);
        self.pending -= 1;
    }

    /// REJECTs an incoming channel and drops what it buffered.
    fn reject_incoming(&mut self, channel: ChannelId) {
        let Some(ch) = self.channels.get(&channel) else {
            return;
        };
        let remote = ch.remote.expect("an incoming channel has the peer's id");
        let claimed = matches!(ch.state, State::Incoming { claimed: true, .. });
        self.output.push(
            Message::Reject { channel: remote },
            self.config.max_message_size,
        );
        self.remote[slot(remote)] = None;
        self.unanswered(channel);
        self.stats.rejected += 1;
        self.forget(channel);
        if claimed {
            // The listener holding it learns it is gone.
            self.events.push_back(MuxEvent::Ended {
                channel,
                end: ChannelEnd::Closed,
            });
        }
    }

    /// Drops the channel's state and what it holds.
    fn forget(&mut self, channel: ChannelId) {
        if let Some(ch) = self.channels.remove(&channel) {
            if ch.queued > self.config.channel_buffer {
                self.over_limit -= 1;
            }
            self.buffered -= ch.queued;
        }
    }

    /// Ends the connection and every channel.
    fn shut(&mut self, reason: MuxCloseReason) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(reason.clone());
        let mut ended: Vec<ChannelId> = self.channels.keys().copied().collect();
        ended.sort_unstable();
        for channel in ended {
            let ch = self.channels.get_mut(&channel).expect("listed above");
            if let State::Ended(_) = ch.state {
                continue;
            }
            let announced = !matches!(ch.state, State::Incoming { claimed: false, .. });
            let end = ChannelEnd::Connection(reason.clone());
            ch.state = State::Ended(end.clone());
            if announced {
                self.events.push_back(MuxEvent::Ended { channel, end });
            } else {
                self.forget(channel);
            }
        }
        self.unclaimed.clear();
        self.incoming.clear();
        self.pending = 0;
        self.output.cancel_cork();
        self.events.push_back(MuxEvent::Closed { reason });
    }
}

impl Channel {
    fn new(key: Key, local: Option<u64>, remote: Option<u64>, state: State) -> Channel {
        Channel {
            key,
            local,
            remote,
            state,
            queue: VecDeque::new(),
            queued: 0,
        }
    }

    fn is_claimed(&self) -> bool {
        !matches!(self.state, State::Incoming { claimed: false, .. })
    }
}

/// The index of wire id `id` (ids start at 1).
fn slot(id: u64) -> usize {
    (id - 1) as usize
}

/// A received message as the queue keeps it: small ones are copied out of
/// the read buffer they arrived in, so a peer cannot make a channel pin a
/// whole read buffer per tiny message it holds.
fn detach(message: Bytes) -> Bytes {
    if message.len() < COMPACT_BELOW {
        Bytes::copy_from_slice(&message)
    } else {
        message
    }
}
