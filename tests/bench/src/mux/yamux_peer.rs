//! yamux over tokio TCP.
//!
//! A `yamux::Connection` makes progress only while a task polls it, and
//! opening a stream needs `&mut` to it, so each end has a task that owns
//! its connection: the server's polls `poll_next_inbound` and serves what
//! arrives; the client's also takes open requests over a channel and
//! answers them with `poll_new_outbound`.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::Poll;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};
use yamux::{Connection, Mode};

use super::peer::{accept_tcp, connect_tcp, loopback_listener, Mux};
use super::{Result, STREAM_LIMIT};

/// A yamux stream with tokio's IO traits.
pub(crate) type YamuxStream = Compat<yamux::Stream>;

/// Where the client's connection task sends a new outbound stream.
type Opened = oneshot::Sender<yamux::Result<yamux::Stream>>;

/// A yamux client.
pub(crate) struct Yamux {
    opens: mpsc::UnboundedSender<Opened>,
}

/// yamux's defaults (auto-tuned 256 KiB stream windows, 16 KiB frames), but
/// room for the `idle_streams` scenario. yamux wants a connection receive
/// window of 256 KiB per allowed stream, so that bound is lifted.
pub(crate) fn config() -> yamux::Config {
    let mut config = yamux::Config::default();
    config.set_max_connection_receive_window(None);
    config.set_max_num_streams(STREAM_LIMIT);
    config
}

impl Mux for Yamux {
    const NAME: &'static str = "yamux";
    type Env = ();
    type Stream = YamuxStream;

    async fn start((): (), serve: impl Fn(YamuxStream) + Send + Sync + 'static) -> Result<Yamux> {
        let (listener, addr) = loopback_listener().await?;
        tokio::spawn(async move {
            let tcp = match accept_tcp(&listener).await {
                Ok(tcp) => tcp,
                Err(e) => {
                    eprintln!("mux: yamux server: {e}");
                    return;
                }
            };
            let mut connection = Connection::new(tcp.compat(), config(), Mode::Server);
            // Should the connection fail, its streams fail too, and the
            // scenario with them.
            while let Some(Ok(stream)) = poll_fn(|cx| connection.poll_next_inbound(cx)).await {
                serve(stream.compat());
            }
        });
        let connection = Connection::new(connect_tcp(addr).await?.compat(), config(), Mode::Client);
        let (opens, requests) = mpsc::unbounded_channel();
        tokio::spawn(drive_client(connection, requests));
        Ok(Yamux { opens })
    }

    async fn open(&self) -> Result<YamuxStream> {
        let (opened, stream) = oneshot::channel();
        self.opens
            .send(opened)
            .map_err(|_| "yamux: the connection task has ended")?;
        let stream = stream
            .await
            .map_err(|_| "yamux: the connection task has ended")??;
        Ok(stream.compat())
    }
}

/// Runs the client's connection until it closes, opening streams on request.
async fn drive_client(
    mut connection: Connection<Compat<TcpStream>>,
    mut requests: mpsc::UnboundedReceiver<Opened>,
) {
    let mut waiting = VecDeque::new();
    poll_fn(|cx| {
        while let Poll::Ready(Some(opened)) = requests.poll_recv(cx) {
            waiting.push_back(opened);
        }
        while !waiting.is_empty() {
            let Poll::Ready(stream) = connection.poll_new_outbound(cx) else {
                break;
            };
            if let Some(opened) = waiting.pop_front() {
                // The opener may have given up waiting; the stream just drops.
                let _ = opened.send(stream);
            }
        }
        loop {
            match connection.poll_next_inbound(cx) {
                // The server opens no streams; dropping one resets it.
                Poll::Ready(Some(Ok(_))) => {}
                // Streams and openers see the failure for themselves.
                Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
}
