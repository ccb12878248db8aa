//! Behaviour users of other multiplexers complain about, checked over real
//! loopback TCP on every runtime: each test runs on tokio, smol and
//! async-std, and those about the connection over TLS too.

use std::time::Duration;

use plex_runtime::{CloseReason, Config, Error, ErrorCode, OpenOptions, ResetReason, Stream};
use plex_tests::{open_pair, payload, Net, Rt};
use smol::io::{AsyncReadExt, AsyncWriteExt};

/// Bounds every wait: a hang is a failure, not a stuck CI run.
const LIMIT: Duration = Duration::from_secs(60);

plex_tests::on_every_runtime_and_net!(
    both_sides_writing_large_amounts_before_reading_do_not_deadlock,
    pending_read_fails_as_soon_as_the_connection_dies,
    a_vanished_peer_is_detected_by_the_idle_timeout,
    goaway_lets_active_streams_finish_and_new_opens_fail,
    ping_stats_and_graceful_close,
);

plex_tests::on_every_runtime!(
    dropping_a_stream_finishes_it_without_losing_data,
    a_slow_reader_does_not_stall_other_streams,
    backpressure_reaches_the_writer,
    named_pairing_with_handshakes_and_a_refused_open,
    read_and_write_deadlines_time_out,
    ten_thousand_idle_streams_on_one_connection,
    read_chunk_hands_out_the_frames_bytes_and_mixes_with_read,
);

/// Writes `data` and finishes while reading everything the peer sends.
async fn exchange(stream: Stream, data: &[u8]) -> Vec<u8> {
    let (mut reader, mut writer) = smol::io::split(stream);
    let write = async {
        writer.write_all(data).await.expect("write");
        writer.close().await.expect("finish");
    };
    let mut got = Vec::new();
    let (_, read) = smol::future::zip(write, reader.read_to_end(&mut got)).await;
    read.expect("read");
    got
}

fn both_sides_writing_large_amounts_before_reading_do_not_deadlock(rt: Rt, net: Net) {
    // rust-yamux #227: each side writes 8 MiB before reading anything.
    rt.block_on(async {
        let (client, server) = rt
            .pair_over(net, Config::default(), Config::default())
            .await;
        let (a, b) = open_pair(&client, &server).await;
        let data = payload(8 << 20);
        let both = smol::future::zip(exchange(a, &data), exchange(b, &data));
        let (got_a, got_b) = rt.within(LIMIT, both).await.expect("deadlock");
        assert!(got_a == data && got_b == data);
    });
}

fn pending_read_fails_as_soon_as_the_connection_dies(rt: Rt, net: Net) {
    // rust-yamux #216: a read parked on a dead connection must wake up.
    rt.block_on(async {
        let (client, server, proxy) = rt
            .pair_via_proxy_over(net, Config::default(), Config::default())
            .await;
        let (mut a, mut b) = open_pair(&client, &server).await;
        a.write_all(b"x").await.unwrap();
        b.read_exact(&mut [0; 1]).await.unwrap();
        let reads = smol::future::zip(async { a.read(&mut [0u8; 16]).await }, async {
            b.read(&mut [0u8; 16]).await
        });
        let cut = async {
            rt.within(Duration::from_millis(50), std::future::pending::<()>())
                .await;
            proxy.cut();
        };
        let ((ra, rb), ()) = rt
            .within(Duration::from_secs(5), smol::future::zip(reads, cut))
            .await
            .expect("a pending read hung on a dead connection");
        assert!(ra.is_err(), "client read: {ra:?}");
        assert!(rb.is_err(), "server read: {rb:?}");
        assert_eq!(client.closed().await, CloseReason::TransportClosed);
    });
}

fn a_vanished_peer_is_detected_by_the_idle_timeout(rt: Rt, net: Net) {
    rt.block_on(async {
        let mut quick = Config::default();
        quick.ping_interval = Some(Duration::from_millis(100));
        quick.idle_timeout = Some(Duration::from_millis(400));
        let (client, server, proxy) = rt.pair_via_proxy_over(net, quick.clone(), quick).await;
        let (mut a, _b) = open_pair(&client, &server).await;
        proxy.blackhole();
        let read = rt
            .within(LIMIT, a.read(&mut [0u8; 4]))
            .await
            .expect("read hung");
        assert!(read.is_err());
        assert_eq!(client.closed().await, CloseReason::IdleTimeout);
    });
}

fn dropping_a_stream_finishes_it_without_losing_data(rt: Rt) {
    // rust-yamux #117: drop right after writing; the peer gets every byte.
    rt.block_on(async {
        let (client, server) = rt.pair(Config::default(), Config::default()).await;
        let data = payload(3 << 20);
        let write = async {
            let mut s = client.open_stream(OpenOptions::default()).await.unwrap();
            s.write_all(&data).await.unwrap();
            drop(s);
        };
        let read = async {
            let mut s = server.accept_stream().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        };
        let ((), got) = rt
            .within(LIMIT, smol::future::zip(write, read))
            .await
            .expect("hung");
        assert!(got == data);
    });
}

fn a_slow_reader_does_not_stall_other_streams(rt: Rt) {
    rt.block_on(async {
        let (client, server) = rt.pair(Config::default(), Config::default()).await;
        let (mut slow_w, _slow_r) = open_pair(&client, &server).await;
        // Fill the unread stream's window (and more: this write parks).
        let big = payload(4 << 20);
        let stuck = slow_w.write_all(&big);
        let (fast_w, fast_r) = open_pair(&client, &server).await;
        let data = payload(16 << 20);
        let fast = smol::future::zip(exchange(fast_w, &data), exchange(fast_r, &[]));
        let fast = async { Ok::<_, std::io::Error>(fast.await) };
        // `or` polls the parked write alongside: it must not finish first.
        let outcome = rt.within(
            LIMIT,
            smol::future::or(fast, async {
                stuck.await?;
                Err(std::io::Error::other("the unread stream took 4 MiB"))
            }),
        );
        let (echoed, got) = outcome.await.expect("the fast stream stalled").unwrap();
        assert!(echoed.is_empty());
        assert!(got == data);
    });
}

fn backpressure_reaches_the_writer(rt: Rt) {
    rt.block_on(async {
        let (client, server) = rt.pair(Config::default(), Config::default()).await;
        let (mut w, mut r) = open_pair(&client, &server).await;
        let chunk = vec![7u8; 64 << 10];
        let mut written = 0usize;
        // With nobody reading, a write must park after about one window
        // (64 KiB), not after the whole 64 MiB offered.
        while written < 64 << 20 {
            match rt.within(Duration::from_millis(300), w.write(&chunk)).await {
                Some(n) => written += n.unwrap(),
                None => break,
            }
        }
        assert!(
            written <= 256 << 10,
            "{written} bytes accepted with no reader"
        );
        // Reading releases it.
        let mut buf = vec![0; written];
        r.read_exact(&mut buf).await.unwrap();
        rt.within(LIMIT, w.write_all(&chunk))
            .await
            .expect("still parked")
            .unwrap();
    });
}

fn named_pairing_with_handshakes_and_a_refused_open(rt: Rt) {
    rt.block_on(async {
        let mut strict = Config::default();
        strict.accept_any = false;
        let (client, server) = rt.pair(Config::default(), strict).await;
        let listener = server.listen("chat", "room-1");
        let open = client.open_stream(OpenOptions::new("chat", "room-1").handshake("hello v2"));
        let (stream, incoming) = smol::future::zip(open, listener.accept()).await;
        let (stream, incoming) = (stream.unwrap(), incoming.unwrap());
        assert_eq!(&incoming.handshake()[..], b"hello v2");
        assert_eq!(&incoming.protocol()[..], b"chat");
        assert_eq!(&incoming.channel_id()[..], b"room-1");
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
                Error::Reset(ResetReason::Remote(ErrorCode::REFUSED_STREAM))
            ),
            "{refused:?}"
        );
    });
}

fn goaway_lets_active_streams_finish_and_new_opens_fail(rt: Rt, net: Net) {
    rt.block_on(async {
        let (client, server) = rt
            .pair_over(net, Config::default(), Config::default())
            .await;
        let (a, b) = open_pair(&client, &server).await;
        server.go_away(ErrorCode::NO_ERROR).unwrap();
        // Before the client has seen the GOAWAY the server refuses its open;
        // after, the open fails locally. Either way it never pairs.
        let refused = match client.open_stream(OpenOptions::default()).await {
            Err(e) => e,
            Ok(s) => s
                .remote_open()
                .await
                .expect_err("a stream opened after GOAWAY paired"),
        };
        assert!(
            matches!(refused, Error::Local(_) | Error::Reset(_)),
            "{refused:?}"
        );
        let (got_b, got_a) =
            smol::future::zip(exchange(b, b"reply"), exchange(a, b"still here")).await;
        assert_eq!((got_b, got_a), (b"still here".to_vec(), b"reply".to_vec()));
        assert_eq!(
            rt.within(LIMIT, client.closed()).await,
            Some(CloseReason::Drained)
        );
        assert_eq!(
            rt.within(LIMIT, server.closed()).await,
            Some(CloseReason::Drained)
        );
    });
}

fn read_and_write_deadlines_time_out(rt: Rt) {
    rt.block_on(async {
        let (client, server) = rt.pair(Config::default(), Config::default()).await;
        let (mut a, _b) = open_pair(&client, &server).await;
        a.set_read_timeout(Some(Duration::from_millis(100)));
        let err = a.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        a.set_write_timeout(Some(Duration::from_millis(100)));
        let err = a.write_all(&payload(1 << 20)).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    });
}

fn ping_stats_and_graceful_close(rt: Rt, net: Net) {
    rt.block_on(async {
        let (client, server) = rt
            .pair_over(net, Config::default(), Config::default())
            .await;
        let rtt = client.ping().await.unwrap();
        assert!(rtt < LIMIT);
        let (a, b) = open_pair(&client, &server).await;
        let (got_b, _) = smol::future::zip(exchange(b, b""), exchange(a, &payload(100_000))).await;
        assert_eq!(got_b.len(), 100_000);
        let stats = client.stats();
        assert!(stats.bytes_sent > 100_000);
        assert_eq!(stats.streams_opened, 1);
        assert!(stats.last_rtt.is_some());
        rt.within(LIMIT, client.close())
            .await
            .expect("close hung")
            .unwrap();
        assert_eq!(server.closed().await, CloseReason::Drained);
    });
}

fn ten_thousand_idle_streams_on_one_connection(rt: Rt) {
    // Memory per idle stream is measured by `plex-bench mux` (idle_streams);
    // this checks that so many streams open, stay usable, and close.
    const N: usize = 10_000;
    rt.block_on(async {
        let mut config = Config::default();
        config.max_concurrent_streams = 2 * N as u32;
        config.max_pending_accepts = 2 * N as u32;
        let (client, server) = rt.pair(config.clone(), config).await;
        let mut pairs = Vec::with_capacity(N);
        for _ in 0..N {
            pairs.push(open_pair(&client, &server).await);
        }
        assert_eq!(client.stats().active_streams as usize, N);
        assert_eq!(server.stats().active_streams as usize, N);
        // They all still carry data, both ways.
        for (i, (a, b)) in pairs.iter_mut().enumerate().step_by(97) {
            let msg = (i as u32).to_be_bytes();
            a.write_all(&msg).await.unwrap();
            let mut got = [0u8; 4];
            b.read_exact(&mut got).await.unwrap();
            b.write_all(&got).await.unwrap();
            a.read_exact(&mut got).await.unwrap();
            assert_eq!(got, msg);
        }
        drop(pairs);
        rt.within(LIMIT, client.close())
            .await
            .expect("close hung")
            .unwrap();
    });
}

fn read_chunk_hands_out_the_frames_bytes_and_mixes_with_read(rt: Rt) {
    rt.block_on(async {
        let (client, server) = rt.pair(Config::default(), Config::default()).await;
        let data = payload(1 << 20);
        let write = async {
            let mut s = client.open_stream(OpenOptions::default()).await.unwrap();
            s.write_all(&data).await.unwrap();
            s.close().await.unwrap();
        };
        let read = async {
            let mut s = server.accept_stream().await.unwrap();
            // A plain read first, then chunks no larger than asked for,
            // then the end, which stays the end.
            let mut got = vec![0u8; 10];
            s.read_exact(&mut got).await.unwrap();
            let mut largest = 0;
            while let Some(chunk) = s.read_chunk(5000).await.unwrap() {
                assert!(!chunk.is_empty() && chunk.len() <= 5000);
                largest = largest.max(chunk.len());
                got.extend_from_slice(&chunk);
            }
            assert_eq!(s.read_chunk(5000).await.unwrap(), None);
            (got, largest)
        };
        let ((), (got, largest)) = rt
            .within(LIMIT, smol::future::zip(write, read))
            .await
            .expect("hung");
        assert!(got == data);
        assert_eq!(largest, 5000, "a 1 MiB stream fills 5000-byte chunks");
    });
}
