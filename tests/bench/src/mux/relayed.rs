//! The raw relay peer's byte stream. A relay passes no close on: it ends
//! one direction of a session only when the other one ends too, so a
//! shutdown would reach the peer only after the relay's 2-minute network
//! timeout. The least a raw user must add is an in-band end: each write
//! goes out as a chunk behind its 4-byte big-endian length, and an empty
//! chunk ends the stream. The payload is not copied.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_io::{AsyncRead as FuturesRead, AsyncWrite as FuturesWrite};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Length of a chunk's header.
const HEADER: usize = 4;

/// A futures-io connection as a tokio byte stream, with chunk lengths in
/// band and an empty chunk as end-of-stream.
pub(crate) struct Relayed<T> {
    io: T,
    /// Payload bytes left in the chunk being read.
    reading: usize,
    /// The next chunk's header, as far as it has arrived.
    header_in: [u8; HEADER],
    header_in_len: usize,
    /// The peer sent its empty chunk.
    ended: bool,
    /// The header of the chunk being written, and how much of it went out.
    header_out: [u8; HEADER],
    header_out_sent: usize,
    /// Payload bytes left in the chunk being written.
    writing: usize,
    /// The empty chunk is queued or sent.
    shut: bool,
}

impl<T> Relayed<T> {
    pub(crate) fn new(io: T) -> Relayed<T> {
        Relayed {
            io,
            reading: 0,
            header_in: [0; HEADER],
            header_in_len: 0,
            ended: false,
            header_out: [0; HEADER],
            header_out_sent: HEADER,
            writing: 0,
            shut: false,
        }
    }
}

impl<T: FuturesRead + FuturesWrite + Unpin> Relayed<T> {
    /// Sends what is left of the pending header, and as much of `payload`
    /// as goes with it in one vectored write. Returns the payload bytes
    /// written.
    fn poll_header(&mut self, cx: &mut Context<'_>, payload: &[u8]) -> Poll<io::Result<usize>> {
        while self.header_out_sent < HEADER {
            let bufs = [
                IoSlice::new(&self.header_out[self.header_out_sent..]),
                IoSlice::new(payload),
            ];
            let n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &bufs))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let header = n.min(HEADER - self.header_out_sent);
            self.header_out_sent += header;
            if n > header {
                return Poll::Ready(Ok(n - header));
            }
        }
        Poll::Ready(Ok(0))
    }

    fn start_chunk(&mut self, len: u32) {
        self.header_out = len.to_be_bytes();
        self.header_out_sent = 0;
        self.writing = len as usize;
    }
}

impl<T: FuturesRead + FuturesWrite + Unpin> AsyncRead for Relayed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        while this.reading == 0 {
            if this.ended {
                return Poll::Ready(Ok(()));
            }
            let rest = &mut this.header_in[this.header_in_len..];
            let n = ready!(Pin::new(&mut this.io).poll_read(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(cut_short()));
            }
            this.header_in_len += n;
            if this.header_in_len == HEADER {
                this.header_in_len = 0;
                let len = u32::from_be_bytes(this.header_in);
                this.reading = usize::try_from(len).unwrap_or(usize::MAX);
                this.ended = len == 0;
            }
        }
        let want = this.reading.min(buf.remaining());
        let n = ready!(Pin::new(&mut this.io).poll_read(cx, buf.initialize_unfilled_to(want)))?;
        if n == 0 {
            return Poll::Ready(Err(cut_short()));
        }
        buf.advance(n);
        this.reading -= n;
        Poll::Ready(Ok(()))
    }
}

impl<T: FuturesRead + FuturesWrite + Unpin> AsyncWrite for Relayed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.writing == 0 {
            this.start_chunk(u32::try_from(buf.len()).unwrap_or(u32::MAX));
        }
        let payload = &buf[..this.writing.min(buf.len())];
        let mut n = ready!(this.poll_header(cx, payload))?;
        if n == 0 {
            n = ready!(Pin::new(&mut this.io).poll_write(cx, payload))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
        }
        this.writing -= n;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    /// Sends the empty chunk and flushes; the connection itself stays
    /// open for the peer's end.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.writing > 0 {
            let why = "shut down with a chunk half written";
            return Poll::Ready(Err(io::Error::other(why)));
        }
        if !this.shut {
            this.shut = true;
            this.start_chunk(0);
        }
        ready!(this.poll_header(cx, &[]))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }
}

fn cut_short() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the relayed connection ended inside a chunk or before the empty one",
    )
}

#[cfg(test)]
mod tests {
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};
    use tokio_util::compat::TokioAsyncReadCompatExt;

    use super::Relayed;

    fn run(test: impl std::future::Future<Output = ()>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(test);
    }

    /// Writes of every size arrive whole, in order, then end-of-stream,
    /// through a pipe that splits headers and payloads at every 7 bytes.
    #[test]
    fn chunks_arrive_whole_and_the_empty_one_ends_the_stream() {
        run(async {
            let (a, b) = duplex(7);
            let (mut a, mut b) = (Relayed::new(a.compat()), Relayed::new(b.compat()));
            let sent: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
            let writer = {
                let sent = sent.clone();
                tokio::spawn(async move {
                    let mut at = 0;
                    for size in [1, 3, 4, 5, 64, 1000, 8923] {
                        a.write_all(&sent[at..at + size]).await.unwrap();
                        at += size;
                    }
                    assert_eq!(at, sent.len());
                    a.shutdown().await.unwrap();
                    let mut end = [0u8; 1];
                    assert_eq!(a.read(&mut end).await.unwrap(), 0, "the peer's end");
                })
            };
            let mut received = Vec::new();
            let mut buf = [0u8; 100];
            loop {
                match b.read(&mut buf).await.unwrap() {
                    0 => break,
                    n => received.extend_from_slice(&buf[..n]),
                }
            }
            assert_eq!(received, sent);
            assert_eq!(b.read(&mut buf).await.unwrap(), 0, "ended stays ended");
            b.shutdown().await.unwrap();
            writer.await.unwrap();
        });
    }

    #[test]
    fn a_connection_cut_inside_a_chunk_is_an_error() {
        run(async {
            let (a, b) = duplex(64);
            let (mut a, mut b) = (a, Relayed::new(b.compat()));
            // A header for 10 bytes, 3 of them, then the connection closes.
            a.write_all(&[0, 0, 0, 10, 1, 2, 3]).await.unwrap();
            drop(a);
            let mut buf = [0u8; 16];
            assert_eq!(b.read(&mut buf).await.unwrap(), 3);
            let cut = b.read(&mut buf).await.unwrap_err();
            assert_eq!(cut.kind(), std::io::ErrorKind::UnexpectedEof);
        });
    }

    #[test]
    fn the_wire_is_a_length_then_the_bytes() {
        run(async {
            let (a, mut b) = duplex(64);
            let mut a = Relayed::new(a.compat());
            a.write_all(b"hello").await.unwrap();
            a.shutdown().await.unwrap();
            drop(a);
            let mut wire = Vec::new();
            b.read_to_end(&mut wire).await.unwrap();
            assert_eq!(wire, b"\0\0\0\x05hello\0\0\0\0");
        });
    }
}
