//! The echo program through a Syncthing relay (`relay://`), on tokio.
//!
//! - `relay_echo [MIB] RELAY-URL` joins the relay as a listener (its
//!   identity kept in `$TMPDIR/plex-relay-echo`, so its device id is the
//!   same every run), dials itself through the relay with a throwaway
//!   identity, and checks the echo; with `MIB`, it also times that many
//!   MiB echoed through the relay and over direct loopback TCP;
//! - `relay_echo listen RELAY-URL [IDENTITY-DIR]` serves until
//!   interrupted and prints the URL dialers use;
//! - `relay_echo dial 'relay://HOST:PORT/?id=DEVICE-ID' hello` sends one
//!   message.
//!
//! `RELAY-URL` is `relay://HOST:PORT`, optionally `/?relay=RELAY-ID` to pin
//! the relay; `tests/relay/with-relay.sh` runs a loopback `strelaysrv` and
//! passes its URL.

use std::time::Instant;

use plex_runtime::relay::{Identity, RelayConfig};
use plex_runtime::{Config, OpenOptions, Server, Session};
use plex_tokio::{Stream, TokioRuntime, TokioTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn serve(server: Server) {
    while let Ok((session, _peer)) = server.accept().await {
        tokio::spawn(async move {
            while let Ok(stream) = session.accept_stream().await {
                tokio::spawn(async move {
                    let mut stream = Stream::from(stream);
                    let (mut reader, mut writer) = tokio::io::split(&mut stream);
                    if tokio::io::copy(&mut reader, &mut writer).await.is_ok() {
                        let _ = writer.shutdown().await;
                    }
                });
            }
        });
    }
}

/// Echoes `message`; returns the reply.
async fn echo(session: &Session, message: &[u8]) -> Result<Vec<u8>, plex_runtime::Error> {
    let mut stream = Stream::from(session.open_stream(OpenOptions::new("echo", "")).await?);
    let (mut reader, mut writer) = tokio::io::split(&mut stream);
    let send = async {
        writer.write_all(message).await?;
        writer.shutdown().await
    };
    let mut reply = Vec::new();
    let (sent, read) = tokio::join!(send, reader.read_to_end(&mut reply));
    sent?;
    read?;
    Ok(reply)
}

/// Joins `relay_url` as a listener with the identity in `dir`, and prints
/// the URL dialers use.
async fn listen(relay_url: &str, dir: &std::path::Path) -> Result<Server, plex_runtime::Error> {
    let identity = Identity::load_or_generate(dir)?;
    println!("device id {}", identity.device_id());
    let transport =
        TokioTransport::default().with_relay(RelayConfig::default().with_identity(identity));
    let server = plex_runtime::listen(
        &transport,
        TokioRuntime::current(),
        relay_url,
        Config::default(),
    )
    .await?;
    println!("dialers use {}", server.local_endpoint());
    Ok(server)
}

/// Echoes `mib` MiB over `session` and prints the rate.
async fn time(what: &str, session: &Session, mib: usize) -> Result<(), Box<dyn std::error::Error>> {
    let data: Vec<u8> = (0..mib << 20).map(|i| (i * 31) as u8).collect();
    let start = Instant::now();
    let reply = echo(session, &data).await?;
    let seconds = start.elapsed().as_secs_f64();
    assert!(reply == data, "the echo differs");
    println!(
        "{what}: {mib} MiB echoed in {seconds:.2} s, {:.1} MiB/s each way",
        mib as f64 / seconds
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let default_dir = std::env::temp_dir().join("plex-relay-echo");
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["listen", relay_url, ref dir @ ..] => {
            let dir = dir.first().map_or(default_dir, Into::into);
            serve(listen(relay_url, &dir).await?).await;
            Ok(())
        }
        ["dial", url, message] => {
            let session = plex_tokio::connect(url, Config::default()).await?;
            println!(
                "{}",
                String::from_utf8_lossy(&echo(&session, message.as_bytes()).await?)
            );
            session.close().await?;
            Ok(())
        }
        [ref mib @ .., relay_url] if relay_url.starts_with("relay://") && mib.len() <= 1 => {
            let server = listen(relay_url, &default_dir).await?;
            let url = server.local_endpoint().to_string();
            tokio::spawn(serve(server));
            let session = plex_tokio::connect(&url, Config::default()).await?;
            let reply = echo(&session, b"hello through the relay").await?;
            assert_eq!(reply, b"hello through the relay");
            println!("echoed {:?}", String::from_utf8_lossy(&reply));
            if let Some(mib) = mib.first() {
                let mib: usize = mib.parse()?;
                time("relay://", &session, mib).await?;
                let direct = plex_tokio::listen("tcp://127.0.0.1:0", Config::default()).await?;
                let direct_url = direct.local_endpoint().to_string();
                tokio::spawn(serve(direct));
                let tcp = plex_tokio::connect(&direct_url, Config::default()).await?;
                time("tcp://  ", &tcp, mib).await?;
            }
            session.close().await?;
            Ok(())
        }
        _ => Err(
            "usage: relay_echo [MIB] RELAY-URL | listen RELAY-URL [DIR] | dial URL MESSAGE".into(),
        ),
    }
}
