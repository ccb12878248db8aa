//! What `smoke_tcp` and `smoke_ws` share: neonplex's `dev/smoke` echo on
//! the bare base protocol, as a server, a client, or both in one process.

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use plex_runtime::mux::{Mux, MuxConfig, MuxListener, MuxServer};

/// The protocol neonplex's smoke scripts use: its default, the bare base.
pub(crate) const PROTOCOL: &str = "neonloom/protocol/v1";
/// How long the client waits for the whole exchange (neonplex's 20 s).
const TIMEOUT: Duration = Duration::from_secs(20);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One transport's smoke test.
pub(crate) struct Smoke {
    /// `tcp` or `ws`: the URL scheme and the log tag.
    pub(crate) kind: &'static str,
    /// The channel id the client opens.
    pub(crate) id: &'static [u8],
    /// What the client sends and expects back.
    pub(crate) payload: &'static [u8],
}

impl Smoke {
    /// Runs the mode the command line asks for: no arguments = both ends
    /// on an ephemeral loopback port; `--listen ADDR` = the server until
    /// killed; `--connect ADDR` = the client once.
    pub(crate) async fn main(self) -> ExitCode {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            [] => self.in_process().await,
            ["--listen", addr] => self.listen(addr).await,
            ["--connect", addr] => self.client(&self.url(addr)).await,
            _ => Err(format!(
                "usage: smoke_{0} [--listen ADDR | --connect ADDR] \
                 (ADDR = HOST:PORT or {0}://HOST:PORT/...)",
                self.kind
            )
            .into()),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("[smoke:{}] failed: {e}", self.kind);
                ExitCode::FAILURE
            }
        }
    }

    /// `HOST:PORT` as a URL of this kind (`ws` on path `/`, where
    /// neonplex's smoke client connects); a full URL is kept.
    fn url(&self, addr: &str) -> String {
        match (addr.contains("://"), self.kind) {
            (true, _) => addr.to_owned(),
            (false, "ws") => format!("ws://{addr}/"),
            (false, kind) => format!("{kind}://{addr}"),
        }
    }

    async fn in_process(&self) -> Result<(), BoxError> {
        let server = plex_tokio::listen_mux(&self.url("127.0.0.1:0"), MuxConfig::default()).await?;
        let url = server.local_endpoint().to_string();
        println!("[smoke:{}] listening on {url}", self.kind);
        let kind = self.kind;
        tokio::spawn(async move { serve(kind, server).await });
        self.client(&url).await
    }

    async fn listen(&self, addr: &str) -> Result<(), BoxError> {
        let server = plex_tokio::listen_mux(&self.url(addr), MuxConfig::default()).await?;
        println!(
            "[smoke:{}] listening on {}",
            self.kind,
            server.local_endpoint()
        );
        serve(self.kind, server).await
    }

    /// Opens the channel, sends the payload, checks the echo.
    async fn client(&self, url: &str) -> Result<(), BoxError> {
        let exchange = async {
            let mux = plex_tokio::connect_mux(url, MuxConfig::default()).await?;
            // As neonplex's client: write once the server's OPEN is in.
            let channel = mux.open(PROTOCOL, Bytes::from_static(self.id), Bytes::new())?;
            channel.opened().await?;
            channel.send(Bytes::from_static(self.payload)).await?;
            let echoed = channel
                .recv()
                .await?
                .ok_or("the server closed the channel without echoing")?;
            if echoed != self.payload {
                return Err(format!(
                    "echoed payload mismatch: sent {:?}, got {:?}",
                    show(self.payload),
                    show(&echoed)
                )
                .into());
            }
            println!("[smoke:{}] echo validated", self.kind);
            channel.close();
            mux.close();
            Ok::<_, BoxError>(())
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{} smoke exchange timed out after {TIMEOUT:?}", self.kind))??;
        println!("[smoke:{}] success", self.kind);
        Ok(())
    }
}

/// Accepts connections until the listener fails, each served on its own.
///
/// neonplex's client sends its OPEN the moment it connects; an OPEN that
/// arrives before the listener waits for it (`MuxConfig::claim_grace`, 1 s).
async fn serve(kind: &'static str, server: MuxServer) -> Result<(), BoxError> {
    loop {
        let (mux, from) = server.accept().await?;
        let listener = mux.listen(PROTOCOL, None);
        println!("[smoke:{kind}] connection from {from}");
        tokio::spawn(echo_connection(kind, mux, listener));
    }
}

/// Accepts every channel on [`PROTOCOL`] (any id, empty handshake) and
/// echoes every message on it, until the connection ends.
async fn echo_connection(kind: &'static str, _mux: Mux, listener: MuxListener) {
    while let Ok(channel) = listener.accept().await {
        tokio::spawn(async move {
            loop {
                match channel.recv().await {
                    Ok(Some(message)) => {
                        println!("[smoke:{kind}] server got {:?}", show(&message));
                        if let Err(e) = channel.send(message).await {
                            println!("[smoke:{kind}] server send failed: {e}");
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        println!("[smoke:{kind}] server channel ended: {e}");
                        return;
                    }
                }
            }
        });
    }
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
