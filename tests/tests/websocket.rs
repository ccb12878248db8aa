//! Plex over WebSocket binary messages, on tokio, smol and async-std and
//! across them.

use std::sync::mpsc;

use plex_runtime::{Config, OpenOptions};
use plex_tests::{echo_server, payload, Rt};
use smol::io::{AsyncReadExt, AsyncWriteExt};

fn echo_over_ws(client_rt: Rt, server_rt: Rt) {
    let (tx, rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        server_rt.block_on(async move {
            let session = server_rt
                .accept_one("ws://127.0.0.1:0/plex", Config::default(), tx)
                .await;
            echo_server(session, server_rt.runtime()).await;
        })
    });
    let addr = rx.recv().expect("server address");
    client_rt.block_on(async move {
        let session = client_rt
            .connect(&addr, Config::default())
            .await
            .expect("connect");
        for len in [0, 1, 1000, 70_000, 3 << 20] {
            let stream = session
                .open_stream(OpenOptions::new("echo", "ws"))
                .await
                .unwrap();
            let (mut r, mut w) = smol::io::split(stream);
            let data = payload(len);
            let write = async {
                w.write_all(&data).await.unwrap();
                w.close().await.unwrap();
            };
            let mut back = Vec::new();
            let (_, n) = smol::future::zip(write, r.read_to_end(&mut back)).await;
            n.unwrap();
            assert!(
                back == data,
                "{client_rt:?} -> {server_rt:?}: echo of {len} bytes differs"
            );
        }
        assert!(session.ping().await.is_ok());
        session.close().await.expect("graceful close");
    });
    server.join().expect("server thread");
}

#[test]
fn websocket_echo_on_every_runtime_and_across() {
    for client in Rt::ALL {
        for server in Rt::ALL {
            echo_over_ws(client, server);
        }
    }
}

#[test]
fn websocket_on_a_wrong_path_is_refused_with_a_clear_error() {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        Rt::Tokio.block_on(async move {
            let listener = plex_tokio::listen("ws://127.0.0.1:0/plex", Config::default())
                .await
                .unwrap();
            tx.send(listener.local_endpoint().to_string()).unwrap();
            // The handshake fails on the server side too; keep accepting.
            let _ = listener.accept().await;
        })
    });
    let addr = rx.recv().unwrap();
    let err = Rt::Smol
        .block_on(plex_smol::connect(
            &addr.replace("/plex", "/elsewhere"),
            Config::default(),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
}

#[test]
fn unsupported_schemes_and_bad_urls_fail_clearly() {
    let err = Rt::Tokio
        .block_on(plex_tokio::connect("quic://127.0.0.1:1", Config::default()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            plex_runtime::Error::Endpoint(plex_runtime::EndpointError::UnsupportedScheme(_))
        ),
        "{err}"
    );
    let err = Rt::AsyncStd
        .block_on(plex_async_std::connect(
            "wss://127.0.0.1:1/x",
            Config::default(),
        ))
        .unwrap_err();
    assert!(matches!(err, plex_runtime::Error::Endpoint(_)), "{err}");
    let err = Rt::Smol
        .block_on(plex_smol::connect("tcp://127.0.0.1", Config::default()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            plex_runtime::Error::Endpoint(plex_runtime::EndpointError::BadPort(_))
        ),
        "{err}"
    );
}

#[test]
fn refused_connection_is_an_io_error() {
    // Bind and drop to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for rt in Rt::ALL {
        let err = rt
            .block_on(rt.connect(&format!("tcp://127.0.0.1:{port}"), Config::default()))
            .unwrap_err();
        let io: std::io::Error = err.into();
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused, "{rt:?}");
    }
}

/// Over `url`'s scheme (WebSocket or TLS: the handshakes run per
/// connection).
fn a_silent_client_does_not_hold_up_the_accept_loop(rt: Rt, url: &str) {
    // V10: the upgrade ran inside `accept`: one silent client blocked every
    // other, and its leaving ended the accept loop.
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(20);
    rt.block_on(async {
        let transport = rt.transport();
        let server = plex_runtime::listen(&*transport, rt.runtime(), url, Config::default())
            .await
            .unwrap();
        let url = server.local_endpoint().to_string();
        let silent = std::net::TcpStream::connect(server.local_endpoint().authority()).unwrap();
        let runtime = rt.runtime();
        let (tx, rx) = smol::channel::unbounded();
        runtime.clone().spawn(Box::pin(async move {
            loop {
                let accepted = server.accept().await;
                let failed = accepted.is_err();
                if let Ok((session, _)) = accepted {
                    runtime.spawn(Box::pin(echo_server(session, runtime.clone())));
                }
                let _ = tx.send(failed).await;
                if failed {
                    return;
                }
            }
        }));
        let connect = || async {
            let session = rt.within(LIMIT, rt.connect(&url, Config::default())).await;
            let session = session.expect("blocked behind the silent client").unwrap();
            assert!(session.ping().await.is_ok());
            assert_eq!(rx.recv().await, Ok(false), "the accept loop failed");
        };
        connect().await;
        // The silent client leaves: its handshake fails, the loop goes on.
        silent.shutdown(std::net::Shutdown::Both).unwrap();
        drop(silent);
        connect().await;
    });
}

#[test]
fn a_silent_client_does_not_hold_up_the_websocket_accept_loop_on_every_runtime() {
    for rt in Rt::ALL {
        a_silent_client_does_not_hold_up_the_accept_loop(rt, "ws://127.0.0.1:0/plex");
    }
}

#[test]
fn a_silent_client_does_not_hold_up_the_tls_accept_loop_on_every_runtime() {
    for rt in Rt::ALL {
        a_silent_client_does_not_hold_up_the_accept_loop(rt, "tls://127.0.0.1:0");
    }
}
