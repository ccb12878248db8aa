//! The bus's bytes and routing.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

#[test]
fn handshakes_round_trip_and_bad_ones_are_typed_errors() {
    let sub = Subscribe {
        role: Role::Responder,
        pattern: "orders.*".into(),
    };
    assert_eq!(&sub.to_bytes()[..], b"\x01\x08\x00orders.*");
    assert_eq!(Subscribe::decode(sub.to_bytes()), Ok(sub));
    let head = RequestHead {
        channel: "svc".into(),
    };
    assert_eq!(RequestHead::decode(head.to_bytes()), Ok(head));
    let delivery = Delivery {
        subscription: 7,
        channel: "svc".into(),
    };
    assert_eq!(Delivery::decode(delivery.to_bytes()), Ok(delivery));

    let bad = |b: &'static [u8]| Subscribe::decode(Bytes::from_static(b));
    assert_eq!(bad(b""), Err(WireError::Truncated("role")));
    assert_eq!(bad(b"\x02\x01\x00a"), Err(WireError::BadRole(2)));
    assert_eq!(bad(b"\x00\x05\x00ab"), Err(WireError::Truncated("pattern")));
    assert_eq!(bad(b"\x00\x00\x00"), Err(WireError::BadChannel("empty")));
    assert_eq!(
        bad(b"\x00\x03\x00a*b"),
        Err(WireError::BadChannel("`*` only ends a pattern"))
    );
    assert_eq!(bad(b"\x00\x01\x00a!"), Err(WireError::Trailing(1)));
    assert_eq!(
        bad(b"\x00\x01\x00\xff"),
        Err(WireError::BadChannel("not UTF-8"))
    );
    // A channel is never a pattern.
    assert!(RequestHead::decode(Bytes::from_static(b"\x02\x00a*")).is_err());
    assert!(Delivery::decode(Bytes::from_static(b"\x01\x00")).is_err());
    let long = "x".repeat(MAX_CHANNEL + 1);
    assert!(check_channel(&long, false).is_err());
    assert!(check_channel(&"x".repeat(MAX_CHANNEL), false).is_ok());
}

#[test]
fn records_decode_across_any_split_and_oversized_ones_fail_from_the_header() {
    let records = [
        Record::Message {
            channel: "a".into(),
            payload: Bytes::from_static(b"hello"),
        },
        Record::Gap { dropped: 3 },
        Record::Message {
            channel: "b".into(),
            payload: Bytes::new(),
        },
    ];
    let mut wire = Vec::new();
    for record in &records {
        let before = wire.len();
        wire.extend_from_slice(&record.header());
        if let Record::Message { payload, .. } = record {
            wire.extend_from_slice(payload);
        }
        assert_eq!(record.encoded_len(), wire.len() - before);
    }
    for chunk in 1..wire.len() {
        let mut decoder = RecordDecoder::new(16);
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            decoder.push(piece);
            while let Some(record) = decoder.next().unwrap() {
                got.push(record);
            }
        }
        assert_eq!(got, records);
        assert_eq!(decoder.buffered(), 0);
    }
    let mut decoder = RecordDecoder::new(4);
    decoder.push(b"\x00\x01\x00a\x05\x00\x00\x00");
    assert_eq!(
        decoder.next(),
        Err(DecodeFailure::TooLarge { len: 5, max: 4 })
    );
    assert!(decoder.next().is_err(), "the failure sticks");
    let mut decoder = RecordDecoder::new(4);
    decoder.push(b"\x09");
    assert_eq!(decoder.next(), Err(WireError::BadKind(9).into()));
}

#[test]
fn routes_exact_and_prefix_patterns_and_takes_responders_in_turn() {
    let mut router: Router<u8> = Router::new();
    let exact = router.subscribe(1, Role::Subscriber, "a.b");
    let prefix = router.subscribe(2, Role::Subscriber, "a.*");
    let all = router.subscribe(3, Role::Subscriber, "*");
    let other = router.subscribe(4, Role::Subscriber, "b*");
    assert_eq!(router.subscribers("a.b"), [exact, prefix, all]);
    assert_eq!(router.subscribers("a."), [prefix, all]);
    assert_eq!(router.subscribers("a"), [all]);
    assert_eq!(router.subscribers("bee"), [all, other]);
    assert!(router.unsubscribe(prefix));
    assert!(!router.unsubscribe(prefix));
    assert_eq!(router.subscribers("a.b"), [exact, all]);
    assert_eq!(router.len(), 3);

    let r1 = router.subscribe(5, Role::Responder, "svc");
    let r2 = router.subscribe(6, Role::Responder, "svc");
    let r3 = router.subscribe(7, Role::Responder, "sv*");
    assert!(router.subscribers("svc").contains(&all));
    let firsts: Vec<_> = (0..6).map(|_| router.responders("svc")[0]).collect();
    assert_eq!(firsts, [r1, r2, r3, r1, r2, r3]);
    assert_eq!(
        router.responders("svc").len(),
        3,
        "the others follow, to skip dead ones"
    );
    assert!(router.responders("nobody").is_empty());
    router.unsubscribe(r2);
    let firsts: Vec<_> = (0..4).map(|_| router.responders("svc")[0]).collect();
    assert!(firsts.contains(&r1) && firsts.contains(&r3) && !firsts.contains(&r2));
    assert_eq!(router.subscription(r1).map(|s| s.connection), Some(5));
}

#[test]
fn an_outbox_keeps_its_bound_and_marks_where_it_dropped() {
    let mut outbox = Outbox::new(300, SlowPolicy::DropWithGap);
    // Any one message gets into an empty outbox.
    assert_eq!(outbox.push("c", Bytes::from(vec![0; 1000])), Pushed::Queued);
    assert_eq!(outbox.push("c", Bytes::from_static(b"x")), Pushed::Dropped);
    assert_eq!(outbox.push("c", Bytes::from_static(b"y")), Pushed::Dropped);
    assert!(matches!(outbox.pop(), Some(Record::Message { .. })));
    assert_eq!(outbox.pop(), Some(Record::Gap { dropped: 2 }));
    assert_eq!(outbox.pop(), None);
    assert_eq!(outbox.bytes(), 0);
    for i in 0..10 {
        outbox.push("c", Bytes::from(vec![i; 50]));
    }
    assert!(
        outbox.bytes() <= 300 + RECORD_OVERHEAD,
        "{}",
        outbox.bytes()
    );
    assert_eq!(outbox.dropped(), 2 + 8);

    let mut strict = Outbox::new(100, SlowPolicy::Disconnect);
    assert_eq!(strict.push("c", Bytes::from(vec![0; 50])), Pushed::Queued);
    assert_eq!(
        strict.push("c", Bytes::from(vec![0; 50])),
        Pushed::Disconnect
    );
}

proptest! {
    /// Whatever is pushed and popped, the outbox stays within its limit
    /// plus one message and one gap, and what comes out is what went in,
    /// in order, with gaps counting exactly the messages dropped.
    #[test]
    fn an_outbox_never_loses_count(ops in proptest::collection::vec((any::<bool>(), 0..200usize), 1..200)) {
        let mut outbox = Outbox::new(500, SlowPolicy::DropWithGap);
        let (mut pushed, mut seen, mut gaps) = (0u64, 0u64, 0u64);
        let mut next_expected = 0u64;
        for (push, size) in ops {
            if push {
                let mut payload = pushed.to_le_bytes().to_vec();
                payload.resize(8 + size, 0);
                outbox.push("c", Bytes::from(payload));
                pushed += 1;
            } else {
                match outbox.pop() {
                    Some(Record::Message { payload, .. }) => {
                        let n = u64::from_le_bytes(payload[..8].try_into().unwrap());
                        prop_assert!(n >= next_expected);
                        next_expected = n + 1;
                        seen += 1;
                    }
                    Some(Record::Gap { dropped }) => gaps += dropped,
                    _ => {}
                }
            }
            prop_assert!(outbox.bytes() <= 500 + 208 + 2 * RECORD_OVERHEAD);
        }
        while let Some(record) = outbox.pop() {
            match record {
                Record::Message { .. } => seen += 1,
                Record::Gap { dropped } => gaps += dropped,
            }
        }
        prop_assert_eq!(seen + gaps, pushed);
        prop_assert_eq!(gaps, outbox.dropped());
    }
}
