//! The hex test vectors at the end of `proto/SPEC.md`: each decodes to the
//! frame it names and that frame encodes back to the same bytes.

use super::*;
use crate::{ErrorCode, SettingsFrame};

const SPEC: &str = include_str!("../../SPEC.md");

/// `(name, bytes)` for every line of the spec's vector block.
fn spec_vectors() -> Vec<(String, Vec<u8>)> {
    spec_block(1, false)
        .into_iter()
        .map(|(name, _, bytes)| (name, bytes))
        .collect()
}

/// `(name, expected, bytes)` for every line of the `nth` text block of §14;
/// `expected` is the second word when `with_expected`.
fn spec_block(nth: usize, with_expected: bool) -> Vec<(String, String, Vec<u8>)> {
    let start = SPEC.find("## 14. Test vectors").expect("vector section");
    let block = SPEC[start..]
        .split("```text")
        .nth(nth)
        .expect("vector block");
    let block = block.split("```").next().expect("block end");
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next().expect("name").to_string();
            let expected = match with_expected {
                true => words.next().expect("expectation").to_string(),
                false => String::new(),
            };
            let bytes = words
                .map(|h| u8::from_str_radix(h, 16).expect("hex"))
                .collect();
            (name, expected, bytes)
        })
        .collect()
}

/// What the receiver vectors decode to.
fn received(name: &str) -> Frame {
    let s = StreamId::new;
    match name {
        "data-reserved-bit" => Frame::Data {
            stream: s(1),
            end_stream: false,
            payload: Bytes::from_static(b"a"),
        },
        "window-update-reserved-bit" => Frame::WindowUpdate {
            stream: s(1),
            increment: 32_768,
        },
        "goaway-reserved-bit" => Frame::GoAway {
            last_stream: s(7),
            code: ErrorCode::NO_ERROR,
            debug: Bytes::new(),
        },
        "unknown-type" => Frame::Unknown {
            ty: 0x42,
            stream: s(5),
        },
        other => panic!("SPEC.md has a receiver vector this test does not know: {other}"),
    }
}

#[test]
fn receiver_vectors_decode_to_their_frame_or_error() {
    let vectors = spec_block(2, true);
    assert_eq!(vectors.len(), 13, "every vector is checked");
    for (name, expected, bytes) in vectors {
        let mut input = Bytes::from(bytes);
        let got = crate::Decoder::new(crate::MIN_MAX_FRAME_SIZE).decode(&mut input);
        match expected.as_str() {
            "frame" => assert_eq!(got, Ok(Some(received(&name))), "{name}"),
            code => {
                let error = got.expect_err(&name);
                assert!(error.is_connection_error(), "{name}");
                assert_eq!(error.code().to_string(), code, "{name}: {error}");
            }
        }
    }
}

fn expected(name: &str) -> Frame {
    let s = StreamId::new;
    let b = Bytes::from_static;
    match name {
        "data" => Frame::Data {
            stream: s(1),
            end_stream: false,
            payload: b(b"hello"),
        },
        "data-end-stream" => Frame::Data {
            stream: s(3),
            end_stream: true,
            payload: Bytes::new(),
        },
        "open" => Frame::Open {
            stream: s(1),
            protocol: b(b"echo"),
            id: b(b"c1"),
            handshake: b(b"v1"),
        },
        "open-anonymous" => Frame::Open {
            stream: s(2),
            protocol: Bytes::new(),
            id: Bytes::new(),
            handshake: Bytes::new(),
        },
        "open-ack" => Frame::OpenAck {
            stream: s(1),
            handshake: b(b"ok"),
        },
        "rst-stream-cancel" => Frame::RstStream {
            stream: s(5),
            code: ErrorCode::CANCEL,
        },
        "settings" => Frame::Settings(SettingsFrame {
            max_concurrent_streams: Some(100),
            initial_window_size: Some(65_536),
            max_frame_size: Some(16_384),
        }),
        "settings-ack" => Frame::SettingsAck,
        "ping" => Frame::Ping {
            ack: false,
            payload: [0, 0, 0, 0, 0, 0, 0, 7],
        },
        "ping-ack" => Frame::Ping {
            ack: true,
            payload: [0, 0, 0, 0, 0, 0, 0, 7],
        },
        "goaway" => Frame::GoAway {
            last_stream: s(7),
            code: ErrorCode::ENHANCE_YOUR_CALM,
            debug: b(b"calm"),
        },
        "window-update-connection" => Frame::WindowUpdate {
            stream: s(0),
            increment: 983_040,
        },
        "window-update-stream" => Frame::WindowUpdate {
            stream: s(1),
            increment: 32_768,
        },
        "stop-sending-cancel" => Frame::StopSending {
            stream: s(5),
            code: ErrorCode::CANCEL,
        },
        other => panic!("SPEC.md has a vector this test does not know: {other}"),
    }
}

#[test]
fn spec_vectors_decode_and_encode() {
    let vectors = spec_vectors();
    assert_eq!(vectors.len(), 15, "every vector is checked");
    for (name, bytes) in vectors {
        if name == "preface" {
            assert_eq!(bytes, crate::PREFACE);
            continue;
        }
        let frame = expected(&name);
        let mut input = Bytes::from(bytes.clone());
        let mut decoder = crate::Decoder::new(crate::MIN_MAX_FRAME_SIZE);
        assert_eq!(
            decoder.decode(&mut input),
            Ok(Some(frame.clone())),
            "{name}"
        );
        assert!(input.is_empty(), "{name}: trailing bytes");
        let mut wire = BytesMut::new();
        frame.encode(&mut wire);
        assert_eq!(wire.to_vec(), bytes, "{name}");
    }
}

#[test]
fn payloads_are_zero_copy_slices_of_the_input() {
    let (_, bytes) = spec_vectors()
        .into_iter()
        .find(|(n, _)| n == "data")
        .unwrap();
    let input = Bytes::from(bytes);
    let range = input.as_ptr_range();
    let mut rest = input.clone();
    let Some(Frame::Data { payload, .. }) = crate::Decoder::new(16_384).decode(&mut rest).unwrap()
    else {
        panic!("not DATA");
    };
    assert!(range.contains(&payload.as_ptr()), "the payload was copied");
}

#[test]
fn a_payload_after_a_separate_header_is_not_copied() {
    let mut wire = BytesMut::new();
    Frame::Data {
        stream: StreamId::new(1),
        end_stream: false,
        payload: Bytes::from(vec![7; 1000]),
    }
    .encode(&mut wire);
    let mut wire = wire.freeze();
    let mut decoder = crate::Decoder::new(16_384);
    let mut header = wire.split_to(crate::HEADER_LEN);
    assert_eq!(decoder.decode(&mut header), Ok(None));
    let range = wire.as_ptr_range();
    let Some(Frame::Data { payload, .. }) = decoder.decode(&mut wire).unwrap() else {
        panic!("not DATA");
    };
    assert_eq!(payload.len(), 1000);
    assert!(range.contains(&payload.as_ptr()), "the payload was copied");
    assert_eq!(decoder.buffered(), 0);
}
