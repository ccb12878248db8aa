//! Random interleavings of calls, cancels, time, replies in flight and
//! close, checked against a model: every call resolves exactly once, no
//! reply follows a cancel, in-flight stays within its limit and late
//! replies are counted.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;

use crate::rpc::{
    Action, Body, CallError, Client, ClientConfig, ClientEvent, Envelope, Frame, Method, Reply,
    Scan, Server, ServerConfig,
};

const CLIENT_MAX: usize = 4;
const SERVER_MAX: usize = 3;
const QUEUE_MAX: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    /// Start a call; a scan if `scan`; timeout in ms if any.
    Call { scan: bool, timeout: Option<u8> },
    /// The caller drops the nth call it started.
    Cancel(usize),
    /// Time passes.
    Advance(u8),
    /// The client's frames reach the server.
    Pump,
    /// The server answers its nth active call: an item, the end, or an error.
    Respond(usize, u8),
    /// The next n server frames reach the client.
    Deliver(u8),
    /// The caller reads the nth call's replies.
    Poll(usize),
    /// The lane closes on the client.
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), prop::option::of(1..40u8))
            .prop_map(|(scan, timeout)| Op::Call { scan, timeout }),
        1 => any::<usize>().prop_map(Op::Cancel),
        2 => (0..30u8).prop_map(Op::Advance),
        3 => Just(Op::Pump),
        4 => (any::<usize>(), 0..3u8).prop_map(|(n, kind)| Op::Respond(n, kind)),
        3 => (1..4u8).prop_map(Op::Deliver),
        3 => any::<usize>().prop_map(Op::Poll),
        1 => Just(Op::Close),
    ]
}

/// What the model expects the call's `Done` to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Timeout,
    Overflow,
    Closed,
}

#[derive(Debug)]
enum State {
    Pending { deadline: Option<Instant> },
    Done(Outcome),
    Gone,
}

#[derive(Debug)]
struct Call {
    state: State,
    /// Items queued and not yet polled.
    queued: usize,
    /// `Done`s polled.
    dones: usize,
    /// Times the call ended: its `Done` queued, or a cancel while pending.
    ends: usize,
    /// The caller dropped it (a cancel, pending or not).
    dropped: bool,
}

struct World {
    client: Client,
    server: Server,
    now: Instant,
    to_server: VecDeque<Frame>,
    to_client: VecDeque<Frame>,
    calls: BTreeMap<u32, Call>,
    active: BTreeSet<u32>,
    closed: bool,
    late: u64,
}

impl World {
    fn held(&self) -> usize {
        self.calls
            .values()
            .filter(|c| !matches!(c.state, State::Gone))
            .count()
    }

    fn nth(&self, n: usize) -> Option<u32> {
        let rids: Vec<u32> = self.calls.keys().copied().collect();
        (!rids.is_empty()).then(|| rids[n % rids.len()])
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Call { scan, timeout } => {
                let (method, body) = match scan {
                    true => (Method::SCAN, Body::Scan(Scan::default())),
                    false => (
                        Method::GET,
                        Body::Get {
                            key: Bytes::from_static(b"k"),
                            caps: Bytes::new(),
                        },
                    ),
                };
                let timeout = timeout.map(|ms| Duration::from_millis(ms.into()));
                let got = self
                    .client
                    .call_with_timeout(self.now, method, body.to_bytes(), timeout);
                let next = self.calls.keys().last().map_or(1, |r| r + 1);
                if self.closed {
                    assert_eq!(got, Err(CallError::Closed));
                } else if self.held() >= CLIENT_MAX {
                    assert_eq!(got, Err(CallError::NotReady { limit: CLIENT_MAX }));
                } else {
                    assert_eq!(got, Ok(next));
                    let deadline = timeout.map(|t| self.now + t);
                    let call = Call {
                        state: State::Pending { deadline },
                        queued: 0,
                        dones: 0,
                        ends: 0,
                        dropped: false,
                    };
                    self.calls.insert(next, call);
                }
            }
            Op::Cancel(n) => {
                let Some(rid) = self.nth(n) else { return };
                let call = self.calls.get_mut(&rid).expect("listed");
                let pending = matches!(call.state, State::Pending { .. });
                assert_eq!(
                    self.client.cancel(rid),
                    pending,
                    "cancel({rid}) of {call:?}"
                );
                if pending {
                    call.ends += 1;
                }
                call.dropped |= !matches!(call.state, State::Gone);
                call.state = State::Gone;
                call.queued = 0;
            }
            Op::Advance(ms) => {
                self.now += Duration::from_millis(ms.into());
                self.client.handle_timeout(self.now);
                for call in self.calls.values_mut() {
                    if let State::Pending { deadline: Some(at) } = call.state {
                        if at <= self.now {
                            call.state = State::Done(Outcome::Timeout);
                            call.ends += 1;
                        }
                    }
                }
            }
            Op::Pump => {
                while let Some(frame) = self.client.poll_transmit() {
                    self.to_server.push_back(frame);
                }
                while let Some(frame) = self.to_server.pop_front() {
                    match self
                        .server
                        .handle_message(frame.to_bytes())
                        .expect("well-formed")
                    {
                        Some(Action::Reply(reply)) => self.to_client.push_back(reply),
                        Some(Action::Dispatch { rid, .. }) => assert!(self.active.insert(rid)),
                        Some(Action::Cancel { rid }) => assert!(self.active.remove(&rid)),
                        None => {}
                    }
                }
                assert!(self.server.in_flight() <= SERVER_MAX);
            }
            Op::Respond(n, kind) => {
                let active: Vec<u32> = self.active.iter().copied().collect();
                if active.is_empty() {
                    return;
                }
                let rid = active[n % active.len()];
                let item = Envelope::Ok {
                    value: Some(Bytes::from_static(b"v")),
                    key: None,
                };
                let err = Envelope::err("Unknown", "boom");
                let (more, envelope) = match kind {
                    0 => (true, Some(&item)),
                    1 => (false, None),
                    _ => (false, Some(&err)),
                };
                let frame = self.server.respond(rid, more, envelope).expect("encodable");
                self.to_client
                    .push_back(frame.expect("active calls answer"));
                if !more {
                    self.active.remove(&rid);
                }
            }
            Op::Deliver(n) => {
                for _ in 0..n {
                    let Some(frame) = self.to_client.pop_front() else {
                        return;
                    };
                    let Frame::Response { rid, more, .. } = frame else {
                        panic!("servers send only RES")
                    };
                    self.client.handle_frame(self.now, frame);
                    let call = self.calls.get_mut(&rid).expect("a call we made");
                    match call.state {
                        State::Pending { .. } if more && call.queued >= QUEUE_MAX => {
                            call.state = State::Done(Outcome::Overflow);
                            call.ends += 1;
                        }
                        State::Pending { .. } if more => call.queued += 1,
                        State::Pending { .. } => {
                            call.state = State::Done(Outcome::Ok);
                            call.ends += 1;
                        }
                        _ => self.late += 1,
                    }
                }
            }
            Op::Poll(n) => {
                let Some(rid) = self.nth(n) else { return };
                self.poll(rid);
            }
            Op::Close => {
                self.client.close();
                self.closed = true;
                for call in self.calls.values_mut() {
                    if let State::Pending { .. } = call.state {
                        call.state = State::Done(Outcome::Closed);
                        call.ends += 1;
                    }
                }
            }
        }
        self.check();
    }

    fn poll(&mut self, rid: u32) {
        let replies: Vec<Reply> = std::iter::from_fn(|| self.client.poll_reply(rid)).collect();
        let call = self.calls.get_mut(&rid).expect("listed");
        let items = replies
            .iter()
            .filter(|r| matches!(r, Reply::Item(_)))
            .count();
        assert_eq!(items, call.queued, "items of {rid}");
        call.queued = 0;
        let done = replies.iter().find_map(|r| match r {
            Reply::Done(result) => Some(result.clone()),
            _ => None,
        });
        match (&call.state, done) {
            (State::Done(outcome), Some(result)) => {
                assert!(matches!(replies.last(), Some(Reply::Done(_))));
                let got = match result {
                    Ok(_) => Outcome::Ok,
                    Err(CallError::Timeout { .. }) => Outcome::Timeout,
                    Err(CallError::Overflow) => Outcome::Overflow,
                    Err(CallError::Closed) => Outcome::Closed,
                    Err(e) => panic!("unexpected failure {e}"),
                };
                assert_eq!(got, *outcome, "outcome of {rid}");
                call.dones += 1;
                call.state = State::Gone;
            }
            (State::Done(_), None) => panic!("{rid} is done but gave no Done"),
            (_, None) => {}
            (state, Some(_)) => panic!("{rid} gave a Done in state {state:?}"),
        }
    }

    fn check(&mut self) {
        assert!(self.client.in_flight() <= CLIENT_MAX);
        assert_eq!(self.client.in_flight(), self.held());
        assert_eq!(self.client.stats().late_replies, self.late);
        while let Some(ClientEvent::Readable { rid }) = self.client.poll_event() {
            let call = &self.calls[&rid];
            let readable = call.queued > 0 || matches!(call.state, State::Done(_));
            assert!(readable, "Readable for {rid} in {call:?}");
        }
        for (rid, call) in &self.calls {
            assert!(
                call.ends <= 1 && call.dones <= 1,
                "{rid} resolved twice: {call:?}"
            );
            assert!(
                !(call.dropped && call.dones > 0),
                "{rid} delivered after cancel"
            );
            assert_eq!(
                self.client.is_pending(*rid),
                matches!(call.state, State::Pending { .. })
            );
        }
    }
}

proptest! {
    #[test]
    fn every_call_resolves_exactly_once(ops in prop::collection::vec(op(), 1..120)) {
        let client = ClientConfig { max_in_flight: CLIENT_MAX, max_queued_replies: QUEUE_MAX, ..ClientConfig::default() };
        let server = ServerConfig { max_in_flight: SERVER_MAX, ..ServerConfig::default() };
        let mut world = World {
            client: Client::new(client).unwrap(),
            server: Server::new(server).unwrap(),
            now: crate::sim::origin(),
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
            calls: BTreeMap::new(),
            active: BTreeSet::new(),
            closed: false,
            late: 0,
        };
        for op in ops {
            world.step(op);
        }
        // Close, read everything: each call ended once, and the caller saw
        // its Done unless it had dropped the call.
        world.step(Op::Close);
        let rids: Vec<u32> = world.calls.keys().copied().collect();
        for rid in rids {
            world.poll(rid);
            let call = &world.calls[&rid];
            prop_assert_eq!(call.ends, 1, "call {}", rid);
            prop_assert_eq!(call.dones + usize::from(call.dropped), 1, "call {}", rid);
        }
        prop_assert_eq!(world.client.in_flight(), 0);
    }
}
