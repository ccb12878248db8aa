//! Malformed input is a typed error, never a panic; boundaries of the
//! varint forms.

use bytes::{Bytes, BytesMut};

use super::{b, hex};
use crate::rpc::{
    decode_uint, derive_id, derive_id_parts, put_uint, uint_len, Body, DecodeError, EncodeError,
    Envelope, Frame, IdPart, Method, Scan,
};

const FRAMES: [&str; 5] = [
    "000100000000026b3100",
    "0005000000030102702f000000000000",
    "020600000000",
    "0101000000000001010200000076310000000000",
    "01080000000300",
];

const ENVELOPES: [&str; 4] = [
    "01010200000076310000000000",
    "0100000000000000000000",
    "01010100000076010300000070 2f31",
    "0006004261644172670700626164206b6579",
];

#[test]
fn every_prefix_of_a_frame_header_is_truncated() {
    for full in FRAMES.map(hex) {
        // REQ and CANCEL headers are 6 bytes, RES 7; past that a REQ or
        // RES prefix is a shorter body or payload, checked below.
        let header = if full[0] == 1 { 7 } else { 6 };
        for len in 0..header.min(full.len()) {
            assert!(
                matches!(
                    Frame::decode(full.slice(..len)),
                    Err(DecodeError::Truncated { .. })
                ),
                "{full:?}[..{len}]"
            );
        }
        assert!(Frame::decode(full).is_ok());
    }
}

#[test]
fn every_prefix_of_an_envelope_fails() {
    for full in ENVELOPES.map(|h| hex(&h.replace(' ', ""))) {
        for len in 0..full.len() {
            let error =
                Envelope::decode(full.slice(..len)).expect_err("a prefix is not an envelope");
            assert!(
                matches!(
                    error,
                    DecodeError::Truncated { .. } | DecodeError::LengthOverflow { .. }
                ),
                "{full:?}[..{len}]: {error}"
            );
        }
        assert!(Envelope::decode(full).is_ok());
    }
}

/// A body may end before its caps flag (neonplex's decoder allows it);
/// every other prefix is an error.
#[test]
fn every_prefix_of_a_body_fails_unless_only_the_caps_flag_is_missing() {
    let bodies = [
        (Method::GET, "026b310103746f6b"),
        (Method::PUT, "026b3102763100"),
        (Method::APPEND, "02763100"),
        (Method::SCAN, "0102702f010000000000"),
        (Method::SCAN, "0000010000010161017a0103746f6b"),
    ];
    for (method, text) in bodies {
        let full = hex(text);
        for len in 0..full.len() {
            let prefix = full.slice(..len);
            match Body::decode(method, prefix.clone()) {
                Ok(body) => {
                    let mut with_flag = prefix.to_vec();
                    with_flag.push(0);
                    assert_eq!(
                        body.to_bytes(),
                        with_flag,
                        "{text}[..{len}] decoded as {body:?}"
                    );
                }
                Err(error) => assert!(
                    matches!(
                        error,
                        DecodeError::Truncated { .. } | DecodeError::LengthOverflow { .. }
                    ),
                    "{text}[..{len}]: {error}"
                ),
            }
        }
        assert_eq!(
            Body::decode(method, full.clone()).map(|b| b.to_bytes()),
            Ok(full)
        );
    }
}

#[test]
fn bad_bytes_are_typed_errors() {
    let cases: [(Result<(), DecodeError>, DecodeError); 12] = [
        (
            Frame::decode(hex("030100000000")).map(drop),
            DecodeError::BadTag {
                what: "frame type",
                value: 3,
            },
        ),
        (
            Frame::decode(hex("01010000000002")).map(drop),
            DecodeError::BadBool {
                what: "more flag",
                value: 2,
            },
        ),
        (
            Frame::decode(hex("02010000000000")).map(drop),
            DecodeError::TrailingBytes {
                what: "CANCEL",
                len: 1,
            },
        ),
        (
            Envelope::decode(hex("02")).map(drop),
            DecodeError::BadTag {
                what: "envelope status",
                value: 2,
            },
        ),
        (
            Envelope::decode(hex("010200000000")).map(drop),
            DecodeError::BadBool {
                what: "value",
                value: 2,
            },
        ),
        (
            Envelope::decode(hex("000100ff0000")).map(drop),
            DecodeError::BadUtf8 { what: "error code" },
        ),
        (
            Envelope::decode(hex("010000000000000000000000")).map(drop),
            DecodeError::TrailingBytes {
                what: "envelope",
                len: 1,
            },
        ),
        (
            Envelope::decode(hex("0101ffffffff")).map(drop),
            DecodeError::LengthOverflow {
                what: "value",
                len: 0xffff_ffff,
                remaining: 0,
            },
        ),
        (
            Body::decode(Method(5), hex("00")).map(drop),
            DecodeError::UnknownMethod(5),
        ),
        (
            Body::decode(Method::GET, hex("026b310000")).map(drop),
            DecodeError::TrailingBytes {
                what: "store body",
                len: 1,
            },
        ),
        (
            Body::decode(Method::GET, hex("ffffffffffffffffff")).map(drop),
            DecodeError::LengthOverflow {
                what: "key",
                len: u64::MAX,
                remaining: 0,
            },
        ),
        (
            Body::decode(Method::GET, hex("026b3107")).map(drop),
            DecodeError::BadBool {
                what: "caps flag",
                value: 7,
            },
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, Err(want));
    }
}

#[test]
fn a_scan_bad_in_both_layouts_reports_the_flags_first_error() {
    // Prefix flag 0, reverse 0, gte flag 2: neither layout's boolean.
    assert_eq!(
        Scan::decode(hex("000002")),
        Err(DecodeError::BadBool {
            what: "gte",
            value: 2
        })
    );
}

#[test]
fn unknown_method_ids_survive_frames() {
    let frame = Frame::Request {
        rid: 7,
        method: Method(200),
        body: b("x"),
    };
    assert_eq!(Frame::decode(frame.to_bytes()), Ok(frame));
    assert_eq!(Method(200).name(), None);
    assert_eq!(Method::APPEND.to_string(), "APPEND");
    assert_eq!(Method(9).to_string(), "method 9");
}

#[test]
fn oversized_error_strings_are_refused_before_writing() {
    let long = "x".repeat(65536);
    let mut out = BytesMut::new();
    assert_eq!(
        Envelope::err(long.clone(), "m").encode(&mut out),
        Err(EncodeError::TooLong {
            what: "error code",
            len: 65536,
            max: 65535
        })
    );
    assert_eq!(
        Envelope::err("c", long).encode(&mut out),
        Err(EncodeError::TooLong {
            what: "error message",
            len: 65536,
            max: 65535
        })
    );
    assert!(out.is_empty());
    let max = Envelope::err("x".repeat(65535), "");
    assert_eq!(Envelope::decode(max.to_bytes().unwrap()), Ok(max));
}

#[test]
fn uint_boundaries() {
    let cases: [(u64, &str); 9] = [
        (0, "00"),
        (0xfc, "fc"),
        (0xfd, "fdfd00"),
        (0xffff, "fdffff"),
        (0x1_0000, "fe00000100"),
        (70000, "fe70110100"),
        (u64::from(u32::MAX), "feffffffff"),
        (u64::from(u32::MAX) + 1, "ff0000000001000000"),
        (u64::MAX, "ffffffffffffffffff"),
    ];
    for (value, text) in cases {
        let want = hex(text);
        let mut out = BytesMut::new();
        put_uint(&mut out, value);
        assert_eq!(out.freeze(), want, "{value:#x}");
        assert_eq!(uint_len(value), want.len(), "{value:#x}");
        assert_eq!(decode_uint(&want), Ok((value, want.len())), "{value:#x}");
        for len in 0..want.len() {
            assert!(
                matches!(
                    decode_uint(&want[..len]),
                    Err(DecodeError::Truncated { .. })
                ),
                "{text}[..{len}]"
            );
        }
    }
    // compact-encoding accepts a longer form than needed; so do we.
    assert_eq!(decode_uint(&hex("fd0500")), Ok((5, 3)));
}

#[test]
fn derive_id_matches_neonplex() {
    let want = hex("047376633a026e73012f0573746f7265012f0131");
    assert_eq!(derive_id("ns", "store", 1), want);
    assert_eq!(
        derive_id_parts("ns".into(), "store".into(), IdPart::Text("1")),
        want
    );
    // Byte arrays go in raw, without a length.
    let raw: &[u8] = &[0xaa, 0xbb];
    assert_eq!(
        derive_id_parts(raw.into(), "s".into(), "2".into()),
        hex("047376633aaabb012f0173012f0132")
    );
    assert_eq!(
        derive_id("", "", 0),
        Bytes::from_static(b"\x04svc:\x00\x01/\x00\x01/\x010")
    );
}
