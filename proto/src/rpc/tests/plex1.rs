//! The `plex/1` vectors of `proto/RPC.md` §8: the RPC frames come from the
//! call cores, the `plex/1` frames from the crate's encoder, and the bytes
//! must match the spec's hex line for line.

use bytes::{BufMut, Bytes, BytesMut};

use super::b;
use crate::rpc::{Action, Body, Client, ClientConfig, Envelope, Method, Server, ServerConfig};
use crate::{ErrorCode, Frame, StreamId};

const RPC_MD: &str = include_str!("../../../RPC.md");

/// `(name, bytes)` for every line of the vector block of §8.
fn spec_vectors() -> Vec<(String, Vec<u8>)> {
    let start = RPC_MD.find("## 8. Test vectors").expect("vector section");
    let block = RPC_MD[start..]
        .split("```text")
        .nth(1)
        .expect("vector block");
    let block = block.split("```").next().expect("block end");
    block
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next().expect("name").to_string();
            let bytes = words
                .map(|h| u8::from_str_radix(h, 16).expect("hex"))
                .collect();
            (name, bytes)
        })
        .collect()
}

/// One RPC frame as a call-stream message: u32 LE length, then the frame.
fn message(frame: &crate::rpc::Frame) -> Bytes {
    let wire = frame.to_bytes();
    let mut out = BytesMut::with_capacity(4 + wire.len());
    out.put_u32_le(wire.len() as u32);
    out.put_slice(&wire);
    out.freeze()
}

fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    out.to_vec()
}

fn open(stream: StreamId) -> Frame {
    Frame::Open {
        stream,
        protocol: b("neonloom/protocol/v1/rpc"),
        id: b("example-store"),
        handshake: Bytes::new(),
    }
}

fn data(stream: StreamId, payload: Bytes) -> Frame {
    Frame::Data {
        stream,
        end_stream: true,
        payload,
    }
}

/// The frames of RPC.md §8, built by the cores and the encoder.
fn built() -> Vec<(&'static str, Vec<u8>)> {
    let now = crate::sim::origin();
    let mut client = Client::new(ClientConfig::default()).unwrap();
    let mut server = Server::new(ServerConfig::default()).unwrap();
    let get = Body::Get {
        key: b("k"),
        caps: Bytes::new(),
    };
    let (one, three) = (StreamId::new(1), StreamId::new(3));

    assert_eq!(client.call(now, Method::GET, get.to_bytes()), Ok(1));
    let request = client.poll_transmit().expect("the REQ");
    let Ok(Some(Action::Dispatch { rid: 1, .. })) = server.handle_message(request.to_bytes())
    else {
        panic!("the server dispatches the GET");
    };
    let value = Envelope::Ok {
        value: Some(b("v")),
        key: None,
    };
    let response = server.respond(1, false, Some(&value)).unwrap().unwrap();

    assert_eq!(client.call(now, Method::GET, get.to_bytes()), Ok(2));
    let second = client.poll_transmit().expect("the second REQ");
    assert!(client.cancel(2));

    vec![
        ("call-open", encode(&open(one))),
        ("call-request", encode(&data(one, message(&request)))),
        (
            "call-open-ack",
            encode(&Frame::OpenAck {
                stream: one,
                handshake: Bytes::new(),
            }),
        ),
        ("call-response", encode(&data(one, message(&response)))),
        ("cancel-open", encode(&open(three))),
        ("cancel-request", encode(&data(three, message(&second)))),
        (
            "cancel-reset",
            encode(&Frame::RstStream {
                stream: three,
                code: ErrorCode::CANCEL,
            }),
        ),
        (
            "refused",
            encode(&Frame::RstStream {
                stream: one,
                code: ErrorCode::REFUSED_STREAM,
            }),
        ),
    ]
}

#[test]
fn rpc_md_vectors_are_the_encoders_bytes() {
    let spec = spec_vectors();
    let built = built();
    let names: Vec<&str> = spec.iter().map(|(name, _)| name.as_str()).collect();
    let expected: Vec<&str> = built.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, expected, "RPC.md §8 lists exactly these vectors");
    for ((name, spec), (_, built)) in spec.iter().zip(&built) {
        assert_eq!(spec, built, "vector {name}");
    }
}

#[test]
fn rpc_md_vectors_decode_back_to_the_call() {
    let spec = spec_vectors();
    let bytes = |name: &str| {
        let (_, bytes) = spec.iter().find(|(n, _)| n == name).expect("vector");
        Bytes::copy_from_slice(bytes)
    };
    // The REQ inside call-request, past the 9-byte header and the 4-byte length.
    let request = crate::rpc::Frame::decode(bytes("call-request").slice(13..)).unwrap();
    assert_eq!(request.rid(), 1);
    let response = crate::rpc::Frame::decode(bytes("call-response").slice(13..)).unwrap();
    let crate::rpc::Frame::Response {
        more: false,
        payload,
        ..
    } = response
    else {
        panic!("a final RES");
    };
    assert_eq!(
        Envelope::decode(payload),
        Ok(Envelope::Ok {
            value: Some(b("v")),
            key: None
        })
    );
}
