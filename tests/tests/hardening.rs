//! Regressions from the hardening review (issue 7), over loopback TCP on
//! every runtime: connections that never ended, waiters that never woke,
//! data lost to a close, accept loops that stopped.

use std::time::Duration;

use plex_runtime::{
    CloseReason, Config, DriverConfig, Error, ErrorCode, OpenOptions, ResetReason, Session, Stream,
};
use plex_tests::{open_pair, payload, Rt};
use smol::io::{AsyncReadExt, AsyncWriteExt};

/// Bounds every wait: a hang is a failure, not a stuck CI run. Keep-alive
/// PINGs (every 30 s) must not be what ends a wait.
const LIMIT: Duration = Duration::from_secs(20);

plex_tests::on_every_runtime!(
    dropping_every_handle_refuses_streams_waiting_to_be_accepted,
    close_refuses_streams_waiting_to_be_accepted,
    a_peer_that_stops_reading_cannot_hold_a_closed_connection,
    a_silent_peer_cannot_hold_an_abandoned_drain,
    a_peer_that_never_closes_its_side_is_dropped_after_the_linger,
    a_closing_peer_sees_the_goaway_and_the_resets_before_the_end,
    every_task_waiting_to_accept_wakes_when_the_connection_closes,
    a_response_that_fully_arrived_survives_an_error_goaway,
    accept_stream_skips_streams_reset_before_they_were_accepted,
    two_listeners_share_a_name_until_the_last_drops,
    a_listener_claims_a_stream_that_arrived_before_it,
);

fn refused<T>(result: &Result<T, Error>) -> bool {
    matches!(
        result,
        Err(Error::Reset(ResetReason::Remote(ErrorCode::REFUSED_STREAM)))
    )
}

/// Opens a stream with a request the server leaves unaccepted; returns it
/// once the server holds it.
async fn unaccepted(rt: Rt, client: &Session, server: &Session) -> Stream {
    let mut stream = client.open_stream(OpenOptions::default()).await.unwrap();
    stream.write_all(b"request").await.unwrap();
    rt.until(LIMIT, "the open reached the server", || {
        server.stats().active_streams == 1
    })
    .await;
    stream
}

fn dropping_every_handle_refuses_streams_waiting_to_be_accepted(rt: Rt) {
    // V4: the drain waited for a stream nobody could accept, forever.
    rt.block_on(async {
        let (client, server) = rt.pair(Config::default(), Config::default()).await;
        let stream = unaccepted(rt, &client, &server).await;
        drop(server);
        let answer = rt.within(LIMIT, stream.remote_open()).await;
        let answer = answer.expect("the open was never answered");
        assert!(refused(&answer), "{answer:?}");
        drop(stream);
        let reason = rt.within(LIMIT, client.closed()).await;
        assert_eq!(reason.expect("the drain never ended"), CloseReason::Drained);
    });
}

fn close_refuses_streams_waiting_to_be_accepted(rt: Rt) {
    // V4: `Session::close` hung the same way.
    rt.block_on(async {
        let (client, server) = rt.pair(Config::default(), Config::default()).await;
        let listener = server.listen("chat", "room");
        let stream = unaccepted(rt, &client, &server).await;
        let named = client
            .open_stream(OpenOptions::new("chat", "room"))
            .await
            .unwrap();
        rt.until(LIMIT, "the second open reached the server", || {
            server.stats().active_streams == 2
        })
        .await;
        let closed = rt.within(LIMIT, server.close()).await.expect("close hung");
        assert!(closed.is_ok(), "{closed:?}");
        for s in [&stream, &named] {
            let answer = rt.within(LIMIT, s.remote_open()).await.expect("no answer");
            assert!(refused(&answer), "{answer:?}");
        }
        assert!(listener.accept().await.is_err());
    });
}

fn a_peer_that_stops_reading_cannot_hold_a_closed_connection(rt: Rt) {
    // V5: the closed session's last bytes could not be written, and the
    // socket stayed open forever.
    rt.block_on(async {
        let mut driver = DriverConfig::default();
        driver.linger = Duration::from_millis(200);
        // The server grants 64 MiB up front: more than the sockets buffer.
        let mut generous = Config::default();
        generous.initial_window = 64 << 20;
        generous.max_stream_window = 64 << 20;
        generous.connection_window = 64 << 20;
        generous.max_connection_window = 64 << 20;
        let (client, server, proxy, dropped) =
            rt.pair_watched(Config::default(), generous, driver).await;
        let (mut a, _b) = open_pair(&client, &server).await;
        proxy.blackhole();
        // The client writes until every buffer on the way is full and its
        // last bytes cannot leave.
        let data = payload(1 << 20);
        let fill = async { while a.write_all(&data).await.is_ok() {} };
        let settle = rt.within(Duration::from_secs(1), std::future::pending::<()>());
        smol::future::or(fill, async {
            settle.await;
        })
        .await;
        client.go_away(ErrorCode::INTERNAL_ERROR).unwrap();
        assert!(client.is_closed());
        drop((a, client));
        rt.until(LIMIT, "the transport was dropped", || dropped.is_set())
            .await;
    });
}

fn a_silent_peer_cannot_hold_an_abandoned_drain(rt: Rt) {
    // V5: after the last handle went, a drain that could not progress kept
    // the connection forever.
    rt.block_on(async {
        let mut driver = DriverConfig::default();
        driver.linger = Duration::from_millis(200);
        let (client, server, proxy, dropped) = rt
            .pair_watched(Config::default(), Config::default(), driver)
            .await;
        let (mut a, mut b) = open_pair(&client, &server).await;
        a.write_all(b"x").await.unwrap();
        b.read_exact(&mut [0; 1]).await.unwrap();
        proxy.blackhole();
        // The stream waits for the server's END_STREAM, which never comes.
        drop((a, client));
        rt.until(LIMIT, "the transport was dropped", || dropped.is_set())
            .await;
    });
}

fn a_peer_that_never_closes_its_side_is_dropped_after_the_linger(rt: Rt) {
    // A closed connection reads until the peer closes its side too, so
    // that no reset destroys the final frames; a peer that never does
    // holds the socket for the linger, no longer.
    rt.block_on(async {
        let mut driver = DriverConfig::default();
        driver.linger = Duration::from_millis(300);
        let (client, _server, proxy, dropped) = rt
            .pair_watched(Config::default(), Config::default(), driver.clone())
            .await;
        proxy.blackhole();
        let start = std::time::Instant::now();
        client.go_away(ErrorCode::INTERNAL_ERROR).unwrap();
        drop(client);
        rt.until(LIMIT, "the transport was dropped", || dropped.is_set())
            .await;
        assert!(start.elapsed() >= driver.linger, "{:?}", start.elapsed());
    });
}

fn a_closing_peer_sees_the_goaway_and_the_resets_before_the_end(rt: Rt) {
    // Both ends write while the client closes: the server's frames may be
    // unread in the client's socket when the client is done. The server
    // still reads the client's reset and GOAWAY and closes as drained,
    // never with a transport failure.
    rt.block_on(async {
        for _ in 0..20 {
            let (client, server) = rt.pair(Config::default(), Config::default()).await;
            let (mut a, mut b) = open_pair(&client, &server).await;
            // Frames in flight towards the client as it closes.
            let _ = b.write_all(&payload(64 << 10)).await;
            a.reset(ErrorCode::CANCEL);
            drop((a, b));
            rt.within(LIMIT, client.close())
                .await
                .expect("no hang")
                .expect("close");
            let reason = rt.within(LIMIT, server.closed()).await.expect("no hang");
            assert_eq!(reason, CloseReason::Drained);
        }
    });
}

fn every_task_waiting_to_accept_wakes_when_the_connection_closes(rt: Rt) {
    // V6: with one waker slot, only the last of two waiting tasks woke.
    rt.block_on(async {
        let (client, server) = rt.pair(Config::default(), Config::default()).await;
        let runtime = rt.runtime();
        let (tx, rx) = smol::channel::unbounded();
        for _ in 0..2 {
            let (server, tx) = (server.clone(), tx.clone());
            runtime.spawn(Box::pin(async move {
                let _ = tx.send(server.accept_stream().await.is_err()).await;
            }));
        }
        // Closing as the tasks start waiting, or soon after: either way
        // both must end.
        rt.within(Duration::from_millis(50), std::future::pending::<()>())
            .await;
        client.go_away(ErrorCode::INTERNAL_ERROR).unwrap();
        for _ in 0..2 {
            let failed = rt.within(LIMIT, rx.recv()).await;
            assert_eq!(failed.expect("a waiting task never woke"), Ok(true));
        }
    });
}

fn a_response_that_fully_arrived_survives_an_error_goaway(rt: Rt) {
    // V8: the whole response was in, END_STREAM included, and the GOAWAY
    // that followed it discarded it all.
    rt.block_on(async {
        let (client, server) = rt.pair(Config::default(), Config::default()).await;
        let (mut a, mut b) = open_pair(&client, &server).await;
        a.write_all(b"request").await.unwrap();
        a.close().await.unwrap();
        let mut request = Vec::new();
        b.read_to_end(&mut request).await.unwrap();
        let response = payload(50_000);
        b.write_all(&response).await.unwrap();
        b.close().await.unwrap();
        // The server forgets the stream once its END_STREAM is sent: the
        // GOAWAY leaves after the whole response.
        rt.until(LIMIT, "the response was sent", || {
            server.stats().active_streams == 0
        })
        .await;
        server.go_away(ErrorCode::INTERNAL_ERROR).unwrap();
        let reason = rt.within(LIMIT, client.closed()).await.expect("no close");
        assert!(matches!(reason, CloseReason::Remote { .. }), "{reason:?}");
        let mut got = Vec::new();
        let read = rt.within(LIMIT, a.read_to_end(&mut got)).await;
        read.expect("read hung").expect("read after the close");
        assert!(got == response, "{} of 50000 bytes", got.len());
    });
}

fn accept_stream_skips_streams_reset_before_they_were_accepted(rt: Rt) {
    // An accept loop ended when one stream was reset before its accept.
    const RESETS: usize = 200;
    rt.block_on(async {
        let (client, server) = rt.pair(Config::default(), Config::default()).await;
        let runtime = rt.runtime();
        let (tx, rx) = smol::channel::unbounded();
        runtime.spawn(Box::pin(async move {
            let mut accepted = 0;
            let result = loop {
                match server.accept_stream().await {
                    Ok(mut stream) => {
                        accepted += 1;
                        let mut word = Vec::new();
                        // Streams reset after their accept fail to read.
                        if stream.read_to_end(&mut word).await.is_ok() && word == b"last" {
                            break Ok(accepted);
                        }
                    }
                    Err(e) => break Err(e),
                }
            };
            let _ = tx.send(result).await;
        }));
        for _ in 0..RESETS {
            let mut doomed = client.open_stream(OpenOptions::default()).await.unwrap();
            doomed.reset(ErrorCode::CANCEL);
        }
        let mut last = client.open_stream(OpenOptions::default()).await.unwrap();
        last.write_all(b"last").await.unwrap();
        last.close().await.unwrap();
        let outcome = rt.within(LIMIT, rx.recv()).await.expect("accept loop hung");
        let accepted = outcome.unwrap().expect("the accept loop ended");
        assert!(accepted <= RESETS + 1);
    });
}

/// Issue 8: a second `listen` of the same protocol and id used to be
/// undone, for both, when either dropped.
fn two_listeners_share_a_name_until_the_last_drops(rt: Rt) {
    rt.block_on(async {
        let mut strict = Config::default();
        strict.accept_any = false;
        let (client, server) = rt.pair(Config::default(), strict).await;
        let first = server.listen("svc", "a");
        let second = server.listen("svc", "a");
        drop(first);
        let mut stream = client
            .open_stream(OpenOptions::new("svc", "a"))
            .await
            .unwrap();
        stream.write_all(b"still served").await.unwrap();
        stream.finish().unwrap();
        let incoming = rt.within(LIMIT, second.accept()).await.expect("no hang");
        let mut accepted = incoming
            .expect("the second listener still listens")
            .accept("")
            .unwrap();
        let mut got = Vec::new();
        accepted.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"still served");
        // With the last one gone, the name is refused.
        drop(second);
        let mut late = client
            .open_stream(OpenOptions::new("svc", "a"))
            .await
            .unwrap();
        let mut buf = [0u8; 1];
        let refused_read = late.read(&mut buf).await.map_err(|e| {
            e.into_inner()
                .and_then(|e| e.downcast::<Error>().ok())
                .map(|e| *e)
        });
        assert!(
            matches!(
                refused_read,
                Err(Some(Error::Reset(ResetReason::Remote(
                    ErrorCode::REFUSED_STREAM
                ))))
            ),
            "{refused_read:?}"
        );
    });
}

/// Issue 8: a stream opened before the other side listened for it sat in
/// the accept queue for ever, unseen by the listener made a moment later.
fn a_listener_claims_a_stream_that_arrived_before_it(rt: Rt) {
    rt.block_on(async {
        let (client, server) = rt.pair(Config::default(), Config::default()).await;
        let mut early = client
            .open_stream(OpenOptions::new("svc", "early"))
            .await
            .unwrap();
        early.write_all(b"first").await.unwrap();
        early.finish().unwrap();
        rt.until(LIMIT, "the open reached the server", || {
            server.stats().active_streams == 1
        })
        .await;
        let listener = server.listen("svc", "early");
        let incoming = rt.within(LIMIT, listener.accept()).await.expect("no hang");
        let mut stream = incoming.expect("claimed").accept("").unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"first");
    });
}
