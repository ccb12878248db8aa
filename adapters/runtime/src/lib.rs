//! Runs [`plex_proto`] sessions on any async runtime, over any transport
//! that implements futures-io's `AsyncRead + AsyncWrite`.
//!
//! One task per connection owns the transport and runs the sans-IO loop:
//! feed input, drain transmits with vectored writes, drain events waking the
//! handles waiting on them, sleep until the session's next deadline.
//! [`Session`] and [`Stream`] handles reach the state machine through shared
//! state and wakers; a write copies once, into the stream's send buffer, with
//! no channel in between.
//!
//! The runtime adapters (`plex-tokio`, `plex-smol`, `plex-async-std`)
//! implement [`Runtime`] and provide transports.
#![deny(missing_docs)]

mod accept;
pub mod auth;
mod conn;
mod driver;
mod endpoint;
mod error;
mod fingerprint;
#[cfg(feature = "futures-ws")]
pub mod futures_ws;
mod manager;
pub mod mux;
mod net;
mod pump;
#[cfg(feature = "relay")]
pub mod relay;
mod relay_error;
mod session;
mod stream;
#[cfg(test)]
mod tests;
#[cfg(feature = "tls")]
pub mod tls;
mod tls_error;
mod transport;
mod waiters;
#[cfg(feature = "ws")]
mod ws;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

pub use accept::{
    concerns_one_connection, Handshake, HandshakeListener, PlainListener, RawListener,
    DEFAULT_HANDSHAKE_TIMEOUT,
};
pub use driver::DriverConfig;
pub use endpoint::{host_ip, Endpoint, EndpointError, Scheme};
pub use error::Error;
pub use fingerprint::{Fingerprint, FingerprintError};
pub use manager::{Manager, ManagerConfig, ManagerStats};
pub use net::{connect, listen, Server};
#[cfg(feature = "tls")]
pub use net::{connect_with, ConnectOptions};
pub use plex_proto::{
    CloseReason, Config, ErrorCode, OpenOptions, ResetReason, Role, SessionStats, StreamId,
};
pub use relay_error::RelayError;
pub use session::{Incoming, Listener, Session};
pub use stream::Stream;
pub use tls_error::TlsError;

// Handles are shared across tasks by reference: keep them Send + Sync.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Session>();
    shareable::<Stream>();
    shareable::<Listener>();
    shareable::<Incoming>();
    shareable::<Manager>();
    shareable::<mux::Mux>();
    shareable::<mux::MuxChannel>();
    shareable::<mux::MuxListener>();
};
pub use transport::{BoxIo, BoxResult, FramedTransport, Io, Transport, TransportListener};
#[cfg(feature = "ws")]
pub use ws::{accept_path, io_error as ws_io_error, WsIo};

/// A future the runtime can run to completion on its own.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A timer future. `Sync` as well as `Send`, so that handles holding one
/// (a stream's read deadline) can be shared by reference across tasks.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>>;

/// What the driver needs from an async runtime: spawning, a timer, a clock.
pub trait Runtime: Send + Sync + 'static {
    /// Runs `future` in the background.
    fn spawn(&self, future: BoxFuture);
    /// A future that completes at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Sleep;
    /// The current time, on the clock `sleep_until` uses.
    fn now(&self) -> Instant;
}
