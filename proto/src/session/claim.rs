//! Streams no listener has claimed yet: with `accept_any` off and a claim
//! grace set, an OPEN that matches no listener waits up to the grace for
//! one before it is refused, so a peer that opens a lane the moment the
//! connection is up does not lose the race against this side's setup.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Session, Timer};
use crate::event::Event;
use crate::frame::Frame;
use crate::id::{ErrorCode, StreamId};
use crate::stream::Pairing;

/// An open waiting for a listener.
#[derive(Debug)]
pub(super) struct Unclaimed {
    pub(super) deadline: Instant,
    pub(super) stream: StreamId,
    pub(super) protocol: Bytes,
    pub(super) id: Bytes,
    pub(super) handshake: Bytes,
}

impl Session {
    /// How long, with `accept_any` off, a stream that matches no listener
    /// waits for one ([`listen`](Session::listen)) before it is refused
    /// with REFUSED_STREAM; `None` (the default) refuses it at once. The
    /// wait counts against `max_pending_accepts`, and its data against the
    /// stream's window, like any stream not yet accepted.
    pub fn set_claim_grace(&mut self, grace: Option<Duration>) {
        self.claim_grace = grace;
        if grace.is_none() {
            self.refuse_unclaimed(None);
        }
    }

    /// Parks an open no listener wants yet, until `deadline`.
    pub(super) fn park_unclaimed(
        &mut self,
        deadline: Instant,
        stream: StreamId,
        protocol: Bytes,
        id: Bytes,
        handshake: Bytes,
    ) {
        self.unclaimed.push_back(Unclaimed {
            deadline,
            stream,
            protocol,
            id,
            handshake,
        });
        self.arm_claim_timer();
    }

    /// Hands the parked opens that `wanted` accepts to the application as
    /// [`Event::Incoming`], in arrival order.
    pub(super) fn claim(&mut self, wanted: impl Fn(&Bytes, &Bytes) -> bool) {
        let (claimed, waiting) = std::mem::take(&mut self.unclaimed)
            .into_iter()
            .partition(|u| wanted(&u.protocol, &u.id));
        self.unclaimed = waiting;
        let claimed: VecDeque<Unclaimed> = claimed;
        for u in claimed {
            self.events.push_back(Event::Incoming {
                stream: u.stream,
                protocol: u.protocol,
                id: u.id,
                handshake: u.handshake,
            });
        }
        self.arm_claim_timer();
    }

    /// Refuses parked opens whose grace ended by `now` (all with `None`).
    pub(super) fn refuse_unclaimed(&mut self, now: Option<Instant>) {
        let (expired, waiting) = std::mem::take(&mut self.unclaimed)
            .into_iter()
            .partition(|u| now.is_none_or(|now| u.deadline <= now));
        self.unclaimed = waiting;
        let expired: VecDeque<Unclaimed> = expired;
        for u in expired {
            let parked = self
                .streams
                .get(&u.stream)
                .is_some_and(|s| s.pairing == Pairing::AwaitingAccept);
            if parked {
                self.remove_stream(u.stream);
                self.control.push_back((
                    Frame::RstStream {
                        stream: u.stream,
                        code: ErrorCode::REFUSED_STREAM,
                    },
                    false,
                ));
            }
        }
        self.arm_claim_timer();
    }

    /// Forgets a parked open whose stream went away (reset, closed).
    pub(super) fn forget_unclaimed(&mut self, stream: StreamId) {
        if self.unclaimed.iter().any(|u| u.stream == stream) {
            self.unclaimed.retain(|u| u.stream != stream);
            self.arm_claim_timer();
        }
    }

    fn arm_claim_timer(&mut self) {
        match self.unclaimed.iter().map(|u| u.deadline).min() {
            Some(at) => self.timers.set(Timer::Unclaimed, at),
            None => self.timers.stop(Timer::Unclaimed),
        }
    }
}
