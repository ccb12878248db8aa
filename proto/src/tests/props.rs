//! Property tests: frame round-trips, chunking independence, and the
//! model-based test of random operation interleavings.

use proptest::prelude::*;
use proptest::strategy::ValueTree;

use super::*;
use crate::sim::{check, Op, Scenario};
use crate::{Decoder, ErrorCode, Role, SettingsFrame, MAX_WINDOW};

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn stream_id() -> impl Strategy<Value = StreamId> {
    (1u32..=0x7fff_ffff).prop_map(StreamId::new)
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (stream_id(), any::<bool>(), bytes(3000)).prop_map(|(stream, end_stream, payload)| {
            Frame::Data {
                stream,
                end_stream,
                payload,
            }
        }),
        (stream_id(), bytes(255), bytes(255), bytes(512)).prop_map(
            |(stream, protocol, id, handshake)| Frame::Open {
                stream,
                protocol,
                id,
                handshake
            }
        ),
        (stream_id(), bytes(512))
            .prop_map(|(stream, handshake)| Frame::OpenAck { stream, handshake }),
        (stream_id(), any::<u32>()).prop_map(|(stream, c)| Frame::RstStream {
            stream,
            code: ErrorCode::new(c)
        }),
        (
            proptest::option::of(any::<u32>()),
            proptest::option::of(crate::MIN_INITIAL_WINDOW..=MAX_WINDOW),
            proptest::option::of(crate::MIN_MAX_FRAME_SIZE..=crate::MAX_MAX_FRAME_SIZE),
        )
            .prop_map(|(a, b, c)| Frame::Settings(SettingsFrame {
                max_concurrent_streams: a,
                initial_window_size: b,
                max_frame_size: c,
            })),
        Just(Frame::SettingsAck),
        (any::<bool>(), any::<[u8; 8]>()).prop_map(|(ack, payload)| Frame::Ping { ack, payload }),
        (stream_id(), any::<u32>(), bytes(64)).prop_map(|(last_stream, c, debug)| Frame::GoAway {
            last_stream,
            code: ErrorCode::new(c),
            debug,
        }),
        (0u32..=0x7fff_ffff, 0u32..=MAX_WINDOW).prop_map(|(s, increment)| Frame::WindowUpdate {
            stream: StreamId::new(s),
            increment,
        }),
        (stream_id(), any::<u32>()).prop_map(|(stream, c)| Frame::StopSending {
            stream,
            code: ErrorCode::new(c)
        }),
        // Types 0x0-0x8 and 0xb are defined.
        (9u8..=255)
            .prop_filter("a defined type", |ty| *ty != 0xb)
            .prop_flat_map(|ty| (Just(ty), stream_id()))
            .prop_map(|(ty, stream)| Frame::Unknown { ty, stream }),
    ]
}

/// Decodes `wire` delivered in pieces whose sizes cycle through `cuts`.
fn decode_in_pieces(wire: &Bytes, cuts: &[usize]) -> Result<Vec<Frame>, crate::ProtocolError> {
    let mut decoder = Decoder::new(crate::MAX_MAX_FRAME_SIZE);
    let mut frames = Vec::new();
    let mut rest = wire.clone();
    let mut k = 0;
    while !rest.is_empty() {
        let n = cuts[k % cuts.len()].clamp(1, rest.len());
        k += 1;
        let mut piece = rest.split_to(n);
        while let Some(f) = decoder.decode(&mut piece)? {
            frames.push(f);
        }
    }
    Ok(frames)
}

fn op() -> impl Strategy<Value = Op> {
    let side = prop_oneof![Just(Role::Client), Just(Role::Server)];
    prop_oneof![
        3 => side.clone().prop_map(Op::Open),
        3 => (side.clone(), any::<u8>()).prop_map(|(side, pick)| Op::Accept { side, pick }),
        1 => (side.clone(), any::<u8>()).prop_map(|(side, pick)| Op::Refuse { side, pick }),
        6 => (side.clone(), any::<u8>(), 0u16..=u16::MAX)
            .prop_map(|(side, pick, len)| Op::Write { side, pick, len }),
        5 => (side.clone(), any::<u8>(), 0u16..=u16::MAX, any::<bool>())
            .prop_map(|(side, pick, max, chunk)| Op::Read { side, pick, max, chunk }),
        2 => (side.clone(), any::<u8>()).prop_map(|(side, pick)| Op::Finish { side, pick }),
        1 => (side.clone(), any::<u8>()).prop_map(|(side, pick)| Op::Reset { side, pick }),
        1 => (side.clone(), any::<u8>()).prop_map(|(side, pick)| Op::Stop { side, pick }),
        1 => (side.clone(), any::<u8>(), any::<u8>())
            .prop_map(|(side, pick, priority)| Op::Priority { side, pick, priority }),
        1 => side.prop_map(Op::GoAway),
        4 => Just(Op::Step),
        2 => Just(Op::Drive),
        1 => (0u16..2000).prop_map(|millis| Op::Tick { millis }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop_oneof![Just(65_536u32), 65_536u32..300_000],
        prop_oneof![Just(65_536u32), 65_536u32..300_000],
        0u8..30,
        prop_oneof![Just(0u16), 1u16..64, 1000u16..5000],
        any::<u64>(),
        proptest::collection::vec(op(), 0..120),
    )
        .prop_map(
            |(client_window, server_window, latency_ms, max_chunk, seed, ops)| Scenario {
                client_window,
                server_window,
                latency_ms,
                max_chunk,
                seed,
                ops,
            },
        )
}

proptest! {
    #[test]
    fn every_frame_round_trips(f in frame()) {
        let mut wire = BytesMut::new();
        f.encode(&mut wire);
        prop_assert_eq!(wire.len(), crate::HEADER_LEN + f.payload_len());
        let frames = decode_in_pieces(&wire.freeze(), &[usize::MAX]).unwrap();
        prop_assert_eq!(frames, vec![f]);
    }

    #[test]
    fn chunking_does_not_change_frames(
        frames in proptest::collection::vec(frame(), 1..12),
        cuts in proptest::collection::vec(1usize..40, 1..8),
    ) {
        let mut wire = BytesMut::new();
        for f in &frames {
            f.encode(&mut wire);
        }
        let wire = wire.freeze();
        let whole = decode_in_pieces(&wire, &[usize::MAX]).unwrap();
        prop_assert_eq!(&whole, &frames);
        prop_assert_eq!(decode_in_pieces(&wire, &cuts).unwrap(), whole);
        prop_assert_eq!(decode_in_pieces(&wire, &[1]).unwrap(), frames);
    }

    /// Sessions fed the same bytes in different pieces produce the same
    /// events and the same output.
    #[test]
    fn chunking_does_not_change_session_events(
        frames in proptest::collection::vec(frame(), 0..16),
        cuts in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let wire = raw_peer(&frames);
        let run = |cuts: &[usize]| {
            let t0 = crate::sim::origin();
            let mut s = Session::server(Config::default(), t0).unwrap();
            let mut rest = wire.clone();
            let mut k = 0;
            while !rest.is_empty() {
                let n = cuts[k % cuts.len()].clamp(1, rest.len());
                k += 1;
                s.handle_input(t0, rest.split_to(n));
            }
            (drain(&mut s), sent_frames(&mut s, t0))
        };
        prop_assert_eq!(run(&[usize::MAX]), run(&cuts));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn model_random_interleavings_keep_invariants(s in scenario()) {
        if let Err(e) = check(&s, crate::sim::origin()) {
            return Err(TestCaseError::fail(e));
        }
    }
}

#[test]
fn model_generator_moves_data_and_resets() {
    // Guards the generator: a model test that never moves data proves nothing.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut bytes, mut resets) = (0, 0);
    for _ in 0..64 {
        let s = scenario().new_tree(&mut runner).unwrap().current();
        let summary = check(&s, crate::sim::origin()).unwrap();
        bytes += summary.bytes;
        resets += summary.resets;
    }
    assert!(bytes > 1 << 20, "only {bytes} bytes moved");
    assert!(resets > 10, "only {resets} resets");
}
