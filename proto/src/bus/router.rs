//! Who gets what: subscriptions by channel pattern, responders taken in
//! turn, and the bounded outbox of a subscriber that may fall behind.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::Hash;

use bytes::Bytes;

use super::wire::{Record, Role};

/// A subscription's number, unique within one router.
pub type SubscriptionId = u64;

/// The broker's subscriptions. `C` names the connection a subscription
/// belongs to.
#[derive(Debug)]
pub struct Router<C> {
    subscriptions: HashMap<SubscriptionId, Subscription<C>>,
    /// Exact channel names and wildcard prefixes, to subscriptions.
    exact: HashMap<String, Vec<SubscriptionId>>,
    prefixes: HashMap<String, Vec<SubscriptionId>>,
    /// The lengths of the prefixes in use: a channel is checked at these.
    prefix_lens: BTreeSet<usize>,
    /// Where each channel's turn among its responders stands.
    turns: HashMap<String, u64>,
    next: SubscriptionId,
}

/// One subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription<C> {
    /// Its connection.
    pub connection: C,
    /// Subscriber or responder.
    pub role: Role,
    /// A channel, or a prefix and `*`.
    pub pattern: String,
}

/// How many channels' responder turns are remembered; past it they start
/// over, so names a client makes up cannot grow the router.
const TURNS: usize = 4096;

impl<C: Copy + Eq + Hash> Default for Router<C> {
    fn default() -> Self {
        Router {
            subscriptions: HashMap::new(),
            exact: HashMap::new(),
            prefixes: HashMap::new(),
            prefix_lens: BTreeSet::new(),
            turns: HashMap::new(),
            next: 1,
        }
    }
}

impl<C: Copy + Eq + Hash> Router<C> {
    /// An empty router.
    pub fn new() -> Router<C> {
        Router::default()
    }

    /// Subscriptions in place.
    pub fn len(&self) -> usize {
        self.subscriptions.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.subscriptions.is_empty()
    }

    /// Adds a subscription (the pattern is assumed checked, see
    /// [`check_channel`](super::check_channel)).
    pub fn subscribe(&mut self, connection: C, role: Role, pattern: &str) -> SubscriptionId {
        let id = self.next;
        self.next += 1;
        match pattern.strip_suffix('*') {
            Some(prefix) => {
                self.prefixes.entry(prefix.to_owned()).or_default().push(id);
                self.prefix_lens.insert(prefix.len());
            }
            None => self.exact.entry(pattern.to_owned()).or_default().push(id),
        }
        self.subscriptions.insert(
            id,
            Subscription {
                connection,
                role,
                pattern: pattern.to_owned(),
            },
        );
        id
    }

    /// Removes a subscription; false if it was not there.
    pub fn unsubscribe(&mut self, id: SubscriptionId) -> bool {
        let Some(subscription) = self.subscriptions.remove(&id) else {
            return false;
        };
        let (table, key) = match subscription.pattern.strip_suffix('*') {
            Some(prefix) => (&mut self.prefixes, prefix),
            None => (&mut self.exact, subscription.pattern.as_str()),
        };
        if let Some(ids) = table.get_mut(key) {
            ids.retain(|&other| other != id);
            if ids.is_empty() {
                table.remove(key);
            }
        }
        if subscription.pattern.ends_with('*') {
            let len = subscription.pattern.len() - 1;
            if !self.prefixes.keys().any(|p| p.len() == len) {
                self.prefix_lens.remove(&len);
            }
        }
        true
    }

    /// The subscription `id`.
    pub fn subscription(&self, id: SubscriptionId) -> Option<&Subscription<C>> {
        self.subscriptions.get(&id)
    }

    /// Every subscriber of `channel`, by id.
    pub fn subscribers(&self, channel: &str) -> Vec<SubscriptionId> {
        let mut ids = self.matching(channel, Role::Subscriber);
        ids.sort_unstable();
        ids
    }

    /// The responders of `channel`, in the order to try them: the one
    /// whose turn it is first, then the others in turn. Each call moves the
    /// turn on by one, so requests go round the responders.
    pub fn responders(&mut self, channel: &str) -> Vec<SubscriptionId> {
        let mut ids = self.matching(channel, Role::Responder);
        if ids.is_empty() {
            return ids;
        }
        ids.sort_unstable();
        // A channel seen before costs no allocation: only a new one's name
        // is copied.
        if !self.turns.contains_key(channel) {
            if self.turns.len() >= TURNS {
                self.turns.clear();
            }
            self.turns.insert(channel.to_owned(), 0);
        }
        let turn = self
            .turns
            .get_mut(channel)
            .expect("inserted above when missing");
        let start = (*turn % ids.len() as u64) as usize;
        *turn = turn.wrapping_add(1);
        ids.rotate_left(start);
        ids
    }

    fn matching(&self, channel: &str, role: Role) -> Vec<SubscriptionId> {
        let mut ids = Vec::new();
        let mut add = |found: Option<&Vec<SubscriptionId>>| {
            for &id in found.into_iter().flatten() {
                if self.subscriptions[&id].role == role {
                    ids.push(id);
                }
            }
        };
        add(self.exact.get(channel));
        for &len in &self.prefix_lens {
            if len > channel.len() {
                break;
            }
            if let Some(prefix) = channel.get(..len) {
                add(self.prefixes.get(prefix));
            }
        }
        ids
    }
}

/// What a subscriber whose outbox is full gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowPolicy {
    /// Newer messages are dropped and counted; the subscriber receives a
    /// [`Record::Gap`] with the count before the next message it gets.
    DropWithGap,
    /// The subscription is ended (RST_STREAM `SLOW_CONSUMER`).
    Disconnect,
}

/// What [`Outbox::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Over the limit: dropped and counted.
    Dropped,
    /// Over the limit: the subscription must end.
    Disconnect,
}

/// The records waiting for one subscriber, bounded in bytes. One message
/// is always taken when the outbox is empty, whatever its size, so any
/// message can get through to a subscriber that keeps up. Dropped messages
/// leave a [`Record::Gap`] where they would have been.
#[derive(Debug)]
pub struct Outbox {
    limit: usize,
    policy: SlowPolicy,
    queue: VecDeque<Record>,
    bytes: usize,
    dropped: u64,
}

/// What each queued record counts beyond its payload and channel name.
pub const RECORD_OVERHEAD: usize = 64;

impl Outbox {
    /// An outbox holding up to `limit` bytes.
    pub fn new(limit: usize, policy: SlowPolicy) -> Outbox {
        Outbox {
            limit,
            policy,
            queue: VecDeque::new(),
            bytes: 0,
            dropped: 0,
        }
    }

    /// Offers a message.
    pub fn push(&mut self, channel: &str, payload: Bytes) -> Pushed {
        let record = Record::Message {
            channel: channel.to_owned(),
            payload,
        };
        let size = cost(&record);
        if !self.queue.is_empty() && self.bytes + size > self.limit {
            return match self.policy {
                SlowPolicy::DropWithGap => {
                    self.dropped += 1;
                    match self.queue.back_mut() {
                        Some(Record::Gap { dropped }) => *dropped += 1,
                        _ => {
                            // At most one gap per queued message: bounded.
                            let gap = Record::Gap { dropped: 1 };
                            self.bytes += cost(&gap);
                            self.queue.push_back(gap);
                        }
                    }
                    Pushed::Dropped
                }
                SlowPolicy::Disconnect => Pushed::Disconnect,
            };
        }
        self.bytes += size;
        self.queue.push_back(record);
        Pushed::Queued
    }

    /// Turns a message away without queueing it, as a full outbox would
    /// (the broker's memory budget is spent): dropped with a gap, or
    /// `Disconnect`, by the policy. An empty outbox still takes it: it
    /// holds nothing to make room with.
    pub fn push_over_budget(&mut self, channel: &str, payload: Bytes) -> Pushed {
        if self.queue.is_empty() {
            return self.push(channel, payload);
        }
        let limit = std::mem::replace(&mut self.limit, 0);
        let pushed = self.push(channel, payload);
        self.limit = limit;
        pushed
    }

    /// The next record to write, in order.
    pub fn pop(&mut self) -> Option<Record> {
        let record = self.queue.pop_front()?;
        self.bytes -= cost(&record);
        Some(record)
    }

    /// Bytes held, as counted against the limit.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages dropped in all.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

fn cost(record: &Record) -> usize {
    match record {
        Record::Message { channel, payload } => payload.len() + channel.len() + RECORD_OVERHEAD,
        _ => RECORD_OVERHEAD,
    }
}
