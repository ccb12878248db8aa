//! What the pool reports: a bounded queue of events that drops the oldest.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Something that happened in the pool, from [`Balancer::poll_event`](super::Balancer::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolEvent<K> {
    /// A member joined.
    PeerAdded {
        /// The member.
        member: K,
    },
    /// A member left.
    PeerRemoved {
        /// The member.
        member: K,
    },
    /// A member answered a call.
    CallComplete {
        /// The member.
        member: K,
        /// How long it took.
        latency: Duration,
    },
    /// A call failed on a member, which now cools down.
    CallError {
        /// The member.
        member: K,
        /// How long until it failed.
        latency: Duration,
        /// The member's failures so far, this one included.
        failures: u64,
        /// When its cooldown ends.
        cooling_until: Option<Instant>,
    },
    /// A call found no eligible member (not reported when a call that
    /// already failed over runs out of members).
    NoPeer,
}

/// The pending events, at most `capacity`; a new event beyond that drops
/// the oldest one and counts it.
#[derive(Debug)]
pub(crate) struct EventQueue<K> {
    events: VecDeque<PoolEvent<K>>,
    capacity: usize,
    pub(crate) dropped: u64,
}

impl<K> EventQueue<K> {
    pub(crate) fn new(capacity: usize) -> EventQueue<K> {
        EventQueue {
            events: VecDeque::new(),
            capacity,
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, event: PoolEvent<K>) {
        if self.capacity == 0 {
            self.dropped += 1;
            return;
        }
        if self.events.len() == self.capacity {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(event);
    }

    pub(crate) fn pop(&mut self) -> Option<PoolEvent<K>> {
        self.events.pop_front()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}
