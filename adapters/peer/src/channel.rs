//! Message channels: one write is one message.
//!
//! On `plex/1` a channel is a paired stream carrying length-prefixed
//! messages: a u32 little-endian length, then that many bytes (the framing
//! framed-stream uses on TCP). On the Protomux wire a channel is a Protomux
//! channel, whose messages are whole already. [`Channel`] is either;
//! [`MessageChannel`] is the interface.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_io::{AsyncRead, AsyncWrite};
use plex_runtime::mux::MuxChannel;
use plex_runtime::{ErrorCode, Stream};

use crate::Error;

/// The default largest message a channel takes: 1 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 20;

/// The length prefix of a message on `plex/1`.
const PREFIX: usize = 4;

/// How much a receive buffer grows per read: a peer announcing a large
/// message makes us hold only what it has actually sent.
const READ_CHUNK: usize = 64 * 1024;

/// A bidirectional channel of whole messages.
pub trait MessageChannel: Send {
    /// Sends one message. Fails with [`Error::MessageTooLarge`] past
    /// [`max_message_size`](MessageChannel::max_message_size).
    fn send(&mut self, message: Bytes) -> impl Future<Output = Result<(), Error>> + Send;
    /// The next message; `None` once the peer has ended its side.
    fn recv(&mut self) -> impl Future<Output = Result<Option<Bytes>, Error>> + Send;
    /// Ends our side: the peer's `recv` returns `None` after the messages
    /// already sent. We can still receive.
    fn finish(&mut self) -> Result<(), Error>;
    /// The largest message this channel sends or accepts.
    fn max_message_size(&self) -> usize;
}

/// A lane's channel on either wire.
///
/// On `plex/1` both directions are cancel-safe: a `recv` dropped part-way
/// keeps what it read, a `send` dropped part-way completes its message at
/// the next `send`. On Protomux a message is sent whole or not at all.
/// Protomux has no half-close: there [`finish`](MessageChannel::finish)
/// closes the channel in both directions.
#[derive(Debug)]
pub struct Channel {
    kind: Kind,
}

// Channels are few and long-lived: no box for the larger variant.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Kind {
    Stream(StreamChannel),
    Mux {
        channel: MuxChannel,
        max_message: usize,
    },
}

impl Channel {
    pub(crate) fn stream_channel(channel: StreamChannel) -> Channel {
        Channel {
            kind: Kind::Stream(channel),
        }
    }

    pub(crate) fn mux_channel(channel: MuxChannel, max_message: usize) -> Channel {
        Channel {
            kind: Kind::Mux {
                channel,
                max_message,
            },
        }
    }

    /// The `plex/1` stream underneath, on that wire.
    pub fn stream(&self) -> Option<&Stream> {
        match &self.kind {
            Kind::Stream(channel) => Some(channel.stream()),
            Kind::Mux { .. } => None,
        }
    }

    /// The Protomux channel underneath, on that wire.
    pub fn mux(&self) -> Option<&MuxChannel> {
        match &self.kind {
            Kind::Mux { channel, .. } => Some(channel),
            Kind::Stream(_) => None,
        }
    }

    /// Waits until the peer has accepted the channel and returns its
    /// handshake. [`Error::Unavailable`] if nothing on the other side
    /// listens for it.
    pub async fn opened(&self) -> Result<Bytes, Error> {
        match &self.kind {
            Kind::Stream(channel) => channel.opened().await,
            Kind::Mux { channel, .. } => Ok(channel.opened().await?),
        }
    }

    /// Polls for the next message (the poll form of
    /// [`MessageChannel::recv`], for use beside other futures).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Error>> {
        match &mut self.kind {
            Kind::Stream(channel) => channel.poll_recv(cx),
            Kind::Mux {
                channel,
                max_message,
            } => match ready!(channel.poll_recv(cx)) {
                Ok(Some(message)) if message.len() > *max_message => {
                    Poll::Ready(Err(Error::MessageTooLarge {
                        len: message.len() as u64,
                        max: *max_message,
                    }))
                }
                other => Poll::Ready(other.map_err(Error::from)),
            },
        }
    }
}

impl MessageChannel for Channel {
    async fn send(&mut self, message: Bytes) -> Result<(), Error> {
        match &mut self.kind {
            Kind::Stream(channel) => channel.send(message).await,
            Kind::Mux {
                channel,
                max_message,
            } => {
                if message.len() > *max_message {
                    return Err(Error::MessageTooLarge {
                        len: message.len() as u64,
                        max: *max_message,
                    });
                }
                Ok(channel.send(message).await?)
            }
        }
    }

    async fn recv(&mut self) -> Result<Option<Bytes>, Error> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn finish(&mut self) -> Result<(), Error> {
        match &mut self.kind {
            Kind::Stream(channel) => channel.finish(),
            Kind::Mux { channel, .. } => {
                channel.close();
                Ok(())
            }
        }
    }

    fn max_message_size(&self) -> usize {
        match &self.kind {
            Kind::Stream(channel) => channel.max_message_size(),
            Kind::Mux { max_message, .. } => *max_message,
        }
    }
}

/// A message channel over a `plex/1` stream.
///
/// Both directions are cancel-safe: a `recv` dropped part-way keeps what it
/// read for the next call, and a `send` dropped part-way completes its
/// message at the start of the next `send` (or [`flush`](Channel::flush)),
/// so messages never interleave or tear.
#[derive(Debug)]
pub(crate) struct StreamChannel {
    stream: Stream,
    max_message: usize,
    incoming: Incoming,
    outgoing: Outgoing,
}

#[derive(Debug, Default)]
struct Incoming {
    prefix: [u8; PREFIX],
    prefix_len: usize,
    /// The announced length, once the prefix is complete.
    expected: Option<usize>,
    body: BytesMut,
    /// Set after an oversized message: the stream can no longer be parsed.
    broken: Option<Error>,
}

#[derive(Debug, Default)]
struct Outgoing {
    prefix: [u8; PREFIX],
    prefix_sent: usize,
    body: Bytes,
}

impl StreamChannel {
    /// A channel over `stream`, taking messages up to `max_message` bytes.
    pub(crate) fn new(stream: Stream, max_message: usize) -> StreamChannel {
        StreamChannel {
            stream,
            max_message,
            incoming: Incoming::default(),
            outgoing: Outgoing {
                prefix_sent: PREFIX,
                ..Outgoing::default()
            },
        }
    }

    /// The stream underneath.
    pub(crate) fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Waits until the peer has accepted the channel and returns its
    /// handshake. [`Error::Unavailable`] if nothing on the other side
    /// listens for it.
    pub(crate) async fn opened(&self) -> Result<Bytes, Error> {
        Ok(self.stream.remote_open().await?)
    }

    /// Ready once the peer no longer takes our messages: it reset the
    /// channel, stopped reading it, or the session closed.
    pub(crate) fn poll_stopped(&mut self, cx: &mut Context<'_>) -> Poll<Error> {
        self.stream.poll_stopped(cx).map(Error::from)
    }

    /// Completes a message an earlier, dropped `send` left half-written.
    pub(crate) async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Makes a `recv` that waits longer than `timeout` for data fail with
    /// a timeout (`None`: wait for ever, the default).
    pub(crate) fn set_read_timeout(&mut self, timeout: Option<std::time::Duration>) {
        self.stream.set_read_timeout(timeout);
    }

    /// Ends the channel abruptly in both directions with `code`.
    pub(crate) fn reset(&mut self, code: ErrorCode) {
        self.stream.reset(code);
    }

    /// Polls for the next message (the poll form of
    /// [`MessageChannel::recv`], for use beside other futures).
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Error>> {
        self.poll_recv_limited(cx, self.max_message)
    }

    /// Receives one message of at most `max` bytes (and at most the
    /// channel's limit): a server reads requests under its request limit.
    pub(crate) async fn recv_limited(&mut self, max: usize) -> Result<Option<Bytes>, Error> {
        let max = max.min(self.max_message);
        poll_fn(|cx| self.poll_recv_limited(cx, max)).await
    }

    fn poll_recv_limited(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<Result<Option<Bytes>, Error>> {
        let StreamChannel {
            stream, incoming, ..
        } = self;
        if let Some(e) = &incoming.broken {
            return Poll::Ready(Err(e.clone()));
        }
        loop {
            let Some(expected) = incoming.expected else {
                let into = &mut incoming.prefix[incoming.prefix_len..];
                let n = ready!(Pin::new(&mut *stream).poll_read(cx, into)).map_err(from_io)?;
                if n == 0 {
                    return Poll::Ready(if incoming.prefix_len == 0 {
                        Ok(None)
                    } else {
                        Err(Error::Truncated)
                    });
                }
                incoming.prefix_len += n;
                if incoming.prefix_len == PREFIX {
                    let len = u32::from_le_bytes(incoming.prefix);
                    if len as usize > max {
                        let e = Error::MessageTooLarge {
                            len: u64::from(len),
                            max,
                        };
                        incoming.broken = Some(e.clone());
                        return Poll::Ready(Err(e));
                    }
                    incoming.expected = Some(len as usize);
                    incoming.body = BytesMut::new();
                }
                continue;
            };
            let filled = incoming.body.len();
            if filled == expected {
                incoming.prefix_len = 0;
                incoming.expected = None;
                return Poll::Ready(Ok(Some(std::mem::take(&mut incoming.body).freeze())));
            }
            let chunk = (expected - filled).min(READ_CHUNK);
            incoming.body.resize(filled + chunk, 0);
            let read = Pin::new(&mut *stream).poll_read(cx, &mut incoming.body[filled..]);
            let n = match read {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => {
                    incoming.body.truncate(filled);
                    return Poll::Ready(Err(from_io(e)));
                }
                Poll::Pending => {
                    incoming.body.truncate(filled);
                    return Poll::Pending;
                }
            };
            incoming.body.truncate(filled + n);
            if n == 0 {
                return Poll::Ready(Err(Error::Truncated));
            }
        }
    }

    /// After [`Error::MessageTooLarge`], reads up to `n` bytes of the
    /// oversized message's start (a server answers the request id it
    /// finds there) without buffering the rest.
    pub(crate) async fn oversized_head(&mut self, n: usize) -> Result<Bytes, Error> {
        let mut head = vec![0; n];
        let mut filled = 0;
        while filled < n {
            let read = poll_fn(|cx| Pin::new(&mut self.stream).poll_read(cx, &mut head[filled..]))
                .await
                .map_err(from_io)?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        head.truncate(filled);
        Ok(head.into())
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let StreamChannel {
            stream, outgoing, ..
        } = self;
        while outgoing.prefix_sent < PREFIX {
            // Prefix and message in one write where the window allows.
            let parts = [
                io::IoSlice::new(&outgoing.prefix[outgoing.prefix_sent..]),
                io::IoSlice::new(&outgoing.body),
            ];
            let mut n =
                ready!(Pin::new(&mut *stream).poll_write_vectored(cx, &parts)).map_err(from_io)?;
            let prefix = n.min(PREFIX - outgoing.prefix_sent);
            outgoing.prefix_sent += prefix;
            n -= prefix;
            outgoing.body.advance(n);
        }
        while outgoing.body.has_remaining() {
            let n =
                ready!(Pin::new(&mut *stream).poll_write(cx, &outgoing.body)).map_err(from_io)?;
            outgoing.body.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl MessageChannel for StreamChannel {
    async fn send(&mut self, message: Bytes) -> Result<(), Error> {
        self.flush().await?;
        let len = u32::try_from(message.len())
            .ok()
            .filter(|&len| len as usize <= self.max_message)
            .ok_or(Error::MessageTooLarge {
                len: message.len() as u64,
                max: self.max_message,
            })?;
        self.outgoing = Outgoing {
            prefix: len.to_le_bytes(),
            prefix_sent: 0,
            body: message,
        };
        self.flush().await
    }

    async fn recv(&mut self) -> Result<Option<Bytes>, Error> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn finish(&mut self) -> Result<(), Error> {
        if self.outgoing.prefix_sent < PREFIX || self.outgoing.body.has_remaining() {
            // Ending now would cut the message a dropped `send` left.
            return Err(Error::Local("finish with a half-sent message; flush first"));
        }
        Ok(self.stream.finish()?)
    }

    fn max_message_size(&self) -> usize {
        self.max_message
    }
}

/// Recovers the typed error a `Stream` wraps in its `io::Error`.
pub(crate) fn from_io(e: io::Error) -> Error {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<plex_runtime::Error>())
    {
        Some(inner) => inner.clone().into(),
        None => plex_runtime::Error::from(e).into(),
    }
}
