//! neonplex's Protomux vectors, every error path, random round-trips and
//! the framer across arbitrary chunkings.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::{frame_header, DecodeError, FrameDecoder, FrameError, Message};
use crate::rpc::tests::{b, hex};
use crate::rpc::DecodeError as Field;

fn vectors() -> Vec<(String, Bytes)> {
    include_str!("vectors.txt")
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, bytes) = line.split_once('\t').expect("name and hex on every line");
            (name.to_string(), hex(bytes))
        })
        .collect()
}

fn open(channel: u64, protocol: &str, id: &'static [u8], handshake: &'static [u8]) -> Message {
    Message::Open {
        channel,
        protocol: protocol.into(),
        id: Bytes::from_static(id),
        handshake: Bytes::from_static(handshake),
    }
}

fn data(channel: u64, payload: &'static str) -> Message {
    Message::Data {
        channel,
        kind: 0,
        payload: b(payload),
    }
}

/// The structure of each vector, read by hand from the JSON's notes.
fn expected(name: &str) -> Message {
    match name {
        "open default" | "open reply from listener" => {
            open(1, "neonloom/protocol/v1", b"\x9a\x01", b"")
        }
        "data on channel 1" => data(1, "hello"),
        "open binary handshake" => open(2, "p/rpc", b"x", b"\x03cli"),
        "open utf8 handshake" => open(3, "p", b"y", "\x03hé".as_bytes()),
        "open empty id" => open(4, "noid", b"", b""),
        "close channel 2" => Message::Close { channel: 2 },
        "reject" => Message::Reject { channel: 1 },
        "batch in (constructed)" => {
            Message::Batch(vec![open(1, "b", b"\x02", b""), data(1, "a"), data(1, "b")])
        }
        "batch reply" => Message::Batch(vec![open(1, "b", b"\x02", b"")]),
        other => panic!("no expected structure for vector {other:?}"),
    }
}

#[test]
fn every_golden_vector_decodes_and_reencodes_byte_for_byte() {
    let all = vectors();
    assert_eq!(all.len(), 10, "vectors.txt holds the 10 protomux vectors");
    for (name, bytes) in &all {
        let want = expected(name);
        assert_eq!(Message::decode(bytes.clone()).as_ref(), Ok(&want), "{name}");
        assert_eq!(want.to_bytes(), bytes, "{name}");
        assert_eq!(want.encoded_len(), bytes.len(), "{name}");
    }
}

/// A prefix can only decode where the cut fell in a raw tail (handshake,
/// payload) or between batch items; anywhere else it is a typed error.
#[test]
fn every_prefix_of_a_vector_is_an_error_or_a_cut_tail() {
    let mut errors = 0;
    for (name, bytes) in vectors() {
        let full = expected(&name);
        for cut in 0..bytes.len() {
            let Ok(got) = Message::decode(bytes.slice(..cut)) else {
                errors += 1;
                continue;
            };
            let what = format!("{name} cut at {cut}: {got:?}");
            match (&full, &got) {
                (
                    Message::Open {
                        channel,
                        protocol,
                        id,
                        handshake,
                    },
                    Message::Open {
                        channel: c,
                        protocol: p,
                        id: i,
                        handshake: h,
                    },
                ) => {
                    assert_eq!((channel, protocol, id), (c, p, i), "{what}");
                    assert!(
                        handshake.starts_with(h) && handshake.len() > h.len(),
                        "{what}"
                    );
                }
                (
                    Message::Data {
                        channel, payload, ..
                    },
                    Message::Data {
                        channel: c,
                        payload: p,
                        ..
                    },
                ) => assert!(channel == c && payload.starts_with(p), "{what}"),
                (Message::Batch(all), Message::Batch(some)) => {
                    assert!(all.starts_with(some) && all.len() > some.len(), "{what}");
                }
                _ => panic!("{what}"),
            }
        }
    }
    // Fixed-shape vectors (CLOSE, REJECT, OPENs without handshake) fail at
    // every cut; most cuts of the others do too.
    assert!(errors > 80, "{errors} prefixes failed");
}

#[test]
fn fixed_shape_vectors_fail_at_every_cut() {
    for (name, bytes) in vectors() {
        let fixed = match expected(&name) {
            Message::Open { handshake, .. } => handshake.is_empty(),
            Message::Reject { .. } | Message::Close { .. } => true,
            _ => false,
        };
        if fixed {
            for cut in 0..bytes.len() {
                assert!(
                    Message::decode(bytes.slice(..cut)).is_err(),
                    "{name} cut at {cut}"
                );
            }
        }
    }
}

#[test]
fn malformed_messages_are_typed_errors() {
    let cases: &[(&str, DecodeError)] = &[
        ("", Field::Truncated { what: "channel" }.into()),
        (
            "00",
            Field::Truncated {
                what: "message type",
            }
            .into(),
        ),
        ("fd01", Field::Truncated { what: "channel" }.into()),
        (
            "0001",
            Field::Truncated {
                what: "OPEN channel",
            }
            .into(),
        ),
        (
            "00010105",
            Field::LengthOverflow {
                what: "OPEN protocol",
                len: 5,
                remaining: 0,
            }
            .into(),
        ),
        (
            "00010101ff00",
            Field::BadUtf8 {
                what: "OPEN protocol",
            }
            .into(),
        ),
        ("0001010170", Field::Truncated { what: "OPEN id" }.into()),
        (
            "0002",
            Field::Truncated {
                what: "REJECT channel",
            }
            .into(),
        ),
        (
            "00030100",
            Field::TrailingBytes {
                what: "CLOSE",
                len: 1,
            }
            .into(),
        ),
        (
            "0000",
            Field::Truncated {
                what: "BATCH channel",
            }
            .into(),
        ),
        (
            "00000000",
            Field::Truncated {
                what: "BATCH channel",
            }
            .into(),
        ),
        (
            "0000000500",
            Field::LengthOverflow {
                what: "BATCH item",
                len: 5,
                remaining: 1,
            }
            .into(),
        ),
        ("00000003000000", DecodeError::NestedBatch),
    ];
    for (input, want) in cases {
        assert_eq!(Message::decode(hex(input)).as_ref(), Err(want), "{input}");
    }
}

#[test]
fn unknown_types_are_kept_for_the_session_to_ignore() {
    let unknown = Message::decode(hex("0009beef")).unwrap();
    assert_eq!(
        unknown,
        Message::Unknown {
            kind: 9,
            body: hex("beef")
        }
    );
    let typed = Message::decode(hex("fd2c0105ff")).unwrap();
    assert_eq!(
        typed,
        Message::Data {
            channel: 300,
            kind: 5,
            payload: hex("ff")
        }
    );
    for message in [unknown, typed] {
        assert_eq!(Message::decode(message.to_bytes()), Ok(message));
    }
}

#[test]
fn batch_switches_channel_only_when_it_changes() {
    let batch = Message::Batch(vec![
        data(2, "a"),
        Message::Close { channel: 2 },
        data(3, "b"),
        data(3, "c"),
    ]);
    // first channel 2, item "a", switch to 0, CLOSE, switch to 3, "b", "c".
    let bytes = hex("00000202006100000203020003020062020063");
    assert_eq!(batch.to_bytes(), bytes);
    assert_eq!(Message::decode(bytes), Ok(batch));
    // A redundant switch decodes, and is dropped when re-encoded.
    let redundant = Message::decode(hex("00000100010200 61".replace(' ', "").as_str()));
    assert_eq!(redundant, Ok(Message::Batch(vec![data(1, "a")])));
    assert_eq!(Message::Batch(vec![]).to_bytes(), hex("000000"));
}

#[test]
fn a_nested_batch_is_encoded_inline() {
    let nested = Message::Batch(vec![
        data(1, "a"),
        Message::Batch(vec![data(1, "b"), Message::Batch(vec![])]),
    ]);
    let flat = Message::Batch(vec![data(1, "a"), data(1, "b")]);
    assert_eq!(nested.to_bytes(), flat.to_bytes());
    assert_eq!(nested.encoded_len(), flat.encoded_len());
    assert_eq!(Message::decode(nested.to_bytes()), Ok(flat));
}

#[test]
fn decoded_fields_are_slices_of_the_input() {
    let input = hex("000105046e6f6964029a01ffff");
    let Ok(Message::Open { id, handshake, .. }) = Message::decode(input.clone()) else {
        panic!("an OPEN");
    };
    let range = input.as_ptr_range();
    assert!(range.contains(&id.as_ptr()) && range.contains(&handshake.as_ptr()));
}

#[test]
fn frames_split_and_join_across_pushes() {
    let mut decoder = FrameDecoder::new(8);
    let mut stream = BytesMut::new();
    for message in [&b"abc"[..], b"", b"12345678"] {
        stream.extend_from_slice(&frame_header(message.len() as u32));
        stream.extend_from_slice(message);
    }
    let stream = stream.freeze();
    decoder.push(stream.slice(..5));
    assert_eq!(decoder.next(), Ok(None));
    decoder.push(stream.slice(5..));
    assert_eq!(decoder.next(), Ok(Some(b("abc"))));
    assert_eq!(
        decoder.next(),
        Ok(Some(Bytes::new())),
        "a zero-length frame"
    );
    assert_eq!(decoder.next(), Ok(Some(b("12345678"))), "exactly the limit");
    assert_eq!(decoder.next(), Ok(None));
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn an_oversized_frame_fails_on_its_prefix_and_stays_failed() {
    let mut decoder = FrameDecoder::new(8);
    decoder.push(Bytes::copy_from_slice(&frame_header(9)[..3]));
    assert_eq!(decoder.next(), Ok(None));
    decoder.push(Bytes::copy_from_slice(&frame_header(9)[3..]));
    let err = FrameError::TooLarge { len: 9, max: 8 };
    assert_eq!(decoder.next(), Err(err.clone()), "before any body arrives");
    decoder.push(b("123456789"));
    assert_eq!(decoder.next(), Err(err));
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn channel() -> impl Strategy<Value = u64> {
    prop_oneof![0..300u64, any::<u64>()]
}

/// Any message but a batch, as the wire can carry it: data on channel 1
/// or above, unknown control types from 4.
fn leaf() -> impl Strategy<Value = Message> {
    prop_oneof![
        (channel(), "[a-z/é]{0,12}", bytes(8), bytes(16)).prop_map(
            |(channel, protocol, id, handshake)| Message::Open {
                channel,
                protocol,
                id,
                handshake,
            }
        ),
        channel().prop_map(|channel| Message::Reject { channel }),
        channel().prop_map(|channel| Message::Close { channel }),
        (1..u64::MAX, channel(), bytes(32)).prop_map(|(channel, kind, payload)| Message::Data {
            channel,
            kind,
            payload
        }),
        (4..u64::MAX, bytes(16)).prop_map(|(kind, body)| Message::Unknown { kind, body }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        3 => leaf(),
        1 => prop::collection::vec(leaf(), 0..6).prop_map(Message::Batch),
    ]
}

proptest! {
    #[test]
    fn messages_round_trip(message in message()) {
        let bytes = message.to_bytes();
        prop_assert_eq!(bytes.len(), message.encoded_len());
        prop_assert_eq!(Message::decode(bytes), Ok(message));
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in bytes(64)) {
        if let Ok(message) = Message::decode(input) {
            prop_assert_eq!(Message::decode(message.to_bytes()), Ok(message));
        }
    }

    #[test]
    fn framing_survives_any_chunking(
        messages in prop::collection::vec(bytes(40), 0..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut stream = BytesMut::new();
        for message in &messages {
            stream.extend_from_slice(&frame_header(message.len() as u32));
            stream.extend_from_slice(message);
        }
        let stream = stream.freeze();
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cuts.push(stream.len());
        cuts.sort_unstable();
        let mut decoder = FrameDecoder::new(40);
        let (mut got, mut start) = (Vec::new(), 0);
        for end in cuts {
            decoder.push(stream.slice(start..end));
            start = end;
            while let Some(message) = decoder.next().unwrap() {
                got.push(message);
            }
            // Only what was pushed and not yet yielded is held.
            let yielded: usize = got.iter().map(|m| m.len() + 4).sum();
            prop_assert_eq!(decoder.buffered(), end - yielded);
        }
        prop_assert_eq!(got, messages);
    }
}
