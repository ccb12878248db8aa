//! Syncthing relay codec (`plex_proto::relay`) on arbitrary bytes.
//!
//! Input: byte 0 picks a chunk size (`1 + byte % 16`); the rest is a byte
//! stream from a relay. Two [`Decoder`]s read it, one whole and one in
//! chunks: both must yield the same messages and then the same error or
//! leftover, without holding more than one frame. Every message yielded
//! must re-encode to a frame that decodes to itself. The same stream goes
//! to two [`JoinReader`]s, whole and chunked, which must agree.

use plex_proto::relay::{
    DecodeError, Decoder, DeviceId, JoinReader, Message, Response, SessionInvitation, HEADER_LEN,
    MAX_PAYLOAD_LEN, READY,
};

/// Runs one input; panics if a check fails.
pub fn run(data: &[u8]) {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = 1 + usize::from(first % 16);
    let whole = drain(stream, stream.len().max(1));
    let chunked = drain(stream, chunk);
    assert_eq!(whole, chunked, "chunking changes nothing");
    for message in whole.0 {
        let wire = message.to_bytes().expect("a decoded message re-encodes");
        let mut input = &wire[..];
        assert_eq!(Decoder::new().decode(&mut input), Ok(Some(message)));
        assert!(input.is_empty());
    }
    let mut whole = JoinReader::new();
    let mut chunked = JoinReader::new();
    let a = whole.handle_input(stream);
    let b = stream
        .chunks(chunk)
        .try_for_each(|p| chunked.handle_input(p));
    assert_eq!(a, b, "a join reads the same however it is cut");
    assert_eq!(whole.response(), chunked.response());
    assert_eq!(whole.peer_ready(), chunked.peer_ready());
}

/// Messages yielded, then the error or the bytes still held at the end.
type Drained = (Vec<Message>, Result<usize, DecodeError>);

fn drain(stream: &[u8], chunk: usize) -> Drained {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk) {
        let mut input = piece;
        loop {
            assert!(decoder.buffered() <= HEADER_LEN + MAX_PAYLOAD_LEN);
            match decoder.decode(&mut input) {
                Ok(Some(message)) => out.push(message),
                Ok(None) => break,
                Err(err) => return (out, Err(err)),
            }
        }
    }
    let held = decoder.buffered();
    (out, Ok(held))
}

/// Seeds: every message type in one stream, a join answer with the peer's
/// READY before it, a frame with bad magic and one announcing too much.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let id = DeviceId([7; 32]);
    let every = [
        Message::Ping,
        Message::Pong,
        Message::JoinRelayRequest {
            token: String::new(),
        },
        Message::JoinSessionRequest {
            key: [1; 32].into(),
        },
        Message::Response(Response {
            code: 0,
            message: "success".into(),
        }),
        Message::ConnectRequest { id: id.into() },
        Message::SessionInvitation(SessionInvitation {
            from: id.into(),
            key: [2; 32].into(),
            address: Default::default(),
            port: 22067,
            server_socket: true,
        }),
        Message::RelayFull,
    ];
    let mut stream = vec![5];
    for message in &every {
        stream.extend_from_slice(&message.to_bytes().expect("small messages encode"));
    }
    let ok = Message::Response(Response {
        code: 0,
        message: "success".into(),
    });
    let mut join = vec![0, READY];
    join.extend_from_slice(&ok.to_bytes().expect("small messages encode"));
    vec![
        ("every-message".into(), stream),
        ("join-ready-first".into(), join),
        (
            "bad-magic".into(),
            b"\x03\x16\x03\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec(),
        ),
        (
            "too-long".into(),
            b"\x00\x9e\x79\xbc\x40\x00\x00\x00\x00\x00\x00\x04\x01".to_vec(),
        ),
    ]
}
