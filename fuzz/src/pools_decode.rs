//! The remote-pool wire (`plex_proto::pools`) on arbitrary bytes.
//!
//! Input: byte 0 picks what the rest is. Even: a stream's handshake, decoded
//! as a [`Request`]. Odd: a stream of records, decoded one after another
//! with a limit of `64 << (byte 0 % 8)` bytes per record. No panic; a
//! request that decodes re-encodes to bytes that decode to it; every
//! record decoded re-encodes to bytes that decode to it, taking exactly
//! as many bytes; a record over the limit is refused from its length
//! alone, before its body arrives.

use plex_proto::pools::{Record, Request, TailQuery, TailStart, WireError};

/// Runs one input; panics if a check fails.
pub fn run(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    if first % 2 == 0 {
        if let Ok(request) = Request::decode(rest) {
            let again = Request::decode(&request.to_bytes()).expect("a request re-encodes");
            assert_eq!(again, request);
        }
        return;
    }
    let max = 64usize << (first % 8);
    let mut input = rest;
    loop {
        match Record::decode(input, max) {
            Ok(Some((record, used))) => {
                assert!(used <= input.len() && used <= max + 4);
                let mut wire = Vec::new();
                record.encode_into(&mut wire);
                let (again, took) = Record::decode(&wire, usize::MAX)
                    .expect("a record re-encodes")
                    .expect("whole");
                assert_eq!((again, took), (record, wire.len()));
                input = &input[used..];
            }
            Ok(None) => return,
            Err(WireError::TooLarge { len, max: limit }) => {
                assert!(len > limit);
                // Refused from the length alone: the body need not be there.
                let head = &input[..4];
                assert!(matches!(
                    Record::decode(head, max),
                    Err(WireError::TooLarge { .. })
                ));
                return;
            }
            Err(_) => return,
        }
    }
}

/// Seeds: a tail request, an append request, and a stream of records.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let tail = Request::Tail {
        pool: "demo".into(),
        query: TailQuery {
            start: TailStart::Last(10),
            follow: true,
            max: Some(5),
            timeout_ms: Some(100),
            tags: vec!["a".into()],
        },
    };
    let list = Request::List;
    let mut records = vec![1u8];
    for record in [
        Record::Receipt {
            first: 1,
            count: 2,
            time_ns: 3,
        },
        Record::Gap { first: 1, next: 9 },
        Record::Batch(vec![(vec!["t".into()], bytes::Bytes::from_static(b"{}"))]),
        Record::Done,
        Record::TimedOut,
    ] {
        record.encode_into(&mut records);
    }
    let request = |r: &Request| [&[0u8][..], &r.to_bytes()].concat();
    vec![
        ("tail-request".into(), request(&tail)),
        ("list-request".into(), request(&list)),
        ("records".into(), records),
    ]
}
