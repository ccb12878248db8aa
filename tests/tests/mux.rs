//! The Protomux wire between two Rust peers, over real TCP and WebSocket,
//! on every runtime: pairing, handshakes, reject, close, order, size,
//! backpressure from a reader that stops, a peer that vanishes.

use std::time::Duration;

use bytes::Bytes;
use plex_runtime::mux::{Mux, MuxCloseReason, MuxConfig};
use plex_runtime::Error;

const PROTOCOL: &str = "neonloom/protocol/v1";

async fn pair(url: &str, config: MuxConfig) -> (Mux, Mux) {
    let server = plex_tokio::listen_mux(url, config.clone()).await.unwrap();
    let url = server.local_endpoint().to_string();
    let (client, accepted) = tokio::join!(plex_tokio::connect_mux(&url, config), server.accept());
    (client.unwrap(), accepted.unwrap().0)
}

/// Echoes every message of every channel opened for `protocol`, answering
/// handshakes with `srv:` and the opener's.
fn echo(mux: &Mux, protocol: &str) -> tokio::task::JoinHandle<()> {
    let listener = mux.listen(protocol, None);
    tokio::spawn(async move {
        while let Ok((channel, _)) = listener
            .accept_with(|theirs| [&b"srv:"[..], theirs].concat().into())
            .await
        {
            tokio::spawn(async move {
                while let Ok(Some(message)) = channel.recv().await {
                    if channel.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_with_handshakes_over_tcp_and_websocket() {
    for url in ["tcp://127.0.0.1:0", "ws://127.0.0.1:0/mux"] {
        let (client, server) = pair(url, MuxConfig::default()).await;
        let _echo = echo(&server, PROTOCOL);
        let channel = client.open(PROTOCOL, &b"\x9a\x01"[..], "cli-hs").unwrap();
        // Sent before the peer's OPEN: the peer buffers it.
        channel
            .send(Bytes::from_static(b"plex-smoke-tcp"))
            .await
            .unwrap();
        assert_eq!(channel.opened().await.unwrap(), "srv:cli-hs", "{url}");
        assert_eq!(channel.recv().await.unwrap().unwrap(), "plex-smoke-tcp");
        // A thousand in order, then one of 1 MiB.
        for i in 0..1000 {
            channel.send(Bytes::from(format!("m{i}"))).await.unwrap();
        }
        for i in 0..1000 {
            assert_eq!(channel.recv().await.unwrap().unwrap(), format!("m{i}"));
        }
        let big: Bytes = (0..1 << 20)
            .map(|i| (i * 7) as u8)
            .collect::<Vec<u8>>()
            .into();
        channel.send(big.clone()).await.unwrap();
        assert_eq!(channel.recv().await.unwrap().unwrap(), big, "{url}");
        assert_eq!(
            channel.send(Bytes::new()).await.unwrap_err().to_string(),
            "empty messages cannot be sent on Protomux"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_nobody_listens_for_is_rejected_and_close_ends_the_peer_side() {
    let (client, server) = pair("tcp://127.0.0.1:0", MuxConfig::default()).await;
    let nobody = client.open("no/such/protocol", &b"\x01"[..], "").unwrap();
    assert!(matches!(nobody.opened().await, Err(Error::Rejected)));
    assert!(matches!(nobody.recv().await, Err(Error::Rejected)));

    let listener = server.listen("p", Some(Bytes::from_static(b"x")));
    let ours = client.open("p", &b"x"[..], "").unwrap();
    let theirs = listener.accept().await.unwrap();
    ours.send(Bytes::from_static(b"last")).await.unwrap();
    ours.close();
    assert_eq!(theirs.recv().await.unwrap().unwrap(), "last");
    assert_eq!(
        theirs.recv().await.unwrap(),
        None,
        "CLOSE ends the peer's side"
    );
    assert!(theirs.send(Bytes::from_static(b"late")).await.is_err());
    // The same key opens again on the same connection: the listener lasts.
    let again = client.open("p", &b"x"[..], "").unwrap();
    let theirs = listener.accept().await.unwrap();
    again.send(Bytes::from_static(b"again")).await.unwrap();
    assert_eq!(theirs.recv().await.unwrap().unwrap(), "again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_pushes_back_instead_of_growing_memory() {
    let config = MuxConfig::default().channel_buffer(256 * 1024);
    let (client, server) = pair("tcp://127.0.0.1:0", config).await;
    let listener = server.listen("bulk", None);
    let sender = client.open("bulk", &b""[..], "").unwrap();
    let reader = listener.accept().await.unwrap();
    let message = Bytes::from(vec![7u8; 64 * 1024]);
    let total = 1024; // 64 MiB
    let writing = tokio::spawn(async move {
        for _ in 0..total {
            sender.send(message.clone()).await.unwrap();
        }
        sender
    });
    // Nobody reads: the writer stalls once the socket buffers, the
    // client's send buffer and the reader's channel buffer are full.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !writing.is_finished(),
        "64 MiB cannot fit in the bounded buffers"
    );
    let held = server.stats().buffered;
    assert!(
        held <= 256 * 1024 + 64 * 1024 + 1024,
        "server holds {held} bytes"
    );
    assert!(client.stats().queued <= (1 << 20) + 64 * 1024 + 1024);
    // Reading lets it all through, in order and intact.
    for _ in 0..total {
        let got = reader.recv().await.unwrap().unwrap();
        assert_eq!(got.len(), 64 * 1024);
    }
    writing.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_vanishes_ends_every_channel_without_a_hang() {
    let (client, server) = pair("tcp://127.0.0.1:0", MuxConfig::default()).await;
    let listener = server.listen("p", None);
    let ours = client.open("p", &b"a"[..], "").unwrap();
    let theirs = listener.accept().await.unwrap();
    ours.opened().await.unwrap();
    // Every handle of the server side goes: its connection closes.
    drop((theirs, listener, server));
    assert_eq!(
        ours.recv().await.unwrap(),
        None,
        "the end of the connection ends the channel"
    );
    assert_eq!(client.closed().await, MuxCloseReason::Eof);
    assert!(matches!(
        client.open("p", &b"b"[..], ""),
        Err(Error::MuxLocal(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_the_peer_is_a_typed_violation() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    let (client, accepted) = tokio::join!(
        plex_tokio::connect_mux(&url, MuxConfig::default()),
        listener.accept()
    );
    let (client, (mut raw, _)) = (client.unwrap(), accepted.unwrap());
    // An OPEN for id 5 as the first channel: fatal in neonplex too.
    use tokio::io::AsyncWriteExt;
    let open = b"\x06\x00\x00\x00\x00\x01\x05\x01p\x00";
    raw.write_all(&open[..8]).await.unwrap();
    raw.write_all(&open[8..]).await.unwrap();
    match client.closed().await {
        MuxCloseReason::Violation(e) => {
            assert_eq!(
                e.to_string(),
                "OPEN for channel 5: ids must be dense from 1 and not in use"
            )
        }
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn smol_and_async_std_peers_talk_to_tokio() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for base in ["tcp://127.0.0.1:0", "ws://127.0.0.1:0/m"] {
        let (url, _server, _echo) = runtime.block_on(async {
            let server = plex_tokio::listen_mux(base, MuxConfig::default())
                .await
                .unwrap();
            let url = server.local_endpoint().to_string();
            let echo = tokio::spawn(async move {
                while let Ok((mux, _)) = server.accept().await {
                    let keep = echo(&mux, "x");
                    tokio::spawn(async move {
                        mux.closed().await;
                        keep.abort();
                    });
                }
            });
            (url, (), echo)
        });
        smol::block_on(async {
            let mux = plex_smol::connect_mux(&url, MuxConfig::default())
                .await
                .unwrap();
            let channel = mux.open("x", &b"1"[..], "smol").unwrap();
            channel
                .send(Bytes::from_static(b"from smol"))
                .await
                .unwrap();
            assert_eq!(channel.opened().await.unwrap(), "srv:smol");
            assert_eq!(channel.recv().await.unwrap().unwrap(), "from smol");
        });
        async_std::task::block_on(async {
            let mux = plex_async_std::connect_mux(&url, MuxConfig::default())
                .await
                .unwrap();
            let channel = mux.open("x", &b"2"[..], "").unwrap();
            channel
                .send(Bytes::from_static(b"from async-std"))
                .await
                .unwrap();
            assert_eq!(channel.recv().await.unwrap().unwrap(), "from async-std");
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_answer_with_neonplex_s_bytes_batched_only_when_messages_go_along() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = plex_tokio::listen_mux("tcp://127.0.0.1:0", MuxConfig::default())
        .await
        .unwrap();
    let addr = server.local_endpoint().authority();
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mux, _) = server.accept().await.unwrap();
    let plain = mux.listen("p", None);
    let batched = mux.listen("q", None);
    // OPEN(1, "p", "x"), then OPEN(2, "q", "y").
    raw.write_all(b"\x07\x00\x00\x00\x00\x01\x01\x01p\x01x")
        .await
        .unwrap();
    raw.write_all(b"\x07\x00\x00\x00\x00\x01\x02\x01q\x01y")
        .await
        .unwrap();
    let _p = plain.accept().await.unwrap();
    let mut reply = [0u8; 11];
    raw.read_exact(&mut reply).await.unwrap();
    assert_eq!(
        &reply, b"\x07\x00\x00\x00\x00\x01\x01\x01p\x01x",
        "a plain OPEN"
    );
    let (_q, _) = batched
        .accept_batch(|_| (Bytes::new(), vec![Bytes::from_static(b"hi")]))
        .await
        .unwrap();
    // BATCH: 00 00, channel 0, OPEN(2, q, y) as an item, switch to 2, DATA "hi".
    let expected = b"\x10\x00\x00\x00\x00\x00\x00\x06\x01\x02\x01q\x01y\x00\x02\x03\x00hi";
    let mut reply = [0u8; 20];
    raw.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, expected, "OPEN and its first message in one BATCH");
}
