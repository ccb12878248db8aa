//! A store port over TCP on tokio: a server exposes a redb store as
//! `example-store` on lane `rpc`, a client uses it.
//!
//! - `store_port` runs both in one process, on loopback, and exits;
//! - `store_port --listen tcp://127.0.0.1:4600` serves until interrupted;
//! - `store_port --connect tcp://127.0.0.1:4600` runs the client once.
//!
//! The server checks caps: reads need no token, writes need `writer`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use plex_peer::{connect_store_port, with_caps, Code, Error, Peer, Range, StorePort, StoreServer};
use plex_ports::RedbStore;
use plex_proto::rpc::Method;
use plex_runtime::{Config, Session};

/// The store id the server exposes.
const STORE_ID: &str = "example-store";
/// The lane it is exposed on (neonplex's default).
const LANE: &str = "rpc";
/// The caps token writes need.
const WRITER: &[u8] = b"writer";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--listen", url] => {
            let dir = tempfile::tempdir()?;
            let store = open_store(&dir).await?;
            let server = plex_tokio::listen(url, Config::default()).await?;
            println!("serving {STORE_ID:?} on {}", server.local_endpoint());
            loop {
                let (session, from) = server.accept().await?;
                println!("connection from {from}");
                tokio::spawn(serve(session, store.clone()));
            }
        }
        ["--connect", url] => {
            let session = plex_tokio::connect(url, Config::default()).await?;
            client(&session).await?;
            session.close().await?;
            Ok(())
        }
        [] => {
            let dir = tempfile::tempdir()?;
            let store = open_store(&dir).await?;
            let server = plex_tokio::listen("tcp://127.0.0.1:0", Config::default()).await?;
            let url = server.local_endpoint().to_string();
            println!("serving {STORE_ID:?} on {url}");
            let serving = tokio::spawn(async move {
                if let Ok((session, _)) = server.accept().await {
                    serve(session, store).await;
                }
            });
            let session = plex_tokio::connect(&url, Config::default()).await?;
            client(&session).await?;
            session.close().await?;
            // The server sees the close and reports.
            tokio::time::timeout(Duration::from_secs(5), serving).await??;
            Ok(())
        }
        _ => Err("usage: store_port [--listen URL | --connect URL]".into()),
    }
}

/// Opens a redb store in `dir`, off the async threads (opening blocks).
async fn open_store(dir: &tempfile::TempDir) -> Result<Arc<RedbStore>, BoxError> {
    let path = dir.path().join("example.redb");
    println!("redb store at {}", path.display());
    let store = tokio::task::spawn_blocking(move || RedbStore::open(path)).await??;
    Ok(Arc::new(store))
}

/// Serves `store` on one session until it closes.
async fn serve(session: Session, store: Arc<RedbStore>) {
    let peer = Peer::new(session);
    let serving = StoreServer::new(store)
        .check_caps(|method, caps| {
            let reads = method == Method::GET || method == Method::SCAN;
            reads || caps == WRITER
        })
        .expose(&peer, STORE_ID, LANE);
    let reason = peer.session().expect("plex/1").closed().await;
    let stats = serving.stats();
    println!("server: session closed ({reason:?}); served {stats:?}");
}

/// Puts, gets, appends and scans, then shows a write without the token
/// being refused.
async fn client(session: &Session) -> Result<(), BoxError> {
    let peer = Peer::new(session.clone());
    let remote = connect_store_port(&peer, STORE_ID, LANE);
    // Every call through `writer` carries the token.
    let writer = with_caps(remote.clone(), WRITER);
    let none = Bytes::new();

    for (key, value) in [
        ("fruit/apple", "red"),
        ("fruit/banana", "yellow"),
        ("fruit/cherry", "dark red"),
        ("veg/leek", "green"),
    ] {
        writer.put(key.into(), value.into(), none.clone()).await?;
        println!("put {key} = {value}");
    }
    let apple = remote.get("fruit/apple".into(), none.clone()).await?;
    println!("get fruit/apple -> {:?}", apple.as_deref().map(show));
    let missing = remote.get("fruit/durian".into(), none.clone()).await?;
    println!("get fruit/durian -> {:?}", missing.as_deref().map(show));

    for line in ["started", "stocked the shelves", "closed"] {
        let key = writer.append(line.into(), none.clone()).await?;
        println!("append {line:?} -> {}", show(&key));
    }

    println!("scan prefix fruit/:");
    let fruit = remote
        .scan(Range::prefix("fruit/"), none.clone())
        .await?
        .collect()
        .await?;
    for entry in &fruit {
        println!("  {} = {}", show(&entry.key), show(&entry.value));
    }
    if fruit.len() != 3 {
        return Err(format!("expected 3 fruit, scanned {}", fruit.len()).into());
    }

    // No token: the server refuses before the store sees the call.
    match remote
        .put("fruit/apple".into(), "green".into(), none.clone())
        .await
    {
        Err(Error::Failed {
            code: Code::CapabilityDenied,
            message,
        }) => println!("put without caps -> refused: {message}"),
        other => return Err(format!("expected CapabilityDenied, got {other:?}").into()),
    }
    let apple = remote.get("fruit/apple".into(), none).await?;
    println!(
        "get fruit/apple -> {:?} (unchanged)",
        apple.as_deref().map(show)
    );
    println!("client: {:?}", remote.client().stats());
    Ok(())
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
