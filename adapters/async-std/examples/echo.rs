//! The echo program, on async-std (the same program exists for tokio and
//! smol; async-std is discontinued, prefer smol).
//!
//! - `echo` runs a server and a client on loopback and checks the echoes;
//! - `echo server tcp://127.0.0.1:7000` serves until interrupted;
//! - `echo client tcp://127.0.0.1:7000 hello` sends one message.

use async_std::io::{ReadExt, WriteExt};
use plex_runtime::{Config, OpenOptions, Session, Stream};

async fn echo_stream(mut stream: Stream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return stream.finish().map_err(Into::into);
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn serve(session: Session) {
    while let Ok(stream) = session.accept_stream().await {
        async_std::task::spawn(echo_stream(stream));
    }
}

async fn echo(session: &Session, message: &str) -> Result<String, plex_runtime::Error> {
    let mut stream = session.open_stream(OpenOptions::new("echo", "")).await?;
    stream.write_all(message.as_bytes()).await?;
    stream.finish()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    Ok(reply)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    async_std::task::block_on(async {
        match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["server", url] => {
                let server = plex_async_std::listen(url, Config::default()).await?;
                println!("echo server on {}", server.local_endpoint());
                // Fails only when the listener itself does: a client that fails
                // its handshake is dropped and the next one accepted.
                loop {
                    let (session, peer) = server.accept().await?;
                    println!("connection from {peer}");
                    async_std::task::spawn(serve(session));
                }
            }
            ["client", url, message] => {
                let session = plex_async_std::connect(url, Config::default()).await?;
                println!("{}", echo(&session, message).await?);
                session.close().await?;
                Ok(())
            }
            [] => {
                let server = plex_async_std::listen("tcp://127.0.0.1:0", Config::default()).await?;
                let url = server.local_endpoint().to_string();
                async_std::task::spawn(async move {
                    if let Ok((session, _)) = server.accept().await {
                        serve(session).await;
                    }
                });
                let session = plex_async_std::connect(&url, Config::default()).await?;
                for message in ["hello", "plex on async-std", ""] {
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
