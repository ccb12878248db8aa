//! Writes the committed seed corpus: `cargo run --example gen_corpus`.
//!
//! Seeds are built with `Frame::encode` and the targets' own input builders,
//! so they stay valid when the wire format or an input format changes.

use std::fs;
use std::io;
use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};
use plex_fuzz::decoder;
use plex_fuzz::session::{self, Flags, OnIncoming, Op};
use plex_proto::{
    ErrorCode, Frame, FrameHeader, FrameType, Role, SettingsFrame, StreamId, MIN_INITIAL_WINDOW,
    PREFACE,
};

fn main() -> io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut written = 0;
    let named = |seeds: Vec<(&str, Vec<u8>)>| {
        seeds
            .into_iter()
            .map(|(n, s)| (n.to_string(), s))
            .collect::<Vec<_>>()
    };
    for (target, seeds) in [
        ("decoder", named(decoder_seeds())),
        ("session", named(session_seeds())),
        ("pair_ops", plex_fuzz::pair_ops::seeds()),
        (
            "pool_bytes",
            plex_fuzz::pool_bytes::seeds(&std::env::temp_dir())?,
        ),
        ("rpc_decode", plex_fuzz::rpc_decode::seeds()),
        ("protomux_decode", plex_fuzz::protomux_decode::seeds()),
        ("protomux_session", plex_fuzz::protomux_session::seeds()),
        ("relay_decode", plex_fuzz::relay_decode::seeds()),
        ("pools_decode", plex_fuzz::pools_decode::seeds()),
    ] {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir)?;
        for (name, seed) in seeds {
            fs::write(dir.join(name), seed)?;
            written += 1;
        }
    }
    println!("wrote {written} seeds under {}", corpus.display());
    Ok(())
}

/// Index of MAX_FRAME_SIZE 16384 in `decoder::MAX_FRAME_SIZES`.
const DEFAULT_MAX: u8 = 0;
/// Index of MAX_FRAME_SIZE 64.
const TINY_MAX: u8 = 3;

fn decoder_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut every = BytesMut::from(&wire(&every_frame())[..]);
    raw_frame(&mut every, FrameType::Unknown(0x42), 0x3, 7, b"skip");
    let with_preface = [&PREFACE[..], &every].concat();
    let mut malformed = BytesMut::new();
    // OPEN whose protocol length prefix overruns the payload.
    raw_frame(&mut malformed, FrameType::Open, 0, 1, &[9, b'x']);
    let mut bad_rst = BytesMut::new();
    raw_frame(&mut bad_rst, FrameType::RstStream, 0, 1, &[0, 0, 7]);
    let mut settings = BytesMut::new();
    // Unknown id 0x99, then MAX_FRAME_SIZE twice: the last value wins.
    let entries = [
        [0, 0x99, 0, 0, 0, 1],
        [0, 5, 0, 0, 0x40, 0],
        [0, 5, 0, 1, 0, 0],
    ]
    .concat();
    raw_frame(&mut settings, FrameType::Settings, 0, 0, &entries);
    vec![
        (
            "every-frame",
            decoder::input(false, DEFAULT_MAX, &[], &every),
        ),
        (
            "every-frame-preface-split",
            decoder::input(true, DEFAULT_MAX, &[3, 0, 11, 7], &with_preface),
        ),
        (
            "split-preface",
            decoder::input(true, DEFAULT_MAX, &[2, 5, 1], &with_preface[..40]),
        ),
        (
            "open-data",
            decoder::input(true, DEFAULT_MAX, &[9, 16], &open_and_data()),
        ),
        (
            "full-size-data",
            decoder::input(
                false,
                DEFAULT_MAX,
                &[255, 128],
                &wire(&[data(1, false, 16_384)]),
            ),
        ),
        (
            "too-large-for-limit",
            decoder::input(false, TINY_MAX, &[4], &wire(&[data(3, true, 100)])),
        ),
        (
            "not-plex",
            decoder::input(true, DEFAULT_MAX, &[], b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ),
        (
            "bad-version",
            decoder::input(true, DEFAULT_MAX, &[], b"PLEX\r\n\x00\x02"),
        ),
        (
            "malformed-open",
            decoder::input(false, DEFAULT_MAX, &[1], &malformed),
        ),
        (
            "short-rst",
            decoder::input(false, DEFAULT_MAX, &[], &bad_rst),
        ),
        (
            "settings-unknown-and-repeated",
            decoder::input(false, DEFAULT_MAX, &[5], &settings),
        ),
    ]
}

fn session_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let flags = |role, on_incoming, read, open| Flags {
        role,
        on_incoming,
        read,
        open,
    };
    let client = flags(Role::Client, OnIncoming::Accept, true, false);
    let server = flags(Role::Server, OnIncoming::Accept, true, false);
    let opener = flags(Role::Client, OnIncoming::Accept, true, true);
    let ack = wire(&[Frame::SettingsAck]);
    let peer_open = wire(&[
        Frame::SettingsAck,
        open(1, b"echo", b"chan-1", b"hi"),
        data(1, false, 600),
        data(1, true, 0),
    ]);
    let two_chunks = wire(&[open(1, b"", b"", b""), data(1, false, 1), data(1, false, 1)]);
    let opened = wire(&[
        Frame::SettingsAck,
        Frame::OpenAck {
            stream: StreamId::new(1),
            handshake: Bytes::from_static(b"ok"),
        },
        window_update(0, 1 << 20),
        window_update(1, 1 << 20),
        data(1, false, 1000),
        data(1, true, 10),
    ]);
    let refuse_reset = wire(&[
        Frame::SettingsAck,
        open(1, b"a", b"1", b""),
        open(3, b"b", b"2", b""),
        Frame::RstStream {
            stream: StreamId::new(3),
            code: ErrorCode::CANCEL,
        },
    ]);
    let graceful = wire(&[
        Frame::SettingsAck,
        go_away(1, ErrorCode::NO_ERROR),
        Frame::OpenAck {
            stream: StreamId::new(1),
            handshake: Bytes::new(),
        },
        data(1, true, 0),
    ]);
    let grow_window = wire(&[
        Frame::Settings(SettingsFrame {
            initial_window_size: Some(MIN_INITIAL_WINDOW),
            max_frame_size: Some(1 << 20),
            max_concurrent_streams: Some(1),
        }),
        Frame::OpenAck {
            stream: StreamId::new(1),
            handshake: Bytes::new(),
        },
        Frame::Settings(SettingsFrame {
            initial_window_size: Some(1 << 20),
            ..SettingsFrame::default()
        }),
    ]);
    let overrun = wire(&[
        Frame::SettingsAck,
        open(1, b"", b"", b""),
        data(1, false, 16_384),
        data(1, false, 16_384),
        data(1, false, 16_384),
        data(1, false, 16_384),
        data(1, false, 1),
    ]);
    let ping = wire(&[
        Frame::SettingsAck,
        Frame::Ping {
            ack: false,
            payload: *b"12345678",
        },
        Frame::Ping {
            ack: true,
            payload: 0u64.to_be_bytes(),
        },
        window_update(0, 1),
    ]);
    vec![
        (
            "client-ping-pong",
            session::input(client, &[Op::Input(&ping)]),
        ),
        (
            "server-open-data",
            session::input(server, &[Op::Input(&peer_open), Op::Sleep(10)]),
        ),
        (
            // Two chunks buffered before the accept: `read_chunk` must hand
            // out both.
            "server-two-chunks-before-accept",
            session::input(server, &[Op::Input(&two_chunks)]),
        ),
        (
            "server-refuse-then-reset",
            session::input(
                flags(Role::Server, OnIncoming::Refuse, false, false),
                &[Op::Input(&refuse_reset)],
            ),
        ),
        (
            "client-local-stream",
            session::input(opener, &[Op::Input(&opened)]),
        ),
        (
            "client-graceful-goaway",
            session::input(opener, &[Op::Input(&graceful)]),
        ),
        (
            // GOAWAY resetting the unprocessed local stream ends the drain:
            // the Reset event must still come before Closed.
            "server-goaway-unprocessed",
            session::input(
                flags(Role::Server, OnIncoming::Accept, false, true),
                &[Op::Input(&wire(&[go_away(0, ErrorCode::NO_ERROR)]))],
            ),
        ),
        (
            "server-goaway-error",
            session::input(
                flags(Role::Server, OnIncoming::AcceptAndFinish, false, true),
                &[Op::Input(&wire(&[go_away(0, ErrorCode::PROTOCOL_ERROR)]))],
            ),
        ),
        (
            "client-settings-grow-window",
            session::input(opener, &[Op::Input(&grow_window)]),
        ),
        (
            "server-window-overrun",
            session::input(
                flags(Role::Server, OnIncoming::Ignore, false, false),
                &[Op::Input(&overrun)],
            ),
        ),
        (
            "settings-timeout",
            session::input(client, &[Op::UntilDeadline, Op::UntilDeadline]),
        ),
        (
            "keepalive-then-idle",
            session::input(
                server,
                &[
                    Op::Input(&ack),
                    Op::Sleep(15),
                    Op::Sleep(15),
                    Op::Sleep(17),
                    Op::Stale,
                ],
            ),
        ),
        (
            "eof",
            session::input(opener, &[Op::Input(&ack), Op::Eof, Op::Input(&ack)]),
        ),
    ]
}

/// One frame of every type.
fn every_frame() -> Vec<Frame> {
    vec![
        Frame::Settings(SettingsFrame {
            max_concurrent_streams: Some(100),
            initial_window_size: Some(65_536),
            max_frame_size: Some(16_384),
        }),
        Frame::SettingsAck,
        open(1, b"echo", b"chan-1", b"hello"),
        Frame::OpenAck {
            stream: StreamId::new(1),
            handshake: Bytes::from_static(b"welcome"),
        },
        data(1, false, 32),
        data(1, true, 0),
        Frame::RstStream {
            stream: StreamId::new(3),
            code: ErrorCode::CANCEL,
        },
        Frame::Ping {
            ack: false,
            payload: *b"pingpong",
        },
        Frame::Ping {
            ack: true,
            payload: *b"pingpong",
        },
        window_update(0, 1 << 20),
        window_update(1, 65_536),
        go_away(1, ErrorCode::NO_ERROR),
        Frame::Unknown {
            ty: 0x42,
            stream: StreamId::new(5),
        },
    ]
}

fn open_and_data() -> Vec<u8> {
    let frames = [
        Frame::Settings(SettingsFrame::default()),
        open(1, b"echo", b"chan-1", b"hi"),
        data(1, false, 5),
        data(1, true, 0),
    ];
    [&PREFACE[..], &wire(&frames)].concat()
}

fn wire(frames: &[Frame]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for frame in frames {
        frame.encode(&mut out);
    }
    out.to_vec()
}

fn raw_frame(dst: &mut BytesMut, ty: FrameType, flags: u8, stream: u32, payload: &[u8]) {
    FrameHeader {
        // Seed payloads are a few bytes.
        len: payload.len() as u32,
        ty,
        flags,
        stream: StreamId::new(stream),
    }
    .encode(dst);
    dst.put_slice(payload);
}

fn open(
    stream: u32,
    protocol: &'static [u8],
    id: &'static [u8],
    handshake: &'static [u8],
) -> Frame {
    Frame::Open {
        stream: StreamId::new(stream),
        protocol: Bytes::from_static(protocol),
        id: Bytes::from_static(id),
        handshake: Bytes::from_static(handshake),
    }
}

fn data(stream: u32, end_stream: bool, len: usize) -> Frame {
    Frame::Data {
        stream: StreamId::new(stream),
        end_stream,
        payload: (0..len).map(|i| i as u8).collect(),
    }
}

fn window_update(stream: u32, increment: u32) -> Frame {
    Frame::WindowUpdate {
        stream: StreamId::new(stream),
        increment,
    }
}

fn go_away(last_stream: u32, code: ErrorCode) -> Frame {
    Frame::GoAway {
        last_stream: StreamId::new(last_stream),
        code,
        debug: Bytes::from_static(b"bye"),
    }
}
