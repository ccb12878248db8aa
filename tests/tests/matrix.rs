//! Every client/server pair of runtimes over loopback TCP and TLS: 1,000
//! concurrent streams echo payloads of 0 B to 5 MiB, every byte checked.

use std::sync::mpsc;

use plex_runtime::{Config, OpenOptions, Session};
use plex_tests::{echo_server, payload, Net, Rt};
use smol::io::{AsyncReadExt, AsyncWriteExt};

const STREAMS: usize = 1000;
const SIZES: [usize; 6] = [0, 1, 1024, 16 * 1024, 1 << 20, 5 << 20];

fn config() -> Config {
    let mut c = Config::default();
    c.max_concurrent_streams = 2 * STREAMS as u32;
    c.max_pending_accepts = 2 * STREAMS as u32;
    c
}

/// Opens a stream, writes `len` bytes, finishes, and checks the echo.
async fn echo(session: Session, len: usize) -> Result<(), String> {
    let stream = session
        .open_stream(OpenOptions::default())
        .await
        .map_err(|e| format!("open: {e}"))?;
    let (mut reader, mut writer) = smol::io::split(stream);
    let data = payload(len);
    let write = async {
        writer.write_all(&data).await?;
        writer.close().await
    };
    let mut back = Vec::with_capacity(len);
    let (w, r) = futures_join(write, reader.read_to_end(&mut back)).await;
    w.map_err(|e| format!("write {len}: {e}"))?;
    r.map_err(|e| format!("read {len}: {e}"))?;
    if back != data {
        return Err(format!("echo of {len} bytes differs"));
    }
    Ok(())
}

/// Joins two futures on any runtime.
async fn futures_join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    smol::future::zip(a, b).await
}

fn run_pair(client_rt: Rt, server_rt: Rt, net: Net) {
    let (tx, rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        server_rt.block_on(async move {
            let session = server_rt.accept_one(&net.any_port(), config(), tx).await;
            echo_server(session, server_rt.runtime()).await;
        })
    });
    let addr = rx.recv().expect("server address");
    client_rt.block_on(async move {
        let session = client_rt.connect(&addr, config()).await.expect("connect");
        let runtime = client_rt.runtime();
        let (done_tx, done_rx) = smol::channel::unbounded();
        for i in 0..STREAMS {
            // Most streams are small; each size appears, big ones once.
            let len = if i < SIZES.len() {
                SIZES[i]
            } else {
                SIZES[i % 4]
            };
            let (session, done) = (session.clone(), done_tx.clone());
            runtime.spawn(Box::pin(async move {
                let _ = done.send(echo(session, len).await).await;
            }));
        }
        drop(done_tx);
        let mut ok = 0;
        while let Ok(result) = done_rx.recv().await {
            result.unwrap_or_else(|e| panic!("{client_rt:?} -> {server_rt:?} over {net:?}: {e}"));
            ok += 1;
        }
        assert_eq!(ok, STREAMS);
        session.close().await.expect("graceful close");
    });
    server.join().expect("server thread");
}

#[test]
fn every_runtime_pair_echoes_a_thousand_concurrent_streams() {
    for client in Rt::ALL {
        for server in Rt::ALL {
            run_pair(client, server, Net::Tcp);
        }
    }
}

#[test]
fn every_runtime_pair_echoes_a_thousand_concurrent_streams_over_tls() {
    for client in Rt::ALL {
        for server in Rt::ALL {
            run_pair(client, server, Net::Tls);
        }
    }
}
