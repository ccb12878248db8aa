//! An HTTP/1.1 server (hyper) over plex streams, and a client that fetches a
//! page over another plex stream of the same connection: a plex `Stream` is
//! a drop-in byte stream.
//!
//! `cargo run -p plex-tokio --example http` runs both ends on loopback.

use std::convert::Infallible;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use plex_runtime::{Config, OpenOptions, Session};
use plex_tokio::Stream;

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("Hello from plex! You asked for {}\n", req.uri().path());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// Serves HTTP/1.1 on every stream the peer opens for protocol "http".
async fn serve(session: Session) {
    let listener = session.listen("http", "");
    // Ends when the connection closes.
    while let Ok(incoming) = listener.accept().await {
        let Ok(stream) = incoming.accept("") else {
            continue;
        };
        tokio::spawn(async move {
            let io = TokioIo::new(Stream::from(stream));
            let service = hyper::service::service_fn(hello);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                eprintln!("http connection: {e}");
            }
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = plex_tokio::listen("tcp://127.0.0.1:0", Config::default()).await?;
    let url = server.local_endpoint().to_string();
    tokio::spawn(async move {
        // Ends only if the listener itself fails.
        while let Ok((session, _)) = server.accept().await {
            tokio::spawn(serve(session));
        }
    });

    let session = plex_tokio::connect(&url, Config::default()).await?;
    for path in ["/", "/over/plex"] {
        let stream = session.open_stream(OpenOptions::new("http", "")).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(Stream::from(stream))).await?;
        tokio::spawn(conn);
        let request = Request::get(path)
            .header("host", "plex")
            .body(Full::new(Bytes::new()))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        print!("GET {path} -> {status}: {}", String::from_utf8_lossy(&body));
        assert!(status.is_success());
        assert!(body.starts_with(b"Hello from plex!"));
    }
    session.close().await?;
    Ok(())
}
