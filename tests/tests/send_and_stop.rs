//! Local bounds on the send side, and dropping a stream, over loopback TCP
//! on every runtime.

use std::time::Duration;

use plex_runtime::{Config, Error, ErrorCode};
use plex_tests::{open_pair, Rt};
use smol::io::{AsyncReadExt, AsyncWriteExt};

/// Bounds every wait: a hang is a failure, not a stuck CI run.
const LIMIT: Duration = Duration::from_secs(60);

plex_tests::on_every_runtime!(
    a_writer_parks_when_the_peer_does_not_read,
    dropping_a_stream_stops_the_peer_and_frees_the_slot,
    closing_a_stopped_stream_succeeds_even_after_the_drain,
);

fn a_writer_parks_when_the_peer_does_not_read(rt: Rt) {
    rt.block_on(async {
        // The server grants every stream a window far above the local caps.
        let mut generous = Config::default();
        generous.initial_window = 64 << 20;
        generous.max_stream_window = 64 << 20;
        let (client, server) = rt.pair(Config::default(), generous.clone()).await;
        let mut writers = Vec::new();
        let mut readers = Vec::new();
        for _ in 0..6 {
            let (w, r) = open_pair(&client, &server).await;
            writers.push(w);
            readers.push(r);
        }
        // Each writer writes until a write parks (or far past any cap).
        let chunk = vec![7u8; 256 << 10];
        let mut accepted = 0u64;
        for w in &mut writers {
            while accepted < 64 << 20 {
                match rt.within(Duration::from_millis(200), w.write(&chunk)).await {
                    Some(Ok(n)) => accepted += n as u64,
                    Some(Err(e)) => panic!("write failed: {e}"),
                    None => break,
                }
            }
        }
        // What left is within the server's connection window (it reads
        // nothing); what waits is within the client's connection cap.
        let config = Config::default();
        let cap = config.connection_send_buffer as u64;
        let bound = u64::from(generous.connection_window) + cap;
        assert!(
            accepted <= bound,
            "writes took {accepted} bytes from a peer that reads nothing (bound {bound})"
        );
        assert!(client.stats().send_buffered <= cap);
        // Once the server reads, room returns and a parked writer resumes.
        for mut r in readers {
            rt.runtime().spawn(Box::pin(async move {
                let mut sink = Vec::new();
                let _ = r.read_to_end(&mut sink).await;
            }));
        }
        let last = writers.last_mut().expect("writers");
        let resumed = rt.within(LIMIT, last.write(&chunk)).await;
        assert!(
            matches!(resumed, Some(Ok(n)) if n > 0),
            "parked writer never resumed: {resumed:?}"
        );
    });
}

fn dropping_a_stream_stops_the_peer_and_frees_the_slot(rt: Rt) {
    rt.block_on(async {
        let (client, server) = rt.pair(Config::default(), Config::default()).await;
        let (mut dropped, mut writer) = open_pair(&client, &server).await;
        // The server streams without end; the client reads a little, then
        // drops its stream.
        let chunk = vec![9u8; 64 << 10];
        writer.write_all(&chunk).await.expect("first write");
        let mut first = [0u8; 1024];
        dropped.read_exact(&mut first).await.expect("read");
        drop(dropped);
        let write_until_stopped = async {
            let mut sent = 0u64;
            loop {
                match writer.write(&chunk).await {
                    Ok(n) => sent += n as u64,
                    Err(e) => return (e, sent),
                }
                assert!(sent < 64 << 20, "the peer was never stopped");
            }
        };
        let (e, sent) = rt
            .within(LIMIT, write_until_stopped)
            .await
            .expect("writer hung");
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        let inner = e.get_ref().and_then(|e| e.downcast_ref::<Error>());
        assert!(
            matches!(inner, Some(Error::Stopped(ErrorCode::CANCEL))),
            "{e:?} after {sent} bytes"
        );
        // The client finished its side when dropping: the server reads the
        // end, and the stream is gone on both sides.
        let mut rest = Vec::new();
        writer.read_to_end(&mut rest).await.expect("read to end");
        drop(writer);
        let runtime = rt.runtime();
        let both_closed = async {
            while client.stats().active_streams + server.stats().active_streams > 0 {
                runtime
                    .sleep_until(runtime.now() + Duration::from_millis(5))
                    .await;
            }
        };
        assert!(
            rt.within(LIMIT, both_closed).await.is_some(),
            "streams left: client {}, server {}",
            client.stats().active_streams,
            server.stats().active_streams
        );
    });
}

/// What hyper's server does after its client went away: read the end, then
/// shut down its write side. The peer's STOP_SENDING already ended that side,
/// and the client's graceful close may have drained the connection since;
/// the shutdown still succeeds.
fn closing_a_stopped_stream_succeeds_even_after_the_drain(rt: Rt) {
    rt.block_on(async {
        let (client, server) = rt.pair(Config::default(), Config::default()).await;
        let (mut request, mut handler) = open_pair(&client, &server).await;
        request.write_all(b"GET /").await.expect("request");
        let mut got = [0u8; 5];
        handler.read_exact(&mut got).await.expect("read request");
        handler.write_all(b"200 OK").await.expect("response");
        let mut response = [0u8; 6];
        request
            .read_exact(&mut response)
            .await
            .expect("read response");
        drop(request);
        let mut rest = Vec::new();
        handler.read_to_end(&mut rest).await.expect("read the end");
        rt.within(LIMIT, client.close())
            .await
            .expect("client close hung")
            .expect("client close");
        rt.within(LIMIT, server.closed())
            .await
            .expect("the server never saw the drain");
        handler
            .close()
            .await
            .expect("shutting down a stopped stream");
    });
}
