//! Pluggable transports: how a [`Manager`](crate::Manager) or an adapter
//! dials and listens.

use std::future::Future;
use std::pin::Pin;

use futures_io::{AsyncRead, AsyncWrite};

use crate::{Endpoint, Error};

/// A byte stream a session can run over.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed byte stream.
pub type BoxIo = Box<dyn Io>;

/// A boxed, sendable future of a result.
pub type BoxResult<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// Dials and listens on endpoints. The adapters implement it for TCP and
/// WebSocket; implement it to run plex over anything else.
pub trait Transport: Send + Sync + 'static {
    /// Connects to `endpoint`.
    fn dial<'a>(&'a self, endpoint: &'a Endpoint) -> BoxResult<'a, BoxIo>;

    /// Starts accepting connections on `endpoint`.
    fn listen<'a>(&'a self, endpoint: &'a Endpoint) -> BoxResult<'a, Box<dyn TransportListener>>;

    /// Connects to `endpoint` for a message protocol (Protomux). The
    /// stream carries each message after its length as a u32
    /// little-endian; a transport with message boundaries of its own
    /// (WebSocket) sends each as one message instead, without the prefix.
    /// The default suits byte streams: the prefix travels as it is.
    fn dial_messages<'a>(&'a self, endpoint: &'a Endpoint) -> BoxResult<'a, BoxIo> {
        self.dial(endpoint)
    }

    /// Listens on `endpoint` for a message protocol, as
    /// [`dial_messages`](Transport::dial_messages) dials.
    fn listen_messages<'a>(
        &'a self,
        endpoint: &'a Endpoint,
    ) -> BoxResult<'a, Box<dyn TransportListener>> {
        self.listen(endpoint)
    }
}

/// A transport that dials and listens the same way for byte streams and
/// for messages, but for how messages are framed: implementing it gives
/// [`Transport`], each method with `messages` false for
/// [`dial`](Transport::dial) and [`listen`](Transport::listen) and true for
/// [`dial_messages`](Transport::dial_messages) and
/// [`listen_messages`](Transport::listen_messages). The adapters' transports
/// are such; a transport without message framing of its own implements
/// [`Transport`] directly.
pub trait FramedTransport: Send + Sync + 'static {
    /// Connects to `endpoint`; with `messages`, for a message protocol.
    fn dial_framed<'a>(&'a self, endpoint: &'a Endpoint, messages: bool) -> BoxResult<'a, BoxIo>;

    /// Starts accepting connections on `endpoint`; with `messages`, for a
    /// message protocol.
    fn listen_framed<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        messages: bool,
    ) -> BoxResult<'a, Box<dyn TransportListener>>;
}

impl<T: FramedTransport> Transport for T {
    fn dial<'a>(&'a self, endpoint: &'a Endpoint) -> BoxResult<'a, BoxIo> {
        self.dial_framed(endpoint, false)
    }

    fn listen<'a>(&'a self, endpoint: &'a Endpoint) -> BoxResult<'a, Box<dyn TransportListener>> {
        self.listen_framed(endpoint, false)
    }

    fn dial_messages<'a>(&'a self, endpoint: &'a Endpoint) -> BoxResult<'a, BoxIo> {
        self.dial_framed(endpoint, true)
    }

    fn listen_messages<'a>(
        &'a self,
        endpoint: &'a Endpoint,
    ) -> BoxResult<'a, Box<dyn TransportListener>> {
        self.listen_framed(endpoint, true)
    }
}

/// Connections arriving on a listening endpoint.
pub trait TransportListener: Send + Sync + 'static {
    /// The next connection and a description of its peer. An error means
    /// the listener itself failed: implementations skip connections that
    /// fail on their own (see [`HandshakeListener`](crate::HandshakeListener)
    /// and [`PlainListener`](crate::PlainListener)).
    fn accept(&self) -> BoxResult<'_, (BoxIo, String)>;

    /// The endpoint actually bound (port 0 resolved).
    fn local_endpoint(&self) -> Endpoint;
}
