//! The bus's one error type.

use std::sync::Arc;
use std::time::Duration;

use plex_proto::bus::{WireError, BAD_REQUEST, NO_RESPONDERS, RESPONDER_GONE, SLOW_CONSUMER};
use plex_proto::{ErrorCode, ResetReason};

/// Why a bus operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// No responder is subscribed to the channel: the broker said so at
    /// once.
    #[error("no responders on this channel")]
    NoResponders,
    /// The responder went away while it had the request.
    #[error("the responder failed before it answered")]
    ResponderGone,
    /// The request got no answer within its timeout; it was cancelled at
    /// the responder.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The broker ended the subscription: its subscriber fell too far
    /// behind (the `Disconnect` policy).
    #[error("the subscription fell too far behind and was ended")]
    SlowConsumer,
    /// A payload over the limit.
    #[error("a {len}-byte payload is over the {max}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A channel name or pattern that is not allowed, or bytes that are
    /// no bus message.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The broker refused the request or record (a bad name, too large).
    #[error("the broker refused it")]
    Refused,
    /// The client was closed.
    #[error("the bus client is closed")]
    Closed,
    /// Reading the payload to send failed.
    #[error("reading the payload failed: {0}")]
    Source(Arc<std::io::Error>),
    /// The connection or a stream failed underneath.
    #[error(transparent)]
    Transport(plex_runtime::Error),
}

impl From<plex_runtime::Error> for BusError {
    fn from(e: plex_runtime::Error) -> BusError {
        match &e {
            plex_runtime::Error::Reset(ResetReason::Remote(code)) => match *code {
                NO_RESPONDERS => BusError::NoResponders,
                RESPONDER_GONE => BusError::ResponderGone,
                SLOW_CONSUMER => BusError::SlowConsumer,
                BAD_REQUEST => BusError::Refused,
                _ => BusError::Transport(e),
            },
            _ => BusError::Transport(e),
        }
    }
}

/// A stream's IO error as the bus error it carries.
pub(crate) fn from_io(e: std::io::Error) -> BusError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<plex_runtime::Error>())
    {
        Some(inner) => inner.clone().into(),
        None => BusError::Transport(plex_runtime::Error::from(e)),
    }
}

/// The code a broker resets a stream with for `error`.
pub(crate) fn code_of(error: &BusError) -> ErrorCode {
    match error {
        BusError::NoResponders => NO_RESPONDERS,
        BusError::ResponderGone => RESPONDER_GONE,
        BusError::SlowConsumer => SLOW_CONSUMER,
        BusError::TooLarge { .. } | BusError::Wire(_) | BusError::Refused => BAD_REQUEST,
        _ => ErrorCode::CANCEL,
    }
}
