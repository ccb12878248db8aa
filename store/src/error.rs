//! The error type of the crate and its stable kinds.

use std::ops::Range;
use std::path::PathBuf;

use crate::Seq;

/// Where in a pool file corruption was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// A byte offset from the start of the file.
    Offset(u64),
    /// The frame that should hold this seq.
    Seq(Seq),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Offset(off) => write!(f, "offset {off}"),
            Location::Seq(seq) => write!(f, "seq {seq}"),
        }
    }
}

/// Every failure of a pool operation.
///
/// Errors are input or environment problems; a panic would be a bug.
/// [`Error::kind`] maps each variant to a stable [`ErrorKind`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An invariant of this crate did not hold: a bug, please report it.
    #[error("internal error: {0}")]
    Internal(String),
    /// The caller passed an argument the pool cannot accept. The message
    /// is complete on its own (the kind says it is a usage error).
    #[error("{0}")]
    Usage(String),
    /// An append through a handle opened with
    /// [`crate::Pool::open_read_only`].
    #[error("pool {} is open read-only; open it with Pool::open to append", path.display())]
    ReadOnly {
        /// The pool's path.
        path: PathBuf,
    },
    /// The pool file does not exist.
    #[error("pool not found: {}", path.display())]
    NotFound {
        /// The path that was opened.
        path: PathBuf,
    },
    /// The requested seq is not in the pool: not yet written, or already overwritten.
    #[error("seq {seq} is not in the pool (it holds {oldest}..={newest})")]
    SeqNotFound {
        /// The requested seq.
        seq: Seq,
        /// The oldest seq the pool held when asked.
        oldest: Seq,
        /// The newest seq the pool held when asked (0 when empty).
        newest: Seq,
    },
    /// A pool file already exists at the path given to [`crate::Pool::create`].
    #[error("pool already exists: {}", path.display())]
    AlreadyExists {
        /// The path that was created.
        path: PathBuf,
    },
    /// The pool is locked and the operation was asked not to wait.
    #[error("pool is busy: {}", path.display())]
    Busy {
        /// The pool's path.
        path: PathBuf,
    },
    /// The operating system denied access to the pool file.
    #[error("permission denied: {}", path.display())]
    Permission {
        /// The pool's path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid pool, or holds a frame that fails validation.
    #[error("corrupt pool {} at {at}: {reason}", path.display())]
    Corrupt {
        /// The pool's path (empty for [`crate::check_bytes`]).
        path: PathBuf,
        /// Where the problem was found.
        at: Location,
        /// What was wrong.
        reason: &'static str,
    },
    /// The file is a pool of a format version this build does not read.
    #[error("pool {} has format version {found}; this build reads version {supported}", path.display())]
    UnsupportedVersion {
        /// The pool's path.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// An operating-system call failed.
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        /// The pool's path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A sync of the pool failed earlier, in this or another process, so
    /// appends with [`crate::Durability::Flush`] can no longer be
    /// acknowledged: after a failed `fsync` the kernel may have dropped
    /// pages, and a later sync would claim them. The mark is kept in the
    /// file ([`crate::Info::sync_failed`]); recreate the pool (and check the
    /// storage) to sync again. Kind [`ErrorKind::Io`].
    #[error(
        "an earlier sync of pool {} failed: appends with Flush can no longer be \
         acknowledged; check the storage and recreate the pool",
        path.display()
    )]
    SyncFailed {
        /// The pool's path.
        path: PathBuf,
    },
    /// A reader fell behind and these seqs were overwritten before it read them.
    ///
    /// The cursor that reported it has moved past the gap and can continue.
    #[error("retention gap: seqs {}..{} were overwritten", lost.start, lost.end)]
    RetentionGap {
        /// The lost seqs, `start` inclusive, `end` exclusive.
        lost: Range<Seq>,
    },
}

/// The stable classification of an [`Error`], for exit codes and matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A bug in this crate.
    Internal,
    /// A bad argument, or a file this build cannot use.
    Usage,
    /// A pool or a seq does not exist.
    NotFound,
    /// The pool already exists.
    AlreadyExists,
    /// The pool is locked.
    Busy,
    /// Access was denied.
    Permission,
    /// The pool file failed validation.
    Corrupt,
    /// An operating-system call failed.
    Io,
    /// Messages were overwritten before they were read.
    RetentionGap,
}

impl Error {
    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Internal(_) => ErrorKind::Internal,
            Error::Usage(_) | Error::ReadOnly { .. } | Error::UnsupportedVersion { .. } => {
                ErrorKind::Usage
            }
            Error::NotFound { .. } | Error::SeqNotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::Busy { .. } => ErrorKind::Busy,
            Error::Permission { .. } => ErrorKind::Permission,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Io { .. } | Error::SyncFailed { .. } => ErrorKind::Io,
            Error::RetentionGap { .. } => ErrorKind::RetentionGap,
        }
    }

    /// Classifies an OS error on `path`.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        let path = path.to_path_buf();
        match source.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound { path },
            std::io::ErrorKind::AlreadyExists => Error::AlreadyExists { path },
            std::io::ErrorKind::PermissionDenied => Error::Permission { path, source },
            _ => Error::Io { path, source },
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
