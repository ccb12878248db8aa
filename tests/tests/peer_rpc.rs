//! Peers, lanes, RPC and store ports over loopback TCP, on every runtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use plex_peer::store::StoreFuture;
use plex_peer::{
    connect_store_port, expose_store_port, with_caps, Code, Entries, Error, MemoryStore,
    MessageChannel, Peer, PeerConfig, Range, StorePort, StoreServer,
};
use plex_proto::rpc::{ClientConfig, Method, ServerConfig};
use plex_runtime::mux::MuxConfig;
use plex_runtime::Config;
use plex_tests::{Rt, Wire};
use smol::stream::StreamExt;

/// Bounds every wait: a hang is a failure, not a stuck CI run.
const LIMIT: Duration = Duration::from_secs(30);

plex_tests::on_every_runtime!(
    a_slow_scan_consumer_does_not_stall_other_calls,
    lanes_carry_whole_messages_both_ways,
    a_send_dropped_mid_message_completes_on_the_next_send,
    a_recv_dropped_mid_message_keeps_what_it_read,
    closing_the_session_fails_pending_calls_at_once,
    a_call_that_never_sends_its_request_is_reset,
);

plex_tests::on_every_runtime_and_wire!(
    a_message_past_the_limit_is_a_typed_error,
    every_store_method_works_over_the_network,
    caps_are_checked_by_the_serving_side,
    store_errors_arrive_as_their_codes,
    twenty_concurrent_calls_all_answer,
    a_timed_out_call_is_cancelled_at_the_server,
    dropping_a_call_cancels_it_at_the_server,
    a_scan_dropped_half_way_stops_the_server,
    a_scan_times_out_on_a_silent_server_not_a_slow_consumer,
    large_values_and_the_request_limit_on_both_sides,
    the_in_flight_limit_on_both_sides,
    closing_the_lane_fails_pending_calls_at_once,
    a_lane_nobody_serves_is_unavailable,
);

async fn peers(rt: Rt, client: PeerConfig, server: PeerConfig) -> (Peer, Peer) {
    peers_on(rt, Wire::Plex, client, server).await
}

async fn peers_on(rt: Rt, wire: Wire, client: PeerConfig, server: PeerConfig) -> (Peer, Peer) {
    match wire {
        Wire::Plex => {
            let (a, b) = rt.pair(Config::default(), Config::default()).await;
            (
                Peer::with_config(a, client).expect("client config"),
                Peer::with_config(b, server).expect("server config"),
            )
        }
        Wire::Protomux => {
            let (a, b) = rt.mux_pair(MuxConfig::default()).await;
            (
                Peer::protomux_with_config(a, client).expect("client config"),
                Peer::protomux_with_config(b, server).expect("server config"),
            )
        }
    }
}

async fn default_peers(rt: Rt) -> (Peer, Peer) {
    peers(rt, PeerConfig::default(), PeerConfig::default()).await
}

async fn default_peers_on(rt: Rt, wire: Wire) -> (Peer, Peer) {
    peers_on(rt, wire, PeerConfig::default(), PeerConfig::default()).await
}

fn lanes_carry_whole_messages_both_ways(rt: Rt) {
    rt.block_on(async {
        let (a, b) = default_peers(rt).await;
        let listener = b.listen_lane("chat-1", "chat");
        let events = b.listen_stream("feed");
        let mut out = a.connect_lane("chat-1", "chat").await.expect("connect");
        // Sent before the peer accepts: waits in the stream's window.
        for size in [0usize, 1, 3, 4, 5] {
            out.send(Bytes::from(vec![size as u8; size]))
                .await
                .expect("send");
        }
        let mut inbound = rt
            .within(LIMIT, listener.accept())
            .await
            .expect("accept")
            .expect("ok");
        // Larger than the window: flows as the peer reads.
        let sending = async {
            out.send(Bytes::from(vec![0x70; 70_000]))
                .await
                .expect("send");
            out.finish().expect("finish");
        };
        let mut received = Vec::new();
        let receiving = async {
            for _ in 0..6 {
                received.push(inbound.recv().await.expect("recv").expect("a message"));
            }
        };
        smol::future::zip(sending, receiving).await;
        let sizes = [0usize, 1, 3, 4, 5, 70_000];
        let fill = |size: usize| if size == 70_000 { 0x70 } else { size as u8 };
        for (message, &size) in received.iter().zip(&sizes) {
            assert_eq!(message.len(), size, "one send is one message");
            assert!(message.iter().all(|&b| b == fill(size)));
        }
        let echoing = async {
            for message in received {
                inbound.send(message).await.expect("echo");
            }
            assert_eq!(inbound.recv().await.expect("end"), None);
            inbound.finish().expect("finish");
        };
        let reading = async {
            for &size in &sizes {
                let echo = out.recv().await.expect("recv").expect("echo");
                assert_eq!(echo.len(), size);
            }
            assert_eq!(out.recv().await.expect("end"), None);
        };
        smol::future::zip(echoing, reading).await;
        // The events lane is a lane like any other.
        let mut feed = a.connect_stream("feed").await.expect("stream");
        feed.send(Bytes::from_static(b"tick")).await.expect("send");
        let mut got = events.accept().await.expect("accept");
        assert_eq!(
            got.recv().await.expect("recv").as_deref(),
            Some(&b"tick"[..])
        );
        assert_eq!(
            a.protocol("chat"),
            Bytes::from_static(b"neonloom/protocol/v1/chat")
        );
    });
}

fn a_message_past_the_limit_is_a_typed_error(rt: Rt, wire: Wire) {
    rt.block_on(async {
        let small = PeerConfig::default().max_message_size(1024);
        let (a, b) = peers_on(rt, wire, PeerConfig::default(), small.clone()).await;
        let listener = b.listen_lane("x", "bulk");
        let mut out = a.connect_lane("x", "bulk").await.expect("connect");
        out.send(Bytes::from(vec![1; 1025]))
            .await
            .expect("within the sender's limit");
        let mut inbound = listener.accept().await.expect("accept");
        match inbound.recv().await {
            Err(Error::MessageTooLarge {
                len: 1025,
                max: 1024,
            }) => {}
            other => panic!("expected MessageTooLarge, got {other:?}"),
        }
        // The sender's own limit refuses before anything is written.
        let (c, _d) = peers_on(rt, wire, small, PeerConfig::default()).await;
        let mut out = c.connect_lane("x", "bulk").await.expect("connect");
        match out.send(Bytes::from(vec![1; 1025])).await {
            Err(Error::MessageTooLarge {
                len: 1025,
                max: 1024,
            }) => {}
            other => panic!("expected MessageTooLarge, got {other:?}"),
        }
    });
}

fn a_send_dropped_mid_message_completes_on_the_next_send(rt: Rt) {
    rt.block_on(async {
        let large = PeerConfig::default().max_message_size(8 << 20);
        let (a, b) = peers(rt, large.clone(), large).await;
        let listener = b.listen_lane("x", "bulk");
        let mut out = a.connect_lane("x", "bulk").await.expect("connect");
        // Far past the stream window: the send parks mid-message, and is dropped.
        let big = Bytes::from(plex_tests::payload(4 << 20));
        let parked = rt
            .within(Duration::from_millis(100), out.send(big.clone()))
            .await;
        assert!(
            parked.is_none(),
            "the send should have parked on flow control"
        );
        let mut inbound = listener.accept().await.expect("accept");
        let sending = async {
            out.send(Bytes::from_static(b"after")).await.expect("send");
            out.finish().expect("finish");
        };
        let receiving = async {
            let first = inbound
                .recv()
                .await
                .expect("recv")
                .expect("the big message");
            let second = inbound.recv().await.expect("recv").expect("the small one");
            (first, second)
        };
        let ((), (first, second)) = smol::future::zip(sending, receiving).await;
        assert!(first == big, "the dropped send's message arrives whole");
        assert_eq!(second, Bytes::from_static(b"after"));
        assert_eq!(inbound.recv().await.expect("end"), None);
    });
}

fn a_recv_dropped_mid_message_keeps_what_it_read(rt: Rt) {
    rt.block_on(async {
        use smol::io::AsyncWriteExt;
        let (a, b) = default_peers(rt).await;
        let listener = b.listen_lane("x", "raw");
        // A raw stream on the lane, to write half a message.
        let options = plex_runtime::OpenOptions::new(a.protocol("raw"), "x");
        let mut raw = a
            .session()
            .expect("plex/1")
            .open_stream(options)
            .await
            .expect("open");
        let message = plex_tests::payload(1000);
        raw.write_all(&1000u32.to_le_bytes()).await.expect("prefix");
        raw.write_all(&message[..10]).await.expect("head");
        raw.flush().await.expect("flush");
        let mut inbound = listener.accept().await.expect("accept");
        let early = rt.within(Duration::from_millis(100), inbound.recv()).await;
        assert!(early.is_none(), "only part of the message has arrived");
        raw.write_all(&message[10..]).await.expect("rest");
        raw.finish().expect("finish");
        let got = inbound.recv().await.expect("recv").expect("the message");
        assert_eq!(&got[..], &message[..]);
        assert_eq!(inbound.recv().await.expect("end"), None);
    });
}

fn every_store_method_works_over_the_network(rt: Rt, wire: Wire) {
    rt.block_on(async {
        let (a, b) = default_peers_on(rt, wire).await;
        let _serving = expose_store_port(&b, "store-1", "rpc", MemoryStore::new());
        let store = connect_store_port(&a, "store-1", "rpc");
        let none = Bytes::new();
        assert_eq!(
            store.get("k".into(), none.clone()).await.expect("get"),
            None
        );
        store
            .put("k".into(), "v".into(), none.clone())
            .await
            .expect("put");
        assert_eq!(
            store
                .get("k".into(), none.clone())
                .await
                .expect("get")
                .as_deref(),
            Some(&b"v"[..])
        );
        store
            .put("e".into(), Bytes::new(), none.clone())
            .await
            .expect("put empty");
        assert_eq!(
            store
                .get("e".into(), none.clone())
                .await
                .expect("get")
                .as_deref(),
            Some(&b""[..])
        );
        store.del("k".into(), none.clone()).await.expect("del");
        store
            .del("k".into(), none.clone())
            .await
            .expect("del of a missing key");
        assert_eq!(
            store.get("k".into(), none.clone()).await.expect("get"),
            None
        );
        let first = store
            .append("one".into(), none.clone())
            .await
            .expect("append");
        let second = store
            .append("two".into(), none.clone())
            .await
            .expect("append");
        assert!(first < second, "{first:?} < {second:?}");
        assert_eq!(
            store
                .get(second.clone(), none.clone())
                .await
                .expect("get")
                .as_deref(),
            Some(&b"two"[..])
        );
        for key in ["p/a", "p/b", "p/c", "q/a"] {
            store
                .put(key.into(), key.into(), none.clone())
                .await
                .expect("put");
        }
        let keys = |entries: Vec<plex_peer::Entry>| -> Vec<String> {
            entries
                .iter()
                .map(|e| String::from_utf8_lossy(&e.key).into_owned())
                .collect()
        };
        let scan = |range: Range| {
            let store = store.clone();
            async move {
                store
                    .scan(range, Bytes::new())
                    .await
                    .expect("scan")
                    .collect()
                    .await
                    .expect("entries")
            }
        };
        assert_eq!(keys(scan(Range::prefix("p/")).await), ["p/a", "p/b", "p/c"]);
        assert_eq!(
            keys(scan(Range::prefix("p/").reverse()).await),
            ["p/c", "p/b", "p/a"]
        );
        assert_eq!(
            keys(scan(Range::prefix("p/").gte("p/b")).await),
            ["p/b", "p/c"]
        );
        assert_eq!(keys(scan(Range::prefix("p/").gt("p/b")).await), ["p/c"]);
        assert_eq!(
            keys(scan(Range::prefix("p/").lte("p/b")).await),
            ["p/a", "p/b"]
        );
        assert_eq!(keys(scan(Range::prefix("p/").lt("p/b")).await), ["p/a"]);
        assert_eq!(
            keys(scan(Range::all().gt("p/a").lt("q/a").reverse()).await),
            ["p/c", "p/b"]
        );
        assert!(
            scan(Range::all().gte("z").lt("a")).await.is_empty(),
            "crossed bounds"
        );
        let values: Vec<_> = scan(Range::prefix("log/"))
            .await
            .into_iter()
            .map(|e| e.value)
            .collect();
        assert_eq!(values, [Bytes::from("one"), Bytes::from("two")]);
    });
}

fn caps_are_checked_by_the_serving_side(rt: Rt, wire: Wire) {
    rt.block_on(async {
        let (a, b) = default_peers_on(rt, wire).await;
        let _serving = StoreServer::new(MemoryStore::new())
            .check_caps(|method, caps| {
                caps == b"admin" || (method == Method::GET && caps == b"reader")
            })
            .expose(&b, "guarded", "rpc");
        let store = connect_store_port(&a, "guarded", "rpc");
        match store.put("k".into(), "v".into(), Bytes::new()).await {
            Err(Error::Failed {
                code: Code::CapabilityDenied,
                ..
            }) => {}
            other => panic!("expected CapabilityDenied, got {other:?}"),
        }
        let admin = with_caps(store.clone(), "admin");
        admin
            .put("k".into(), "v".into(), Bytes::new())
            .await
            .expect("admin may put");
        let reader = with_caps(store.clone(), "reader");
        assert!(reader
            .get("k".into(), Bytes::new())
            .await
            .expect("reader may get")
            .is_some());
        assert!(matches!(
            reader.del("k".into(), Bytes::new()).await,
            Err(Error::Failed {
                code: Code::CapabilityDenied,
                ..
            })
        ));
        // Scans carry caps too.
        assert!(matches!(
            store
                .scan(Range::all(), Bytes::new())
                .await
                .expect("started")
                .next()
                .await,
            Some(Err(Error::Failed {
                code: Code::CapabilityDenied,
                ..
            }))
        ));
        assert_eq!(
            admin
                .scan(Range::all(), Bytes::new())
                .await
                .expect("scan")
                .collect()
                .await
                .expect("ok")
                .len(),
            1
        );
    });
}

/// A port that fails every call with a chosen code, or blocks until told.
#[derive(Clone, Default)]
struct Scripted {
    /// Calls that have started.
    started: Arc<AtomicUsize>,
    /// Calls whose future was dropped before finishing (cancelled).
    dropped: Arc<AtomicUsize>,
    /// Scan entries produced.
    produced: Arc<AtomicUsize>,
    gate: Option<smol::channel::Receiver<()>>,
}

impl Scripted {
    /// A port whose `get` waits for a token on the returned sender.
    fn gated() -> (Scripted, smol::channel::Sender<()>) {
        let (open, gate) = smol::channel::unbounded();
        let port = Scripted {
            gate: Some(gate),
            ..Scripted::default()
        };
        (port, open)
    }
}

/// Counts a handler future dropped before it finished.
struct DropCount(Arc<AtomicUsize>, bool);

impl DropCount {
    fn finished(&mut self) {
        self.1 = true;
    }
}

impl Drop for DropCount {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl StorePort for Scripted {
    fn get(&self, key: Bytes, _caps: Bytes) -> StoreFuture<'_, Option<Bytes>> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let mut guard = DropCount(self.dropped.clone(), false);
        let gate = self.gate.clone();
        Box::pin(async move {
            if let Some(gate) = gate {
                let _ = gate.recv().await;
            }
            guard.finished();
            Ok(Some(key))
        })
    }
    fn put(&self, _key: Bytes, _value: Bytes, _caps: Bytes) -> StoreFuture<'_, ()> {
        Box::pin(async { Err(Error::failed(Code::CasFailed, "version moved")) })
    }
    fn del(&self, _key: Bytes, _caps: Bytes) -> StoreFuture<'_, ()> {
        Box::pin(async {
            Err(Error::failed(
                Code::Other("Teapot".into()),
                "short and stout",
            ))
        })
    }
    fn append(&self, _value: Bytes, _caps: Bytes) -> StoreFuture<'_, Bytes> {
        Box::pin(async {
            Err(Error::failed(
                Code::NotAvailable,
                "append-only? no: read-only",
            ))
        })
    }
    fn scan(&self, _range: Range, _caps: Bytes) -> StoreFuture<'_, Entries> {
        let produced = self.produced.clone();
        Box::pin(async move {
            let endless = futures_lite_stream(produced);
            Ok(Entries::new(endless))
        })
    }
}

/// An endless scan that counts what it produces.
fn futures_lite_stream(
    produced: Arc<AtomicUsize>,
) -> impl futures_core::Stream<Item = Result<plex_peer::Entry, Error>> + Send {
    smol::stream::repeat_with(move || {
        let n = produced.fetch_add(1, Ordering::SeqCst);
        Ok(plex_peer::Entry {
            key: format!("k{n:08}").into(),
            value: Bytes::from(vec![0u8; 1024]),
        })
    })
}

fn store_errors_arrive_as_their_codes(rt: Rt, wire: Wire) {
    rt.block_on(async {
        let (a, b) = default_peers_on(rt, wire).await;
        let _serving = expose_store_port(&b, "s", "rpc", Scripted::default());
        let store = connect_store_port(&a, "s", "rpc");
        let err = store.put("k".into(), "v".into(), Bytes::new()).await.expect_err("put fails");
        assert!(matches!(&err, Error::Failed { code: Code::CasFailed, message } if message == "version moved"), "{err:?}");
        let err = store.del("k".into(), Bytes::new()).await.expect_err("del fails");
        assert!(matches!(&err, Error::Failed { code: Code::Other(c), .. } if c == "Teapot"), "{err:?}");
        assert_eq!(err.to_string(), "Teapot: short and stout");
        let err = store.append("v".into(), Bytes::new()).await.expect_err("append fails");
        assert!(matches!(err, Error::Failed { code: Code::NotAvailable, .. }), "{err:?}");
        // An unknown method id gets neonplex's answer.
        let client = a.connect_rpc_lane("s", "rpc");
        let err = client.call(Method(9), Bytes::new()).await.expect_err("unknown method");
        assert!(matches!(&err, Error::Failed { code: Code::Unknown, message } if message == "Unknown method"), "{err:?}");
        // So does a body that does not decode.
        let err = client.call(Method::GET, Bytes::from_static(b"\x05ab")).await.expect_err("bad body");
        assert!(matches!(&err, Error::Failed { code: Code::Unknown, message } if message == "Bad request payload"), "{err:?}");
    });
}

fn twenty_concurrent_calls_all_answer(rt: Rt, wire: Wire) {
    rt.block_on(async {
        let (a, b) = default_peers_on(rt, wire).await;
        let (port, open) = Scripted::gated();
        let started = port.started.clone();
        let _serving = expose_store_port(&b, "s", "rpc", port);
        let store = connect_store_port(&a, "s", "rpc");
        let all = futures_util::future::join_all((0..20).map(|i| {
            let store = store.clone();
            async move { store.get(format!("key-{i}").into(), Bytes::new()).await }
        }));
        // All twenty are in the handler at once before any is answered.
        let release = async {
            rt.until(LIMIT, "20 calls in the handler", || {
                started.load(Ordering::SeqCst) == 20
            })
            .await;
            for _ in 0..20 {
                open.send(()).await.expect("gate");
            }
        };
        let (results, ()) = smol::future::zip(all, release).await;
        for (i, result) in results.into_iter().enumerate() {
            assert_eq!(
                result.expect("answer").as_deref(),
                Some(format!("key-{i}").as_bytes())
            );
        }
    });
}

fn a_timed_out_call_is_cancelled_at_the_server(rt: Rt, wire: Wire) {
    rt.block_on(async {
        let client = ClientConfig {
            timeout: Some(Duration::from_millis(100)),
            ..ClientConfig::default()
        };
        let (a, b) = peers_on(
            rt,
            wire,
            PeerConfig::default().client(client),
            PeerConfig::default(),
        )
        .await;
        let (port, open) = Scripted::gated();
        let dropped = port.dropped.clone();
        let serving = expose_store_port(&b, "s", "rpc", port);
        let store = connect_store_port(&a, "s", "rpc");
        match rt
            .within(LIMIT, store.get("slow".into(), Bytes::new()))
            .await
            .expect("resolves")
        {
            Err(Error::Timeout { after }) => assert_eq!(after, Duration::from_millis(100)),
            other => panic!("expected Timeout, got {other:?}"),
        }
        // The server dropped the handler: its late answer is never sent.
        rt.until(LIMIT, "the handler is cancelled", || {
            dropped.load(Ordering::SeqCst) == 1
        })
        .await;
        rt.until(LIMIT, "the server frees the slot", || {
            serving.in_flight() == 0
        })
        .await;
        assert_eq!(serving.stats().cancelled, 1);
        let stats = store.client().stats();
        assert_eq!((stats.timeouts, stats.completed), (1, 0));
        // The lane still works.
        open.send(()).await.expect("gate");
        let answer = store
            .get("fast".into(), Bytes::new())
            .await
            .expect("answer");
        assert_eq!(answer.as_deref(), Some(&b"fast"[..]));
    });
}

fn dropping_a_call_cancels_it_at_the_server(rt: Rt, wire: Wire) {
    rt.block_on(async {
        let (a, b) = default_peers_on(rt, wire).await;
        let (port, _open) = Scripted::gated();
        let (started, dropped) = (port.started.clone(), port.dropped.clone());
        let serving = expose_store_port(&b, "s", "rpc", port);
        let store = connect_store_port(&a, "s", "rpc");
        let call = store.get("forever".into(), Bytes::new());
        let gave_up = async {
            rt.until(LIMIT, "the call reaches the handler", || {
                started.load(Ordering::SeqCst) == 1
            })
            .await;
        };
        // The call future is dropped once the handler runs.
        let _ = smol::future::or(async { Some(call.await) }, async {
            gave_up.await;
            None
        })
        .await;
        rt.until(LIMIT, "the handler is dropped", || {
            dropped.load(Ordering::SeqCst) == 1
        })
        .await;
        assert_eq!(store.client().in_flight(), 0);
        assert_eq!(store.client().stats().cancelled, 1);
        rt.until(LIMIT, "the server frees the slot", || {
            serving.in_flight() == 0
        })
        .await;
    });
}

fn a_scan_dropped_half_way_stops_the_server(rt: Rt, wire: Wire) {
    rt.block_on(async {
        let (a, b) = default_peers_on(rt, wire).await;
        let port = Scripted::default();
        let produced = port.produced.clone();
        let serving = expose_store_port(&b, "s", "rpc", port);
        let store = connect_store_port(&a, "s", "rpc");
        let mut entries = store.scan(Range::all(), Bytes::new()).await.expect("scan");
        for i in 0..10 {
            let entry = entries.next().await.expect("more").expect("entry");
            assert_eq!(entry.key, format!("k{i:08}"));
        }
        drop(entries);
        rt.until(LIMIT, "the scan is cancelled", || serving.in_flight() == 0)
            .await;
        let stopped_at = produced.load(Ordering::SeqCst);
        // The endless scan was held back, then stopped: on plex/1 by the
        // call stream's window; on Protomux by the buffers between the
        // two (the client's lane buffer and the server's send buffer, 1 MiB
        // each, and the sockets'), as the transport pushed back.
        let bound = match wire {
            Wire::Plex => 2_000,
            Wire::Protomux => 400_000,
        };
        assert!(
            stopped_at < bound,
            "produced {stopped_at} entries for 10 read"
        );
        let later = rt.runtime();
        later
            .sleep_until(later.now() + Duration::from_millis(100))
            .await;
        assert_eq!(
            produced.load(Ordering::SeqCst),
            stopped_at,
            "nothing after the cancel"
        );
    });
}

fn a_slow_scan_consumer_does_not_stall_other_calls(rt: Rt) {
    rt.block_on(async {
        let (a, b) = default_peers(rt).await;
        let port = Scripted::default();
        let produced = port.produced.clone();
        let _serving = expose_store_port(&b, "s", "rpc", port);
        let store = connect_store_port(&a, "s", "rpc");
        let mut entries = store.scan(Range::all(), Bytes::new()).await.expect("scan");
        entries.next().await.expect("one").expect("entry");
        // The scan is not read further; the server fills the window and waits.
        rt.until(LIMIT, "the server fills the window", || {
            produced.load(Ordering::SeqCst) > 50
        })
        .await;
        for i in 0..50 {
            let got = rt
                .within(LIMIT, store.get(format!("g{i}").into(), Bytes::new()))
                .await;
            assert!(got.expect("not stalled").expect("answer").is_some());
        }
        let held = produced.load(Ordering::SeqCst);
        assert!(
            held < 2_000,
            "{held} entries produced for one read: not held back"
        );
        entries.next().await.expect("still going").expect("entry");
    });
}

/// Three entries, then silence.
struct Stalling;

impl StorePort for Stalling {
    fn get(&self, key: Bytes, _caps: Bytes) -> StoreFuture<'_, Option<Bytes>> {
        Box::pin(async move { Ok(Some(key)) })
    }
    fn put(&self, _key: Bytes, _value: Bytes, _caps: Bytes) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
    fn del(&self, _key: Bytes, _caps: Bytes) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
    fn append(&self, value: Bytes, _caps: Bytes) -> StoreFuture<'_, Bytes> {
        Box::pin(async move { Ok(value) })
    }
    fn scan(&self, _range: Range, _caps: Bytes) -> StoreFuture<'_, Entries> {
        let three = (0..3).map(|i| {
            Ok(plex_peer::Entry {
                key: format!("k{i}").into(),
                value: Bytes::new(),
            })
        });
        Box::pin(async move {
            Ok(Entries::new(
                smol::stream::iter(three).chain(smol::stream::pending()),
            ))
        })
    }
}

fn a_scan_times_out_on_a_silent_server_not_a_slow_consumer(rt: Rt, wire: Wire) {
    rt.block_on(async {
        let timeout = Duration::from_millis(100);
        let client = ClientConfig {
            timeout: Some(timeout),
            ..ClientConfig::default()
        };
        let (a, b) = peers_on(
            rt,
            wire,
            PeerConfig::default().client(client),
            PeerConfig::default(),
        )
        .await;
        let _serving = expose_store_port(&b, "s", "rpc", Stalling);
        let store = connect_store_port(&a, "s", "rpc");
        let mut entries = store.scan(Range::all(), Bytes::new()).await.expect("scan");
        let runtime = rt.runtime();
        for i in 0..3 {
            let entry = entries.next().await.expect("an entry").expect("ok");
            assert_eq!(entry.key, format!("k{i}"));
            // The consumer dawdles three timeouts long between entries.
            runtime.sleep_until(runtime.now() + 3 * timeout).await;
        }
        // Then the server goes silent while the consumer waits.
        match rt.within(LIMIT, entries.next()).await.expect("no hang") {
            Some(Err(Error::Timeout { after })) => assert_eq!(after, timeout),
            other => panic!("expected Timeout, got {other:?}"),
        }
        assert!(entries.next().await.is_none(), "nothing after the end");
        assert_eq!(store.client().stats().timeouts, 1);
    });
}

fn large_values_and_the_request_limit_on_both_sides(rt: Rt, wire: Wire) {
    rt.block_on(async {
        // This client allows bodies the server refuses.
        let generous = ClientConfig {
            max_request_bytes: 1 << 20,
            ..ClientConfig::default()
        };
        let (a, b) = peers(
            rt,
            PeerConfig::default().client(generous),
            PeerConfig::default(),
        )
        .await;
        let _serving = expose_store_port(&b, "s", "rpc", MemoryStore::new());
        let store = connect_store_port(&a, "s", "rpc");
        let big = Bytes::from((0..200 * 1024).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        store
            .put("big".into(), big.clone(), Bytes::new())
            .await
            .expect("200 KiB put");
        assert_eq!(
            store.get("big".into(), Bytes::new()).await.expect("get"),
            Some(big)
        );
        let huge = Bytes::from(vec![0u8; 300 * 1024]);
        match store.put("huge".into(), huge.clone(), Bytes::new()).await {
            Err(Error::Failed {
                code: Code::PayloadTooLarge,
                message,
            }) => {
                assert_eq!(message, "Request payload exceeds limit");
            }
            other => panic!("expected the server's PayloadTooLarge, got {other:?}"),
        }
        // A default client refuses before sending.
        let (c, d) = default_peers_on(rt, wire).await;
        let _serving = expose_store_port(&d, "s", "rpc", MemoryStore::new());
        let store = connect_store_port(&c, "s", "rpc");
        match store.put("huge".into(), huge, Bytes::new()).await {
            Err(Error::PayloadTooLarge { max, .. }) => assert_eq!(max, 256 * 1024),
            other => panic!("expected the client's PayloadTooLarge, got {other:?}"),
        }
        assert_eq!(store.client().stats().calls, 0, "nothing was sent");
    });
}

fn the_in_flight_limit_on_both_sides(rt: Rt, wire: Wire) {
    rt.block_on(async {
        // The server's limit: two calls in its handler, a third is refused by it.
        let server = ServerConfig {
            max_in_flight: 2,
            ..ServerConfig::default()
        };
        let (a, b) = peers_on(rt, wire, PeerConfig::default(), PeerConfig::default().server(server)).await;
        check_limit(rt, &a, &b, |third| {
            assert!(
                matches!(&third, Err(Error::Failed { code: Code::NotReady, message }) if message == "Too many in-flight requests"),
                "{third:?}"
            );
        })
        .await;
        // The client's limit: two calls held, a third fails before sending.
        let client = ClientConfig {
            max_in_flight: 2,
            ..ClientConfig::default()
        };
        let (a, b) = peers_on(rt, wire, PeerConfig::default().client(client), PeerConfig::default()).await;
        check_limit(rt, &a, &b, |third| {
            assert!(matches!(third, Err(Error::NotReady { limit: 2 })), "{third:?}");
        })
        .await;
    });
}

/// Holds two calls in the server's handler, checks a third with `check`,
/// then releases the two and checks that they and a later call succeed.
async fn check_limit(rt: Rt, a: &Peer, b: &Peer, check: impl FnOnce(Result<Option<Bytes>, Error>)) {
    let (port, open) = Scripted::gated();
    let started = port.started.clone();
    let _serving = expose_store_port(b, "s", "rpc", port);
    let store = connect_store_port(a, "s", "rpc");
    let held = smol::future::zip(
        store.get("1".into(), Bytes::new()),
        store.get("2".into(), Bytes::new()),
    );
    let probe = async {
        rt.until(LIMIT, "two calls in the handler", || {
            started.load(Ordering::SeqCst) == 2
        })
        .await;
        check(store.get("3".into(), Bytes::new()).await);
        for _ in 0..3 {
            open.send(()).await.expect("gate");
        }
    };
    let ((first, second), ()) = smol::future::zip(held, probe).await;
    first.expect("first");
    second.expect("second");
    let later = store
        .get("4".into(), Bytes::new())
        .await
        .expect("room again");
    assert_eq!(later.as_deref(), Some(&b"4"[..]));
}

fn closing_the_lane_fails_pending_calls_at_once(rt: Rt, wire: Wire) {
    rt.block_on(async {
        let (a, b) = default_peers_on(rt, wire).await;
        let (port, _open) = Scripted::gated();
        let started = port.started.clone();
        let _serving = expose_store_port(&b, "s", "rpc", port);
        let store = connect_store_port(&a, "s", "rpc");
        let calls = futures_util::future::join_all(
            (0..5).map(|i| store.get(format!("{i}").into(), Bytes::new())),
        );
        let close = async {
            rt.until(LIMIT, "five in the handler", || {
                started.load(Ordering::SeqCst) == 5
            })
            .await;
            store.client().close();
        };
        let (results, ()) = smol::future::zip(rt.within(LIMIT, calls), close).await;
        for result in results.expect("no hang") {
            assert!(matches!(result, Err(Error::LaneClosed)), "{result:?}");
        }
        // A new client for the lane works, continuing the request ids.
        let again = connect_store_port(&a, "s", "rpc");
        assert!(!again.client().is_closed());
    });
}

fn closing_the_session_fails_pending_calls_at_once(rt: Rt) {
    rt.block_on(async {
        let (a, b, proxy) = rt
            .pair_via_proxy(Config::default(), Config::default())
            .await;
        let (a, b) = (Peer::new(a), Peer::new(b));
        let (port, _open) = Scripted::gated();
        let started = port.started.clone();
        let _serving = expose_store_port(&b, "s", "rpc", port);
        let store = connect_store_port(&a, "s", "rpc");
        let call = store.get("k".into(), Bytes::new());
        let kill = async {
            rt.until(LIMIT, "in the handler", || {
                started.load(Ordering::SeqCst) == 1
            })
            .await;
            // The server vanishes: its connection is cut mid-call.
            proxy.cut();
        };
        let (result, ()) = smol::future::zip(rt.within(LIMIT, call), kill).await;
        let result = result.expect("no hang");
        assert!(matches!(result, Err(Error::Closed(_))), "{result:?}");
        assert_eq!(store.client().in_flight(), 0);
    });
}

fn a_lane_nobody_serves_is_unavailable(rt: Rt, wire: Wire) {
    rt.block_on(async {
        let (a, _b) = default_peers_on(rt, wire).await;
        let store = connect_store_port(&a, "nobody", "rpc");
        let result = rt
            .within(LIMIT, store.get("k".into(), Bytes::new()))
            .await
            .expect("no hang");
        assert!(matches!(result, Err(Error::Unavailable)), "{result:?}");
        assert_eq!(store.client().in_flight(), 0);
    });
}

fn a_call_that_never_sends_its_request_is_reset(rt: Rt) {
    rt.block_on(async {
        let patient = PeerConfig::default().request_timeout(Duration::from_millis(100));
        let (a, b) = peers(rt, PeerConfig::default(), patient).await;
        let _serving = expose_store_port(&b, "s", "rpc", MemoryStore::new());
        // A call stream opened by hand, whose request never comes.
        let options = plex_runtime::OpenOptions::new(a.protocol("rpc"), "s");
        let mut silent = a
            .session()
            .expect("plex/1")
            .open_stream(options)
            .await
            .expect("open");
        let mut buf = [0u8; 8];
        let read = rt
            .within(LIMIT, smol::io::AsyncReadExt::read(&mut silent, &mut buf))
            .await;
        let error = read
            .expect("no hang")
            .expect_err("the server gives up on it");
        let error = error
            .into_inner()
            .and_then(|e| e.downcast::<plex_runtime::Error>().ok());
        assert!(
            matches!(error.as_deref(), Some(plex_runtime::Error::Reset(_))),
            "{error:?}"
        );
        rt.until(LIMIT, "the server frees the stream", || {
            b.session().expect("plex/1").stats().active_streams == 0
        })
        .await;
        // Real calls are unaffected.
        let store = connect_store_port(&a, "s", "rpc");
        store
            .put("k".into(), "v".into(), Bytes::new())
            .await
            .expect("put");
    });
}
