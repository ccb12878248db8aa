//! Drives two plex sessions by hand, with no IO and no runtime: the whole
//! protocol is function calls. Run with
//! `cargo run --release -p plex-proto --example manual_drive`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use plex_proto::{Config, Event, OpenOptions, Session};

/// Moves every pending transmit from `from` into `to`, sent at `sent` and
/// arriving at `arrives`; returns bytes moved.
fn shuttle(from: &mut Session, to: &mut Session, sent: Instant, arrives: Instant) -> usize {
    let mut moved = 0;
    while let Some(t) = from.poll_transmit(sent) {
        moved += t.len();
        to.handle_input(arrives, t.head);
        to.handle_input(arrives, t.payload);
    }
    moved
}

/// Shuttles both ways until both sides are quiet, over an instant link.
fn settle(client: &mut Session, server: &mut Session, now: Instant) {
    while shuttle(client, server, now, now) + shuttle(server, client, now, now) > 0 {}
}

// The example plays the runtime's part, so it may read the clock; the
// sessions never do: time is always an argument.
#[allow(clippy::disallowed_methods)]
fn main() {
    let mut now = Instant::now();
    let mut client = Session::client(Config::default(), now).expect("valid config");
    let mut server = Session::server(Config::default(), now).expect("valid config");

    // 1-2. Prefaces and SETTINGS cross; both sides go quiet.
    settle(&mut client, &mut server, now);
    println!("handshake done: client rtt {:?}", client.rtt());

    // 3. A named stream with a handshake; "hello" is written before the
    //    server has even seen the open.
    let opts = OpenOptions::new("greeter", "room-1").handshake("v1");
    let id = client.open(opts).expect("open");
    client.write(id, b"hello").expect("write");
    client.finish(id).expect("finish");
    settle(&mut client, &mut server, now);

    // 4. The server sees the open, accepts with its own handshake, reads.
    while let Some(event) = server.poll_event() {
        println!("server event: {event:?}");
        if let Event::Incoming { stream, .. } = event {
            server.accept(stream, "v1-ok").expect("accept");
        }
    }
    while let Some(event) = server.poll_event() {
        println!("server event: {event:?}");
    }
    let mut buf = [0u8; 64];
    let n = server.read(id, &mut buf).expect("read").expect("data");
    println!("server read {:?}", String::from_utf8_lossy(&buf[..n]));
    settle(&mut client, &mut server, now);
    while let Some(event) = client.poll_event() {
        println!("client event: {event:?}");
    }

    // 5. Jump the clock to the next deadline: a keep-alive PING goes out.
    //    This time the link takes 5 ms each way.
    let frames_before = client.stats().frames_sent;
    now = client.poll_timeout().expect("keep-alive is armed");
    client.handle_timeout(now);
    let there = now + Duration::from_millis(5);
    let back = there + Duration::from_millis(5);
    shuttle(&mut client, &mut server, now, there);
    shuttle(&mut server, &mut client, there, back);
    println!(
        "keep-alive at +30s: {} frame sent, answered; rtt {:?}",
        client.stats().frames_sent - frames_before,
        client.rtt().expect("measured")
    );
    while let Some(event) = server.poll_event() {
        println!("server event: {event:?}");
    }

    // 6. Garbage from the transport is a typed error, never a panic.
    server.handle_input(
        now,
        Bytes::from_static(b"\x00\x00\x04\x03\x00\x00\x00\x00\x00garbage!"),
    );
    while let Some(event) = server.poll_event() {
        println!("server event after garbage: {event:?}");
    }
}
