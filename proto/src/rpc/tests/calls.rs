//! Script tests of the call cores: a [`Client`] and a [`Server`] joined by
//! a pump that moves frames as encoded bytes, on a clock moved by hand.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::b;
use crate::rpc::{
    Action, Body, CallError, Client, ClientConfig, ClientEvent, DecodeError, Envelope, Frame,
    Method, Reply, Server, ServerConfig,
};

struct Pair {
    client: Client,
    server: Server,
    now: Instant,
    /// Calls the server dispatched, in order.
    dispatched: Vec<(u32, Method, Body)>,
    /// Calls the server was told to stop.
    stopped: Vec<u32>,
    /// Frames the client sent, in order.
    sent: Vec<Frame>,
}

impl Pair {
    fn new(client: ClientConfig, server: ServerConfig) -> Pair {
        Pair {
            client: Client::new(client).expect("valid client config"),
            server: Server::new(server).expect("valid server config"),
            now: crate::sim::origin(),
            dispatched: Vec::new(),
            stopped: Vec::new(),
            sent: Vec::new(),
        }
    }

    /// Moves every frame the client queued to the server, and the server's
    /// immediate replies back.
    fn pump(&mut self) {
        while let Some(frame) = self.client.poll_transmit() {
            self.sent.push(frame.clone());
            match self.server.handle_message(frame.to_bytes()) {
                Ok(Some(Action::Reply(reply))) => self.deliver(reply),
                Ok(Some(Action::Dispatch { rid, method, body })) => {
                    self.dispatched.push((rid, method, body))
                }
                Ok(Some(Action::Cancel { rid })) => self.stopped.push(rid),
                Ok(None) => {}
                Err(e) => panic!("the client sent a malformed frame: {e}"),
            }
        }
    }

    /// Hands a server frame to the client, through its bytes.
    fn deliver(&mut self, frame: Frame) {
        let frame = Frame::decode(frame.to_bytes()).expect("a frame decodes");
        self.client.handle_frame(self.now, frame);
    }

    /// The server answers `rid`; returns whether a frame went out.
    fn respond(&mut self, rid: u32, more: bool, envelope: Option<&Envelope>) -> bool {
        match self.server.respond(rid, more, envelope).expect("encodable") {
            Some(frame) => {
                self.deliver(frame);
                true
            }
            None => false,
        }
    }

    fn call(&mut self, method: Method, body: Body) -> Result<u32, CallError> {
        let rid = self.client.call(self.now, method, body.to_bytes())?;
        self.pump();
        Ok(rid)
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.client.handle_timeout(self.now);
        self.pump();
    }

    /// Every reply of `rid` until `Done` or none is left.
    fn replies(&mut self, rid: u32) -> Vec<Reply> {
        std::iter::from_fn(|| self.client.poll_reply(rid)).collect()
    }

    fn events(&mut self) -> Vec<ClientEvent> {
        std::iter::from_fn(|| self.client.poll_event()).collect()
    }
}

fn pair() -> Pair {
    Pair::new(ClientConfig::default(), ServerConfig::default())
}

fn get(key: &'static str) -> Body {
    Body::Get {
        key: b(key),
        caps: Bytes::new(),
    }
}

fn value(v: &'static str) -> Envelope {
    Envelope::Ok {
        value: Some(b(v)),
        key: None,
    }
}

fn item(key: &'static str) -> Envelope {
    Envelope::Ok {
        value: Some(b("v")),
        key: Some(b(key)),
    }
}

#[test]
fn unary_ok() {
    let mut p = pair();
    let rid = p.call(Method::GET, get("k1")).unwrap();
    assert_eq!(rid, 1);
    assert_eq!(p.dispatched, vec![(1, Method::GET, get("k1"))]);
    assert_eq!(p.client.in_flight(), 1);
    assert!(p.respond(rid, false, Some(&value("v1"))));
    assert_eq!(p.events(), vec![ClientEvent::Readable { rid }]);
    assert_eq!(p.replies(rid), vec![Reply::Done(Ok(value("v1")))]);
    assert_eq!((p.client.in_flight(), p.server.in_flight()), (0, 0));
    assert_eq!(p.client.poll_reply(rid), None);
    // An empty final payload is `ok()`; the next call gets the next rid.
    let put = Body::Put {
        key: b("k2"),
        value: b("v2"),
        caps: Bytes::new(),
    };
    let rid = p.call(Method::PUT, put).unwrap();
    assert_eq!(rid, 2);
    assert!(p.respond(rid, false, None));
    assert_eq!(p.replies(rid), vec![Reply::Done(Ok(Envelope::OK))]);
    let stats = p.client.stats();
    assert_eq!(
        (stats.calls, stats.completed, stats.remote_errors),
        (2, 2, 0)
    );
}

#[test]
fn remote_error_is_an_envelope_not_a_call_error() {
    let mut p = pair();
    let rid = p.call(Method::GET, get("k1")).unwrap();
    let err = Envelope::err("BadArg", "bad key");
    assert!(p.respond(rid, false, Some(&err)));
    assert_eq!(p.replies(rid), vec![Reply::Done(Ok(err))]);
    assert_eq!(p.client.stats().remote_errors, 1);
}

#[test]
fn timeout_fires_exactly_at_the_deadline_and_cancels() {
    let mut p = pair();
    let start = p.now;
    let rid = p
        .client
        .call_with_timeout(
            p.now,
            Method::GET,
            get("slow").to_bytes(),
            Some(Duration::from_millis(50)),
        )
        .unwrap();
    p.pump();
    assert_eq!(
        p.client.poll_timeout(),
        Some(start + Duration::from_millis(50))
    );
    p.advance(Duration::from_millis(49));
    assert!(p.client.is_pending(rid));
    assert!(p.events().is_empty());
    p.advance(Duration::from_millis(1));
    assert_eq!(
        p.replies(rid),
        vec![Reply::Done(Err(CallError::Timeout {
            after: Duration::from_millis(50)
        }))]
    );
    assert_eq!(p.client.poll_timeout(), None);
    // The CANCEL reached the server, which stops the handler and suppresses its answer.
    assert_eq!(
        p.sent.last(),
        Some(&Frame::Cancel {
            rid,
            method: Method::GET
        })
    );
    assert_eq!(p.stopped, vec![rid]);
    assert!(!p.respond(rid, false, Some(&value("late"))));
    assert_eq!(p.server.stats().suppressed, 1);
    // A reply already on the wire when the CANCEL left is counted, not delivered.
    let late = Frame::Response {
        rid,
        method: Method::GET,
        more: false,
        payload: value("late").to_bytes().unwrap(),
    };
    let len = late.encoded_len() as u64 - 7;
    p.deliver(late);
    assert!(p.events().is_empty());
    assert_eq!(p.client.poll_reply(rid), None);
    let stats = p.client.stats();
    assert_eq!(
        (stats.timeouts, stats.late_replies, stats.late_bytes),
        (1, 1, len)
    );
}

#[test]
fn a_held_scan_item_suspends_the_deadline_and_waiting_restarts_it() {
    let mut p = pair();
    let timeout = Duration::from_millis(50);
    let body = Body::Scan(Default::default()).to_bytes();
    let rid = p
        .client
        .call_with_timeout(p.now, Method::SCAN, body, Some(timeout))
        .unwrap();
    p.pump();
    p.advance(Duration::from_millis(40));
    assert!(p.respond(rid, true, Some(&item("a"))));
    assert_eq!(p.replies(rid), vec![Reply::Item(item("a"))]);
    // The consumer holds the item for far longer than the timeout.
    assert!(p.client.hold(rid));
    assert_eq!(p.client.poll_timeout(), None);
    p.advance(Duration::from_secs(10));
    assert!(p.client.is_pending(rid), "a slow consumer is not a timeout");
    // It asks for more: the full timeout runs again from now.
    assert!(p.client.wait(p.now, rid));
    assert_eq!(p.client.poll_timeout(), Some(p.now + timeout));
    p.advance(Duration::from_millis(49));
    assert!(p.client.is_pending(rid));
    p.advance(Duration::from_millis(1));
    assert_eq!(
        p.replies(rid),
        vec![Reply::Done(Err(CallError::Timeout { after: timeout }))]
    );
    // Ended calls are not held or waited on.
    assert!(!p.client.hold(rid));
    assert!(!p.client.wait(p.now, rid));
}

#[test]
fn no_timeout_means_no_deadline() {
    let mut p = Pair::new(
        ClientConfig {
            timeout: None,
            ..ClientConfig::default()
        },
        ServerConfig::default(),
    );
    let rid = p.call(Method::GET, get("k")).unwrap();
    assert_eq!(p.client.poll_timeout(), None);
    p.advance(Duration::from_secs(3600));
    assert!(p.client.is_pending(rid));
}

#[test]
fn deadlines_fire_in_order() {
    let mut p = pair();
    let ms = Duration::from_millis;
    let body = get("k").to_bytes();
    let late = p
        .client
        .call_with_timeout(p.now, Method::GET, body.clone(), Some(ms(30)))
        .unwrap();
    let early = p
        .client
        .call_with_timeout(p.now, Method::GET, body, Some(ms(10)))
        .unwrap();
    p.pump();
    assert_eq!(p.client.poll_timeout(), Some(p.now + ms(10)));
    p.advance(ms(10));
    assert!(!p.client.is_pending(early) && p.client.is_pending(late));
    assert_eq!(p.client.poll_timeout(), Some(p.now + ms(20)));
}

#[test]
fn cancel_stops_the_server_and_nothing_is_delivered() {
    let mut p = pair();
    let rid = p.call(Method::GET, get("k1")).unwrap();
    assert!(p.client.cancel(rid));
    assert!(!p.client.cancel(rid));
    assert_eq!(p.client.in_flight(), 0);
    p.pump();
    assert_eq!(p.stopped, vec![rid]);
    assert_eq!(p.server.in_flight(), 0);
    assert!(!p.respond(rid, false, None));
    assert_eq!(p.client.poll_reply(rid), None);
    assert!(p.events().is_empty());
    assert_eq!(p.client.stats().cancelled, 1);
    // A second CANCEL for the rid is ignored by the server.
    p.server
        .handle_message(
            Frame::Cancel {
                rid,
                method: Method::GET,
            }
            .to_bytes(),
        )
        .unwrap();
    assert_eq!(p.server.stats().ignored, 1);
}

#[test]
fn cancel_after_done_is_not_pending_and_drops_the_done() {
    let mut p = pair();
    let rid = p.call(Method::GET, get("k1")).unwrap();
    assert!(p.respond(rid, false, None));
    assert!(!p.client.cancel(rid));
    assert_eq!(p.client.poll_reply(rid), None);
    assert_eq!(p.client.in_flight(), 0);
    assert_eq!(
        p.client.poll_transmit(),
        None,
        "no CANCEL for a finished call"
    );
}

#[test]
fn client_limits_send_nothing() {
    let config = ClientConfig {
        max_request_bytes: 8,
        max_in_flight: 2,
        ..ClientConfig::default()
    };
    let mut p = Pair::new(config, ServerConfig::default());
    let big = Bytes::from(vec![0; 9]);
    assert_eq!(
        p.client.call(p.now, Method::PUT, big),
        Err(CallError::PayloadTooLarge { len: 9, max: 8 })
    );
    let a = p.call(Method::GET, get("a")).unwrap();
    p.call(Method::GET, get("b")).unwrap();
    assert_eq!(
        p.call(Method::GET, get("c")),
        Err(CallError::NotReady { limit: 2 })
    );
    assert_eq!(p.sent.len(), 2);
    // A finished call holds its slot until its Done is polled.
    assert!(p.respond(a, false, None));
    assert_eq!(
        p.call(Method::GET, get("c")),
        Err(CallError::NotReady { limit: 2 })
    );
    assert_eq!(p.replies(a).len(), 1);
    assert_eq!(p.call(Method::GET, get("c")), Ok(3));
    assert_eq!(p.client.stats().calls, 3);
}

#[test]
fn server_limits_reply_with_neonplex_errors() {
    let config = ServerConfig {
        max_request_bytes: 4,
        max_in_flight: 1,
    };
    let client = ClientConfig {
        max_request_bytes: 64,
        ..ClientConfig::default()
    };
    let mut p = Pair::new(client, config);
    let big = p.call(Method::GET, get("key-too-long")).unwrap();
    assert_eq!(
        p.replies(big),
        vec![Reply::Done(Ok(Envelope::err(
            "PayloadTooLarge",
            "Request payload exceeds limit"
        )))]
    );
    let first = p.call(Method::GET, get("k")).unwrap();
    let second = p.call(Method::GET, get("j")).unwrap();
    assert_eq!(
        p.replies(second),
        vec![Reply::Done(Ok(Envelope::err(
            "NotReady",
            "Too many in-flight requests"
        )))]
    );
    // Unlike neonplex, the lane stays open: the active call is unaffected.
    assert!(p.server.is_active(first));
    assert!(p.respond(first, false, None));
    let s = p.server.stats();
    assert_eq!(
        (s.requests, s.dispatched, s.too_large, s.not_ready),
        (3, 1, 1, 1)
    );
}

#[test]
fn server_refuses_unknown_methods_bad_bodies_and_duplicates() {
    let mut server = Server::new(ServerConfig::default()).unwrap();
    let reply = |code: &str, message: &str, rid: u32, mid: u8| {
        Some(Action::Reply(Frame::Response {
            rid,
            method: Method(mid),
            more: false,
            payload: Envelope::err(code, message).to_bytes().unwrap(),
        }))
    };
    let req = |rid: u32, mid: u8, body: &'static [u8]| {
        Frame::Request {
            rid,
            method: Method(mid),
            body: Bytes::from_static(body),
        }
        .to_bytes()
    };
    assert_eq!(
        server.handle_message(req(1, 9, b"")),
        Ok(reply("Unknown", "Unknown method", 1, 9))
    );
    assert_eq!(
        server.handle_message(req(2, 0, b"\x05k")),
        Ok(reply("Unknown", "Bad request payload", 2, 0))
    );
    assert!(matches!(
        server.handle_message(req(3, 0, b"\x01k\x00")),
        Ok(Some(Action::Dispatch { rid: 3, .. }))
    ));
    assert_eq!(
        server.handle_message(req(3, 0, b"\x01j\x00")),
        Ok(reply("BadArg", "Duplicate request id", 3, 0))
    );
    assert!(server.is_active(3));
    // RES frames are ignored; garbage is a typed error.
    let res = Frame::Response {
        rid: 3,
        method: Method::GET,
        more: false,
        payload: Bytes::new(),
    };
    assert_eq!(server.handle_message(res.to_bytes()), Ok(None));
    assert!(matches!(
        server.handle_message(Bytes::from_static(b"\x07")),
        Err(DecodeError::BadTag { .. })
    ));
    let s = server.stats();
    assert_eq!(
        (s.bad_requests, s.duplicate_rids, s.ignored, s.malformed),
        (2, 1, 1, 1)
    );
}

#[test]
fn server_answers_an_oversized_message_from_its_head() {
    let mut server = Server::new(ServerConfig::default()).unwrap();
    assert_eq!(server.max_message_len(), 256 * 1024 + 6);
    let frame = server
        .handle_oversized(b"\x00\x07\x00\x00\x00\x01more")
        .unwrap();
    assert_eq!(
        frame,
        Frame::Response {
            rid: 7,
            method: Method::PUT,
            more: false,
            payload: Envelope::err("PayloadTooLarge", "Request payload exceeds limit")
                .to_bytes()
                .unwrap(),
        }
    );
    assert_eq!(server.handle_oversized(b"\x01\x07\x00\x00\x00\x01"), None);
    assert_eq!(server.handle_oversized(b"\x00\x07"), None);
    assert_eq!(server.stats().malformed, 2);
    assert_eq!(server.in_flight(), 0);
}

#[test]
fn scan_streams_items_then_ends() {
    let mut p = pair();
    let rid = p
        .call(Method::SCAN, Body::Scan(Default::default()))
        .unwrap();
    assert!(p.client.wants_replies(rid));
    assert!(p.respond(rid, true, Some(&item("p/1"))));
    assert!(
        !p.client.wants_replies(rid),
        "one reply queued: the plex/1 adapter stops reading"
    );
    assert!(p.respond(rid, true, Some(&item("p/2"))));
    assert_eq!(p.events(), vec![ClientEvent::Readable { rid }]);
    assert_eq!(p.client.poll_reply(rid), Some(Reply::Item(item("p/1"))));
    assert!(p.respond(rid, false, None));
    assert_eq!(
        p.replies(rid),
        vec![Reply::Item(item("p/2")), Reply::Done(Ok(Envelope::OK))]
    );
    assert_eq!(p.server.in_flight(), 0);
}

#[test]
fn scan_failure_is_a_final_error_envelope() {
    let mut p = pair();
    let rid = p
        .call(Method::SCAN, Body::Scan(Default::default()))
        .unwrap();
    assert!(p.respond(rid, true, Some(&item("p/1"))));
    let err = Envelope::err("Unknown", "boom");
    assert!(p.respond(rid, false, Some(&err)));
    assert_eq!(
        p.replies(rid),
        vec![Reply::Item(item("p/1")), Reply::Done(Ok(err))]
    );
}

#[test]
fn scan_overflow_fails_the_call_and_cancels() {
    let config = ClientConfig {
        max_queued_replies: 3,
        ..ClientConfig::default()
    };
    let mut p = Pair::new(config, ServerConfig::default());
    let rid = p
        .call(Method::SCAN, Body::Scan(Default::default()))
        .unwrap();
    for key in ["p/1", "p/2", "p/3"] {
        assert!(p.respond(rid, true, Some(&item(key))));
    }
    assert!(p.client.is_pending(rid));
    assert!(p.respond(rid, true, Some(&item("p/4"))));
    assert!(!p.client.is_pending(rid));
    p.pump();
    assert_eq!(p.stopped, vec![rid]);
    // What was queued stays readable; the Done comes last.
    let replies = p.replies(rid);
    assert_eq!(replies.len(), 4);
    assert_eq!(replies[3], Reply::Done(Err(CallError::Overflow)));
    assert_eq!(p.client.stats().overflows, 1);
}

#[test]
fn scan_overflow_by_bytes() {
    let size = item("p/1").encoded_len();
    let config = ClientConfig {
        max_queued_bytes: 2 * size,
        ..ClientConfig::default()
    };
    let mut p = Pair::new(config, ServerConfig::default());
    let rid = p
        .call(Method::SCAN, Body::Scan(Default::default()))
        .unwrap();
    assert!(p.respond(rid, true, Some(&item("p/1"))));
    assert!(p.respond(rid, true, Some(&item("p/2"))));
    assert!(p.client.is_pending(rid));
    // Popping frees bytes.
    assert!(p.client.poll_reply(rid).is_some());
    assert!(p.respond(rid, true, Some(&item("p/3"))));
    assert!(p.client.is_pending(rid));
    assert!(p.respond(rid, true, Some(&item("p/4"))));
    assert_eq!(
        p.replies(rid).last(),
        Some(&Reply::Done(Err(CallError::Overflow)))
    );
}

#[test]
fn a_single_large_reply_always_fits() {
    let config = ClientConfig {
        max_queued_bytes: 4,
        ..ClientConfig::default()
    };
    let mut p = Pair::new(config, ServerConfig::default());
    let rid = p.call(Method::GET, get("k")).unwrap();
    assert!(p.respond(rid, false, Some(&value("a long value"))));
    assert_eq!(p.replies(rid), vec![Reply::Done(Ok(value("a long value")))]);
}

#[test]
fn bad_reply_fails_the_call_and_cancels() {
    let mut p = pair();
    let rid = p.call(Method::GET, get("k")).unwrap();
    p.deliver(Frame::Response {
        rid,
        method: Method::GET,
        more: false,
        payload: Bytes::from_static(b"\x07"),
    });
    assert_eq!(
        p.replies(rid),
        vec![Reply::Done(Err(CallError::BadReply(DecodeError::BadTag {
            what: "envelope status",
            value: 7
        })))]
    );
    p.pump();
    assert_eq!(p.stopped, vec![rid]);
    assert_eq!(p.client.stats().bad_replies, 1);
}

#[test]
fn client_drops_req_and_cancel_frames() {
    let mut p = pair();
    let rid = p.call(Method::GET, get("k")).unwrap();
    // neonplex would resolve the call with these; here only a RES can.
    p.deliver(Frame::Request {
        rid,
        method: Method::GET,
        body: Bytes::new(),
    });
    p.deliver(Frame::Cancel {
        rid,
        method: Method::GET,
    });
    assert!(p.client.is_pending(rid));
    assert_eq!(p.client.stats().unexpected_frames, 2);
}

#[test]
fn close_fails_every_pending_call_at_once() {
    let mut p = pair();
    let a = p.call(Method::GET, get("a")).unwrap();
    let b = p.call(Method::GET, get("b")).unwrap();
    let c = p.call(Method::GET, get("c")).unwrap();
    assert!(p.respond(c, false, None));
    p.client.close();
    assert_eq!(p.client.poll_transmit(), None, "no CANCEL on a closed lane");
    assert_eq!(
        p.events(),
        [a, b, c].map(|rid| ClientEvent::Readable { rid }).to_vec()
    );
    for rid in [a, b] {
        assert_eq!(p.replies(rid), vec![Reply::Done(Err(CallError::Closed))]);
    }
    assert_eq!(p.replies(c), vec![Reply::Done(Ok(Envelope::OK))]);
    assert_eq!(p.client.poll_timeout(), None);
    assert_eq!(p.call(Method::GET, get("d")), Err(CallError::Closed));
    assert_eq!(p.client.stats().closed, 2);
    // The server side: every active call is cancelled, later answers suppressed.
    assert_eq!(p.server.close(), vec![a, b]);
    assert_eq!(p.server.in_flight(), 0);
    assert!(!p.respond(a, false, None));
}

#[test]
fn transport_failure_resolves_without_cancel() {
    let mut p = pair();
    let rid = p.call(Method::GET, get("a")).unwrap();
    assert!(p.client.fail(rid, CallError::Unavailable));
    assert!(!p.client.fail(rid, CallError::Unavailable));
    assert_eq!(p.client.poll_transmit(), None);
    assert_eq!(
        p.replies(rid),
        vec![Reply::Done(Err(CallError::Unavailable))]
    );
}

#[test]
fn rids_are_never_reused() {
    let mut p = pair();
    p.client.set_next_rid(u32::MAX);
    let last = p.call(Method::GET, get("a")).unwrap();
    assert_eq!(last, u32::MAX);
    assert_eq!(p.call(Method::GET, get("b")), Err(CallError::RidsExhausted));
    assert!(p.respond(last, false, None));
    assert_eq!(p.replies(last).len(), 1);
    assert_eq!(p.call(Method::GET, get("b")), Err(CallError::RidsExhausted));
}

#[test]
fn configs_refuse_zeros() {
    let zero = |f: fn(&mut ClientConfig)| {
        let mut c = ClientConfig::default();
        f(&mut c);
        Client::new(c).is_err()
    };
    assert!(zero(|c| c.max_request_bytes = 0));
    assert!(zero(|c| c.max_in_flight = 0));
    assert!(zero(|c| c.max_queued_replies = 0));
    assert!(zero(|c| c.max_queued_bytes = 0));
    assert!(zero(|c| c.timeout = Some(Duration::ZERO)));
    assert!(!zero(|c| c.timeout = None));
    assert!(Server::new(ServerConfig {
        max_in_flight: 0,
        ..ServerConfig::default()
    })
    .is_err());
    assert!(Server::new(ServerConfig {
        max_request_bytes: 0,
        ..ServerConfig::default()
    })
    .is_err());
}
