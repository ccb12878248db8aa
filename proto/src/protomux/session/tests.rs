//! The Protomux session against the wire bytes neonplex writes, every
//! error path and bound, and random interleavings of two sessions.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::protomux::frame_header;

const PROTOCOL: &str = "neonloom/protocol/v1";

/// Bytes from hex, spaces allowed for readability.
fn hex(spaced: &str) -> Bytes {
    let digits: String = spaced.split_whitespace().collect();
    crate::rpc::tests::hex(&digits)
}

/// A session that rejects unclaimed OPENs at once, as Protomux does.
fn session() -> Session {
    let config = MuxConfig::default().claim_grace(None);
    Session::new(config).expect("the default config is valid")
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// Everything `from` has to write, framed, in one buffer.
fn drain(from: &mut Session) -> Bytes {
    let mut out = BytesMut::new();
    while let Some(t) = from.poll_transmit() {
        out.extend_from_slice(&t.head);
        out.extend_from_slice(&t.payload);
    }
    out.freeze()
}

/// Moves bytes both ways until both sides are quiet.
fn settle(a: &mut Session, b: &mut Session, now: Instant) {
    loop {
        let (ab, ba) = (drain(a), drain(b));
        if ab.is_empty() && ba.is_empty() {
            return;
        }
        b.handle_input(now, ab);
        a.handle_input(now, ba);
    }
}

fn events(s: &mut Session) -> Vec<MuxEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// A framed message, as the peer would write it.
fn framed(message_hex: &str) -> Bytes {
    let message = hex(message_hex);
    let mut out = BytesMut::from(&frame_header(message.len() as u32)[..]);
    out.extend_from_slice(&message);
    out.freeze()
}

fn incoming(s: &mut Session) -> ChannelId {
    events(s)
        .into_iter()
        .find_map(|e| match e {
            MuxEvent::Incoming { channel, .. } => Some(channel),
            _ => None,
        })
        .expect("an incoming channel")
}

fn recv_all(s: &mut Session, channel: ChannelId) -> Vec<Bytes> {
    let mut got = Vec::new();
    while let Ok(Recv::Message(m)) = s.recv(channel) {
        got.push(m);
    }
    got
}

fn violation(s: &mut Session) -> MuxError {
    match s.close_reason() {
        Some(MuxCloseReason::Violation(e)) => e.clone(),
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn the_smoke_exchange_is_byte_for_byte_neonplex() {
    // neonplex wire §9(a): OPEN, the listener's OPEN, DATA, echo.
    let now = crate::sim::origin();
    let (mut client, mut server) = (session(), session());
    server.listen(PROTOCOL, Some(hex("9a01")));
    let ch = client.open(PROTOCOL, hex("9a01"), Bytes::new()).unwrap();
    client.send(ch, b("plex-smoke-tcp")).unwrap();
    let wire = drain(&mut client);
    let open = "1b000000 0001 01 14 6e656f6e6c6f6f6d2f70726f746f636f6c2f7631 02 9a01";
    let data = "10000000 0100 706c65782d736d6f6b652d746370";
    assert_eq!(wire, hex(&format!("{open}{data}")));

    server.handle_input(now, wire);
    let theirs = incoming(&mut server);
    // Nothing is readable before the accept; the DATA waits.
    assert_eq!(server.recv(theirs).unwrap(), Recv::Empty);
    server.accept(theirs, Bytes::new()).unwrap();
    assert_eq!(
        events(&mut server),
        [MuxEvent::Readable { channel: theirs }]
    );
    let message = recv_all(&mut server, theirs);
    assert_eq!(message, [b("plex-smoke-tcp")]);
    server.send(theirs, message[0].clone()).unwrap();
    let reply = drain(&mut server);
    assert_eq!(reply, hex(&format!("{open}{data}")));

    client.handle_input(now, reply);
    assert_eq!(
        events(&mut client),
        [
            MuxEvent::Opened {
                channel: ch,
                handshake: Bytes::new()
            },
            MuxEvent::Readable { channel: ch }
        ]
    );
    assert_eq!(recv_all(&mut client, ch), [b("plex-smoke-tcp")]);
}

#[test]
fn handshakes_travel_raw_and_close_is_one_way() {
    // §9(b): handshakes, then CLOSE 1 from the client and nothing back.
    let now = crate::sim::origin();
    let (mut client, mut server) = (session(), session());
    server.listen(PROTOCOL, None);
    let ch = client.open(PROTOCOL, hex("9a01"), b("cli-hs")).unwrap();
    server.handle_input(now, drain(&mut client));
    match events(&mut server).as_slice() {
        [MuxEvent::Incoming {
            channel,
            protocol,
            id,
            handshake,
        }] => {
            assert_eq!((protocol.as_str(), &id[..]), (PROTOCOL, &hex("9a01")[..]));
            assert_eq!(handshake, &b("cli-hs"));
            server.accept(*channel, b("srv-hs")).unwrap();
        }
        other => panic!("unexpected events {other:?}"),
    }
    client.handle_input(now, drain(&mut server));
    assert!(events(&mut client).contains(&MuxEvent::Opened {
        channel: ch,
        handshake: b("srv-hs")
    }));
    client.close_channel(ch).unwrap();
    let close = drain(&mut client);
    assert_eq!(close, hex("03000000 000301"));
    server.handle_input(now, close);
    assert!(matches!(
        events(&mut server).as_slice(),
        [MuxEvent::Ended {
            end: ChannelEnd::Closed,
            ..
        }]
    ));
    assert!(drain(&mut server).is_empty(), "CLOSE is never echoed");
    assert_eq!(client.recv(ch), Err(MuxLocalError::UnknownChannel));
}

#[test]
fn an_open_nobody_listens_for_is_rejected_and_its_data_dropped() {
    // §9(c): REJECT(1) for no/such/protocol.
    let now = crate::sim::origin();
    let (mut client, mut server) = (session(), session());
    let ch = client
        .open("no/such/protocol", hex("01"), Bytes::new())
        .unwrap();
    client.send(ch, b("early")).unwrap();
    server.handle_input(now, drain(&mut client));
    assert_eq!(drain(&mut server), hex("03000000 000201"));
    assert_eq!(server.stats().buffered, 0, "the early DATA was dropped");
    assert_eq!(server.channel_count(), 0);
    assert_eq!(server.stats().ignored, 1, "the DATA after the REJECT");
    client.handle_input(now, hex("03000000 000201"));
    assert_eq!(
        events(&mut client),
        [MuxEvent::Ended {
            channel: ch,
            end: ChannelEnd::Rejected
        }]
    );
    assert_eq!(client.recv(ch).unwrap(), Recv::Ended(ChannelEnd::Rejected));
    assert_eq!(client.send(ch, b("x")), Err(MuxLocalError::UnknownChannel));
    // The rejected id is free again, and reused.
    let again = client.open("other", Bytes::new(), Bytes::new()).unwrap();
    assert_eq!(drain(&mut client), framed("0001 01 056f74686572 00"));
    assert_ne!(again, ch, "handles are never reused");
}

#[test]
fn a_batch_in_is_taken_apart_and_cork_sends_one_out() {
    // §9(d): BATCH with OPEN and two DATA; the reply OPEN in a BATCH.
    let now = crate::sim::origin();
    let mut server = session();
    server.listen(PROTOCOL, None);
    let open = "01 01 14 6e656f6e6c6f6f6d2f70726f746f636f6c2f7631 02 9a01";
    server.handle_input(
        now,
        framed(&format!("0000 00 1a {open} 00 01 03 00 6231 03 00 6232")),
    );
    let ch = incoming(&mut server);
    server.cork();
    server.accept(ch, b("srv-hs")).unwrap();
    server.uncork();
    assert_eq!(
        drain(&mut server),
        framed(&format!("0000 00 20 {open} 7372762d6873"))
    );
    assert_eq!(recv_all(&mut server, ch), [b("b1"), b("b2")]);
    assert_eq!(server.stats().messages_received, 3);

    // A corked run of several messages is one BATCH, switching channels.
    server.cork();
    server.send(ch, b("x")).unwrap();
    server.cork();
    server.send(ch, b("y")).unwrap();
    server.uncork();
    assert!(!server.wants_transmit(), "still corked");
    server.close_channel(ch).unwrap();
    server.uncork();
    assert_eq!(
        drain(&mut server),
        framed("0000 01 02 0078 02 0079 00 00 02 0301")
    );
}

#[test]
fn simultaneous_opens_pair_oldest_first() {
    let now = crate::sim::origin();
    let (mut a, mut b2) = (session(), session());
    b2.set_claim_grace(Some(Duration::from_secs(1)));
    let a1 = a.open("p", b("x"), b("a1")).unwrap();
    let a2 = a.open("p", b("x"), b("a2")).unwrap();
    let b1 = b2.open("p", b("x"), b("b1")).unwrap();
    settle(&mut a, &mut b2, now);
    assert_eq!(
        events(&mut a),
        [MuxEvent::Opened {
            channel: a1,
            handshake: b("b1")
        }]
    );
    assert_eq!(
        events(&mut b2),
        [MuxEvent::Opened {
            channel: b1,
            handshake: b("a1")
        }]
    );
    // a2 waits in b's claim grace; b's second open pairs with it.
    let b2nd = b2.open("p", b("x"), b("b2")).unwrap();
    settle(&mut a, &mut b2, now);
    assert_eq!(
        events(&mut a),
        [MuxEvent::Opened {
            channel: a2,
            handshake: b("b2")
        }]
    );
    assert!(
        matches!(events(&mut b2).as_slice(), [MuxEvent::Opened { channel, .. }] if *channel == b2nd)
    );
    a.send(a2, b("to-second")).unwrap();
    settle(&mut a, &mut b2, now);
    assert_eq!(recv_all(&mut b2, b2nd), [b("to-second")]);
}

#[test]
fn wire_ids_are_dense_and_reused_last_freed_first() {
    let now = crate::sim::origin();
    let (mut a, mut b2) = (session(), session());
    b2.listen("p", None);
    let ids: Vec<ChannelId> = (0..3)
        .map(|i| a.open("p", Bytes::from(vec![i]), Bytes::new()).unwrap())
        .collect();
    settle(&mut a, &mut b2, now);
    for event in events(&mut b2) {
        if let MuxEvent::Incoming { channel, .. } = event {
            b2.accept(channel, Bytes::new()).unwrap();
        }
    }
    settle(&mut a, &mut b2, now);
    a.close_channel(ids[0]).unwrap();
    a.close_channel(ids[1]).unwrap();
    drain(&mut a);
    a.open("p", b("again"), Bytes::new()).unwrap();
    // Wire id 2 was freed last, so it comes back first.
    assert_eq!(drain(&mut a), framed("0001 02 0170 05 616761696e"));
}

#[test]
fn ids_that_break_density_or_reuse_an_open_one_end_the_connection() {
    let now = crate::sim::origin();
    let mut s = session();
    s.listen("p", None);
    // id 5 as the first channel: "Invalid open message" in neonplex.
    s.handle_input(now, framed("0001 05 0170 00"));
    assert_eq!(violation(&mut s), MuxError::InvalidOpen { channel: 5 });
    assert!(!s.wants_input());
    assert!(matches!(
        events(&mut s).last(),
        Some(MuxEvent::Closed { .. })
    ));

    let mut s = session();
    s.listen("p", None);
    s.handle_input(now, framed("0001 01 0170 00"));
    s.handle_input(now, framed("0001 01 0170 00"));
    assert_eq!(violation(&mut s), MuxError::InvalidOpen { channel: 1 });
    let ended = events(&mut s);
    assert!(
        ended.iter().any(|e| matches!(
            e,
            MuxEvent::Ended {
                end: ChannelEnd::Connection(_),
                ..
            }
        )),
        "the announced channel learns the connection ended: {ended:?}"
    );
}

#[test]
fn a_reject_without_a_pending_open_ends_the_connection() {
    let now = crate::sim::origin();
    let mut s = session();
    s.handle_input(now, framed("0002 01"));
    assert_eq!(violation(&mut s), MuxError::InvalidReject { channel: 1 });
    let mut s = session();
    s.handle_input(now, framed("0002 00"));
    assert_eq!(violation(&mut s), MuxError::InvalidReject { channel: 0 });
}

#[test]
fn an_open_for_channel_zero_is_rejected_and_unknown_things_ignored() {
    let now = crate::sim::origin();
    let mut s = session();
    s.listen("p", None);
    s.handle_input(now, framed("0001 00 0170 00"));
    assert_eq!(drain(&mut s), framed("0002 00"));
    // DATA and CLOSE for ids never opened, a message type 1, a control
    // type 9: all ignored.
    s.handle_input(now, framed("07 00 6869"));
    s.handle_input(now, framed("0003 07"));
    s.handle_input(now, framed("0009 ffff"));
    s.handle_input(now, framed("0001 01 0170 00"));
    let ch = incoming(&mut s);
    s.accept(ch, Bytes::new()).unwrap();
    s.handle_input(now, framed("01 01 6869"));
    s.handle_input(now, hex("00000000")); // an empty frame
    assert_eq!(s.recv(ch).unwrap(), Recv::Empty);
    assert_eq!(s.stats().ignored, 4);
    assert!(s.close_reason().is_none());
}

#[test]
fn closing_before_the_answer_keeps_the_id_until_it_comes() {
    let now = crate::sim::origin();
    let mut a = session();
    let ch = a.open("p", b("x"), Bytes::new()).unwrap();
    a.close_channel(ch).unwrap();
    assert_eq!(
        drain(&mut a),
        hex("07000000 0001 01 0170 0178 03000000 000301")
    );
    // Meanwhile the id is reserved: a new channel gets id 2.
    let other = a.open("q", Bytes::new(), Bytes::new()).unwrap();
    assert_eq!(drain(&mut a), framed("0001 02 0171 00"));
    // The peer's OPEN answers the closed one: we close again (protomux
    // ignored our first CLOSE if it had not accepted yet), and free id 1.
    a.handle_input(now, framed("0001 01 0170 0178"));
    assert_eq!(drain(&mut a), framed("0003 01"));
    // Id 2 closes unanswered too: reserved, so the next ids are 1, then 3.
    a.close_channel(other).unwrap();
    drain(&mut a);
    a.open("r", Bytes::new(), Bytes::new()).unwrap();
    assert_eq!(drain(&mut a), framed("0001 01 0172 00"));
    a.open("s", Bytes::new(), Bytes::new()).unwrap();
    assert_eq!(drain(&mut a), framed("0001 03 0173 00"));
    // A REJECT of a reserved id frees it as well.
    let mut a = session();
    let ch = a.open("p", Bytes::new(), Bytes::new()).unwrap();
    a.close_channel(ch).unwrap();
    a.handle_input(now, framed("0002 01"));
    assert!(a.close_reason().is_none());
    drain(&mut a);
    a.open("p", Bytes::new(), Bytes::new()).unwrap();
    assert_eq!(drain(&mut a), framed("0001 01 0170 00"));
}

#[test]
fn the_claim_grace_waits_for_a_listener_then_rejects() {
    let start = crate::sim::origin();
    // One second by default: a peer may open before this side listens.
    let mut s = Session::new(MuxConfig::default()).unwrap();
    s.handle_input(start, framed("0001 01 0170 0178"));
    s.handle_input(start, framed("01 00 6869"));
    s.handle_input(start, framed("0001 02 0170 0179"));
    assert!(drain(&mut s).is_empty(), "both wait");
    assert_eq!(s.poll_timeout(), Some(start + Duration::from_secs(1)));
    s.listen("p", Some(b("x")));
    let ch = incoming(&mut s);
    s.accept(ch, Bytes::new()).unwrap();
    assert_eq!(recv_all(&mut s, ch), [b("hi")]);
    drain(&mut s);
    events(&mut s);
    // The other is rejected when its grace ends, not before.
    s.handle_timeout(start + Duration::from_millis(999));
    assert!(drain(&mut s).is_empty());
    s.handle_timeout(start + Duration::from_secs(1));
    assert_eq!(drain(&mut s), framed("0002 02"));
    assert_eq!(s.poll_timeout(), None);

    // A local open of the same key pairs with a waiting one.
    s.handle_input(start, framed("0001 02 0170 0179 6873"));
    let ch = s.open("p", b("y"), b("mine")).unwrap();
    assert_eq!(
        events(&mut s),
        [MuxEvent::Opened {
            channel: ch,
            handshake: b("hs")
        }]
    );
    assert_eq!(drain(&mut s), framed("0001 02 0170 0179 6d696e65"));
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn a_channel_over_its_buffer_stops_input_until_read() {
    let now = crate::sim::origin();
    let config = MuxConfig {
        channel_buffer: 1000,
        ..MuxConfig::default()
    };
    let mut s = Session::new(config.claim_grace(None)).unwrap();
    s.listen("p", None);
    s.handle_input(now, framed("0001 01 0170 00"));
    let ch = incoming(&mut s);
    s.accept(ch, Bytes::new()).unwrap();
    let message = format!("0100{}", "61".repeat(500));
    s.handle_input(now, framed(&message));
    assert!(s.wants_input());
    s.handle_input(now, framed(&message));
    assert!(!s.wants_input(), "2 × (500 + overhead) > 1000");
    assert_eq!(s.stats().buffered, 2 * (500 + MESSAGE_OVERHEAD));
    assert!(matches!(s.recv(ch), Ok(Recv::Message(_))));
    assert!(s.wants_input());
    // Closing the channel drops what it held.
    s.handle_input(now, framed(&message));
    s.handle_input(now, framed(&message));
    assert!(!s.wants_input());
    s.close_channel(ch).unwrap();
    assert!(s.wants_input());
    assert_eq!(s.stats().buffered, 0);
}

#[test]
fn waiting_opens_and_channels_are_bounded() {
    let now = crate::sim::origin();
    let config = MuxConfig {
        max_pending_opens: 2,
        max_channels: 3,
        ..MuxConfig::default()
    };
    let mut s = Session::new(config.clone().claim_grace(None)).unwrap();
    s.listen("p", None);
    for id in 1..=3 {
        s.handle_input(now, framed(&format!("0001 0{id} 0170 00")));
    }
    assert_eq!(
        drain(&mut s),
        framed("0002 03"),
        "the third is over the limit"
    );
    assert_eq!(events(&mut s).len(), 2);
    // The peer reuses the rejected id; then a fourth id is one too many.
    s.handle_input(now, framed("0003 01"));
    assert!(matches!(
        events(&mut s).as_slice(),
        [MuxEvent::Ended { .. }]
    ));
    s.handle_input(now, framed("0001 03 0170 00"));
    s.handle_input(now, framed("0001 04 0170 00"));
    assert_eq!(violation(&mut s), MuxError::TooManyChannels { max: 3 });

    let mut s = Session::new(config.claim_grace(None)).unwrap();
    for _ in 0..3 {
        s.open("p", Bytes::new(), Bytes::new()).unwrap();
    }
    assert_eq!(
        s.open("p", Bytes::new(), Bytes::new()),
        Err(MuxLocalError::TooManyChannels { max: 3 })
    );
}

#[test]
fn sends_are_checked_and_blocked_sends_hear_when_to_go_on() {
    let config = MuxConfig {
        max_message_size: 100,
        send_buffer: 200,
        ..MuxConfig::default()
    };
    let mut s = Session::new(config.claim_grace(None)).unwrap();
    let ch = s.open("p", Bytes::new(), Bytes::new()).unwrap();
    assert_eq!(s.send(ch, Bytes::new()), Err(MuxLocalError::EmptyMessage));
    assert_eq!(
        s.send(ch, Bytes::from(vec![0; 99])),
        Err(MuxLocalError::TooLarge { len: 101, max: 100 })
    );
    let mut sent = 0;
    while s.send(ch, Bytes::from(vec![1; 90])).is_ok() {
        sent += 1;
    }
    // The OPEN (10 bytes) and two 96-byte messages pass 200.
    assert_eq!(sent, 2);
    assert!(!s.can_send() && !s.wants_input());
    assert_eq!(s.send(ch, b("x")), Err(MuxLocalError::Blocked));
    while s.poll_transmit().is_some() {}
    assert_eq!(events(&mut s), [MuxEvent::Writable]);
    assert!(s.can_send() && s.wants_input());
}

#[test]
fn the_end_of_the_stream_ends_every_channel_and_bad_frames_are_violations() {
    let now = crate::sim::origin();
    let (mut a, mut b2) = (session(), session());
    b2.listen("p", None);
    let ch = a.open("p", Bytes::new(), Bytes::new()).unwrap();
    a.send(ch, b("last words")).unwrap();
    settle(&mut a, &mut b2, now);
    let theirs = incoming(&mut b2);
    b2.accept(theirs, Bytes::new()).unwrap();
    b2.handle_eof();
    let ended = events(&mut b2);
    assert!(ended.contains(&MuxEvent::Ended {
        channel: theirs,
        end: ChannelEnd::Connection(MuxCloseReason::Eof)
    }));
    assert_eq!(
        ended.last(),
        Some(&MuxEvent::Closed {
            reason: MuxCloseReason::Eof
        })
    );
    // What arrived before the end is still readable.
    assert_eq!(b2.recv(theirs), Ok(Recv::Message(b("last words"))));
    assert!(matches!(b2.recv(theirs), Ok(Recv::Ended(_))));
    assert_eq!(b2.recv(theirs), Err(MuxLocalError::UnknownChannel));
    assert!(matches!(
        b2.open("p", Bytes::new(), Bytes::new()),
        Err(MuxLocalError::Closed(_))
    ));

    let config = MuxConfig {
        max_message_size: 10,
        ..MuxConfig::default()
    };
    let mut s = Session::new(config.claim_grace(None)).unwrap();
    s.handle_input(now, hex("0b000000"));
    assert!(matches!(violation(&mut s), MuxError::Frame(_)));
    let mut s = session();
    s.handle_input(now, framed("0001 01 ff"));
    assert!(matches!(violation(&mut s), MuxError::Decode(_)));
}

#[test]
fn configs_with_unusable_limits_are_refused() {
    for config in [
        MuxConfig {
            max_message_size: 0,
            ..MuxConfig::default()
        },
        MuxConfig {
            max_buffered: 10,
            channel_buffer: 11,
            ..MuxConfig::default()
        },
        MuxConfig {
            max_message_size: usize::MAX,
            ..MuxConfig::default()
        },
    ] {
        assert!(Session::new(config).is_err());
    }
}

/// One step of the random interleaving test.
#[derive(Debug, Clone)]
enum Op {
    Open { side: bool, key: u8 },
    Listen { side: bool, key: u8 },
    Close { side: bool, pick: usize },
    Send { side: bool, pick: usize },
    Deliver { side: bool, bytes: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<bool>(), 0..3u8).prop_map(|(side, key)| Op::Open { side, key }),
        (any::<bool>(), 0..3u8).prop_map(|(side, key)| Op::Listen { side, key }),
        (any::<bool>(), any::<usize>()).prop_map(|(side, pick)| Op::Close { side, pick }),
        (any::<bool>(), any::<usize>()).prop_map(|(side, pick)| Op::Send { side, pick }),
        (any::<bool>(), 1..200usize).prop_map(|(side, bytes)| Op::Deliver { side, bytes }),
    ]
}

/// A side of the random test: its session, the bytes in flight to the
/// other side, and what it saw.
#[derive(Default)]
struct Side {
    s: Option<Session>,
    name: &'static str,
    wire: BytesMut,
    channels: Vec<ChannelId>,
    /// Per channel: the messages it sent and received, in order.
    sent: HashMap<ChannelId, Vec<Bytes>>,
    received: HashMap<ChannelId, Vec<Bytes>>,
    /// Every channel says who it is in its handshake: a token unique to
    /// the side. `token` is ours, `peer` the one the peer sent.
    token: HashMap<ChannelId, Bytes>,
    by_token: HashMap<Bytes, ChannelId>,
    peer: HashMap<ChannelId, Bytes>,
    tokens: u64,
}

impl Side {
    fn new(name: &'static str) -> Side {
        let mut s = session();
        s.set_claim_grace(Some(Duration::from_secs(1)));
        Side {
            s: Some(s),
            name,
            ..Side::default()
        }
    }

    fn s(&mut self) -> &mut Session {
        self.s.as_mut().expect("set in new")
    }

    fn next_token(&mut self) -> Bytes {
        self.tokens += 1;
        Bytes::from(format!("{}{}", self.name, self.tokens))
    }

    fn named(&mut self, channel: ChannelId, token: Bytes) {
        self.by_token.insert(token.clone(), channel);
        self.token.insert(channel, token);
    }

    fn pump(&mut self) {
        while let Some(event) = self.s().poll_event() {
            match event {
                MuxEvent::Incoming {
                    channel, handshake, ..
                } => {
                    let token = self.next_token();
                    // It may have been closed or taken since.
                    if self.s().accept(channel, token.clone()).is_ok() {
                        self.named(channel, token);
                        self.peer.insert(channel, handshake);
                        self.channels.push(channel);
                    }
                }
                MuxEvent::Opened { channel, handshake } => {
                    self.peer.insert(channel, handshake);
                }
                _ => {}
            }
        }
        for channel in self.channels.clone() {
            while let Ok(Recv::Message(m)) = self.s().recv(channel) {
                self.received.entry(channel).or_default().push(m);
            }
        }
        while let Some(t) = self.s().poll_transmit() {
            self.wire.extend_from_slice(&t.head);
            self.wire.extend_from_slice(&t.payload);
        }
    }
}

fn step(sides: &mut [Side; 2], op: Op, now: Instant) {
    let i = |side: bool| usize::from(side);
    match op {
        Op::Open { side, key } => {
            let me = &mut sides[i(side)];
            let token = me.next_token();
            if let Ok(ch) = me.s().open("p", Bytes::from(vec![key]), token.clone()) {
                me.named(ch, token);
                if !me.channels.contains(&ch) {
                    me.channels.push(ch);
                }
            }
        }
        Op::Listen { side, key } => sides[i(side)].s().listen("p", Some(Bytes::from(vec![key]))),
        Op::Close { side, pick } => {
            let me = &mut sides[i(side)];
            if !me.channels.is_empty() {
                let ch = me.channels.remove(pick % me.channels.len());
                let _ = me.s().close_channel(ch);
            }
        }
        Op::Send { side, pick } => {
            let me = &mut sides[i(side)];
            if !me.channels.is_empty() {
                let ch = me.channels[pick % me.channels.len()];
                let n = me.sent.get(&ch).map_or(0, Vec::len);
                let m = Bytes::from(format!("{}:{n}", ch.get()));
                if me.s().send(ch, m.clone()).is_ok() {
                    me.sent.entry(ch).or_default().push(m);
                }
            }
        }
        Op::Deliver { side, bytes } => {
            let [a, b] = sides;
            let (from, to) = if side { (b, a) } else { (a, b) };
            let n = bytes.min(from.wire.len());
            let chunk = from.wire.split_to(n).freeze();
            to.s().handle_input(now, chunk);
        }
    }
    for side in sides.iter_mut() {
        side.pump();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Two correct sessions never see a violation, whatever the order of
    /// opens, listens, closes and sends and however the bytes are split;
    /// paired channels name each other; each channel's messages arrive
    /// in order, as a prefix of what was sent.
    #[test]
    fn random_interleavings_keep_the_pairing_invariants(ops in proptest::collection::vec(op(), 1..120)) {
        let now = crate::sim::origin();
        let mut sides = [Side::new("a"), Side::new("b")];
        for op in ops {
            step(&mut sides, op, now);
        }
        for _ in 0..3 {
            step(&mut sides, Op::Deliver { side: false, bytes: usize::MAX }, now);
            step(&mut sides, Op::Deliver { side: true, bytes: usize::MAX }, now);
        }
        for side in &sides {
            let reason = side.s.as_ref().and_then(Session::close_reason);
            prop_assert!(reason.is_none(), "{:?}", reason);
        }
        let [a, b] = &sides;
        for (from, to) in [(a, b), (b, a)] {
            for (&ch, peer_token) in &from.peer {
                let Some(&peer) = to.by_token.get(peer_token) else {
                    prop_assert!(false, "{} has an unknown peer token {:?}", from.name, peer_token);
                    continue;
                };
                if !from.channels.contains(&ch) || !to.channels.contains(&peer) {
                    continue;
                }
                // Both still open: each names the other, and each got what
                // the other sent, in order.
                prop_assert_eq!(to.peer.get(&peer), from.token.get(&ch));
                let got = to.received.get(&peer).cloned().unwrap_or_default();
                let sent = from.sent.get(&ch).cloned().unwrap_or_default();
                prop_assert_eq!(got, sent);
            }
        }
    }

    /// However the stream is cut, the session sees the same messages.
    #[test]
    fn framing_split_anywhere_gives_the_same_messages(
        messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 1..20),
        cuts in proptest::collection::vec(1..64usize, 1..50),
    ) {
        let now = crate::sim::origin();
        let mut sender = session();
        let ch = sender.open("p", Bytes::new(), Bytes::new()).unwrap();
        for m in &messages {
            sender.send(ch, Bytes::from(m.clone())).unwrap();
        }
        let wire = drain(&mut sender);
        let mut receiver = session();
        receiver.listen("p", None);
        let mut rest = wire.clone();
        let mut cuts = cuts.into_iter().cycle();
        while !rest.is_empty() {
            let n = cuts.next().unwrap().min(rest.len());
            receiver.handle_input(now, rest.split_to(n));
        }
        let theirs = incoming(&mut receiver);
        receiver.accept(theirs, Bytes::new()).unwrap();
        let got = recv_all(&mut receiver, theirs);
        prop_assert_eq!(got.len(), messages.len());
        for (got, sent) in got.iter().zip(&messages) {
            prop_assert_eq!(&got[..], &sent[..]);
        }
    }
}
