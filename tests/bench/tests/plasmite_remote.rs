//! Plasmite's own Rust client, `plasmite::api::RemoteClient` (the crate
//! `plasmite serve`'s users have), against `plex serve`'s library on a
//! loopback port: create, open, append, get, tail, list, info, delete, and
//! the errors it maps from plex's envelopes. Not in the default build:
//! `cargo test -p plex-bench --test plasmite_remote`.

use std::net::SocketAddr;
use std::time::Duration;

use plasmite::api::{
    Durability, ErrorKind, GapPolicy, PoolOptions, PoolRef, RemoteClient, TailOptions,
};
use plex_serve::{Config, Server};
use serde_json::json;

/// `plex serve` on a free loopback port, on its own runtime thread.
struct Served {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    fn start() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new(dir.path()).addr("127.0.0.1:0".parse().unwrap());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let server = Server::bind(config).await.unwrap();
                addr_tx.send(server.local_addr()).unwrap();
                server
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Served {
            addr: addr_rx.recv().unwrap(),
            dir,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn tags(list: &[&str]) -> Vec<String> {
    list.iter().map(|t| (*t).to_owned()).collect()
}

#[test]
fn remote_client_lifecycle() {
    let served = Served::start();
    let client = RemoteClient::new(served.url()).unwrap();
    let demo = PoolRef::name("demo");

    let info = client
        .create_pool(&demo, PoolOptions::new(1 << 20))
        .unwrap();
    assert_eq!(info.file_size, 1 << 20);
    assert!(info.path.ends_with("demo.plasmite"), "{info:?}");
    let err = client
        .create_pool(&demo, PoolOptions::new(1 << 20))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);

    let pool = client.open_pool(&demo).unwrap();
    let first = pool
        .append_json_now(&json!({"n": 1}), &tags(&["a"]), Durability::Fast)
        .unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.meta.tags, ["a"]);
    let second = pool
        .append_json_now(&json!({"n": 2}), &tags(&["a", "b"]), Durability::Flush)
        .unwrap();
    assert_eq!(second.seq, 2);
    let third = pool
        .append_json_now(&json!({"n": 3}), &[], Durability::Fast)
        .unwrap();

    let got = pool.get_message(2).unwrap();
    assert_eq!(got, second);
    assert_eq!(got.data, json!({"n": 2}));
    let err = pool.get_message(9).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.seq(), Some(9));

    // A tail from the start, bounded by `max`.
    let mut options = TailOptions::new();
    options.since_seq = Some(1);
    options.max_messages = Some(3);
    let mut tail = pool.tail(options).unwrap();
    let mut seen = Vec::new();
    while let Some(msg) = tail.next_message().unwrap() {
        seen.push(msg);
    }
    assert_eq!(seen, [first.clone(), second.clone(), third.clone()]);

    // Tags (all required), ending at the timeout.
    let mut options = TailOptions::new();
    options.since_seq = Some(1);
    options.tags = tags(&["a", "b"]);
    options.timeout = Some(Duration::from_millis(50));
    let mut tail = pool.tail(options).unwrap();
    assert_eq!(tail.next_message().unwrap(), Some(second.clone()));
    assert_eq!(tail.next_message().unwrap(), None);

    let info = pool.info().unwrap();
    assert_eq!(info.bounds.oldest_seq, Some(1));
    assert_eq!(info.bounds.newest_seq, Some(3));
    assert_eq!(info.metrics.as_ref().unwrap().message_count, 3);
    let same = client.pool_info(&demo).unwrap();
    assert_eq!(same.path, info.path);

    client
        .create_pool(&PoolRef::name("another"), PoolOptions::new(1 << 20))
        .unwrap();
    let listed = client.list_pools().unwrap();
    let names: Vec<_> = listed
        .iter()
        .map(|p| p.path.file_stem().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["another", "demo"]);

    client.delete_pool(&demo).unwrap();
    assert!(!served.dir.path().join("demo.plex").exists());
    let err = client.pool_info(&demo).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = client.open_pool(&demo).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = client.delete_pool(&demo).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn remote_client_sees_live_appends_and_retention_gaps() {
    let served = Served::start();
    let client = RemoteClient::new(served.url()).unwrap();
    let live = PoolRef::name("live");
    client
        .create_pool(&live, PoolOptions::new(1 << 20))
        .unwrap();
    let pool = client.open_pool(&live).unwrap();

    // A tail waiting for seq 1 is woken by appends from another client.
    let mut options = TailOptions::new();
    options.since_seq = Some(1);
    options.max_messages = Some(2);
    let mut tail = pool.tail(options).unwrap();
    let writer = client.open_pool(&live).unwrap();
    let appender = std::thread::spawn(move || {
        for n in 1..=2 {
            writer
                .append_json_now(&json!({ "n": n }), &[], Durability::Fast)
                .unwrap();
        }
    });
    let a = tail.next_message().unwrap().unwrap();
    let b = tail.next_message().unwrap().unwrap();
    assert_eq!((a.seq, b.seq), (1, 2));
    assert_eq!(tail.next_message().unwrap(), None);
    appender.join().unwrap();

    // Overwritten messages under gap_policy=error: the stream's terminal
    // error line becomes the client's RetentionGap error.
    let small = PoolRef::name("small");
    client.create_pool(&small, PoolOptions::new(16384)).unwrap();
    let pool = client.open_pool(&small).unwrap();
    let blob = "x".repeat(1000);
    for n in 0..40 {
        pool.append_json_now(&json!({ "n": n, "blob": blob }), &[], Durability::Fast)
            .unwrap();
    }
    let oldest = pool.info().unwrap().bounds.oldest_seq.unwrap();
    assert!(oldest > 1);
    let mut options = TailOptions::new();
    options.since_seq = Some(1);
    options.gap_policy = GapPolicy::Error;
    let mut tail = pool.tail(options).unwrap();
    let err = tail.next_message().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RetentionGap);
    assert_eq!(err.seq(), Some(1));

    // Under gap_policy=continue the tail resumes at the oldest held.
    let mut options = TailOptions::new();
    options.since_seq = Some(1);
    options.max_messages = Some(1);
    let mut tail = pool.tail(options).unwrap();
    assert_eq!(tail.next_message().unwrap().unwrap().seq, oldest);
}
