use proptest::prelude::*;

use super::*;

fn tail(start: TailStart) -> Request {
    Request::Tail {
        pool: "demo".into(),
        query: TailQuery {
            start,
            follow: true,
            max: Some(3),
            timeout_ms: Some(250),
            tags: vec!["a".into(), "b c".into()],
        },
    }
}

#[test]
fn requests_round_trip() {
    let requests = [
        Request::Create {
            pool: "p".into(),
            size: 1 << 20,
            index_slots: Some(64),
        },
        Request::Info { pool: "p".into() },
        Request::Describe { pool: "p".into() },
        Request::List,
        Request::Delete { pool: "p".into() },
        Request::Check { pool: "p".into() },
        Request::Append {
            pool: "p".into(),
            durability: Durability::Flush,
        },
        Request::Get {
            pool: "p".into(),
            seq: 7,
        },
        tail(TailStart::End),
        tail(TailStart::Oldest),
        tail(TailStart::Seq(9)),
        tail(TailStart::Last(2)),
    ];
    for request in requests {
        assert_eq!(Request::decode(&request.to_bytes()), Ok(request.clone()));
    }
}

#[test]
fn bad_requests_are_typed_errors() {
    assert_eq!(Request::decode(&[]), Err(WireError::Truncated("operation")));
    assert_eq!(Request::decode(&[99]), Err(WireError::BadOperation(99)));
    let mut extra = Request::List.to_bytes().to_vec();
    extra.push(0);
    assert_eq!(Request::decode(&extra), Err(WireError::Trailing(1)));
    for (name, why) in [
        ("", "empty"),
        ("..", "a directory reference"),
        ("a/b", "contains a path separator"),
        ("a\0b", "contains a NUL byte"),
    ] {
        let bytes = Request::Info { pool: name.into() }.to_bytes();
        assert_eq!(Request::decode(&bytes), Err(WireError::BadName(why)));
    }
    assert!(check_name(&"x".repeat(MAX_NAME)).is_ok());
    assert!(check_name(&"x".repeat(MAX_NAME + 1)).is_err());
    let mut bad_durability = Request::Append {
        pool: "p".into(),
        durability: Durability::Fast,
    }
    .to_bytes()
    .to_vec();
    *bad_durability.last_mut().unwrap() = 7;
    assert_eq!(
        Request::decode(&bad_durability),
        Err(WireError::BadValue("durability"))
    );
}

#[test]
fn records_are_bounded_and_wait_for_all_their_bytes() {
    let mut buf = Vec::new();
    Record::Message(Message {
        seq: 1,
        time_ns: 2,
        tags: vec![],
        data: vec![0; 100].into(),
    })
    .encode_into(&mut buf);
    assert_eq!(
        Record::decode(&buf, 50),
        Err(WireError::TooLarge { len: 119, max: 50 })
    );
    for cut in 0..buf.len() {
        assert_eq!(Record::decode(&buf[..cut], 1024), Ok(None), "{cut}");
    }
    assert_eq!(
        Record::decode(&[0, 0, 0, 0], 10),
        Err(WireError::Truncated("record kind"))
    );
    assert_eq!(
        Record::decode(&[1, 0, 0, 0, 99], 10),
        Err(WireError::BadKind(99))
    );
    // A batch claiming more messages than its bytes could hold.
    let mut lie = Vec::new();
    Record::Batch(vec![]).encode_into(&mut lie);
    lie[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        Record::decode(&lie, 1024),
        Err(WireError::Truncated("batch"))
    );
    // An error kind from a newer server reads as Internal.
    let mut newer = Vec::new();
    Record::Error(ErrorRecord::new(ErrorKind::Busy, "m")).encode_into(&mut newer);
    newer[5] = 200;
    let (record, _) = Record::decode(&newer, 1024).unwrap().unwrap();
    assert!(matches!(record, Record::Error(e) if e.kind == ErrorKind::Internal));
}

fn arb_tags() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec("[a-z ]{0,8}", 0..4)
}

fn arb_record() -> impl Strategy<Value = Record> {
    prop_oneof![
        (
            any::<u64>(),
            any::<u64>(),
            arb_tags(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(seq, time_ns, tags, data)| Record::Message(Message {
                seq,
                time_ns,
                tags,
                data: data.into()
            })),
        (any::<u64>(), any::<u32>(), any::<u64>()).prop_map(|(first, count, time_ns)| {
            Record::Receipt {
                first,
                count,
                time_ns,
            }
        }),
        (any::<u64>(), any::<u64>()).prop_map(|(first, next)| Record::Gap { first, next }),
        (
            "[a-z]{0,20}",
            proptest::option::of("[a-z]{0,5}"),
            proptest::option::of(any::<u64>())
        )
            .prop_map(|(message, hint, seq)| Record::Error(ErrorRecord {
                kind: ErrorKind::NotFound,
                message,
                hint,
                path: Some("/p".into()),
                seq
            })),
        Just(Record::Done),
        Just(Record::TimedOut),
        proptest::collection::vec(
            (arb_tags(), proptest::collection::vec(any::<u8>(), 0..32)),
            0..4
        )
        .prop_map(|m| Record::Batch(m.into_iter().map(|(t, d)| (t, d.into())).collect())),
        (
            "[a-z]{1,8}",
            any::<u64>(),
            any::<u32>(),
            any::<bool>(),
            proptest::option::of(any::<u64>())
        )
            .prop_map(
                |(name, n, waiters, sync_failed, damaged)| Record::Pool(PoolInfo {
                    name,
                    path: "/x".into(),
                    file_len: n,
                    ring_len: n / 2,
                    index_slots: 3,
                    max_frame: 4,
                    messages: 5,
                    oldest: 6,
                    newest: 7,
                    synced: 8,
                    waiters,
                    sync_failed,
                    damaged
                })
            ),
    ]
}

proptest! {
    #[test]
    fn records_round_trip_back_to_back(records in proptest::collection::vec(arb_record(), 0..6)) {
        let mut buf = Vec::new();
        for r in &records {
            r.encode_into(&mut buf);
        }
        let mut at = 0;
        let mut decoded = Vec::new();
        while let Some((r, used)) = Record::decode(&buf[at..], 1 << 20).unwrap() {
            decoded.push(r);
            at += used;
        }
        prop_assert_eq!(at, buf.len());
        prop_assert_eq!(decoded, records);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Request::decode(&bytes);
        let _ = Record::decode(&bytes, 1 << 10);
    }
}

#[test]
fn tags_are_checked_against_the_wire_limits() {
    assert_eq!(check_tags(&["a".repeat(MAX_TAG_LEN)]), Ok(()));
    assert_eq!(
        check_tags(&["a".repeat(MAX_TAG_LEN + 1)]),
        Err(WireError::TagTooLong(MAX_TAG_LEN + 1))
    );
    assert_eq!(check_tags(&vec![String::new(); MAX_TAGS]), Ok(()));
    assert_eq!(
        check_tags(&vec![String::new(); MAX_TAGS + 1]),
        Err(WireError::TooManyTags)
    );
}

#[test]
fn an_overlong_string_is_cut_at_a_character_not_into_bad_utf8() {
    // 'é' is two bytes: 32,768 of them straddle the u16 limit mid-character.
    let long = "é".repeat(32_768);
    let out = Request::Info { pool: long }.to_bytes();
    let len = usize::from(u16::from_le_bytes([out[1], out[2]]));
    assert_eq!(len, MAX_TAG_LEN - 1);
    assert!(std::str::from_utf8(&out[3..3 + len]).is_ok());
}
