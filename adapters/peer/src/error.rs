//! One error type for channels, RPC calls and store ports, with
//! neonplex's error codes for what travels in a response envelope.

use std::fmt;
use std::time::Duration;

use plex_proto::rpc::DecodeError;
use plex_proto::CloseReason;

/// Why a channel operation, an RPC call or a store-port call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A message is larger than the channel allows.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    MessageTooLarge {
        /// Its length.
        len: u64,
        /// The channel's limit.
        max: usize,
    },
    /// The peer ended its side of the channel inside a message.
    #[error("the peer ended the channel inside a message")]
    Truncated,
    /// The lane, the peer or its session closed; pending calls fail with it.
    #[error("closed: {0}")]
    Closed(CloseReason),
    /// The lane was closed on this side ([`RpcClient::close`](crate::RpcClient::close)).
    #[error("the lane is closed")]
    LaneClosed,
    /// Nobody on the other side serves this lane (the stream was refused).
    #[error("nothing serves this lane on the peer")]
    Unavailable,
    /// The call took longer than its timeout; it was cancelled at the peer.
    #[error("request timed out after {after:?}")]
    Timeout {
        /// The timeout.
        after: Duration,
    },
    /// Too many calls in flight on this side (the peer's refusal arrives
    /// as [`Error::Failed`] with [`Code::NotReady`]).
    #[error("too many requests in flight (limit {limit})")]
    NotReady {
        /// The limit.
        limit: usize,
    },
    /// The request is larger than this side allows (the peer's refusal
    /// arrives as [`Error::Failed`] with [`Code::PayloadTooLarge`]).
    #[error("request payload of {len} bytes exceeds the limit of {max}")]
    PayloadTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer's reply did not decode: it broke the protocol.
    #[error("malformed reply: {0}")]
    BadReply(#[from] DecodeError),
    /// The peer sent a reply this side did not ask for or expect.
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// This side asked for something its state does not allow (a local
    /// misuse, or a local limit such as exhausted request ids).
    #[error("not possible here: {0}")]
    Local(&'static str),
    /// A store, here or at the peer, answered with an error.
    #[error("{code}: {message}")]
    Failed {
        /// neonplex's error code.
        code: Code,
        /// What went wrong, in words.
        message: String,
    },
    /// The peer pool has no peer able to take the call.
    #[error("no peers available")]
    NoPeers,
    /// A limit in a config is zero.
    #[error(transparent)]
    Config(plex_proto::ConfigError),
    /// The stream or session failed underneath.
    #[error(transparent)]
    Transport(plex_runtime::Error),
}

impl Error {
    /// A store failure with `code`.
    pub fn failed(code: Code, message: impl Into<String>) -> Error {
        Error::Failed {
            code,
            message: message.into(),
        }
    }

    /// The neonplex code this error travels as in a response envelope.
    pub fn code(&self) -> Code {
        match self {
            Error::MessageTooLarge { .. } | Error::PayloadTooLarge { .. } => Code::PayloadTooLarge,
            Error::Truncated | Error::BadReply(_) | Error::Protocol(_) => Code::CodecError,
            Error::Config(_) | Error::Local(_) => Code::BadArg,
            Error::Closed(_) | Error::LaneClosed | Error::Transport(_) => Code::Closed,
            Error::Unavailable | Error::NoPeers => Code::NotAvailable,
            Error::Timeout { .. } => Code::Timeout,
            Error::NotReady { .. } => Code::NotReady,
            Error::Failed { code, .. } => code.clone(),
        }
    }

    /// Whether the call may have failed because of the peer or the path to
    /// it rather than the request itself: a peer pool counts these against
    /// the peer and tries another.
    pub fn is_peer_failure(&self) -> bool {
        match self {
            Error::Closed(_)
            | Error::LaneClosed
            | Error::Unavailable
            | Error::Timeout { .. }
            | Error::NotReady { .. }
            | Error::Truncated
            | Error::BadReply(_)
            | Error::Protocol(_)
            | Error::Transport(_) => true,
            Error::Failed { code, .. } => matches!(
                code,
                Code::NotReady
                    | Code::Closed
                    | Code::Destroyed
                    | Code::NotAvailable
                    | Code::Timeout
            ),
            Error::MessageTooLarge { .. }
            | Error::PayloadTooLarge { .. }
            | Error::Config(_)
            | Error::Local(_)
            | Error::NoPeers => false,
        }
    }
}

impl From<plex_runtime::Error> for Error {
    fn from(e: plex_runtime::Error) -> Error {
        match e {
            plex_runtime::Error::Closed(reason) => Error::Closed(reason),
            // A Protomux REJECT: nothing listens for the lane there.
            plex_runtime::Error::Rejected => Error::Unavailable,
            plex_runtime::Error::Reset(plex_proto::ResetReason::Remote(code))
                if code == plex_proto::ErrorCode::REFUSED_STREAM =>
            {
                Error::Unavailable
            }
            e => Error::Transport(e),
        }
    }
}

/// neonplex's error codes (`result/encoding.js`). The wire carries them
/// as strings; a code Plex does not know is kept as [`Code::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// A bad argument.
    BadArg,
    /// Bytes that do not decode.
    CodecError,
    /// A compare-and-set lost.
    CasFailed,
    /// The caps token does not allow the call.
    CapabilityDenied,
    /// The call timed out.
    Timeout,
    /// The backend failed.
    DriverError,
    /// A cryptographic check failed.
    CryptoError,
    /// The operation or service is not available.
    NotAvailable,
    /// Too many calls in flight.
    NotReady,
    /// The request is too large.
    PayloadTooLarge,
    /// The channel or store is closed.
    Closed,
    /// The channel was destroyed.
    Destroyed,
    /// neonplex's catch-all (thrown handlers, unknown methods, bad payloads).
    Unknown,
    /// Any other code, as the peer sent it.
    Other(String),
}

impl Code {
    const NAMED: [(Code, &'static str); 13] = [
        (Code::BadArg, "BadArg"),
        (Code::CodecError, "CodecError"),
        (Code::CasFailed, "CASFailed"),
        (Code::CapabilityDenied, "CapabilityDenied"),
        (Code::Timeout, "Timeout"),
        (Code::DriverError, "DriverError"),
        (Code::CryptoError, "CryptoError"),
        (Code::NotAvailable, "NotAvailable"),
        (Code::NotReady, "NotReady"),
        (Code::PayloadTooLarge, "PayloadTooLarge"),
        (Code::Closed, "Closed"),
        (Code::Destroyed, "Destroyed"),
        (Code::Unknown, "Unknown"),
    ];

    /// The code as it travels on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Code::Other(code) => code,
            known => Code::NAMED
                .iter()
                .find(|(c, _)| c == known)
                .map_or("Unknown", |(_, name)| name),
        }
    }

    /// The code for a wire string.
    pub fn parse(code: &str) -> Code {
        Code::NAMED
            .iter()
            .find(|(_, name)| *name == code)
            .map_or_else(|| Code::Other(code.to_owned()), |(c, _)| c.clone())
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_their_wire_names() {
        for (code, name) in Code::NAMED {
            assert_eq!(code.as_str(), name);
            assert_eq!(Code::parse(name), code);
        }
        assert_eq!(Code::parse("Teapot"), Code::Other("Teapot".into()));
        assert_eq!(Code::parse("Teapot").as_str(), "Teapot");
    }
}
