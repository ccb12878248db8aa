//! The bus over loopback TCP on every runtime: the seed's ten edge cases,
//! its open bug (concurrent requests interleaving) as a test, and the
//! failure paths: no responders, a responder that dies, a requester that
//! cancels, a slow subscriber, wildcards.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use plex_bus::{Broker, BrokerConfig, BusClient, BusError, Event, SlowPolicy};
use plex_proto::bus::{Record, PUBLISH_PROTOCOL};
use plex_runtime::{Config, OpenOptions};
use plex_tests::Rt;
use smol::io::AsyncWriteExt;

/// Bounds every wait: a hang is a failure.
const LIMIT: Duration = Duration::from_secs(60);

plex_tests::on_every_runtime!(
    connection_refused_is_a_typed_error,
    calls_after_close_fail_and_close_twice_is_harmless,
    close_returns_once_the_broker_has_every_published_message,
    a_connections_publish_streams_take_turns,
    empty_and_boundary_sized_payloads_round_trip,
    a_five_megabyte_payload_round_trips,
    a_zero_timeout_means_the_default,
    a_read_error_from_the_payload_source_fails_the_request,
    sixty_four_concurrent_requests_on_one_client,
    many_sequential_requests,
    concurrent_clients_never_see_each_others_bytes,
    no_responders_fails_at_once,
    a_responder_that_dies_mid_request_fails_it_at_once,
    a_requester_that_cancels_cancels_at_the_responder,
    a_slow_subscriber_gets_gaps_and_never_slows_the_others,
    a_slow_subscriber_can_be_disconnected_instead,
    wildcard_subscriptions_match_a_prefix,
    all_subscribers_together_stay_within_the_broker_budget,
);

/// A broker on loopback; returns its URL.
async fn broker(rt: Rt, config: BrokerConfig) -> (Broker, String) {
    let broker = Broker::new(config);
    let server = plex_runtime::listen(
        &*rt.transport(),
        rt.runtime(),
        "tcp://127.0.0.1:0",
        Config::default(),
    )
    .await
    .expect("listen");
    let url = server.local_endpoint().to_string();
    let serving = broker.clone();
    let runtime = rt.runtime();
    rt.runtime().spawn(Box::pin(async move {
        while let Ok((session, _)) = server.accept().await {
            let broker = serving.clone();
            runtime.spawn(Box::pin(async move { broker.serve(session).await }));
        }
    }));
    (broker, url)
}

async fn client(rt: Rt, url: &str) -> BusClient {
    BusClient::new(rt.connect(url, Config::default()).await.expect("connect"))
}

/// Answers every request to `channel` with `f(body)`.
async fn serve_with(rt: Rt, client: &BusClient, channel: &str, f: fn(Bytes) -> Bytes) {
    let mut responder = client.respond(channel).await.expect("respond");
    let runtime = rt.runtime();
    let spawner = runtime.clone();
    runtime.spawn(Box::pin(async move {
        while let Some(mut request) = responder.next().await {
            spawner.spawn(Box::pin(async move {
                if let Ok(body) = request.body().await {
                    let _ = request.reply(f(body)).await;
                }
            }));
        }
    }));
}

fn echo(body: Bytes) -> Bytes {
    body
}

fn connection_refused_is_a_typed_error(rt: Rt) {
    rt.block_on(async {
        // A port nobody listens on: bind one, then let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let refused = rt
            .connect(&format!("tcp://127.0.0.1:{port}"), Config::default())
            .await;
        match refused {
            Err(plex_runtime::Error::Io(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused)
            }
            other => panic!("expected a refused connection, got {other:?}"),
        }
    });
}

fn calls_after_close_fail_and_close_twice_is_harmless(rt: Rt) {
    rt.block_on(async {
        let (_broker, url) = broker(rt, BrokerConfig::default()).await;
        let c = client(rt, &url).await;
        c.close().await;
        c.close().await;
        assert!(c.is_closed());
        assert!(matches!(
            c.request("x", Bytes::new()).await,
            Err(BusError::Closed)
        ));
        assert!(matches!(
            c.publish("x", Bytes::new()).await,
            Err(BusError::Closed)
        ));
        assert!(matches!(c.subscribe("x").await, Err(BusError::Closed)));
        assert!(matches!(c.respond("x").await, Err(BusError::Closed)));
    });
}

fn empty_and_boundary_sized_payloads_round_trip(rt: Rt) {
    rt.block_on(async {
        let (_broker, url) = broker(rt, BrokerConfig::default()).await;
        let (worker, caller) = (client(rt, &url).await, client(rt, &url).await);
        serve_with(rt, &worker, "echo", echo).await;
        // plex/1's largest DATA frame is 16,384 bytes: around it too.
        for size in [0usize, 1, 1024, 8192, 16_383, 16_384, 16_385] {
            let payload = Bytes::from(plex_tests::payload(size));
            let got = rt
                .within(LIMIT, caller.request("echo", payload.clone()))
                .await
                .expect("no hang")
                .unwrap_or_else(|e| panic!("{size} bytes: {e}"));
            assert_eq!(got, payload, "{size} bytes");
        }
        let mut feed = worker.subscribe("feed").await.expect("subscribe");
        caller.publish("feed", Bytes::new()).await.expect("publish");
        let event = rt.within(LIMIT, feed.next()).await.expect("no hang");
        assert_eq!(
            event.expect("an event").expect("ok"),
            Event::Message {
                channel: "feed".into(),
                payload: Bytes::new()
            }
        );
    });
}

fn a_five_megabyte_payload_round_trips(rt: Rt) {
    rt.block_on(async {
        let (_broker, url) = broker(rt, BrokerConfig::default()).await;
        let (worker, caller) = (client(rt, &url).await, client(rt, &url).await);
        serve_with(rt, &worker, "big", |body| {
            body.iter().map(|b| b ^ 0x5a).collect()
        })
        .await;
        let payload = Bytes::from(plex_tests::payload(5 << 20));
        let got = rt
            .within(LIMIT, caller.request("big", payload.clone()))
            .await
            .expect("no hang")
            .expect("reply");
        assert_eq!(got.len(), payload.len());
        assert!(got.iter().zip(&payload).all(|(g, p)| *g == p ^ 0x5a));
        let mut feed = worker.subscribe("big.feed").await.expect("subscribe");
        caller
            .publish("big.feed", payload.clone())
            .await
            .expect("publish");
        match rt.within(LIMIT, feed.next()).await.expect("no hang") {
            Some(Ok(Event::Message { payload: got, .. })) => assert_eq!(got, payload),
            other => panic!("expected the message, got {other:?}"),
        }
    });
}

fn a_zero_timeout_means_the_default(rt: Rt) {
    rt.block_on(async {
        let (_broker, url) = broker(rt, BrokerConfig::default()).await;
        let (worker, caller) = (client(rt, &url).await, client(rt, &url).await);
        let mut responder = worker.respond("slowish").await.expect("respond");
        let runtime = rt.runtime();
        rt.runtime().spawn(Box::pin(async move {
            let mut request = responder.next().await.expect("a request");
            let body = request.body().await.expect("body");
            runtime
                .sleep_until(runtime.now() + Duration::from_millis(200))
                .await;
            request.reply(body).await.expect("reply");
        }));
        let got = caller
            .request_timeout("slowish", Bytes::from_static(b"t"), Some(Duration::ZERO))
            .await;
        assert_eq!(got.expect("a zero timeout is the 30 s default"), "t");
    });
}

/// A payload source that fails after some bytes.
struct Failing(usize);

impl futures_io::AsyncRead for Failing {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.0 == 0 {
            return std::task::Poll::Ready(Err(std::io::Error::other("disk on fire")));
        }
        let n = self.0.min(buf.len());
        buf[..n].fill(7);
        self.0 -= n;
        std::task::Poll::Ready(Ok(n))
    }
}

fn a_read_error_from_the_payload_source_fails_the_request(rt: Rt) {
    rt.block_on(async {
        let (_broker, url) = broker(rt, BrokerConfig::default()).await;
        let (worker, caller) = (client(rt, &url).await, client(rt, &url).await);
        // The responder records every body it read whole.
        let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut responder = worker.respond("upload").await.expect("respond");
        let seen = bodies.clone();
        rt.runtime().spawn(Box::pin(async move {
            while let Some(mut request) = responder.next().await {
                if let Ok(body) = request.body().await {
                    seen.lock().unwrap().push(body.clone());
                    let _ = request.reply(body).await;
                }
            }
        }));
        let mut source = Failing(100_000);
        let result = caller.request_from("upload", &mut source, None).await;
        match result {
            Err(BusError::Source(e)) => assert_eq!(e.to_string(), "disk on fire"),
            other => panic!("expected the source's error, got {other:?}"),
        }
        // The cut request never reaches the responder as a whole body.
        let after = Bytes::from_static(b"after");
        let got = rt
            .within(LIMIT, caller.request("upload", after.clone()))
            .await;
        assert_eq!(got.expect("no hang").expect("reply"), after);
        assert_eq!(*bodies.lock().unwrap(), [after]);
    });
}

fn sixty_four_concurrent_requests_on_one_client(rt: Rt) {
    rt.block_on(async {
        let (_broker, url) = broker(rt, BrokerConfig::default()).await;
        let (worker, caller) = (client(rt, &url).await, client(rt, &url).await);
        serve_with(rt, &worker, "c", echo).await;
        let calls = (0..64).map(|i| {
            let caller = caller.clone();
            async move {
                let payload = Bytes::from(format!("request {i}").repeat(i + 1));
                let got = caller.request("c", payload.clone()).await.expect("reply");
                assert_eq!(got, payload);
            }
        });
        rt.within(LIMIT, join_all(calls)).await.expect("no hang");
    });
}

fn many_sequential_requests(rt: Rt) {
    rt.block_on(async {
        let (broker, url) = broker(rt, BrokerConfig::default()).await;
        let (worker, caller) = (client(rt, &url).await, client(rt, &url).await);
        serve_with(rt, &worker, "seq", echo).await;
        for i in 0..300u32 {
            let payload = Bytes::copy_from_slice(&i.to_le_bytes());
            assert_eq!(
                caller.request("seq", payload.clone()).await.expect("reply"),
                payload
            );
        }
        // Counted once the broker has passed the reply on whole: a moment
        // after the requester may hold it.
        rt.until(LIMIT, "every request counted", || {
            broker.stats().requests == 300
        })
        .await;
    });
}

/// The seed's open bug: 64 clients × 200 concurrent requests, across 4
/// responders; every reply byte-checked against its request. Payloads
/// range from 0 to 5 MB: one in a hundred between 1 and 5 MB, the rest
/// under 16 KiB, so the run stays within CI's time.
fn concurrent_clients_never_see_each_others_bytes(rt: Rt) {
    rt.block_on(async {
        let (broker, url) = broker(rt, BrokerConfig::default()).await;
        let served = Arc::new([(); 4].map(|()| AtomicUsize::new(0)));
        for r in 0..4 {
            let worker = client(rt, &url).await;
            let mut responder = worker.respond("work").await.expect("respond");
            let served = served.clone();
            let runtime = rt.runtime();
            let spawner = runtime.clone();
            runtime.spawn(Box::pin(async move {
                let _worker = worker;
                while let Some(mut request) = responder.next().await {
                    served[r].fetch_add(1, Ordering::Relaxed);
                    spawner.spawn(Box::pin(async move {
                        let body = request.body().await.expect("body");
                        // The reply names the request and is its bytes reversed.
                        let reply: Bytes = body.iter().rev().copied().collect();
                        request.reply(reply).await.expect("reply");
                    }));
                }
            }));
        }
        let clients = join_all((0..64).map(|_| client(rt, &url))).await;
        let mut rng = fastrand::Rng::with_seed(7);
        let mut sizes: Vec<Vec<usize>> = vec![Vec::new(); 64];
        for client in &mut sizes {
            for _ in 0..200 {
                client.push(if rng.u32(0..100) == 0 {
                    rng.usize(1_000_000..=5_000_000)
                } else {
                    rng.usize(0..16_384)
                });
            }
        }
        let all = clients
            .iter()
            .zip(&sizes)
            .enumerate()
            .map(|(c, (client, sizes))| {
                join_all(sizes.iter().enumerate().map(move |(i, &size)| async move {
                    // Stamped with who sent it, where there is room.
                    let mut payload = plex_tests::payload(size);
                    if size >= 8 {
                        payload[..4].copy_from_slice(&(c as u32).to_le_bytes());
                        payload[4..8].copy_from_slice(&(i as u32).to_le_bytes());
                    }
                    let payload = Bytes::from(payload);
                    // 12,800 requests in flight at once in a debug build: the test
                    // is about the bytes, so no timeout may cut one short.
                    let patient = Some(Duration::from_secs(600));
                    let got = client
                        .request_timeout("work", payload.clone(), patient)
                        .await
                        .expect("reply");
                    let expected: Vec<u8> = payload.iter().rev().copied().collect();
                    assert!(got == expected, "client {c} request {i}: a wrong reply");
                }))
            });
        rt.within(Duration::from_secs(600), join_all(all))
            .await
            .expect("no hang");
        rt.until(LIMIT, "every request counted", || {
            broker.stats().requests == 64 * 200
        })
        .await;
        for (r, n) in served.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            assert!(
                n > 64 * 200 / 8,
                "responder {r} served {n}: not round-robin"
            );
        }
    });
}

fn no_responders_fails_at_once(rt: Rt) {
    rt.block_on(async {
        let (broker, url) = broker(rt, BrokerConfig::default()).await;
        let caller = client(rt, &url).await;
        // A timeout far longer than the test's limit: the error must not
        // be a timeout in disguise.
        let got = rt
            .within(
                LIMIT,
                caller.request_timeout("nobody", Bytes::new(), Some(Duration::from_secs(3600))),
            )
            .await
            .expect("at once, not after a timeout");
        assert!(matches!(got, Err(BusError::NoResponders)), "{got:?}");
        assert_eq!(broker.stats().no_responders, 1);
    });
}

fn a_responder_that_dies_mid_request_fails_it_at_once(rt: Rt) {
    rt.block_on(async {
        let (broker, url) = broker(rt, BrokerConfig::default()).await;
        // The responder reaches the broker through a proxy we can cut: its
        // connection dies as a crashed process's would.
        let target = url.trim_start_matches("tcp://").parse().expect("address");
        let proxy = plex_tests::Proxy::spawn(target);
        let worker = client(rt, &format!("tcp://{}", proxy.addr)).await;
        let caller = client(rt, &url).await;
        let mut responder = worker.respond("fragile").await.expect("respond");
        let asking = caller.request_timeout(
            "fragile",
            Bytes::from_static(b"q"),
            Some(Duration::from_secs(3600)),
        );
        let dying = async {
            let _request = responder.next().await.expect("a request");
            proxy.cut();
        };
        let (got, ()) = rt
            .within(LIMIT, smol::future::zip(asking, dying))
            .await
            .expect("at once, not after the timeout");
        assert!(matches!(got, Err(BusError::ResponderGone)), "{got:?}");
        assert_eq!(broker.stats().responder_failures, 1);
        // An unanswered request dropped by a live responder fails too.
        let mut responder = caller.respond("moody").await.expect("respond");
        let other = client(rt, &url).await;
        let asking = other.request("moody", Bytes::from_static(b"q"));
        let dropping = async {
            drop(responder.next().await.expect("a request"));
        };
        let (got, ()) = rt
            .within(LIMIT, smol::future::zip(asking, dropping))
            .await
            .expect("no hang");
        assert!(matches!(got, Err(BusError::ResponderGone)), "{got:?}");
    });
}

fn a_requester_that_cancels_cancels_at_the_responder(rt: Rt) {
    rt.block_on(async {
        let (_broker, url) = broker(rt, BrokerConfig::default()).await;
        let (worker, caller) = (client(rt, &url).await, client(rt, &url).await);
        let mut responder = worker.respond("hold").await.expect("respond");
        let asking = caller.request("hold", Bytes::from_static(b"wait for me"));
        let mut request = {
            let mut asking = std::pin::pin!(asking);
            // Poll the request until the responder has it, then drop it.
            let got = smol::future::or(
                async { Some(responder.next().await.expect("a request")) },
                async {
                    let _ = asking.as_mut().await;
                    None
                },
            )
            .await;
            got.expect("the responder got the request first")
        };
        let cancelled = std::future::poll_fn(|cx| request.poll_cancelled(cx));
        rt.within(LIMIT, cancelled)
            .await
            .expect("the responder sees the cancel");
    });
}

fn a_slow_subscriber_gets_gaps_and_never_slows_the_others(rt: Rt) {
    rt.block_on(async {
        let config = BrokerConfig::default().subscriber_buffer(64 * 1024);
        let (broker, url) = broker(rt, config).await;
        let publisher = client(rt, &url).await;
        let (fast_client, slow_client) = (client(rt, &url).await, client(rt, &url).await);
        let mut fast = fast_client.subscribe("tick").await.expect("subscribe");
        let mut slow = slow_client.subscribe("tick").await.expect("subscribe");
        const N: u64 = 4000;
        let payload = |i: u64| {
            let mut p = vec![0u8; 1024];
            p[..8].copy_from_slice(&i.to_le_bytes());
            Bytes::from(p)
        };
        // The fast subscriber takes each message as it is published; the
        // slow one reads nothing until the end.
        let lockstep = async {
            for i in 0..N {
                publisher
                    .publish("tick", payload(i))
                    .await
                    .expect("publish");
                match fast.next().await {
                    Some(Ok(Event::Message { payload: p, .. })) => assert_eq!(p, payload(i)),
                    other => panic!("the fast subscriber got {other:?} at {i}"),
                }
            }
        };
        rt.within(LIMIT, lockstep)
            .await
            .expect("the slow subscriber held back neither");
        let stats = broker.stats();
        assert!(
            stats.dropped > 0,
            "the slow subscriber's buffer filled: {stats:?}"
        );
        // Now the slow one reads: messages in order, gaps counting exactly
        // what was dropped, and everything accounted for.
        let (mut messages, mut gaps, mut last) = (0u64, 0u64, None::<u64>);
        while messages + gaps < N {
            match rt.within(LIMIT, slow.next()).await.expect("no hang") {
                Some(Ok(Event::Message { payload: p, .. })) => {
                    let i = u64::from_le_bytes(p[..8].try_into().unwrap());
                    assert!(last.is_none_or(|l| i > l), "in order");
                    last = Some(i);
                    messages += 1;
                }
                Some(Ok(Event::Gap { dropped })) => gaps += dropped,
                other => panic!("the slow subscriber got {other:?}"),
            }
        }
        assert_eq!(messages + gaps, N);
        assert_eq!(gaps, broker.stats().dropped);
    });
}

fn a_slow_subscriber_can_be_disconnected_instead(rt: Rt) {
    rt.block_on(async {
        let config = BrokerConfig::default()
            .subscriber_buffer(16 * 1024)
            .slow_policy(SlowPolicy::Disconnect);
        let (broker, url) = broker(rt, config).await;
        let publisher = client(rt, &url).await;
        let subscriber = client(rt, &url).await;
        let mut slow = subscriber.subscribe("flood").await.expect("subscribe");
        let message = Bytes::from(vec![1u8; 8 * 1024]);
        // One message at a time, each taken off the queue by the writer,
        // until the unread stream holds what it can and the writer waits
        // on it (a megabyte or so): the case where only the broker's own
        // wake-up can end the writer.
        let mut sent = 0;
        while broker.stats().stalled == 0 {
            assert!(sent < 4096, "the writer never waited on the unread stream");
            publisher
                .publish("flood", message.clone())
                .await
                .expect("publish");
            sent += 1;
            rt.until(LIMIT, "the writer takes it or waits", || {
                let stats = broker.stats();
                stats.delivered == sent && (stats.buffered == 0 || stats.stalled == 1)
            })
            .await;
        }
        // Now the queue fills, and the subscriber is evicted.
        while broker.stats().disconnected == 0 {
            publisher
                .publish("flood", message.clone())
                .await
                .expect("publish");
        }
        // Its writer was waiting on the unread stream: the eviction ends
        // it anyway, and frees what was held, before the subscriber reads.
        rt.until(LIMIT, "the evicted subscription ends unread", || {
            let stats = broker.stats();
            stats.subscriptions == 0 && stats.buffered == 0 && stats.stalled == 0
        })
        .await;
        let mut ended = None;
        while ended.is_none() {
            match rt.within(LIMIT, slow.next()).await.expect("no hang") {
                Some(Ok(_)) => {}
                other => ended = Some(other),
            }
        }
        assert!(
            matches!(ended, Some(Some(Err(BusError::SlowConsumer)))),
            "{ended:?}"
        );
    });
}

fn wildcard_subscriptions_match_a_prefix(rt: Rt) {
    rt.block_on(async {
        let (_broker, url) = broker(rt, BrokerConfig::default()).await;
        let (sub, publisher) = (client(rt, &url).await, client(rt, &url).await);
        let mut orders = sub.subscribe("orders.*").await.expect("subscribe");
        let mut exact = sub.subscribe("orders.eu").await.expect("subscribe");
        for channel in ["orders.eu", "orders.us.west", "other", "orders"] {
            publisher
                .publish(channel, Bytes::from(channel))
                .await
                .expect("publish");
        }
        publisher
            .publish("orders.end", Bytes::new())
            .await
            .expect("publish");
        let mut got = Vec::new();
        loop {
            match rt.within(LIMIT, orders.next()).await.expect("no hang") {
                Some(Ok(Event::Message { channel, .. })) if channel == "orders.end" => break,
                Some(Ok(Event::Message { channel, .. })) => got.push(channel),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, ["orders.eu", "orders.us.west"]);
        match rt.within(LIMIT, exact.next()).await.expect("no hang") {
            Some(Ok(Event::Message { channel, .. })) => assert_eq!(channel, "orders.eu"),
            other => panic!("{other:?}"),
        }
        // A pattern with `*` in the middle is refused before it is sent.
        assert!(matches!(sub.subscribe("a*b").await, Err(BusError::Wire(_))));
    });
}

fn all_subscribers_together_stay_within_the_broker_budget(rt: Rt) {
    rt.block_on(async {
        // Each subscriber may hold 1 MiB, all of them together 256 KiB.
        let config = BrokerConfig::default()
            .subscriber_buffer(1 << 20)
            .max_buffered(256 * 1024);
        let (broker, url) = broker(rt, config).await;
        let publisher = client(rt, &url).await;
        let subscriber = client(rt, &url).await;
        let mut subs = Vec::new();
        for _ in 0..8 {
            subs.push(subscriber.subscribe("load").await.expect("subscribe"));
        }
        let mut peak = 0;
        for _ in 0..1000 {
            publisher
                .publish("load", Bytes::from(vec![3u8; 4096]))
                .await
                .expect("publish");
            peak = peak.max(broker.stats().buffered);
        }
        // Over the budget each outbox takes one message at most (an empty
        // one always takes one): 8 × (4 KiB + overhead) past 256 KiB.
        assert!(peak <= 256 * 1024 + 8 * (4096 + 128), "peak {peak}");
        assert!(broker.stats().dropped > 0);
        drop(subs);
    });
}

fn close_returns_once_the_broker_has_every_published_message(rt: Rt) {
    rt.block_on(async {
        let (broker, url) = broker(rt, BrokerConfig::default()).await;
        let publisher = client(rt, &url).await;
        // Small and large, so that the last ones are still on their way
        // when `close` is called.
        for i in 0..200u32 {
            let len = if i % 50 == 49 { 1 << 20 } else { 100 };
            publisher
                .publish("anyone", Bytes::from(vec![i as u8; len]))
                .await
                .expect("publish");
        }
        rt.within(LIMIT, publisher.close()).await.expect("no hang");
        // Not "eventually": a process may exit the moment close returns.
        assert_eq!(broker.stats().published, 200);
    });
}

fn a_connections_publish_streams_take_turns(rt: Rt) {
    rt.block_on(async {
        let (broker, url) = broker(rt, BrokerConfig::default()).await;
        let subscriber = client(rt, &url).await;
        let mut messages = subscriber.subscribe("turns").await.expect("subscribe");
        // Two publish streams on one raw connection: the first stops in
        // the middle of a message, the second sends a whole one.
        let session = rt.connect(&url, Config::default()).await.expect("connect");
        let record = |payload: &'static [u8]| {
            let record = Record::Message {
                channel: "turns".into(),
                payload: Bytes::from_static(payload),
            };
            [&record.header()[..], payload].concat()
        };
        let options = || OpenOptions::new(PUBLISH_PROTOCOL, Bytes::new());
        let mut first = session.open_stream(options()).await.expect("open");
        let first_record = record(b"first");
        first.write_all(&first_record[..8]).await.expect("write");
        let mut second = session.open_stream(options()).await.expect("open");
        second.write_all(&record(b"second")).await.expect("write");
        second.close().await.expect("finish");
        // The second waits for the first: nothing is published while the
        // first message is unfinished (were the second read, its message
        // would arrive well within this), then both are, in turn.
        let early = rt.within(Duration::from_millis(300), messages.next()).await;
        assert!(early.is_none(), "published out of turn: {early:?}");
        assert_eq!(broker.stats().published, 0);
        first.write_all(&first_record[8..]).await.expect("write");
        first.close().await.expect("finish");
        let mut got = Vec::new();
        while got.len() < 2 {
            match rt.within(LIMIT, messages.next()).await.expect("no hang") {
                Some(Ok(Event::Message { payload, .. })) => got.push(payload),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, [&b"first"[..], &b"second"[..]]);
    });
}
