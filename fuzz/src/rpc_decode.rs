//! neonplex RPC codec (`plex_proto::rpc`) on arbitrary bytes.
//!
//! Input: the whole input is one message. It is decoded as a [`Frame`], an
//! [`Envelope`] and a store [`Body`] of every method id 0..=5 (5 has no
//! body), and as a SCAN body reporting its range layout. Nothing may
//! panic; whatever decodes must re-encode to bytes that decode to the same
//! value, and to exactly `encoded_len` bytes. The same message then goes
//! to a fresh [`Server`] core, and its first 6 bytes to
//! [`Server::handle_oversized`]: whatever it answers is a well-formed RES.

use bytes::Bytes;
use plex_proto::rpc::{
    Action, Body, DecodeError, Envelope, Frame, Method, Scan, Server, ServerConfig,
};

/// Runs one input; panics if a check fails.
pub fn run(data: &[u8]) {
    let input = Bytes::copy_from_slice(data);
    if let Ok(frame) = Frame::decode(input.clone()) {
        let wire = frame.to_bytes();
        assert_eq!(wire, input, "a decoded frame re-encodes to its own bytes");
        assert_eq!(wire.len(), frame.encoded_len());
    }
    if let Ok(envelope) = Envelope::decode(input.clone()) {
        let wire = envelope
            .to_bytes()
            .expect("a decoded envelope fits its length prefixes");
        assert_eq!(wire.len(), envelope.encoded_len());
        assert_eq!(Envelope::decode(wire), Ok(envelope));
    }
    for mid in 0..=5 {
        match Body::decode(Method(mid), input.clone()) {
            Ok(body) => {
                assert_eq!(body.method(), Method(mid));
                let wire = body.to_bytes();
                assert_eq!(wire.len(), body.encoded_len());
                assert_eq!(Body::decode(body.method(), wire), Ok(body));
            }
            Err(DecodeError::UnknownMethod(m)) => assert!(m == mid && mid > 4),
            Err(_) => {}
        }
    }
    serve(input.clone());
    if let Ok((scan, _layout)) = Scan::decode(input) {
        assert_eq!(
            Body::decode(Method::SCAN, Body::Scan(scan.clone()).to_bytes()),
            Ok(Body::Scan(scan))
        );
    }
}

/// Feeds one message to a server core and checks what it answers.
fn serve(input: Bytes) {
    let mut server = Server::new(ServerConfig::default()).expect("the defaults are valid");
    match server.handle_message(input.clone()) {
        Ok(Some(Action::Dispatch { rid, .. })) => {
            assert!(server.is_active(rid));
            let end = server
                .respond(rid, false, None)
                .expect("an empty payload encodes");
            assert!(end.is_some(), "an active call answers");
            assert_eq!(server.in_flight(), 0);
        }
        Ok(Some(Action::Reply(reply))) => check_refusal(&reply),
        Ok(_) => assert_eq!(server.in_flight(), 0),
        Err(_) => assert!(Frame::decode(input.clone()).is_err()),
    }
    if let Some(reply) = server.handle_oversized(&input) {
        check_refusal(&reply);
    }
}

/// A refusal is a final RES carrying an error envelope.
fn check_refusal(reply: &Frame) {
    let Frame::Response {
        more: false,
        payload,
        ..
    } = reply
    else {
        panic!("a refusal is a final RES: {reply:?}");
    };
    assert!(matches!(
        Envelope::decode(payload.clone()),
        Ok(Envelope::Err { .. })
    ));
}

/// Seeds: neonplex's golden RPC frames, envelopes and bodies
/// (`proto/src/rpc/vectors.txt`), whole, plus the RES envelopes alone.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for line in include_str!("../../proto/src/rpc/vectors.txt").lines() {
        let mut fields = line.split('\t');
        let (Some(layer), Some(name), Some(hex)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if line.starts_with('#') {
            continue;
        }
        let bytes = crate::hex_bytes(hex);
        let slug = crate::slug(name);
        if layer == "rpc" && bytes.first() == Some(&1) && bytes.len() > 7 {
            out.push((format!("envelope-{slug}"), bytes[7..].to_vec()));
        }
        out.push((format!("{layer}-{slug}"), bytes));
    }
    out
}
