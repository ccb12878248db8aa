//! Why a [`RedbStore`](crate::RedbStore) could not be opened.

use std::path::PathBuf;

use plex_peer::{Code, Error};

/// Why [`RedbStore::open`](crate::RedbStore::open) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another handle, in this process or another, has the file open.
    #[error("store {} is already open", path.display())]
    InUse {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a redb database, or is damaged beyond repair.
    #[error("store {} is corrupt: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What redb found.
        message: String,
    },
    /// The file is in an older redb format that must be upgraded first.
    #[error("store {} is in redb file format {version}, which must be upgraded", path.display())]
    UpgradeRequired {
        /// The file.
        path: PathBuf,
        /// The format version in the file.
        version: u8,
    },
    /// Reading, writing or locking the file failed.
    #[error("i/o error on store {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the writer thread for store {}: {source}", path.display())]
    Thread {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// redb failed otherwise while preparing the store's tables.
    #[error("cannot open store {}: {message}", path.display())]
    Database {
        /// The file.
        path: PathBuf,
        /// redb's error, in words.
        message: String,
    },
}

impl OpenError {
    pub(crate) fn from_redb(path: PathBuf, e: redb::Error) -> OpenError {
        match e {
            redb::Error::DatabaseAlreadyOpen => OpenError::InUse { path },
            redb::Error::Corrupted(message) => OpenError::Corrupt { path, message },
            redb::Error::UpgradeRequired(version) => OpenError::UpgradeRequired { path, version },
            redb::Error::Io(source) => OpenError::Io { path, source },
            e => OpenError::Database {
                path,
                message: e.to_string(),
            },
        }
    }
}

impl From<OpenError> for Error {
    /// A store that cannot be opened is a backend failure to a caller of
    /// the port.
    fn from(e: OpenError) -> Error {
        Error::failed(Code::DriverError, e.to_string())
    }
}
