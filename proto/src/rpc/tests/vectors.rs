//! neonplex's own bytes (`../vectors.txt`): every vector decodes to the
//! expected structure and re-encodes to the same bytes, except the two
//! truncated ones and the buggy interleaved range, checked for what is
//! right in their case.

use bytes::{Bytes, BytesMut};

use super::{b, hex};
use crate::rpc::{decode_uint, Body, DecodeError, Envelope, Frame, Method, RangeLayout, Scan};

struct Vector {
    layer: String,
    name: String,
    bytes: Bytes,
}

fn vectors() -> Vec<Vector> {
    include_str!("../vectors.txt")
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let mut fields = line.split('\t');
            let mut next = || fields.next().expect("layer, name and hex on every line");
            Vector {
                layer: next().to_string(),
                name: next().to_string(),
                bytes: hex(next()),
            }
        })
        .collect()
}

fn ok(value: Option<&'static str>, key: Option<&'static str>) -> Envelope {
    Envelope::Ok {
        value: value.map(b),
        key: key.map(b),
    }
}

fn get(key: &'static str, caps: &'static str) -> Body {
    Body::Get {
        key: b(key),
        caps: b(caps),
    }
}

fn put_k1_v1() -> Body {
    Body::Put {
        key: b("k1"),
        value: b("v1"),
        caps: Bytes::new(),
    }
}

fn del_k1() -> Body {
    Body::Del {
        key: b("k1"),
        caps: Bytes::new(),
    }
}

fn append_v1() -> Body {
    Body::Append {
        value: b("v1"),
        caps: Bytes::new(),
    }
}

fn scan(prefix: &'static str, reverse: bool) -> Body {
    Body::Scan(Scan {
        prefix: b(prefix),
        reverse,
        ..Scan::default()
    })
}

/// The structure each well-formed vector holds.
enum Expect {
    Body(Body),
    Request(u32, Body),
    Response(u32, Method, bool, Option<Envelope>),
    Cancel(u32, Method),
}

fn expected(name: &str) -> Option<Expect> {
    use Expect::*;
    Some(match name {
        "get req" => Body(get("k1", "")),
        "get req caps" => Body(get("k1", "tok")),
        "del req" => Body(del_k1()),
        "put req" => Body(put_k1_v1()),
        "append req" => Body(append_v1()),
        "scan req empty" => Body(scan("", false)),
        "scan req prefix reverse" => Body(scan("p/", true)),
        "REQ get rid1" => Request(1, get("k1", "")),
        "REQ put rid2" => Request(2, put_k1_v1()),
        "REQ del rid3" => Request(3, del_k1()),
        "REQ append rid4" => Request(4, append_v1()),
        "REQ scan rid5" => Request(5, scan("p/", false)),
        "REQ get rid6 (will time out)" => Request(6, get("k1", "")),
        "CANCEL rid6" => Cancel(6, Method::GET),
        "CANCEL rid5 (scan return)" => Cancel(5, Method::SCAN),
        "RES get hit" => Response(1, Method::GET, false, Some(ok(Some("v1"), None))),
        "RES get miss" => Response(2, Method::GET, false, Some(Envelope::OK)),
        "RES err envelope" => Response(
            3,
            Method::GET,
            false,
            Some(Envelope::err("BadArg", "bad key")),
        ),
        "RES handler threw" => Response(
            4,
            Method::GET,
            false,
            Some(Envelope::err("Unknown", "boom")),
        ),
        "RES put ok()" => Response(5, Method::PUT, false, Some(Envelope::OK)),
        "RES append meta.key" => Response(6, Method::APPEND, false, Some(ok(None, Some("log/1")))),
        "RES del unsupported" => Response(
            7,
            Method::DEL,
            false,
            Some(Envelope::err("Unknown", "Unknown method")),
        ),
        "RES scan item" => Response(8, Method::SCAN, true, Some(ok(Some("v"), Some("p/1")))),
        // An empty payload ends a scan: no envelope.
        "RES scan end" => Response(8, Method::SCAN, false, None),
        "RES bad payload" => Response(
            9,
            Method::GET,
            false,
            Some(Envelope::err("Unknown", "Bad request payload")),
        ),
        _ => return None,
    })
}

/// The method a store-body vector's name starts with.
fn body_method(name: &str) -> Method {
    match name.split(' ').next() {
        Some("get") => Method::GET,
        Some("del") => Method::DEL,
        Some("put") => Method::PUT,
        Some("append") => Method::APPEND,
        Some("scan") => Method::SCAN,
        other => panic!("no method in vector name {other:?}"),
    }
}

#[test]
fn every_golden_vector_decodes_and_reencodes_byte_for_byte() {
    let all = vectors();
    assert_eq!(
        all.len(),
        28,
        "vectors.txt holds the 10 store-body and 18 rpc vectors"
    );
    let mut special = 0;
    for v in &all {
        let Some(expect) = expected(&v.name) else {
            special += 1;
            continue;
        };
        let what = format!("{} {}", v.layer, v.name);
        match expect {
            Expect::Body(body) => {
                assert_eq!(v.layer, "store-body", "{what}");
                let decoded = Body::decode(body_method(&v.name), v.bytes.clone());
                assert_eq!(decoded.as_ref(), Ok(&body), "{what}");
                assert_eq!(body.to_bytes(), v.bytes, "{what}");
                assert_eq!(body.encoded_len(), v.bytes.len(), "{what}");
            }
            Expect::Request(rid, body) => {
                let frame = Frame::decode(v.bytes.clone()).expect(&what);
                let Frame::Request {
                    rid: got,
                    method,
                    body: raw,
                } = &frame
                else {
                    panic!("{what}: {frame:?}");
                };
                assert_eq!((*got, *method), (rid, body.method()), "{what}");
                assert_eq!(
                    Body::decode(*method, raw.clone()).as_ref(),
                    Ok(&body),
                    "{what}"
                );
                let rebuilt = Frame::Request {
                    rid,
                    method: body.method(),
                    body: body.to_bytes(),
                };
                assert_eq!(rebuilt.to_bytes(), v.bytes, "{what}");
            }
            Expect::Response(rid, method, more, envelope) => {
                let frame = Frame::decode(v.bytes.clone()).expect(&what);
                let Frame::Response { payload, .. } = &frame else {
                    panic!("{what}: {frame:?}");
                };
                let payload = payload.clone();
                match &envelope {
                    Some(env) => {
                        assert_eq!(
                            Envelope::decode(payload.clone()).as_ref(),
                            Ok(env),
                            "{what}"
                        );
                        assert_eq!(env.encoded_len(), payload.len(), "{what}");
                    }
                    None => assert!(payload.is_empty(), "{what}"),
                }
                let mut rebuilt_payload = BytesMut::new();
                if let Some(env) = &envelope {
                    env.encode(&mut rebuilt_payload).expect(&what);
                }
                let rebuilt = Frame::Response {
                    rid,
                    method,
                    more,
                    payload: rebuilt_payload.freeze(),
                };
                assert_eq!(frame, rebuilt, "{what}");
                assert_eq!(rebuilt.to_bytes(), v.bytes, "{what}");
                assert_eq!(rebuilt.encoded_len(), v.bytes.len(), "{what}");
            }
            Expect::Cancel(rid, method) => {
                let frame = Frame::decode(v.bytes.clone()).expect(&what);
                assert_eq!(frame, Frame::Cancel { rid, method }, "{what}");
                assert_eq!(frame.to_bytes(), v.bytes, "{what}");
            }
        }
    }
    // The three below: the interleaved range and two truncated bodies.
    assert_eq!(special, 3);
}

fn vector(name: &str) -> Bytes {
    vectors()
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("vector {name:?} is in vectors.txt"))
        .bytes
}

/// neonplex's encoder interleaves the bounds (its bug); a neonplex server
/// rejects this body. We accept it, and re-encode flags-first, the layout
/// neonplex servers decode: so the bytes differ on purpose.
#[test]
fn buggy_interleaved_range_is_accepted_and_reencoded_flags_first() {
    let wire = vector("scan req range (ENCODER layout, interleaved; neonplex decoder disagrees)");
    let want = Scan {
        gte: Some(b("a")),
        lt: Some(b("z")),
        ..Scan::default()
    };
    assert_eq!(
        Scan::decode(wire.clone()),
        Ok((want.clone(), RangeLayout::Interleaved))
    );
    assert_eq!(
        Body::decode(Method::SCAN, wire),
        Ok(Body::Scan(want.clone()))
    );

    let flags_first = Body::Scan(want.clone()).to_bytes();
    assert_eq!(flags_first, hex("0000010000010161017a00"));
    assert_eq!(
        Scan::decode(flags_first),
        Ok((want, RangeLayout::FlagsFirst))
    );
}

/// The vector holds only the first 8 bytes of a body with a 300-byte key:
/// enough to pin the varint form (`fd 2c 01`), not to decode.
#[test]
fn truncated_300_byte_key_vector_pins_the_fd_varint() {
    let wire = vector("get req 300-byte key");
    assert_eq!(decode_uint(&wire), Ok((300, 3)));
    assert_eq!(
        Body::decode(Method::GET, wire.clone()),
        Err(DecodeError::LengthOverflow {
            what: "key",
            len: 300,
            remaining: 5
        })
    );
    let full = get_with_key(vec![1; 300]).to_bytes();
    assert_eq!(full.len(), 3 + 300 + 1);
    assert_eq!(full.slice(..wire.len()), wire);
}

fn get_with_key(key: Vec<u8>) -> Body {
    Body::Get {
        key: key.into(),
        caps: Bytes::new(),
    }
}

/// First 10 bytes of a PUT with a 70000-byte value (`fe 70 11 01 00`).
#[test]
fn truncated_70000_byte_value_vector_pins_the_fe_varint() {
    let wire = vector("put req 70000-byte value");
    assert_eq!(decode_uint(&wire[3..]), Ok((70000, 5)));
    assert_eq!(
        Body::decode(Method::PUT, wire.clone()),
        Err(DecodeError::LengthOverflow {
            what: "value",
            len: 70000,
            remaining: 2
        })
    );
    let value = Bytes::from(vec![0u8; 70000]);
    let put = Body::Put {
        key: b("k1"),
        value,
        caps: Bytes::new(),
    };
    let full = put.to_bytes();
    assert_eq!(full.len(), put.encoded_len());
    assert_eq!(full.slice(..wire.len()), wire);
    assert_eq!(Body::decode(Method::PUT, full), Ok(put));
}

#[test]
fn full_300_byte_key_round_trips() {
    let body = get_with_key((0..300).map(|i| i as u8).collect());
    let wire = body.to_bytes();
    assert_eq!(&wire[..3], &[0xfd, 0x2c, 0x01]);
    assert_eq!(Body::decode(Method::GET, wire), Ok(body));
}
