//! plex-serve's `plex/1` listener driven by real clients over loopback:
//! remote pools through `RemotePools`, the bus through `BusClient`, store
//! ports through `plex_peer`, and a follow that outlives its server.

mod auth;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use plex_bus::{BusClient, Event};
use plex_peer::{append_key, connect_store_port, Code, Peer, StorePort};
use plex_proto::pools::{Durability, ErrorKind, TailQuery, TailStart, WireError, MAX_TAG_LEN};
use plex_runtime::Config as SessionConfig;
use plex_serve::remote::{pool_port, Follow, RemoteError, RemotePools, TailEvent, KV_PORT};
use plex_serve::{Config, Limits, ServeError, Server};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server with a `plex/1` listener.
struct Harness {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl Harness {
    async fn start(dir: &Path, listen: &str, limits: Limits) -> Harness {
        let config = Config::new(dir)
            .addr("127.0.0.1:0".parse().unwrap())
            .limits(limits)
            .listen(vec![listen.to_owned()]);
        let server = Server::bind(config).await.unwrap();
        let url = server.plex_urls().remove(0);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Harness {
            url,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn pools(&self) -> RemotePools {
        RemotePools::connect(&self.url).await.unwrap()
    }

    async fn session(&self) -> plex_runtime::Session {
        plex_tokio::connect(&self.url, SessionConfig::default())
            .await
            .unwrap()
    }

    /// Stops the server and waits for its clean exit.
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

fn server_kind(e: RemoteError) -> ErrorKind {
    match e {
        RemoteError::Server(record) => record.kind,
        other => panic!("expected a server error, got {other:?}"),
    }
}

async fn append(pools: &RemotePools, pool: &str, datas: &[&str]) {
    let mut appender = pools.appender(pool, Durability::Fast).await.unwrap();
    let batch: Vec<(Vec<String>, Bytes)> = datas
        .iter()
        .map(|d| (vec![], Bytes::copy_from_slice(d.as_bytes())))
        .collect();
    appender.send(&batch).await.unwrap();
    appender.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_are_created_described_listed_read_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Harness::start(dir.path(), "tcp://127.0.0.1:0", Limits::default()).await;
    let pools = server.pools().await;
    let info = pools.create("demo", 64 << 10, Some(32)).await.unwrap();
    assert_eq!((info.name.as_str(), info.file_len), ("demo", 64 << 10));
    assert_eq!(info.index_slots, 32);
    assert!(info.path.ends_with("demo.plex"), "{}", info.path);
    let again = pools.create("demo", 64 << 10, None).await.unwrap_err();
    assert_eq!(server_kind(again), ErrorKind::AlreadyExists);
    pools.create("other", 64 << 10, None).await.unwrap();

    append(&pools, "demo", &["{\"a\":1}", "{\"a\":2}"]).await;
    let info = pools.info("demo").await.unwrap();
    assert_eq!((info.messages, info.oldest, info.newest), (2, 1, 2));
    assert_eq!(info.damaged, Some(0));
    let described = pools.describe("demo").await.unwrap();
    assert_eq!((described.newest, described.damaged), (2, None));
    let names: Vec<String> = pools
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.unwrap().name)
        .collect();
    assert_eq!(names, ["demo", "other"]);

    let msg = pools.get("demo", 2).await.unwrap();
    assert_eq!((msg.seq, &msg.data[..]), (2, &b"{\"a\":2}"[..]));
    let RemoteError::Server(missing) = pools.get("demo", 3).await.unwrap_err() else {
        panic!("a server error")
    };
    assert_eq!((missing.kind, missing.seq), (ErrorKind::NotFound, Some(3)));
    assert_eq!(
        missing.hint.as_deref(),
        Some("not written yet; the newest seq is 2")
    );

    let deleted = pools.delete("other").await.unwrap();
    assert!(deleted.path.ends_with("other.plex"));
    assert_eq!(
        server_kind(pools.info("other").await.unwrap_err()),
        ErrorKind::NotFound
    );
    // A name that is a path is refused before it reaches the directory.
    assert_eq!(
        server_kind(pools.info("../x").await.unwrap_err()),
        ErrorKind::Usage
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_are_pipelined_and_tails_read_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Harness::start(dir.path(), "ws://127.0.0.1:0", Limits::default()).await;
    let pools = server.pools().await;
    pools.create("p", 1 << 20, None).await.unwrap();
    let mut appender = pools.appender("p", Durability::Flush).await.unwrap();
    for b in 0..50u32 {
        let batch: Vec<(Vec<String>, Bytes)> = (0..20u32)
            .map(|i| {
                let tags = if i % 2 == 0 {
                    vec!["even".to_owned()]
                } else {
                    vec![]
                };
                (tags, Bytes::from(format!("{{\"i\":{}}}", b * 20 + i)))
            })
            .collect();
        appender.send(&batch).await.unwrap();
    }
    assert_eq!(appender.in_flight(), 50);
    let mut expected = 1;
    while appender.in_flight() > 0 {
        let receipt = appender.receipt().await.unwrap();
        assert_eq!((receipt.first, receipt.count), (expected, 20));
        expected += 20;
    }
    appender.finish().await.unwrap();

    let read = |query: TailQuery| {
        let pools = pools.clone();
        async move {
            let mut tail = pools.tail("p", query).await.unwrap();
            let mut seqs = Vec::new();
            while let Some(event) = tail.next().await.unwrap() {
                match event {
                    TailEvent::Message(m) => seqs.push(m.seq),
                    other => panic!("unexpected {other:?}"),
                }
            }
            seqs
        }
    };
    let all = read(TailQuery {
        start: TailStart::Oldest,
        ..TailQuery::default()
    })
    .await;
    assert_eq!(all, (1..=1000).collect::<Vec<_>>());
    let last = read(TailQuery {
        start: TailStart::Last(3),
        ..TailQuery::default()
    })
    .await;
    assert_eq!(last, [998, 999, 1000]);
    let even = read(TailQuery {
        start: TailStart::Seq(991),
        tags: vec!["even".into()],
        max: Some(3),
        follow: true,
        ..TailQuery::default()
    })
    .await;
    assert_eq!(even, [991, 993, 995]);
    server.stop().await;
}

/// Appends go in on the stream's task while the pool's writer lock is
/// free; while another process (here another open file) holds it, they
/// wait for it on a blocking thread and complete once it is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_wait_for_a_writer_lock_held_elsewhere() {
    use rustix::fs::{flock, FlockOperation};
    let dir = tempfile::tempdir().unwrap();
    let server = Harness::start(dir.path(), "tcp://127.0.0.1:0", Limits::default()).await;
    let pools = server.pools().await;
    pools.create("p", 1 << 20, None).await.unwrap();
    let mut appender = pools.appender("p", Durability::Fast).await.unwrap();
    let batch = |data: &str| vec![(vec![], Bytes::copy_from_slice(data.as_bytes()))];
    appender.send(&batch("free")).await.unwrap();
    assert_eq!(appender.receipt().await.unwrap().first, 1);

    let file = std::fs::File::open(dir.path().join("p.plex")).unwrap();
    flock(&file, FlockOperation::LockExclusive).unwrap();
    appender.send(&batch("held")).await.unwrap();
    // The server's append is queued behind our lock (`/proc/locks` lists
    // blocked requests with `->`) before we release it.
    let inode = format!(
        ":{} ",
        std::os::unix::fs::MetadataExt::ino(&file.metadata().unwrap())
    );
    while !std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .any(|l| l.contains("-> FLOCK") && l.contains(&inode))
    {
        tokio::task::yield_now().await;
    }
    flock(&file, FlockOperation::Unlock).unwrap();
    assert_eq!(appender.receipt().await.unwrap().first, 2);
    appender.send(&batch("free again")).await.unwrap();
    assert_eq!(appender.receipt().await.unwrap().first, 3);
    appender.finish().await.unwrap();
    let mut tail = pools
        .tail(
            "p",
            TailQuery {
                start: TailStart::Oldest,
                ..TailQuery::default()
            },
        )
        .await
        .unwrap();
    let mut datas = Vec::new();
    while let Some(event) = tail.next().await.unwrap() {
        match event {
            TailEvent::Message(m) => datas.push(m.data),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(datas, ["free", "held", "free again"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_tail_wakes_on_appends_times_out_and_reports_gaps_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Harness::start(dir.path(), "tcp://127.0.0.1:0", Limits::default()).await;
    let pools = server.pools().await;
    pools.create("small", 16 << 10, None).await.unwrap();
    // From seq 1, not yet written: the tail waits for it.
    let live = TailQuery {
        start: TailStart::Seq(1),
        follow: true,
        timeout_ms: Some(300),
        ..TailQuery::default()
    };
    let mut tail = pools.tail("small", live).await.unwrap();
    append(&pools, "small", &["{\"live\":true}"]).await;
    match tail.next().await.unwrap() {
        Some(TailEvent::Message(m)) => assert_eq!(m.seq, 1),
        other => panic!("expected the message, got {other:?}"),
    }
    assert_eq!(tail.next().await.unwrap(), Some(TailEvent::TimedOut));
    assert_eq!(tail.next().await.unwrap(), None);

    let pad = format!("{{\"pad\":\"{}\"}}", "x".repeat(1000));
    for _ in 0..40 {
        append(&pools, "small", &[&pad]).await;
    }
    let info = pools.info("small").await.unwrap();
    assert!(info.oldest > 2, "the ring wrapped: {info:?}");
    let mut tail = pools
        .tail(
            "small",
            TailQuery {
                start: TailStart::Seq(1),
                ..TailQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        tail.next().await.unwrap(),
        Some(TailEvent::Gap {
            first: 1,
            next: info.oldest
        })
    );
    match tail.next().await.unwrap() {
        Some(TailEvent::Message(m)) => assert_eq!(m.seq, info.oldest),
        other => panic!("expected the oldest message, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_and_store_ports_share_the_listener() {
    let dir = tempfile::tempdir().unwrap();
    let server = Harness::start(dir.path(), "tcp://127.0.0.1:0", Limits::default()).await;
    let pools = server.pools().await;
    pools.create("events", 64 << 10, None).await.unwrap();
    append(&pools, "events", &["{\"e\":1}"]).await;

    // The bus: request/reply and publish/subscribe across two clients.
    let worker = BusClient::new(server.session().await);
    let caller = BusClient::new(server.session().await);
    let mut responder = worker.respond("math.double").await.unwrap();
    tokio::spawn(async move {
        while let Some(mut request) = responder.next().await {
            let n: u64 = String::from_utf8_lossy(&request.body().await.unwrap())
                .parse()
                .unwrap();
            request.reply((n * 2).to_string().into()).await.unwrap();
        }
    });
    assert_eq!(
        caller
            .request("math.double", Bytes::from("21"))
            .await
            .unwrap(),
        "42"
    );
    let mut news = worker.subscribe("news.*").await.unwrap();
    caller
        .publish("news.plex", Bytes::from("served"))
        .await
        .unwrap();
    assert_eq!(
        news.next().await.transpose().unwrap(),
        Some(Event::Message {
            channel: "news.plex".into(),
            payload: Bytes::from("served")
        })
    );

    // The key-value store port, and the port of a pool.
    let peer = Peer::new(server.session().await);
    let kv = connect_store_port(&peer, KV_PORT, "rpc");
    kv.put("k".into(), "v".into(), Bytes::new()).await.unwrap();
    assert_eq!(
        kv.get("k".into(), Bytes::new()).await.unwrap(),
        Some("v".into())
    );
    let events = connect_store_port(&peer, pool_port("events"), "rpc");
    assert_eq!(
        events.get(append_key(1), Bytes::new()).await.unwrap(),
        Some("{\"e\":1}".into())
    );
    server.stop().await;

    // The key-value store persists in the pool directory.
    let server = Harness::start(dir.path(), "tcp://127.0.0.1:0", Limits::default()).await;
    let peer = Peer::new(server.session().await);
    let kv = connect_store_port(&peer, KV_PORT, "rpc");
    assert_eq!(
        kv.get("k".into(), Bytes::new()).await.unwrap(),
        Some("v".into())
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_ports_reach_pools_created_later_and_fail_for_deleted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = Harness::start(dir.path(), "tcp://127.0.0.1:0", Limits::default()).await;
    // The session begins before the pool exists.
    let peer = Peer::new(server.session().await);
    let pools = server.pools().await;
    pools.create("late", 64 << 10, None).await.unwrap();
    append(&pools, "late", &["{\"e\":1}"]).await;
    let late = connect_store_port(&peer, pool_port("late"), "rpc");
    assert_eq!(
        late.get(append_key(1), Bytes::new()).await.unwrap(),
        Some("{\"e\":1}".into())
    );
    assert_eq!(
        late.append("{\"e\":2}".into(), Bytes::new()).await.unwrap(),
        append_key(2)
    );
    assert_eq!(pools.get("late", 2).await.unwrap().data, "{\"e\":2}");

    // Deleted: a clear error; created again: the new pool.
    pools.delete("late").await.unwrap();
    let err = late.get(append_key(1), Bytes::new()).await.unwrap_err();
    assert_eq!(err.code(), Code::NotAvailable, "{err}");
    assert!(
        err.to_string().contains("pool late does not exist"),
        "{err}"
    );
    pools.create("late", 64 << 10, None).await.unwrap();
    assert_eq!(late.get(append_key(1), Bytes::new()).await.unwrap(), None);

    let ghost = connect_store_port(&peer, pool_port("ghost"), "rpc");
    let err = ghost.get(append_key(1), Bytes::new()).await.unwrap_err();
    assert_eq!(err.code(), Code::NotAvailable, "{err}");
    // Ids that name no port are refused.
    let nothing = connect_store_port(&peer, "nothing", "rpc");
    let err = nothing.get(append_key(1), Bytes::new()).await.unwrap_err();
    assert_eq!(err.code(), Code::NotAvailable, "{err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_bus_subscriptions_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // A shutdown that waited for subscriptions would cut their sessions
    // at the end of its grace: the subscribers would then see the
    // connection fail, not a clean end.
    let server = Harness::start(dir.path(), "tcp://127.0.0.1:0", Limits::default()).await;
    let listener = BusClient::new(server.session().await);
    let worker = BusClient::new(server.session().await);
    let publisher = BusClient::new(server.session().await);
    let mut news = listener.subscribe("news.*").await.unwrap();
    let mut responder = worker.respond("math.double").await.unwrap();
    // The publisher's stream stays open after its message.
    publisher
        .publish("news.plex", Bytes::from("before"))
        .await
        .unwrap();
    assert_eq!(
        news.next().await.transpose().unwrap(),
        Some(Event::Message {
            channel: "news.plex".into(),
            payload: Bytes::from("before")
        })
    );
    // Both wait, as a subscriber and a responder do, when the server stops.
    let subscriber = tokio::spawn(async move { news.next().await });
    let responding = tokio::spawn(async move { responder.next().await.is_none() });
    // The deadline only turns a shutdown that waits on its subscribers
    // forever (their tasks kept the connections open) into a failure.
    let stopped = async {
        server.stop().await;
        (subscriber.await.unwrap(), responding.await.unwrap())
    };
    let (ended, responder_ended) = tokio::time::timeout(Duration::from_secs(60), stopped)
        .await
        .expect("shutdown ends the subscriptions");
    assert!(ended.is_none(), "a clean end, not {ended:?}");
    assert!(responder_ended, "the responder's subscription ended");
    assert!(publisher
        .publish("news.plex", Bytes::from("after"))
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_resumes_by_seq_when_the_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Harness::start(dir.path(), "tcp://127.0.0.1:0", Limits::default()).await;
    let url = server.url.clone();
    let pools = server.pools().await;
    pools.create("p", 64 << 10, None).await.unwrap();
    append(&pools, "p", &["1", "2", "3"]).await;
    let query = TailQuery {
        start: TailStart::Oldest,
        follow: true,
        ..TailQuery::default()
    };
    let mut follow = Follow::new(url.clone(), "p", query);
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        match follow.next().await.unwrap() {
            Some(TailEvent::Message(m)) => seqs.push(m.seq),
            other => panic!("unexpected {other:?}"),
        }
    }
    drop(pools);
    server.stop().await;

    // The same address and directory, and more messages.
    let server = Harness::start(dir.path(), &url, Limits::default()).await;
    append(&server.pools().await, "p", &["4", "5"]).await;
    while seqs.len() < 5 {
        match follow.next().await.unwrap() {
            Some(TailEvent::Message(m)) => seqs.push(m.seq),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_refused_with_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut limits = Limits::default();
    limits.max_tails = 1;
    limits.max_record_bytes = 1024;
    let server = Harness::start(dir.path(), "tcp://127.0.0.1:0", limits).await;
    let pools = server.pools().await;
    pools.create("p", 64 << 10, None).await.unwrap();
    // The largest message the pool takes here is what one record carries.
    assert_eq!(pools.describe("p").await.unwrap().max_frame, 1024);
    // From seq 1, not yet written: the tail waits for it.
    let live = TailQuery {
        start: TailStart::Seq(1),
        follow: true,
        ..TailQuery::default()
    };
    let mut first = pools.tail("p", live.clone()).await.unwrap();
    append(&pools, "p", &["7"]).await;
    // Once it has a message, the first tail surely holds the one slot.
    assert!(matches!(
        first.next().await.unwrap(),
        Some(TailEvent::Message(m)) if m.seq == 1
    ));
    let mut second = pools.tail("p", live).await.unwrap();
    assert_eq!(
        server_kind(second.next().await.unwrap_err()),
        ErrorKind::Busy
    );
    let mut appender = pools.appender("p", Durability::Fast).await.unwrap();
    appender
        .send(&[(vec![], Bytes::from(vec![b'1'; 2048]))])
        .await
        .unwrap();
    let RemoteError::Server(e) = appender.receipt().await.unwrap_err() else {
        panic!("a server error")
    };
    assert_eq!(e.kind, ErrorKind::Usage);
    assert!(e.message.contains("exceeds the limit of 1024"), "{e}");
    // The first tail is still served.
    append(&pools, "p", &["8"]).await;
    assert!(matches!(
        first.next().await.unwrap(),
        Some(TailEvent::Message(m)) if m.seq == 2
    ));
    drop((first, second));
    server.stop().await;

    let off = Config::new(dir.path()).listen(vec!["tcp://0.0.0.0:0".into()]);
    assert!(matches!(
        Server::bind(off.addr("127.0.0.1:0".parse().unwrap())).await,
        Err(ServeError::PlexOffLoopback { .. })
    ));
}

/// A client takes records up to its own limit: a longer message is refused
/// from its length with a typed error (get, tail and a Follow alike), and a
/// client with a higher limit reads it whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_the_clients_record_limit_are_refused_from_their_length() {
    let dir = tempfile::tempdir().unwrap();
    let server = Harness::start(dir.path(), "tcp://127.0.0.1:0", Limits::default()).await;
    let pools = server.pools().await;
    pools.create("p", 1 << 20, None).await.unwrap();
    let big = "x".repeat(4096);
    append(&pools, "p", &["1", &big, "3"]).await;

    let small = server.pools().await.with_max_record(1024);
    assert_eq!(small.get("p", 1).await.unwrap().data, "1");
    let too_large = |e: RemoteError| match e {
        RemoteError::TooLarge { len, max } => {
            assert!(len > 4096 && max == 1024, "{len} {max}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    };
    too_large(small.get("p", 2).await.unwrap_err());
    let all = TailQuery {
        start: TailStart::Oldest,
        ..TailQuery::default()
    };
    let mut tail = small.tail("p", all.clone()).await.unwrap();
    assert!(matches!(tail.next().await.unwrap(), Some(TailEvent::Message(m)) if m.seq == 1));
    too_large(tail.next().await.unwrap_err());
    // Not a connection failure: a Follow does not retry it.
    let mut follow = Follow::new(server.url.clone(), "p", all).with_max_record(1024);
    assert!(matches!(follow.next().await.unwrap(), Some(TailEvent::Message(m)) if m.seq == 1));
    too_large(follow.next().await.unwrap_err());
    // The session is still good, and the default limit reads it.
    assert_eq!(small.get("p", 3).await.unwrap().data, "3");
    assert_eq!(pools.get("p", 2).await.unwrap().data, big.as_bytes());
    server.stop().await;
}

/// A tag the wire cannot carry is refused before anything is sent (not cut
/// short into another tag), and the append stream goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_the_wire_cannot_carry_are_refused_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let server = Harness::start(dir.path(), "tcp://127.0.0.1:0", Limits::default()).await;
    let pools = server.pools().await;
    pools.create("p", 1 << 20, None).await.unwrap();
    let mut appender = pools.appender("p", Durability::Fast).await.unwrap();
    let long = vec!["t".repeat(MAX_TAG_LEN + 1)];
    let batch = [(long.clone(), Bytes::from_static(b"{}"))];
    match appender.send(&batch).await {
        Err(RemoteError::Invalid(WireError::TagTooLong(n))) => assert_eq!(n, MAX_TAG_LEN + 1),
        other => panic!("expected TagTooLong, got {other:?}"),
    }
    assert_eq!(appender.in_flight(), 0);
    appender
        .send(&[(vec!["ok".to_owned()], Bytes::from_static(b"{}"))])
        .await
        .unwrap();
    assert_eq!(appender.receipt().await.unwrap().first, 1);
    appender.finish().await.unwrap();
    let query = TailQuery {
        tags: long,
        ..TailQuery::default()
    };
    assert!(matches!(
        pools.tail("p", query).await,
        Err(RemoteError::Invalid(WireError::TagTooLong(_)))
    ));
    assert_eq!(pools.info("p").await.unwrap().messages, 1);
    server.stop().await;
}
