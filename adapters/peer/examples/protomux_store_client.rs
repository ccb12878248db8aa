//! Calls a store port over Protomux, the wire JavaScript Plex (neonplex)
//! speaks: puts, gets, deletes, appends and scans, and checks every answer.
//!
//! ```text
//! protomux_store_client                      # both ends in one process
//! protomux_store_client --connect ADDR [--base B] [--id utf8:NAME|hex:HEX]
//! ```
//!
//! ADDR is `HOST:PORT` (TCP) or a `tcp://` or `ws://HOST:PORT/PATH` URL of
//! `protomux_store_server` or of any server of `tests/js/SERVICES.md` §8
//! (neonplex's `exposeStorePort` with that service's store). Exits 0 if
//! every answer was the expected one.

#[path = "shared/store.rs"]
mod store;

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use plex_peer::{
    connect_store_port, with_caps, Code, Error, MemoryStore, Peer, PeerConfig, Range, StorePort,
    RPC_LANE,
};
use plex_runtime::mux::MuxConfig;
use store::{show, BoxError};

/// How long the whole run may take.
const TIMEOUT: Duration = Duration::from_secs(30);

// One thread is plenty for an example.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let run = async {
        let options = store::Options::parse("--connect")?;
        match options.url {
            Some(url) => client(&url, options.config, options.id).await,
            None => {
                let server = store::bind("tcp://127.0.0.1:0", &options).await?;
                let url = server.local_endpoint().to_string();
                let serving = store::serve(
                    server,
                    options.config.clone(),
                    options.id.clone(),
                    MemoryStore::new(),
                );
                tokio::select! {
                    served = serving => served,
                    called = client(&url, options.config, options.id) => called,
                }
            }
        }
    };
    match tokio::time::timeout(TIMEOUT, run).await {
        Ok(Ok(())) => {
            println!("client: every answer as expected");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("protomux_store_client: FAILED: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("protomux_store_client: FAILED: no result after {TIMEOUT:?}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every call against the store `id` at `url` and checks the answers.
async fn client(url: &str, config: PeerConfig, id: Bytes) -> Result<(), BoxError> {
    let mux = plex_tokio::connect_mux(url, MuxConfig::default()).await?;
    let peer = Peer::protomux_with_config(mux, config)?;
    println!("connected to {url}, store {:?}", show(&id));
    let remote = connect_store_port(&peer, id, RPC_LANE);
    let none = Bytes::new;
    // The server's store may be shared and outlive this run: use keys of
    // our own.
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let prefix = format!("run-{nanos:x}/");
    let key = |name: &str| Bytes::from(format!("{prefix}{name}"));

    for (name, value) in [("a", "1"), ("b", "2"), ("c", "3")] {
        remote.put(key(name), value.into(), none()).await?;
        println!("put {prefix}{name} = {value}");
    }
    let b = remote.get(key("b"), none()).await?;
    println!("get {prefix}b -> {:?}", b.as_deref().map(show));
    expect(b.as_deref() == Some(b"2"), "get b is 2")?;
    let missing = remote.get(key("zz"), none()).await?;
    println!("get {prefix}zz -> {:?}", missing.as_deref().map(show));
    expect(missing.is_none(), "get of a missing key is None")?;
    remote.del(key("b"), none()).await?;
    let b = remote.get(key("b"), none()).await?;
    println!("del {prefix}b, then get -> {:?}", b.as_deref().map(show));
    expect(b.is_none(), "get after del is None")?;

    let first = remote.append("first".into(), none()).await?;
    let second = remote.append("second".into(), none()).await?;
    println!(
        "append first -> {}, second -> {}",
        show(&first),
        show(&second)
    );
    expect(
        first.starts_with(b"log/") && second > first,
        "append keys log/… ascending",
    )?;
    let logged = remote.get(first.clone(), none()).await?;
    expect(
        logged.as_deref() == Some(b"first"),
        "get of an appended key",
    )?;

    let scans = [
        ("prefix", Range::prefix(prefix.clone()), vec!["a", "c"]),
        (
            "prefix, reverse",
            Range::prefix(prefix.clone()).reverse(),
            vec!["c", "a"],
        ),
        (
            "range gte a lt c",
            Range::all().gte(key("a")).lt(key("c")),
            vec!["a"],
        ),
    ];
    for (what, range, want) in scans {
        let entries = remote.scan(range, none()).await?.collect().await?;
        let got: Vec<String> = entries
            .iter()
            .map(|e| show(&e.key[prefix.len().min(e.key.len())..]))
            .collect();
        println!("scan {what} -> {got:?}");
        expect(got == want, &format!("scan {what} is {want:?}"))?;
    }

    // The test hooks of tests/js/SERVICES.md §8.
    match with_caps(remote.clone(), store::DENY)
        .get(key("a"), none())
        .await
    {
        Err(Error::Failed {
            code: Code::CapabilityDenied,
            message,
        }) => {
            println!("get with caps deny -> CapabilityDenied {message:?}")
        }
        other => return Err(format!("caps deny: expected CapabilityDenied, got {other:?}").into()),
    }
    match remote
        .get(Bytes::from_static(store::FAIL_KEY), none())
        .await
    {
        Err(Error::Failed {
            code: Code::BadArg,
            message,
        }) if message == "forced error" => {
            println!("get example/fail -> BadArg {message:?}")
        }
        other => return Err(format!("example/fail: expected BadArg, got {other:?}").into()),
    }
    println!("client: {:?}", remote.client().stats());
    if let Some(mux) = peer.mux() {
        mux.close();
    }
    Ok(())
}

fn expect(ok: bool, what: &str) -> Result<(), BoxError> {
    if ok {
        Ok(())
    } else {
        Err(format!("expected: {what}").into())
    }
}
