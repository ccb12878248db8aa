//! A deterministic in-memory network for two sessions on a simulated clock.
//!
//! [`Pair`] holds a client and a server joined by two one-way links with a
//! configurable latency, and can re-chunk what it delivers at arbitrary byte
//! boundaries. Nothing sleeps: [`Pair::drive`] jumps the clock to the next
//! delivery, [`Pair::advance_to`] runs timers on the way to an instant.
//! [`check`] runs a [`Scenario`] of random operations against the
//! protocol's invariants.

mod model;

pub use model::{check, Op, Scenario, Summary};

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::Config;
use crate::error::ConfigError;
use crate::session::Session;

/// Steps [`Pair::drive`] takes before giving up on a pair that never settles.
const MAX_STEPS: usize = 10_000_000;

/// Two sessions joined by simulated links.
#[derive(Debug)]
pub struct Pair {
    /// The dialling side.
    pub client: Session,
    /// The accepting side.
    pub server: Session,
    now: Instant,
    latency: Duration,
    chunking: Option<Chunker>,
    partitioned: bool,
    to_server: Link,
    to_client: Link,
}

type Link = VecDeque<(Instant, Bytes)>;

#[derive(Debug)]
struct Chunker {
    max: usize,
    state: u64,
}

impl Chunker {
    /// The next chunk size in `1..=max`, from a xorshift sequence.
    fn next(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        1 + (self.state % self.max as u64) as usize
    }
}

impl Pair {
    /// A client and server with these configs, at clock `start`.
    pub fn new(client: Config, server: Config, start: Instant) -> Result<Pair, ConfigError> {
        Ok(Pair {
            client: Session::client(client, start)?,
            server: Session::server(server, start)?,
            now: start,
            latency: Duration::ZERO,
            chunking: None,
            partitioned: false,
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
        })
    }

    /// Sets the one-way latency of both links.
    pub fn with_latency(mut self, latency: Duration) -> Pair {
        self.latency = latency;
        self
    }

    /// Delivers input in pieces of 1..=`max` bytes, sizes drawn from `seed`.
    pub fn with_chunking(mut self, max: usize, seed: u64) -> Pair {
        self.chunking = Some(Chunker {
            max: max.max(1),
            state: seed | 1,
        });
        self
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Cuts both links: everything in flight and sent from now on is lost,
    /// as with a peer that vanished without closing the transport.
    pub fn partition(&mut self) {
        self.partitioned = true;
        self.to_server.clear();
        self.to_client.clear();
    }

    /// Bytes in flight on both links.
    pub fn in_flight(&self) -> usize {
        self.to_server
            .iter()
            .chain(&self.to_client)
            .map(|(_, b)| b.len())
            .sum()
    }

    /// One round at the current time: moves every transmit onto its link,
    /// delivers what is due, runs due timers. Returns whether anything
    /// happened.
    pub fn step(&mut self) -> bool {
        let now = self.now;
        let arrive = now + self.latency;
        let mut progressed = false;
        for (session, link) in [
            (&mut self.client, &mut self.to_server),
            (&mut self.server, &mut self.to_client),
        ] {
            while let Some(t) = session.poll_transmit(now) {
                progressed = true;
                if !self.partitioned {
                    link.extend(
                        [t.head, t.payload]
                            .into_iter()
                            .filter(|b| !b.is_empty())
                            .map(|b| (arrive, b)),
                    );
                }
            }
        }
        for (session, link) in [
            (&mut self.server, &mut self.to_server),
            (&mut self.client, &mut self.to_client),
        ] {
            while link.front().is_some_and(|(at, _)| *at <= now) {
                let Some((_, mut bytes)) = link.pop_front() else {
                    break;
                };
                progressed = true;
                match &mut self.chunking {
                    None => session.handle_input(now, bytes),
                    Some(chunker) => {
                        while !bytes.is_empty() {
                            let n = chunker.next().min(bytes.len());
                            session.handle_input(now, bytes.split_to(n));
                        }
                    }
                }
            }
            if session.poll_timeout().is_some_and(|at| at <= now) {
                session.handle_timeout(now);
                progressed = true;
            }
        }
        progressed
    }

    /// Steps until nothing is left to do, jumping the clock to in-flight
    /// deliveries but not to timers. Returns false if it never settled.
    pub fn drive(&mut self) -> bool {
        for _ in 0..MAX_STEPS {
            if self.step() {
                continue;
            }
            match self.next_delivery() {
                Some(at) => self.now = self.now.max(at),
                None => return true,
            }
        }
        false
    }

    /// Runs deliveries and timers in time order up to `until`, then drives.
    pub fn advance_to(&mut self, until: Instant) -> bool {
        for _ in 0..MAX_STEPS {
            if !self.drive() {
                return false;
            }
            let next = [
                self.next_delivery(),
                self.client.poll_timeout(),
                self.server.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(at) if at <= until => self.now = self.now.max(at),
                _ => {
                    self.now = self.now.max(until);
                    return self.drive();
                }
            }
        }
        false
    }

    /// Advances by `by`, running everything due on the way.
    pub fn advance(&mut self, by: Duration) -> bool {
        self.advance_to(self.now + by)
    }

    fn next_delivery(&self) -> Option<Instant> {
        [self.to_server.front(), self.to_client.front()]
            .into_iter()
            .flatten()
            .map(|(at, _)| *at)
            .min()
    }
}

/// An arbitrary origin for simulated clocks in tests.
#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the one clock read: an origin, never a measurement
pub(crate) fn origin() -> Instant {
    Instant::now()
}
