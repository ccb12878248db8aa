//! Helpers shared by the cross-runtime tests: connected session pairs,
//! payload patterns, and a cuttable TCP proxy for peers that vanish.
#![deny(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

use plex_runtime::{Config, Session};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A client and a server session joined over loopback TCP, on tokio.
pub async fn tokio_pair(client: Config, server: Config) -> (Session, Session) {
    let listener = plex_tokio::listen("tcp://127.0.0.1:0", server)
        .await
        .expect("listen");
    let url = format!("tcp://{}", listener.local_addr().expect("addr"));
    let (client, accepted) = tokio::join!(plex_tokio::connect(&url, client), listener.accept());
    (client.expect("connect"), accepted.expect("accept").0)
}

/// The byte at `offset` of a test payload: every lost, duplicated or
/// reordered byte shows.
pub fn pattern(offset: usize) -> u8 {
    (offset.wrapping_mul(31) ^ (offset >> 8).wrapping_mul(7)) as u8
}

/// `len` bytes of [`pattern`].
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(pattern).collect()
}

/// A TCP proxy on loopback that can fail, to make a peer vanish.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    cut: Arc<Notify>,
    blackhole: Arc<Notify>,
}

impl Proxy {
    /// Forwards one connection on a fresh port to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (cut, blackhole) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (on_cut, on_blackhole) = (cut.clone(), blackhole.clone());
        tokio::spawn(async move {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut outbound) = TcpStream::connect(target).await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                // Dropping both sockets closes both connections.
                _ = on_cut.notified() => {}
                // Keep both sockets open but forward nothing, ever.
                _ = on_blackhole.notified() => {
                    std::future::pending::<()>().await;
                }
            }
            let _ = inbound.shutdown().await;
        });
        Proxy {
            addr,
            cut,
            blackhole,
        }
    }

    /// Closes the connection in both directions.
    pub fn cut(&self) {
        self.cut.notify_one();
    }

    /// Stops forwarding without closing anything: the peer is unreachable.
    pub fn blackhole(&self) {
        self.blackhole.notify_one();
    }
}
