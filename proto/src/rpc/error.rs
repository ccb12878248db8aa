//! Codec errors. [`DecodeError`] is the peer's fault (malformed bytes);
//! [`EncodeError`] is the caller's (a value the wire cannot carry).

/// Bytes from the peer do not form a valid neonplex RPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a fixed-size field.
    #[error("truncated: input ends inside {what}")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// A length prefix announces more bytes than remain in the input.
    #[error("{what} announces {len} bytes, only {remaining} remain")]
    LengthOverflow {
        /// The field being read.
        what: &'static str,
        /// The announced length.
        len: u64,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// A type or status byte has a value the format does not define.
    #[error("{what} has undefined value {value:#04x}")]
    BadTag {
        /// The field being read.
        what: &'static str,
        /// The byte found.
        value: u8,
    },
    /// A boolean byte is neither 0 nor 1.
    #[error("{what} is {value:#04x}, not a boolean (0 or 1)")]
    BadBool {
        /// The field being read.
        what: &'static str,
        /// The byte found.
        value: u8,
    },
    /// A string field is not valid UTF-8.
    #[error("{what} is not valid UTF-8")]
    BadUtf8 {
        /// The field being read.
        what: &'static str,
    },
    /// Bytes remain after a complete message.
    #[error("{len} bytes after the end of {what}")]
    TrailingBytes {
        /// The message that ended early.
        what: &'static str,
        /// How many bytes follow it.
        len: usize,
    },
    /// A request body was decoded for a method id with no store body.
    #[error("method id {0} has no store body")]
    UnknownMethod(u8),
}

/// A value cannot be written in neonplex's format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A field is longer than its fixed-width length prefix can express.
    #[error("{what} is {len} bytes, the format allows at most {max}")]
    TooLong {
        /// The field being written.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The largest length the prefix holds.
        max: usize,
    },
}
