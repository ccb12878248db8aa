use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn decode_all(wire: &[u8]) -> Result<Vec<Message>, DecodeError> {
    let mut decoder = Decoder::new();
    let mut input = wire;
    let mut out = Vec::new();
    while let Some(m) = decoder.decode(&mut input)? {
        out.push(m);
    }
    Ok(out)
}

#[test]
fn device_ids_match_syncthing_s_vectors() {
    // docs/dev/device-ids.rst: the old 52-character form and its checked form.
    let old: DeviceId = "MFZWI3DBONSGYYLTMRWGC43ENRQXGZDMMFZWI3DBONSGYYLTMRWA"
        .parse()
        .unwrap();
    let checked = "MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD";
    assert_eq!(old.to_string(), checked);
    assert_eq!(checked.parse::<DeviceId>().unwrap(), old);
    // lib/protocol/deviceid_test.go.
    let id = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2";
    assert_eq!(id.parse::<DeviceId>().unwrap().to_string(), id);
}

#[test]
fn device_id_parsing_forgives_case_look_alikes_and_separators() {
    let id: DeviceId = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2"
        .parse()
        .unwrap();
    // 1 for I, 0 for O, spaces and `=` instead of dashes.
    let sloppy = "p56i0i7 mzjnu2y=iqgdrey-dm2mgt1-mgl3bxn-pq6w5bm-tbbz4tj-xzwicq2";
    assert_eq!(sloppy.parse::<DeviceId>().unwrap(), id);
}

#[test]
fn bad_device_ids_are_typed_errors() {
    let err = |s: &str| s.parse::<DeviceId>().unwrap_err();
    // One character changed: its group's check fails.
    assert_eq!(
        err("P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ3"),
        DeviceIdError::Check { group: 4 }
    );
    assert_eq!(
        err("Q56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2"),
        DeviceIdError::Check { group: 1 }
    );
    assert_eq!(err("P56IOI7-MZJNU2Y"), DeviceIdError::Length(14));
    assert_eq!(err(""), DeviceIdError::Length(0));
    assert_eq!(
        err("P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWIC!2"),
        DeviceIdError::Character('!')
    );
    assert_eq!(err("é"), DeviceIdError::Character('é'));
    // 52 characters whose spare bits are not zero.
    assert!(matches!(
        err("MFZWI3DBONSGYYLTMRWGC43ENRQXGZDMMFZWI3DBONSGYYLTMRWB"),
        DeviceIdError::Character(_)
    ));
}

#[test]
fn frames_match_the_documented_bytes() {
    let join = Message::JoinRelayRequest {
        token: String::new(),
    };
    assert_eq!(
        join.to_bytes().unwrap()[..],
        hex("9e79bc40 00000002 00000004 00000000")
    );
    assert_eq!(
        Message::Ping.to_bytes().unwrap()[..],
        hex("9e79bc40 00000000 00000000")
    );
    let id = DeviceId([0xab; 32]);
    let connect = Message::ConnectRequest { id: id.into() }
        .to_bytes()
        .unwrap();
    let mut expected = hex("9e79bc40 00000005 00000024 00000020");
    expected.extend_from_slice(&[0xab; 32]);
    assert_eq!(connect[..], expected);
    let success = hex("9e79bc40 00000004 00000010 00000000 00000007 73756363657373 00");
    assert_eq!(success.len(), 28);
    let ok = Message::Response(Response {
        code: code::SUCCESS,
        message: "success".into(),
    });
    assert_eq!(ok.to_bytes().unwrap()[..], success);
    assert_eq!(decode_all(&success).unwrap(), [ok]);
}

#[test]
fn bad_headers_are_typed_errors_that_stick() {
    let err = |wire: Vec<u8>| decode_all(&wire).unwrap_err();
    assert_eq!(
        err(hex("16030100 00000000 00000000")),
        DecodeError::BadMagic(0x1603_0100)
    );
    assert_eq!(
        err(hex("9e79bc40 00000000 00000401")),
        DecodeError::BadLength(1025)
    );
    assert_eq!(
        err(hex("9e79bc40 00000000 ffffffff")),
        DecodeError::BadLength(-1)
    );
    assert_eq!(
        err(hex("9e79bc40 00000008 00000000")),
        DecodeError::UnknownType(8)
    );
    // A bad header fails before its payload is waited for, and stays failed.
    let mut decoder = Decoder::new();
    let wire = hex("9e79bc40 00000000 00000401");
    let mut input = &wire[..];
    assert!(decoder.decode(&mut input).is_err());
    let ping = Message::Ping.to_bytes().unwrap();
    let mut input = &ping[..];
    assert_eq!(
        decoder.decode(&mut input),
        Err(DecodeError::BadLength(1025))
    );
}

#[test]
fn bad_payloads_are_typed_errors() {
    let err = |wire: Vec<u8>| decode_all(&wire).unwrap_err();
    // ConnectRequest with a 33-byte id.
    let mut long = hex("9e79bc40 00000005 00000028 00000021");
    long.extend_from_slice(&[0; 36]);
    assert_eq!(err(long), DecodeError::OpaqueTooLong(33));
    // A key of 8 bytes in a 4-byte payload.
    assert_eq!(
        err(hex("9e79bc40 00000003 00000004 00000008")),
        DecodeError::Truncated
    );
    // A length near u32::MAX does not overflow.
    assert_eq!(
        err(hex("9e79bc40 00000002 00000004 ffffffff")),
        DecodeError::Truncated
    );
    assert_eq!(
        err(hex(
            "9e79bc40 00000004 0000000c 00000000 00000002 ff fe 0000"
        )),
        DecodeError::NotUtf8
    );
    let mut invitation = hex("9e79bc40 00000006 00000014 00000000 00000000 00000000");
    invitation.extend_from_slice(&hex("00010000 00000001"));
    assert_eq!(err(invitation), DecodeError::BadPort(65536));
}

#[test]
fn the_decoder_holds_at_most_one_frame() {
    let mut wire = hex("9e79bc40 00000002 00000400 000003fc");
    wire.extend_from_slice(&[b'a'; 1020]);
    wire.extend_from_slice(&Message::Pong.to_bytes().unwrap());
    let mut decoder = Decoder::new();
    let mut input = &wire[..];
    let first = decoder.decode(&mut input).unwrap();
    assert!(matches!(first, Some(Message::JoinRelayRequest { token }) if token.len() == 1020));
    assert_eq!(
        input.len(),
        HEADER_LEN,
        "the next frame was left in the input"
    );
    assert_eq!(decoder.decode(&mut input).unwrap(), Some(Message::Pong));

    let mut decoder = Decoder::new();
    for chunk in wire[..1000].chunks(7) {
        let mut input = chunk;
        assert_eq!(decoder.decode(&mut input).unwrap(), None);
        assert!(decoder.buffered() <= HEADER_LEN + MAX_PAYLOAD_LEN);
    }
}

#[test]
fn encoding_an_oversized_string_is_a_local_error() {
    let join = Message::JoinRelayRequest {
        token: "x".repeat(1021),
    };
    assert_eq!(join.to_bytes(), Err(EncodeError::TooLong(1028)));
    assert_eq!(
        Opaque::new(Bytes::from(vec![0; 33])),
        Err(EncodeError::OpaqueTooLong(33))
    );
}

#[test]
fn invitations_name_the_session_address() {
    let relay = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let invitation = |address: &[u8]| SessionInvitation {
        from: DeviceId([1; 32]).into(),
        key: [2; 32].into(),
        address: Opaque::new(Bytes::copy_from_slice(address)).unwrap(),
        port: 22067,
        server_socket: true,
    };
    // Go sends IPv4 as IPv4-mapped IPv6.
    let mapped = hex("00000000 00000000 0000ffff 7f000001");
    assert_eq!(invitation(&mapped).ip(relay), IpAddr::from([127, 0, 0, 1]));
    assert_eq!(
        invitation(&[10, 0, 0, 1]).ip(relay),
        IpAddr::from([10, 0, 0, 1])
    );
    assert_eq!(invitation(&[]).ip(relay), relay);
    assert_eq!(invitation(&[0; 4]).ip(relay), relay);
    assert_eq!(invitation(&[0; 16]).ip(relay), relay);
    assert_eq!(invitation(&[1, 2, 3]).ip(relay), relay);
    assert_eq!(invitation(&[]).from.device_id(), Some(DeviceId([1; 32])));
}

fn response(code: i32) -> Vec<u8> {
    let message = "x".to_string();
    Message::Response(Response { code, message })
        .to_bytes()
        .unwrap()
        .to_vec()
}

#[test]
fn a_join_reads_the_response_with_the_peer_s_ready_before_or_after() {
    for (before, after) in [(false, false), (true, false), (false, true)] {
        let mut wire = Vec::new();
        if before {
            wire.push(READY);
        }
        wire.extend_from_slice(&response(code::SUCCESS));
        if after {
            wire.push(READY);
        }
        // Byte by byte and whole.
        for chunk in [1, wire.len()] {
            let mut join = JoinReader::new();
            for piece in wire.chunks(chunk) {
                join.handle_input(piece).unwrap();
            }
            assert_eq!(join.response().map(|r| r.code), Some(code::SUCCESS));
            assert_eq!(join.peer_ready(), before || after);
        }
    }
    let mut join = JoinReader::new();
    join.handle_input(&response(code::ALREADY_CONNECTED))
        .unwrap();
    assert_eq!(join.response().map(|r| r.code), Some(2));
}

#[test]
fn a_join_refuses_anything_but_ready_and_the_response() {
    let mut wire = response(code::SUCCESS);
    wire.extend_from_slice(&[READY, b'd']);
    assert_eq!(
        JoinReader::new().handle_input(&wire),
        Err(JoinError::UnexpectedByte(b'd'))
    );
    let mut wire = vec![READY];
    wire.extend_from_slice(&response(code::SUCCESS));
    wire.push(READY);
    assert_eq!(
        JoinReader::new().handle_input(&wire),
        Err(JoinError::UnexpectedByte(READY))
    );
    // Peer data before the Response (a peer not using READY) is refused
    // at its first byte.
    assert_eq!(
        JoinReader::new().handle_input(b"EARLYDATA"),
        Err(JoinError::UnexpectedByte(b'E'))
    );
    assert_eq!(
        JoinReader::new().handle_input(&Message::Ping.to_bytes().unwrap()),
        Err(JoinError::Decode(DecodeError::Unexpected(
            MessageType::Ping
        )))
    );
}

fn opaque(max: usize) -> impl Strategy<Value = Opaque> {
    proptest::collection::vec(any::<u8>(), 0..=max)
        .prop_map(|v| Opaque::new(Bytes::from(v)).unwrap())
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        Just(Message::Ping),
        Just(Message::Pong),
        Just(Message::RelayFull),
        ".{0,40}".prop_map(|token| Message::JoinRelayRequest { token }),
        opaque(32).prop_map(|key| Message::JoinSessionRequest { key }),
        (any::<i32>(), ".{0,40}")
            .prop_map(|(code, message)| Message::Response(Response { code, message })),
        opaque(32).prop_map(|id| Message::ConnectRequest { id }),
        (
            opaque(32),
            opaque(32),
            opaque(16),
            any::<u16>(),
            any::<bool>()
        )
            .prop_map(|(from, key, address, port, server_socket)| {
                Message::SessionInvitation(SessionInvitation {
                    from,
                    key,
                    address,
                    port,
                    server_socket,
                })
            }),
    ]
}

proptest! {
    #[test]
    fn messages_round_trip_however_the_stream_is_cut(
        messages in proptest::collection::vec(message(), 0..8),
        chunk in 1usize..64,
    ) {
        let wire: Vec<u8> = messages.iter().flat_map(|m| m.to_bytes().unwrap()).collect();
        let mut decoder = Decoder::new();
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            let mut input = piece;
            while let Some(m) = decoder.decode(&mut input).unwrap() {
                got.push(m);
            }
            prop_assert!(input.is_empty());
        }
        prop_assert_eq!(got, messages);
        prop_assert!(decoder.is_idle());
    }

    #[test]
    fn device_ids_round_trip(bytes in any::<[u8; 32]>()) {
        let id = DeviceId(bytes);
        let text = id.to_string();
        prop_assert_eq!(text.len(), 63);
        prop_assert_eq!(text.parse::<DeviceId>().unwrap(), id);
        prop_assert_eq!(text.to_lowercase().replace('-', "").parse::<DeviceId>().unwrap(), id);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        wire in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut decoder = Decoder::new();
        let mut input = &wire[..];
        while let Ok(Some(_)) = decoder.decode(&mut input) {}
        prop_assert!(decoder.buffered() <= HEADER_LEN + MAX_PAYLOAD_LEN);
        let _ = JoinReader::new().handle_input(&wire);
    }
}
