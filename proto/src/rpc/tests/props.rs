//! Random frames, bodies and envelopes round-trip; arbitrary bytes never
//! panic, and whatever decodes re-encodes to the same value.

use bytes::Bytes;
use proptest::prelude::*;

use crate::rpc::{put_bytes, Body, Envelope, Frame, Method, RangeLayout, Scan};

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn frame() -> impl Strategy<Value = Frame> {
    (any::<u32>(), any::<u8>(), any::<bool>(), bytes(64), 0..3u8).prop_map(
        |(rid, mid, more, data, kind)| {
            let method = Method(mid);
            match kind {
                0 => Frame::Request {
                    rid,
                    method,
                    body: data,
                },
                1 => Frame::Response {
                    rid,
                    method,
                    more,
                    payload: data,
                },
                _ => Frame::Cancel { rid, method },
            }
        },
    )
}

fn scan() -> impl Strategy<Value = Scan> {
    let bound = || prop::option::of(bytes(8));
    (
        bytes(8),
        any::<bool>(),
        bound(),
        bound(),
        bound(),
        bound(),
        bytes(8),
    )
        .prop_map(|(prefix, reverse, gte, gt, lte, lt, caps)| Scan {
            prefix,
            reverse,
            gte,
            gt,
            lte,
            lt,
            caps,
        })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (bytes(300), bytes(8)).prop_map(|(key, caps)| Body::Get { key, caps }),
        (bytes(300), bytes(8)).prop_map(|(key, caps)| Body::Del { key, caps }),
        (bytes(16), bytes(300), bytes(8)).prop_map(|(key, value, caps)| Body::Put {
            key,
            value,
            caps
        }),
        (bytes(300), bytes(8)).prop_map(|(value, caps)| Body::Append { value, caps }),
        scan().prop_map(Body::Scan),
    ]
}

fn envelope() -> impl Strategy<Value = Envelope> {
    prop_oneof![
        (prop::option::of(bytes(64)), prop::option::of(bytes(16)))
            .prop_map(|(value, key)| Envelope::Ok { value, key }),
        (".{0,12}", ".{0,40}").prop_map(|(code, message)| Envelope::Err { code, message }),
    ]
}

/// The interleaved layout neonplex's encoder writes, to feed the decoder.
fn interleaved(scan: &Scan) -> Bytes {
    let mut out = Vec::new();
    out.push(u8::from(!scan.prefix.is_empty()));
    if !scan.prefix.is_empty() {
        put_bytes(&mut out, &scan.prefix);
    }
    out.push(u8::from(scan.reverse));
    for bound in [&scan.gte, &scan.gt, &scan.lte, &scan.lt] {
        out.push(u8::from(bound.is_some()));
        if let Some(value) = bound {
            put_bytes(&mut out, value);
        }
    }
    out.push(u8::from(!scan.caps.is_empty()));
    if !scan.caps.is_empty() {
        put_bytes(&mut out, &scan.caps);
    }
    out.into()
}

proptest! {
    #[test]
    fn frames_round_trip(frame in frame()) {
        let wire = frame.to_bytes();
        prop_assert_eq!(wire.len(), frame.encoded_len());
        prop_assert_eq!(Frame::decode(wire), Ok(frame));
    }

    #[test]
    fn bodies_round_trip(body in body()) {
        let wire = body.to_bytes();
        prop_assert_eq!(wire.len(), body.encoded_len());
        prop_assert_eq!(Body::decode(body.method(), wire), Ok(body));
    }

    #[test]
    fn envelopes_round_trip(envelope in envelope()) {
        let wire = envelope.to_bytes().unwrap();
        prop_assert_eq!(wire.len(), envelope.encoded_len());
        prop_assert_eq!(Envelope::decode(wire), Ok(envelope));
    }

    /// What neonplex clients send always decodes; when it is read as
    /// interleaved, it is read right. (Flags-first wins the rare bodies
    /// that parse both ways, see the module docs.)
    #[test]
    fn interleaved_scans_decode(scan in scan()) {
        let (decoded, layout) = Scan::decode(interleaved(&scan)).unwrap();
        if layout == RangeLayout::Interleaved {
            prop_assert_eq!(decoded, scan);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_reencode(data in bytes(48), mid in 0..6u8) {
        if let Ok(frame) = Frame::decode(data.clone()) {
            prop_assert_eq!(Frame::decode(frame.to_bytes()), Ok(frame));
        }
        if let Ok(envelope) = Envelope::decode(data.clone()) {
            prop_assert_eq!(Envelope::decode(envelope.to_bytes().unwrap()), Ok(envelope));
        }
        if let Ok(body) = Body::decode(Method(mid), data) {
            prop_assert_eq!(Body::decode(body.method(), body.to_bytes()), Ok(body));
        }
    }
}
