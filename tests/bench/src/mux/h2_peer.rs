//! HTTP/2 (the `h2` crate) over tokio TCP: a stream is a request whose
//! body goes one way and whose response body comes back, both left open.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use h2::client::{ResponseFuture, SendRequest};
use h2::{RecvStream, SendStream};
use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::peer::{accept_tcp, connect_tcp, loopback_listener, Mux};
use super::{Result, STREAM_LIMIT};

/// Initial receive window of every stream, in both directions: plex's
/// ceiling for an auto-tuned stream window, so flow control never throttles
/// h2 where plex would not be throttled.
pub(crate) const STREAM_WINDOW: u32 = 16 << 20;
/// Initial receive window of the connection: plex's connection ceiling.
pub(crate) const CONNECTION_WINDOW: u32 = 32 << 20;

/// An h2 client.
pub(crate) struct H2 {
    requests: SendRequest<Bytes>,
}

impl Mux for H2 {
    const NAME: &'static str = "h2";
    type Env = ();
    type Stream = H2Stream;

    async fn start((): (), serve: impl Fn(H2Stream) + Send + Sync + 'static) -> Result<H2> {
        let (listener, addr) = loopback_listener().await?;
        tokio::spawn(async move {
            let mut connection = match handshake(&listener).await {
                Ok(connection) => connection,
                Err(e) => {
                    eprintln!("mux: h2 server: {e}");
                    return;
                }
            };
            // Polling `accept` is also what drives the connection. Should it
            // fail, its streams fail too, and the scenario with them.
            while let Some(Ok((request, mut respond))) = connection.accept().await {
                // An error here means the client reset the stream already.
                if let Ok(send) = respond.send_response(Response::new(()), false) {
                    serve(H2Stream::new(send, Recv::Body(request.into_body())));
                }
            }
        });
        let (requests, connection) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .handshake(connect_tcp(addr).await?)
            .await?;
        // Streams see a failure of the connection for themselves.
        tokio::spawn(connection);
        Ok(H2 { requests })
    }

    async fn open(&self) -> Result<H2Stream> {
        let mut requests = self.requests.clone().ready().await?;
        let request = Request::post("http://127.0.0.1/stream").body(())?;
        let (response, send) = requests.send_request(request, false)?;
        Ok(H2Stream::new(send, Recv::Head(response)))
    }
}

/// Accepts one connection and makes the server's side of the handshake.
async fn handshake(listener: &TcpListener) -> Result<h2::server::Connection<TcpStream, Bytes>> {
    let tcp = accept_tcp(listener).await?;
    let connection = h2::server::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(STREAM_LIMIT as u32)
        .handshake(tcp)
        .await?;
    Ok(connection)
}

/// One end of an h2 request as a byte stream, with h2's flow control:
/// writes send only capacity h2 has assigned, and reads hand consumed
/// bytes back to the window.
pub(crate) struct H2Stream {
    send: SendStream<Bytes>,
    recv: Recv,
    /// Received bytes not yet read.
    chunk: Bytes,
    finished: bool,
}

/// The receiving half: the client's waits for the response head first.
enum Recv {
    Head(ResponseFuture),
    Body(RecvStream),
}

impl H2Stream {
    fn new(send: SendStream<Bytes>, recv: Recv) -> H2Stream {
        H2Stream {
            send,
            recv,
            chunk: Bytes::new(),
            finished: false,
        }
    }
}

fn io_error(e: h2::Error) -> io::Error {
    io::Error::other(e)
}

impl AsyncRead for H2Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            let body = match &mut this.recv {
                Recv::Head(response) => {
                    let response = ready!(Pin::new(response).poll(cx)).map_err(io_error)?;
                    this.recv = Recv::Body(response.into_body());
                    continue;
                }
                Recv::Body(body) => body,
            };
            if !this.chunk.is_empty() {
                let n = this.chunk.len().min(buf.remaining());
                buf.put_slice(&this.chunk[..n]);
                this.chunk.advance(n);
                // Consumed: the peer may send that much more.
                body.flow_control().release_capacity(n).map_err(io_error)?;
                return Poll::Ready(Ok(()));
            }
            match ready!(body.poll_data(cx)) {
                Some(Ok(data)) => this.chunk = data,
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let send = &mut self.get_mut().send;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // Ask for room for this write; h2 assigns it from the stream and
        // connection windows, up to its per-stream send buffer.
        send.reserve_capacity(buf.len());
        let mut capacity = send.capacity();
        while capacity == 0 {
            capacity = match ready!(send.poll_capacity(cx)) {
                Some(Ok(n)) => n,
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
                // The stream can no longer send: the peer reset it.
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            };
        }
        let n = capacity.min(buf.len());
        send.send_data(Bytes::copy_from_slice(&buf[..n]), false)
            .map_err(io_error)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Sent data is the connection task's to write.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.finished {
            this.send.send_data(Bytes::new(), true).map_err(io_error)?;
            this.finished = true;
        }
        Poll::Ready(Ok(()))
    }
}
