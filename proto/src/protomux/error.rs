//! Protomux errors. Both are the peer's fault: bytes that do not form a
//! message, or a frame longer than the receiver accepts.

/// Bytes from the peer do not form a valid Protomux message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A compact-encoding field is truncated, runs past the end, is not
    /// UTF-8, or is followed by stray bytes.
    #[error(transparent)]
    Malformed(#[from] crate::rpc::DecodeError),
    /// A BATCH carries another BATCH, which neither side ever writes.
    #[error("BATCH nested inside a BATCH")]
    NestedBatch,
}

/// The length-prefixed byte stream cannot be split into messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A length prefix announces a message over the decoder's limit.
    #[error("frame announces {len} bytes, the limit is {max}")]
    TooLarge {
        /// The announced length.
        len: u32,
        /// The decoder's `max_message`.
        max: usize,
    },
}
