//! The echo program, on smol (the same program exists for tokio and
//! async-std).
//!
//! - `echo` runs a server and a client on loopback and checks the echoes;
//! - `echo server tcp://127.0.0.1:7000` serves until interrupted;
//! - `echo client tcp://127.0.0.1:7000 hello` sends one message.

use plex_runtime::{Config, OpenOptions, Session};
use smol::io::{AsyncReadExt, AsyncWriteExt};

async fn serve(session: Session) {
    while let Ok(stream) = session.accept_stream().await {
        smol::spawn(async move {
            let (reader, mut writer) = smol::io::split(stream);
            if smol::io::copy(reader, &mut writer).await.is_ok() {
                let _ = writer.close().await;
            }
        })
        .detach();
    }
}

async fn echo(session: &Session, message: &str) -> Result<String, plex_runtime::Error> {
    let mut stream = session.open_stream(OpenOptions::new("echo", "")).await?;
    stream.write_all(message.as_bytes()).await?;
    stream.close().await?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    Ok(reply)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    smol::block_on(async {
        match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["server", url] => {
                let server = plex_smol::listen(url, Config::default()).await?;
                println!("echo server on {}", server.local_endpoint());
                // Fails only when the listener itself does: a client that fails
                // its handshake is dropped and the next one accepted.
                loop {
                    let (session, peer) = server.accept().await?;
                    println!("connection from {peer}");
                    smol::spawn(serve(session)).detach();
                }
            }
            ["client", url, message] => {
                let session = plex_smol::connect(url, Config::default()).await?;
                println!("{}", echo(&session, message).await?);
                session.close().await?;
                Ok(())
            }
            [] => {
                let server = plex_smol::listen("tcp://127.0.0.1:0", Config::default()).await?;
                let url = server.local_endpoint().to_string();
                smol::spawn(async move {
                    if let Ok((session, _)) = server.accept().await {
                        serve(session).await;
                    }
                })
                .detach();
                let session = plex_smol::connect(&url, Config::default()).await?;
                for message in ["hello", "plex on smol", ""] {
                    let reply = echo(&session, message).await?;
                    assert_eq!(reply, message);
                    println!("echoed {message:?}");
                }
                session.close().await?;
                Ok(())
            }
            _ => Err("usage: echo [server URL | client URL MESSAGE]".into()),
        }
    })
}
