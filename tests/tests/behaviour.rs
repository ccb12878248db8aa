//! Behaviour users of other multiplexers complain about, checked over real
//! loopback TCP on tokio.

use std::time::Duration;

use plex_runtime::{CloseReason, Config, ErrorCode, OpenOptions, Session};
use plex_tests::{payload, tokio_pair, Proxy};
use plex_tokio::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bounds every test: a hang is a failure, not a stuck CI run.
const LIMIT: Duration = Duration::from_secs(60);

async fn open(client: &Session, server: &Session) -> (Stream, Stream) {
    let (a, b) = tokio::join!(
        client.open_stream(OpenOptions::default()),
        server.accept_stream()
    );
    (Stream::from(a.unwrap()), Stream::from(b.unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_payloads_of_every_size() {
    let (client, server) = tokio_pair(Config::default(), Config::default()).await;
    tokio::spawn(async move {
        while let Ok(s) = server.accept_stream().await {
            tokio::spawn(async move {
                let mut s = Stream::from(s);
                let (mut r, mut w) = tokio::io::split(&mut s);
                tokio::io::copy(&mut r, &mut w).await.unwrap();
                w.shutdown().await.unwrap();
            });
        }
    });
    for len in [0, 1, 1024, 16 * 1024, 1 << 20, 5 << 20] {
        let data = payload(len);
        let mut s = Stream::from(client.open_stream(OpenOptions::default()).await.unwrap());
        let (mut r, mut w) = tokio::io::split(&mut s);
        let write = async {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut back = Vec::new();
        let read = r.read_to_end(&mut back);
        let (_, got) = tokio::time::timeout(LIMIT, async { tokio::join!(write, read) })
            .await
            .unwrap();
        got.unwrap();
        assert!(back == data, "echo of {len} bytes differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_writing_large_amounts_before_reading_do_not_deadlock() {
    // rust-yamux #227: each side writes 8 MiB before reading anything.
    let (client, server) = tokio_pair(Config::default(), Config::default()).await;
    let (a, b) = open(&client, &server).await;
    let side = |mut s: Stream| async move {
        let data = payload(8 << 20);
        let (mut r, mut w) = tokio::io::split(&mut s);
        let write = async {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut got = Vec::new();
        let (_, n) = tokio::join!(write, r.read_to_end(&mut got));
        n.unwrap();
        assert!(got == data);
    };
    tokio::time::timeout(LIMIT, async { tokio::join!(side(a), side(b)) })
        .await
        .expect("deadlock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_read_fails_as_soon_as_the_connection_dies() {
    // rust-yamux #216: a read parked on a dead connection must wake up.
    let listener = plex_tokio::listen("tcp://127.0.0.1:0", Config::default())
        .await
        .unwrap();
    let proxy = Proxy::start(listener.local_endpoint().authority().parse().unwrap()).await;
    let url = format!("tcp://{}", proxy.addr);
    let (client, server) = tokio::join!(
        plex_tokio::connect(&url, Config::default()),
        listener.accept()
    );
    let (client, server) = (client.unwrap(), server.unwrap().0);
    let (mut a, mut b) = open(&client, &server).await;
    a.write_all(b"x").await.unwrap();
    b.read_exact(&mut [0; 1]).await.unwrap();
    let reads = async {
        let mut buf = [0u8; 16];
        tokio::join!(a.read(&mut buf), async {
            let mut buf = [0u8; 16];
            b.read(&mut buf).await
        })
    };
    let cut = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        proxy.cut();
    };
    let ((ra, rb), ()) =
        tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(reads, cut) })
            .await
            .expect("a pending read hung on a dead connection");
    assert!(ra.is_err(), "client read: {ra:?}");
    assert!(rb.is_err(), "server read: {rb:?}");
    assert_eq!(client.closed().await, CloseReason::TransportClosed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_peer_is_detected_by_the_idle_timeout() {
    let mut quick = Config::default();
    quick.ping_interval = Some(Duration::from_millis(100));
    quick.idle_timeout = Some(Duration::from_millis(400));
    let listener = plex_tokio::listen("tcp://127.0.0.1:0", quick.clone())
        .await
        .unwrap();
    let proxy = Proxy::start(listener.local_endpoint().authority().parse().unwrap()).await;
    let url = format!("tcp://{}", proxy.addr);
    let (client, server) = tokio::join!(plex_tokio::connect(&url, quick), listener.accept());
    let (client, server) = (client.unwrap(), server.unwrap().0);
    let (mut a, _b) = open(&client, &server).await;
    proxy.blackhole();
    let mut buf = [0u8; 4];
    let read = tokio::time::timeout(LIMIT, a.read(&mut buf))
        .await
        .expect("read hung");
    assert!(read.is_err());
    assert_eq!(client.closed().await, CloseReason::IdleTimeout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_finishes_it_without_losing_data() {
    // rust-yamux #117: drop right after writing; the peer gets every byte.
    let (client, server) = tokio_pair(Config::default(), Config::default()).await;
    let data = payload(3 << 20);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        let mut s = Stream::from(client.open_stream(OpenOptions::default()).await.unwrap());
        s.write_all(&sent).await.unwrap();
        drop(s);
        client
    });
    let mut s = Stream::from(server.accept_stream().await.unwrap());
    let mut got = Vec::new();
    tokio::time::timeout(LIMIT, s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(got == data);
    drop(writer.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_does_not_stall_other_streams() {
    let (client, server) = tokio_pair(Config::default(), Config::default()).await;
    let (mut slow_w, _slow_r) = open(&client, &server).await;
    // Fill the unread stream's window (and more: this write parks).
    let stuck = tokio::spawn(async move { slow_w.write_all(&payload(4 << 20)).await });
    let (mut fast_w, mut fast_r) = open(&client, &server).await;
    let data = payload(16 << 20);
    let write = async {
        fast_w.write_all(&data).await.unwrap();
        fast_w.shutdown().await.unwrap();
    };
    let mut got = Vec::new();
    let (_, n) = tokio::time::timeout(LIMIT, async {
        tokio::join!(write, fast_r.read_to_end(&mut got))
    })
    .await
    .expect("the fast stream stalled");
    n.unwrap();
    assert!(got == data);
    assert!(
        !stuck.is_finished(),
        "the unread stream cannot have taken 4 MiB"
    );
    stuck.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_reaches_the_writer() {
    let (client, server) = tokio_pair(Config::default(), Config::default()).await;
    let (mut w, mut r) = open(&client, &server).await;
    let chunk = vec![7u8; 64 << 10];
    let mut written = 0usize;
    // Write until a write parks: with nobody reading, that must happen after
    // about one window (64 KiB), not after the whole 64 MiB we offer.
    while written < 64 << 20 {
        match tokio::time::timeout(Duration::from_millis(300), w.write(&chunk)).await {
            Ok(n) => written += n.unwrap(),
            Err(_) => break,
        }
    }
    assert!(
        written <= 256 << 10,
        "{written} bytes accepted with no reader"
    );
    // Reading releases it.
    let mut buf = vec![0; written];
    r.read_exact(&mut buf).await.unwrap();
    tokio::time::timeout(LIMIT, w.write_all(&chunk))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_pairing_with_handshakes_and_a_refused_open() {
    let mut strict = Config::default();
    strict.accept_any = false;
    let (client, server) = tokio_pair(Config::default(), strict).await;
    let listener = server.listen("chat", "room-1");
    let open = client.open_stream(OpenOptions::new("chat", "room-1").handshake("hello v2"));
    let (stream, incoming) = tokio::join!(open, listener.accept());
    let (stream, incoming) = (stream.unwrap(), incoming.unwrap());
    assert_eq!(&incoming.handshake()[..], b"hello v2");
    assert_eq!(&incoming.protocol()[..], b"chat");
    let accepted = incoming.accept("welcome").unwrap();
    assert_eq!(&stream.remote_open().await.unwrap()[..], b"welcome");
    assert_eq!(&accepted.remote_open().await.unwrap()[..], b"hello v2");

    let other = client
        .open_stream(OpenOptions::new("chat", "room-2"))
        .await
        .unwrap();
    let refused = other.remote_open().await.unwrap_err();
    assert!(
        matches!(
            refused,
            plex_runtime::Error::Reset(plex_runtime::ResetReason::Remote(
                ErrorCode::REFUSED_STREAM
            ))
        ),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_lets_active_streams_finish_and_new_opens_fail() {
    let (client, server) = tokio_pair(Config::default(), Config::default()).await;
    let (mut a, mut b) = open(&client, &server).await;
    server.go_away(ErrorCode::NO_ERROR).unwrap();
    // Wait until the client has seen the GOAWAY.
    let refused = loop {
        match client.open_stream(OpenOptions::default()).await {
            Err(e) => break e,
            Ok(s) => match s.remote_open().await {
                Err(e) => break e,
                Ok(_) => continue,
            },
        }
    };
    assert!(
        matches!(
            refused,
            plex_runtime::Error::Local(_)
                | plex_runtime::Error::Reset(plex_runtime::ResetReason::GoneAway)
        ),
        "{refused:?}"
    );
    a.write_all(b"still here").await.unwrap();
    a.shutdown().await.unwrap();
    let mut got = Vec::new();
    b.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"still here");
    b.shutdown().await.unwrap();
    a.read_to_end(&mut Vec::new()).await.unwrap();
    assert_eq!(
        tokio::time::timeout(LIMIT, client.closed()).await.unwrap(),
        CloseReason::Drained
    );
    assert_eq!(
        tokio::time::timeout(LIMIT, server.closed()).await.unwrap(),
        CloseReason::Drained
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_and_write_deadlines_time_out() {
    let (client, server) = tokio_pair(Config::default(), Config::default()).await;
    let (mut a, _b) = open(&client, &server).await;
    a.set_read_timeout(Some(Duration::from_millis(100)));
    let err = a.read(&mut [0; 8]).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    a.set_write_timeout(Some(Duration::from_millis(100)));
    let err = a.write_all(&payload(1 << 20)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_stats_and_graceful_close() {
    let (client, server) = tokio_pair(Config::default(), Config::default()).await;
    let rtt = client.ping().await.unwrap();
    assert!(rtt < LIMIT);
    let (mut a, mut b) = open(&client, &server).await;
    let write = async {
        a.write_all(&payload(100_000)).await.unwrap();
        a.shutdown().await.unwrap();
    };
    let mut got = Vec::new();
    let (_, read) = tokio::join!(write, b.read_to_end(&mut got));
    assert_eq!(read.unwrap(), 100_000);
    b.shutdown().await.unwrap();
    a.read_to_end(&mut Vec::new()).await.unwrap();
    let stats = client.stats();
    assert!(stats.bytes_sent > 100_000);
    assert_eq!(stats.streams_opened, 1);
    assert!(stats.last_rtt.is_some());
    drop((a, b));
    tokio::time::timeout(LIMIT, client.close())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server.closed().await, CloseReason::Drained);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_streams_on_one_connection() {
    // Memory per idle stream is measured by `plex-bench mux` (idle_streams);
    // this checks that so many streams open, stay usable, and close.
    const N: usize = 10_000;
    let mut config = Config::default();
    config.max_concurrent_streams = 2 * N as u32;
    config.max_pending_accepts = 2 * N as u32;
    let (client, server) = tokio_pair(config.clone(), config).await;
    let mut opened = Vec::with_capacity(N);
    let mut accepted = Vec::with_capacity(N);
    for _ in 0..N {
        let (a, b) = open(&client, &server).await;
        opened.push(a);
        accepted.push(b);
    }
    assert_eq!(client.stats().active_streams as usize, N);
    assert_eq!(server.stats().active_streams as usize, N);
    // Every one of them still carries data, in both directions.
    for (i, (a, b)) in opened
        .iter_mut()
        .zip(accepted.iter_mut())
        .enumerate()
        .step_by(97)
    {
        let msg = (i as u32).to_be_bytes();
        a.write_all(&msg).await.unwrap();
        let mut got = [0u8; 4];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(got, msg);
        b.write_all(&got).await.unwrap();
        a.read_exact(&mut got).await.unwrap();
        assert_eq!(got, msg);
    }
    drop((opened, accepted));
    tokio::time::timeout(LIMIT, client.close())
        .await
        .unwrap()
        .unwrap();
}
