//! The echo program, on tokio (the same program exists for smol and
//! async-std).
//!
//! - `echo` runs a server and a client on loopback and checks the echoes;
//! - `echo server tcp://127.0.0.1:7000` (or `ws://…/path`) serves until
//!   interrupted;
//! - `echo client tcp://127.0.0.1:7000 hello` sends one message.

use plex_runtime::{Config, OpenOptions, Session};
use plex_tokio::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn serve(session: Session) {
    while let Ok(stream) = session.accept_stream().await {
        tokio::spawn(async move {
            let mut stream = Stream::from(stream);
            let (mut reader, mut writer) = tokio::io::split(&mut stream);
            if tokio::io::copy(&mut reader, &mut writer).await.is_ok() {
                let _ = writer.shutdown().await;
            }
        });
    }
}

async fn echo(session: &Session, message: &str) -> Result<String, plex_runtime::Error> {
    let mut stream = Stream::from(session.open_stream(OpenOptions::new("echo", "")).await?);
    stream.write_all(message.as_bytes()).await?;
    stream.shutdown().await?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    Ok(reply)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["server", url] => {
            let server = plex_tokio::listen(url, Config::default()).await?;
            println!("echo server on {}", server.local_endpoint());
            // Fails only when the listener itself does: a client that fails
            // its handshake is dropped and the next one accepted.
            loop {
                let (session, peer) = server.accept().await?;
                println!("connection from {peer}");
                tokio::spawn(serve(session));
            }
        }
        ["client", url, message] => {
            let session = plex_tokio::connect(url, Config::default()).await?;
            println!("{}", echo(&session, message).await?);
            session.close().await?;
            Ok(())
        }
        [] => {
            let server = plex_tokio::listen("tcp://127.0.0.1:0", Config::default()).await?;
            let url = server.local_endpoint().to_string();
            tokio::spawn(async move {
                if let Ok((session, _)) = server.accept().await {
                    serve(session).await;
                }
            });
            let session = plex_tokio::connect(&url, Config::default()).await?;
            for message in ["hello", "plex on tokio", ""] {
                let reply = echo(&session, message).await?;
                assert_eq!(reply, message);
                println!("echoed {message:?}");
            }
            session.close().await?;
            Ok(())
        }
        _ => Err("usage: echo [server URL | client URL MESSAGE]".into()),
    }
}
