//! Access control for a whole `plex/1` connection: the bytes of the
//! authentication exchange.
//!
//! A client's first act on a connection is to open one stream for
//! [`AUTH_PROTOCOL`] whose OPEN handshake is a [`Hello`], carrying a bearer
//! token or none. The server answers in its OPEN ACK handshake with a
//! [`Verdict`]: admitted, or refused with a [`Refusal`] and a message. A
//! server that requires a token serves nothing else on the connection
//! until it has admitted it, and closes the connection after a refusal.
//! The exchange is all in the two handshakes, so no data flows on the
//! stream; either side may finish it at once.
//!
//! ```
//! use plex_proto::auth::{Hello, Refusal, Verdict};
//!
//! let hello = Hello::bearer("plxt_0123");
//! assert_eq!(Hello::decode(&hello.to_bytes()), Ok(hello));
//! let verdict = Verdict::Refused { refusal: Refusal::Denied, message: "revoked".into() };
//! assert_eq!(Verdict::decode(&verdict.to_bytes()), Ok(verdict));
//! assert!(Verdict::decode(b"\x07").is_err()); // an unknown version
//! ```

use bytes::{BufMut, Bytes, BytesMut};

/// The protocol name of the authentication stream.
pub const AUTH_PROTOCOL: &str = "plex-auth/1";

/// The version byte both handshakes start with.
pub const AUTH_VERSION: u8 = 1;

/// The longest token a [`Hello`] carries, in bytes.
pub const MAX_TOKEN: usize = 1024;

/// The longest message a [`Verdict`] carries, in bytes.
pub const MAX_MESSAGE: usize = 1024;

/// The client's handshake: its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hello {
    /// No credentials: enough for a server that requires none.
    Anonymous,
    /// A bearer token.
    Bearer(String),
}

/// Why a server refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The server requires a token and none was sent.
    Required,
    /// The token is not a live one of the server: unknown or revoked.
    Denied,
    /// The server could not check the token (its token file is unreadable).
    Unavailable,
}

/// The server's handshake: whether the connection is admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Admitted: the connection is served.
    Admitted,
    /// Refused: the server closes the connection.
    Refused {
        /// Why.
        refusal: Refusal,
        /// Words for a person.
        message: String,
    },
}

/// Bytes that are not a valid handshake of the exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthWireError {
    /// The handshake is empty.
    #[error("empty authentication handshake")]
    Empty,
    /// A version this side does not speak.
    #[error("authentication version {0} is not supported")]
    BadVersion(u8),
    /// A credential kind or verdict code this version does not know.
    #[error("unknown authentication code {0}")]
    BadCode(u8),
    /// A token or message that is not UTF-8.
    #[error("the authentication {0} is not UTF-8")]
    NotUtf8(&'static str),
    /// A token or message longer than its limit.
    #[error("the authentication {what} of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Which field.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes after a handshake that has none.
    #[error("trailing bytes after the authentication handshake")]
    Trailing,
}

const ANONYMOUS: u8 = 0;
const BEARER: u8 = 1;

const ADMITTED: u8 = 0;
const REQUIRED: u8 = 1;
const DENIED: u8 = 2;
const UNAVAILABLE: u8 = 3;

impl Hello {
    /// A hello carrying `token`.
    pub fn bearer(token: impl Into<String>) -> Hello {
        Hello::Bearer(token.into())
    }

    /// The token, if any.
    pub fn token(&self) -> Option<&str> {
        match self {
            Hello::Anonymous => None,
            Hello::Bearer(token) => Some(token),
        }
    }

    /// The handshake bytes: the version, the kind, then the token.
    ///
    /// A token longer than [`MAX_TOKEN`] is sent as it is, and the server
    /// refuses it as not valid.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(2 + self.token().map_or(0, str::len));
        out.put_u8(AUTH_VERSION);
        match self {
            Hello::Anonymous => out.put_u8(ANONYMOUS),
            Hello::Bearer(token) => {
                out.put_u8(BEARER);
                out.put_slice(token.as_bytes());
            }
        }
        out.freeze()
    }

    /// Parses a client's handshake.
    pub fn decode(bytes: &[u8]) -> Result<Hello, AuthWireError> {
        let (code, rest) = head(bytes)?;
        match code {
            ANONYMOUS if rest.is_empty() => Ok(Hello::Anonymous),
            ANONYMOUS => Err(AuthWireError::Trailing),
            BEARER => Ok(Hello::Bearer(text(rest, "token", MAX_TOKEN)?)),
            other => Err(AuthWireError::BadCode(other)),
        }
    }
}

impl Verdict {
    /// The handshake bytes: the version, the code, then the message.
    /// A message is cut to [`MAX_MESSAGE`] bytes, at a character boundary.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_u8(AUTH_VERSION);
        match self {
            Verdict::Admitted => out.put_u8(ADMITTED),
            Verdict::Refused { refusal, message } => {
                out.put_u8(match refusal {
                    Refusal::Required => REQUIRED,
                    Refusal::Denied => DENIED,
                    Refusal::Unavailable => UNAVAILABLE,
                });
                let mut end = message.len().min(MAX_MESSAGE);
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                out.put_slice(&message.as_bytes()[..end]);
            }
        }
        out.freeze()
    }

    /// Parses a server's handshake.
    pub fn decode(bytes: &[u8]) -> Result<Verdict, AuthWireError> {
        let (code, rest) = head(bytes)?;
        let refusal = match code {
            ADMITTED if rest.is_empty() => return Ok(Verdict::Admitted),
            ADMITTED => return Err(AuthWireError::Trailing),
            REQUIRED => Refusal::Required,
            DENIED => Refusal::Denied,
            UNAVAILABLE => Refusal::Unavailable,
            other => return Err(AuthWireError::BadCode(other)),
        };
        Ok(Verdict::Refused {
            refusal,
            message: text(rest, "message", MAX_MESSAGE)?,
        })
    }
}

/// The version (checked) and the code.
fn head(bytes: &[u8]) -> Result<(u8, &[u8]), AuthWireError> {
    let [version, rest @ ..] = bytes else {
        return Err(AuthWireError::Empty);
    };
    if *version != AUTH_VERSION {
        return Err(AuthWireError::BadVersion(*version));
    }
    let [code, rest @ ..] = rest else {
        return Err(AuthWireError::Empty);
    };
    Ok((*code, rest))
}

fn text(bytes: &[u8], what: &'static str, max: usize) -> Result<String, AuthWireError> {
    if bytes.len() > max {
        return Err(AuthWireError::TooLong {
            what,
            len: bytes.len(),
            max,
        });
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| AuthWireError::NotUtf8(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_round_trip() {
        for hello in [
            Hello::Anonymous,
            Hello::bearer(""),
            Hello::bearer("plxt_ab"),
        ] {
            assert_eq!(Hello::decode(&hello.to_bytes()), Ok(hello));
        }
        for verdict in [
            Verdict::Admitted,
            Verdict::Refused {
                refusal: Refusal::Required,
                message: "an access token is required".into(),
            },
            Verdict::Refused {
                refusal: Refusal::Denied,
                message: String::new(),
            },
            Verdict::Refused {
                refusal: Refusal::Unavailable,
                message: "é".into(),
            },
        ] {
            assert_eq!(Verdict::decode(&verdict.to_bytes()), Ok(verdict));
        }
    }

    #[test]
    fn the_bytes_are_fixed() {
        assert_eq!(&Hello::Anonymous.to_bytes()[..], b"\x01\x00");
        assert_eq!(&Hello::bearer("t").to_bytes()[..], b"\x01\x01t");
        assert_eq!(&Verdict::Admitted.to_bytes()[..], b"\x01\x00");
        let denied = Verdict::Refused {
            refusal: Refusal::Denied,
            message: "no".into(),
        };
        assert_eq!(&denied.to_bytes()[..], b"\x01\x02no");
    }

    #[test]
    fn bad_bytes_are_typed_errors() {
        assert_eq!(Hello::decode(b""), Err(AuthWireError::Empty));
        assert_eq!(Hello::decode(b"\x01"), Err(AuthWireError::Empty));
        assert_eq!(
            Hello::decode(b"\x02\x00"),
            Err(AuthWireError::BadVersion(2))
        );
        assert_eq!(Hello::decode(b"\x02"), Err(AuthWireError::BadVersion(2)));
        assert_eq!(Hello::decode(b"\x01\x09"), Err(AuthWireError::BadCode(9)));
        assert_eq!(Hello::decode(b"\x01\x00x"), Err(AuthWireError::Trailing));
        assert_eq!(
            Hello::decode(b"\x01\x01\xff"),
            Err(AuthWireError::NotUtf8("token"))
        );
        let long = Hello::bearer("x".repeat(MAX_TOKEN + 1)).to_bytes();
        assert!(matches!(
            Hello::decode(&long),
            Err(AuthWireError::TooLong { what: "token", .. })
        ));
        assert_eq!(Verdict::decode(b"\x01\x00!"), Err(AuthWireError::Trailing));
        assert_eq!(Verdict::decode(b"\x01\x04"), Err(AuthWireError::BadCode(4)));
    }

    #[test]
    fn long_messages_are_cut_at_a_character() {
        let message = "é".repeat(MAX_MESSAGE);
        let verdict = Verdict::Refused {
            refusal: Refusal::Denied,
            message,
        };
        let Ok(Verdict::Refused { message, .. }) = Verdict::decode(&verdict.to_bytes()) else {
            panic!("a cut message decodes");
        };
        assert_eq!(message.len(), MAX_MESSAGE);
    }
}
