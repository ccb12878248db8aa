//! The Protomux session (`plex_proto::protomux::Session`) on arbitrary
//! peer bytes, after a valid OPEN, driven as the runtime drives it.
//!
//! Input: byte 0 picks the chunk size (`1 + byte % 32`); byte 1 is a
//! set of flags for what this side does between chunks (accept or reject
//! announced channels, read, echo, open channels of its own, advance the
//! clock); the rest is what the peer sends. The session listens on
//! protocol `p` with any id and starts with the peer's `OPEN(1, "p", "x")`
//! accepted. Input is fed only while the session wants it, as the driver
//! does; when it does not, this side reads every channel.
//!
//! Checks: nothing panics; received bytes held stay within
//! `max_buffered` plus one chunk's worth; channels tracked stay within
//! what the limits allow; after a violation the session is closed and
//! ignores input; every `Recv::Ended` channel is forgotten.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use plex_proto::protomux::{
    frame_header, ChannelId, Message, MuxConfig, MuxEvent, Recv, Session, MESSAGE_OVERHEAD,
};

/// Small limits, so the fuzzer reaches them.
fn config() -> MuxConfig {
    MuxConfig::default()
        .max_message_size(256)
        .max_channels(8)
        .max_pending_opens(4)
        .channel_buffer(512)
        .max_buffered(2048)
        .send_buffer(1024)
}

const ACCEPT: u8 = 1;
const REJECT_ODD: u8 = 2;
const READ: u8 = 4;
const ECHO: u8 = 8;
const OPEN_OWN: u8 = 16;
const TICK: u8 = 32;

/// Runs one input; panics if a check fails.
pub fn run(data: &[u8]) {
    let [size, flags, rest @ ..] = data else {
        return;
    };
    let chunk = 1 + usize::from(size % 32);
    let start = Instant::now();
    let mut now = start;
    let mut session = Session::new(config()).expect("valid config");
    session.set_claim_grace(Some(Duration::from_millis(50)));
    session.listen("p", None);
    let open = Message::Open {
        channel: 1,
        protocol: "p".into(),
        id: Bytes::from_static(b"x"),
        handshake: Bytes::new(),
    };
    session.handle_input(now, framed(&open));
    let mut channels: Vec<ChannelId> = Vec::new();
    step(&mut session, &mut channels, *flags);
    let mut input = rest;
    let mut rounds = 0;
    while !input.is_empty() {
        rounds += 1;
        if session.is_closed() {
            let before = session.stats().bytes_received;
            session.handle_input(now, Bytes::copy_from_slice(input));
            assert_eq!(
                session.stats().bytes_received,
                before,
                "input after the end is ignored"
            );
            break;
        }
        if session.wants_input() {
            let n = chunk.min(input.len());
            session.handle_input(now, Bytes::copy_from_slice(&input[..n]));
            input = &input[n..];
        } else {
            // What the driver waits for: the application reads.
            drain(&mut session, &channels);
            while session.poll_transmit().is_some() {}
            if !session.wants_input() && rounds > 10_000 {
                panic!("the session never wants input again");
            }
        }
        let held = session.stats().buffered;
        let bound = 2048 + chunk * (1 + MESSAGE_OVERHEAD) + 512;
        assert!(held <= bound, "holds {held} received bytes, bound {bound}");
        assert!(
            session.channel_count() <= 8 + 8 + 4,
            "{} channels",
            session.channel_count()
        );
        if flags & TICK != 0 {
            now += Duration::from_millis(20);
            session.handle_timeout(now);
        }
        step(&mut session, &mut channels, *flags);
    }
    session.handle_eof();
    step(&mut session, &mut channels, *flags | READ);
    for &channel in &channels {
        assert!(
            !matches!(session.recv(channel), Ok(Recv::Message(_))),
            "read to the end above"
        );
    }
}

/// One round of this side's reactions.
fn step(session: &mut Session, channels: &mut Vec<ChannelId>, flags: u8) {
    let mut odd = false;
    while let Some(event) = session.poll_event() {
        if let MuxEvent::Incoming { channel, .. } = event {
            odd = !odd;
            if flags & REJECT_ODD != 0 && odd {
                let _ = session.reject(channel);
            } else if (flags & ACCEPT != 0 || channels.is_empty())
                && session.accept(channel, Bytes::from_static(b"hs")).is_ok()
            {
                channels.push(channel);
            }
        }
    }
    if flags & READ != 0 {
        drain(session, channels);
    }
    if flags & ECHO != 0 {
        if let Some(&first) = channels.first() {
            if let Ok(Recv::Message(message)) = session.recv(first) {
                if !message.is_empty() {
                    let _ = session.send(first, message);
                }
            }
        }
    }
    if flags & OPEN_OWN != 0 && channels.len() < 4 {
        if let Ok(channel) = session.open("q", Bytes::from_static(b"y"), Bytes::new()) {
            channels.push(channel);
        }
    }
    while session.poll_transmit().is_some() {}
}

/// Reads every channel dry; channels that ended are forgotten.
fn drain(session: &mut Session, channels: &[ChannelId]) {
    for &channel in channels {
        loop {
            match session.recv(channel) {
                Ok(Recv::Message(_)) => {}
                Ok(Recv::Ended(_)) => {
                    assert!(
                        session.recv(channel).is_err(),
                        "an ended channel is forgotten"
                    );
                    break;
                }
                _ => break,
            }
        }
    }
}

fn framed(message: &Message) -> Bytes {
    let mut out = BytesMut::from(&frame_header(message.encoded_len() as u32)[..]);
    message.encode(&mut out);
    out.freeze()
}

/// Seeds: data on the open channel, more OPENs (one breaking id density),
/// a BATCH, CLOSE and REJECT, an oversized frame, with each flag set.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let data = |channel, payload: &'static [u8]| Message::Data {
        channel,
        kind: 0,
        payload: Bytes::from_static(payload),
    };
    let open = |channel, id: &'static [u8]| Message::Open {
        channel,
        protocol: "p".into(),
        id: Bytes::from_static(id),
        handshake: Bytes::from_static(b"hi"),
    };
    let streams: Vec<(&str, Vec<Message>)> = vec![
        (
            "data",
            vec![data(1, b"hello"), data(1, &[7; 200]), data(1, b"x")],
        ),
        (
            "opens",
            vec![
                open(2, b"a"),
                open(3, b"b"),
                data(2, b"to-a"),
                open(9, b"c"),
            ],
        ),
        (
            "batch",
            vec![Message::Batch(vec![
                open(2, b"z"),
                data(2, b"b1"),
                data(1, b"b2"),
            ])],
        ),
        (
            "close-reject",
            vec![
                Message::Close { channel: 1 },
                Message::Reject { channel: 1 },
            ],
        ),
    ];
    let mut out = Vec::new();
    for (name, messages) in streams {
        let mut stream = Vec::new();
        for message in &messages {
            stream.extend_from_slice(&framed(message));
        }
        for flags in [ACCEPT | READ | ECHO, REJECT_ODD | TICK | OPEN_OWN, 0] {
            let mut seed = vec![5, flags];
            seed.extend_from_slice(&stream);
            out.push((format!("{name}-{flags}"), seed));
        }
    }
    let mut oversized = vec![31, READ];
    oversized.extend_from_slice(&frame_header(4096));
    oversized.extend_from_slice(&[0; 64]);
    out.push(("oversized".to_string(), oversized));
    out
}
