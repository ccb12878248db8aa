//! A WebSocket connection as a byte stream: plex frames travel in binary
//! messages. Works with any tungstenite front-end (tokio-tungstenite,
//! async-tungstenite): they share `tungstenite::Message`.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_core::Stream;
use futures_io::{AsyncRead, AsyncWrite};
use futures_sink::Sink;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::StatusCode;
use tungstenite::{Error as WsError, Message};

/// Largest binary message a vectored write gathers; larger writes split.
const MAX_MESSAGE: usize = 256 * 1024;

/// Adapts a WebSocket (a `Stream` and `Sink` of messages) to
/// `AsyncRead + AsyncWrite`.
///
/// Binary messages carry the bytes; a vectored write becomes one message.
/// Ping and pong are left to the WebSocket library; a text message is an
/// error, since plex sends only binary ones; a close message is end of
/// stream.
///
/// In [`messages`](WsIo::messages) mode the byte stream is a sequence of
/// u32 little-endian length-prefixed messages, and each message travels as
/// one binary WebSocket message without its prefix (Protomux over
/// WebSocket, as JavaScript Plex sends it).
#[derive(Debug)]
pub struct WsIo<S> {
    ws: S,
    pending: Bytes,
    eof: bool,
    /// Messages mode: the outgoing message being gathered.
    framing: Option<Framing>,
}

#[derive(Debug, Default)]
struct Framing {
    /// The length prefix of the next incoming message, not yet read.
    head: [u8; 4],
    head_left: usize,
    /// The outgoing prefix as far as written, and the message after it.
    out_head: [u8; 4],
    out_head_len: usize,
    out: BytesMut,
    /// A whole message the sink was not ready for.
    ready: Option<Bytes>,
}

impl<S> WsIo<S> {
    /// Wraps an established WebSocket connection: binary messages carry a
    /// byte stream (`plex/1`).
    pub fn new(ws: S) -> WsIo<S> {
        WsIo {
            ws,
            pending: Bytes::new(),
            eof: false,
            framing: None,
        }
    }

    /// Wraps an established WebSocket connection in messages mode: one
    /// binary message per length-prefixed message of the stream.
    pub fn messages(ws: S) -> WsIo<S> {
        WsIo {
            framing: Some(Framing::default()),
            ..WsIo::new(ws)
        }
    }
}

/// A WebSocket handshake callback that accepts the upgrade only on `path`
/// and answers any other path with 404.
#[allow(clippy::result_large_err)] // the signature is tungstenite's `Callback`
pub fn accept_path(
    path: String,
) -> impl FnOnce(&Request, Response) -> Result<Response, ErrorResponse> {
    move |request, response| {
        if request.uri().path() == path {
            return Ok(response);
        }
        let body = format!("no plex endpoint at {}", request.uri().path());
        let mut not_found = ErrorResponse::new(Some(body));
        *not_found.status_mut() = StatusCode::NOT_FOUND;
        Err(not_found)
    }
}

/// A WebSocket library error as an IO error.
pub fn io_error(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        other => io::Error::other(other),
    }
}

impl<S> AsyncRead for WsIo<S>
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            if let Some(framing) = self.framing.as_mut().filter(|f| f.head_left > 0) {
                let start = 4 - framing.head_left;
                let n = framing.head_left.min(buf.len());
                buf[..n].copy_from_slice(&framing.head[start..start + n]);
                framing.head_left -= n;
                return Poll::Ready(Ok(n));
            }
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.len());
                buf[..n].copy_from_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Poll::Ready(Ok(n));
            }
            if self.eof {
                return Poll::Ready(Ok(0));
            }
            match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Ready(Some(Ok(Message::Binary(data)))) => {
                    if let Some(framing) = &mut self.framing {
                        let len = u32::try_from(data.len()).map_err(|_| {
                            io::Error::new(
                                io::ErrorKind::InvalidData,
                                "WebSocket message over 4 GiB",
                            )
                        })?;
                        framing.head = len.to_le_bytes();
                        framing.head_left = 4;
                    }
                    self.pending = data;
                }
                Poll::Ready(Some(Ok(Message::Text(_)))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text WebSocket message: plex uses binary messages only",
                    )))
                }
                Poll::Ready(Some(Ok(Message::Close(_)))) | Poll::Ready(None) => self.eof = true,
                // Ping, pong and raw frames are the WebSocket layer's business.
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(io_error(e))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S> WsIo<S>
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    fn send(&mut self, cx: &mut Context<'_>, data: Bytes) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.ws).poll_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(io_error(e))),
            Poll::Pending => return Poll::Pending,
        }
        let n = data.len();
        match Pin::new(&mut self.ws).start_send(Message::Binary(data)) {
            Ok(()) => Poll::Ready(Ok(n)),
            Err(e) => Poll::Ready(Err(io_error(e))),
        }
    }
}

impl<S> WsIo<S>
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    /// Messages mode: takes the length-prefixed stream up to the end of
    /// one message, and sends that message as one binary message.
    fn write_framed(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // The message the sink was not ready for goes first.
        ready!(self.send_ready(cx))?;
        let framing = self.framing.as_mut().expect("messages mode");
        let mut taken = 0;
        let mut complete = false;
        'bufs: for buf in bufs {
            let mut buf = &buf[..];
            while !buf.is_empty() {
                if framing.out_head_len < 4 {
                    let n = (4 - framing.out_head_len).min(buf.len());
                    let at = framing.out_head_len;
                    framing.out_head[at..at + n].copy_from_slice(&buf[..n]);
                    framing.out_head_len += n;
                    taken += n;
                    buf = &buf[n..];
                }
                if framing.out_head_len < 4 {
                    continue;
                }
                let len = u32::from_le_bytes(framing.out_head) as usize;
                let n = (len - framing.out.len()).min(buf.len());
                framing.out.extend_from_slice(&buf[..n]);
                taken += n;
                buf = &buf[n..];
                if framing.out.len() == len {
                    framing.ready = Some(framing.out.split().freeze());
                    framing.out_head_len = 0;
                    complete = true;
                    break 'bufs;
                }
            }
        }
        if complete {
            // Taken either way: a sink not ready keeps it for the next
            // write or flush, an error shows there too.
            let _ = self.send_ready(cx);
        }
        Poll::Ready(Ok(taken))
    }

    /// Sends the whole message waiting in messages mode, if any.
    fn send_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(message) = self.framing.as_mut().and_then(|f| f.ready.take()) else {
            return Poll::Ready(Ok(()));
        };
        match Pin::new(&mut self.ws).poll_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(io_error(e))),
            Poll::Pending => {
                if let Some(framing) = &mut self.framing {
                    framing.ready = Some(message);
                }
                return Poll::Pending;
            }
        }
        let sent = Pin::new(&mut self.ws).start_send(Message::Binary(message));
        Poll::Ready(sent.map_err(io_error))
    }
}

impl<S> AsyncWrite for WsIo<S>
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.framing.is_some() {
            return self.write_framed(cx, &[io::IoSlice::new(buf)]);
        }
        let n = buf.len().min(MAX_MESSAGE);
        self.send(cx, Bytes::copy_from_slice(&buf[..n]))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.framing.is_some() {
            return self.write_framed(cx, bufs);
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut message = BytesMut::with_capacity(total.min(MAX_MESSAGE));
        for buf in bufs {
            let room = MAX_MESSAGE - message.len();
            message.extend_from_slice(&buf[..buf.len().min(room)]);
            if message.len() == MAX_MESSAGE {
                break;
            }
        }
        self.send(cx, message.freeze())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.send_ready(cx))?;
        Pin::new(&mut self.ws).poll_flush(cx).map_err(io_error)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.send_ready(cx))?;
        match Pin::new(&mut self.ws).poll_close(cx) {
            // The peer closing first is a clean end too.
            Poll::Ready(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                Poll::Ready(Ok(()))
            }
            other => other.map_err(io_error),
        }
    }
}
