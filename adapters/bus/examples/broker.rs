//! A bus broker on its own.
//!
//! ```text
//! cargo run -p plex-bus --example broker -- --listen tcp://127.0.0.1:7070
//! ```
//!
//! serves until killed; with no arguments it starts on an ephemeral port,
//! runs a responder, a requester, a publisher and a wildcard subscriber
//! against itself, checks what they got, and exits (what CI runs).

use std::process::ExitCode;

use bytes::Bytes;
use plex_bus::{Broker, BrokerConfig, BusClient, Event};
use plex_runtime::Config;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [] => demo().await,
        [flag, url] if flag == "--listen" => serve(url, None).await,
        _ => Err("usage: broker [--listen URL]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("broker: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves a broker on `url` until the listener fails; reports the URL it
/// listens on through `bound` (or prints it).
async fn serve(
    url: &str,
    bound: Option<tokio::sync::oneshot::Sender<String>>,
) -> Result<(), BoxError> {
    let broker = Broker::new(BrokerConfig::default());
    let server = plex_tokio::listen(url, Config::default()).await?;
    let url = server.local_endpoint().to_string();
    match bound {
        Some(tx) => drop(tx.send(url)),
        None => println!("broker listening on {url}"),
    }
    loop {
        let (session, _) = server.accept().await?;
        let broker = broker.clone();
        tokio::spawn(async move { broker.serve(session).await });
    }
}

async fn demo() -> Result<(), BoxError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(serve("tcp://127.0.0.1:0", Some(tx)));
    let url = rx.await?;
    let connect = || async {
        Ok::<_, BoxError>(BusClient::new(
            plex_tokio::connect(&url, Config::default()).await?,
        ))
    };
    let (worker, caller, watcher) = (connect().await?, connect().await?, connect().await?);

    let mut responder = worker.respond("greet").await?;
    tokio::spawn(async move {
        while let Some(mut request) = responder.next().await {
            let name = request.body().await?;
            let reply = [&b"hello, "[..], &name].concat();
            request.reply(reply.into()).await?;
        }
        Ok::<(), BoxError>(())
    });
    let reply = caller.request("greet", Bytes::from("plex")).await?;
    println!("request greet -> {}", String::from_utf8_lossy(&reply));
    if reply != "hello, plex" {
        return Err(format!("unexpected reply {reply:?}").into());
    }
    match caller.request("nobody", Bytes::new()).await {
        Err(plex_bus::BusError::NoResponders) => println!("request nobody -> no responders"),
        other => return Err(format!("expected NoResponders, got {other:?}").into()),
    }

    let mut sensors = watcher.subscribe("sensor.*").await?;
    for (channel, value) in [("sensor.a", "21.5"), ("other", "x"), ("sensor.b", "19.0")] {
        caller.publish(channel, Bytes::from(value)).await?;
    }
    for expected in ["sensor.a", "sensor.b"] {
        match sensors.next().await.transpose()? {
            Some(Event::Message { channel, payload }) if channel == expected => {
                println!(
                    "sub sensor.* <- {channel}: {}",
                    String::from_utf8_lossy(&payload)
                );
            }
            other => return Err(format!("expected {expected}, got {other:?}").into()),
        }
    }
    Ok(())
}
