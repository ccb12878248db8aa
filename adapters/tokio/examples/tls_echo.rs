//! The echo program over `tls://`, on tokio.
//!
//! - `tls_echo` runs a server with a fresh self-signed certificate and a
//!   client that pins its fingerprint, on loopback, and checks the echo;
//! - `tls_echo server tls://127.0.0.1:7443 [CHAIN.pem KEY.pem]` serves
//!   until interrupted, with the PEM files or a self-signed certificate,
//!   and prints the URL a client pins;
//! - `tls_echo client 'tls://127.0.0.1:7443?fingerprint=sha256:…' hello`
//!   sends one message (without a fingerprint, the system's roots decide).

use plex_runtime::tls::{ServerTls, TlsConfig};
use plex_runtime::{Config, OpenOptions, Server, Session};
use plex_tokio::{Stream, TokioRuntime, TokioTransport};
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

/// Listens on `url` with `cert`, printing the URL clients pin.
async fn listen(url: &str, cert: ServerTls) -> Result<(Server, String), plex_runtime::Error> {
    let fingerprint = cert.fingerprint();
    let transport = TokioTransport::with_tls(TlsConfig::default().with_server(cert));
    let server =
        plex_runtime::listen(&transport, TokioRuntime::current(), url, Config::default()).await?;
    let pinned = format!("{}?fingerprint={fingerprint}", server.local_endpoint());
    println!("tls echo server, certificate {fingerprint}");
    println!("clients dial {pinned}");
    Ok((server, pinned))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["server", url, ref files @ ..] => {
            let cert = match files {
                [chain, key] => ServerTls::from_pem_files(chain, key)?,
                [] => ServerTls::self_signed(&["localhost", "127.0.0.1", "::1"])?,
                _ => return Err("usage: tls_echo server URL [CHAIN.pem KEY.pem]".into()),
            };
            let (server, _) = listen(url, cert).await?;
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
            let cert = ServerTls::self_signed(&["127.0.0.1"])?;
            let (server, pinned) = listen("tls://127.0.0.1:0", cert).await?;
            tokio::spawn(async move {
                if let Ok((session, _)) = server.accept().await {
                    serve(session).await;
                }
            });
            let session = plex_tokio::connect(&pinned, Config::default()).await?;
            let reply = echo(&session, "hello over tls").await?;
            assert_eq!(reply, "hello over tls");
            println!("echoed {reply:?}");
            session.close().await?;
            Ok(())
        }
        _ => Err("usage: tls_echo [server URL [CHAIN.pem KEY.pem] | client URL MESSAGE]".into()),
    }
}
