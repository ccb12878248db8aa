//! Errors: [`ServeError`] for the operator (binding, shutting down), and
//! [`ApiError`], what a request gets back: Plasmite's error envelope with
//! the status Plasmite maps its kind to.

use std::net::SocketAddr;
use std::path::PathBuf;

use hyper::StatusCode;
use serde::Serialize;

/// Why a server could not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listener's URL is not `http://HOST:PORT` with an IP or `localhost`.
    #[error("invalid listener URL `{url}`: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A limit is zero, which would refuse everything.
    #[error("the limit {0} must be at least 1")]
    Limit(&'static str),
    /// The address is off loopback without TLS: other machines must come
    /// through TLS with an access token.
    #[error(
        "refusing to listen on {addr} without TLS: other machines may connect only over \
         https, with an access token; listen on https://{addr} with a certificate, or on \
         127.0.0.1 or [::1]"
    )]
    OffLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// A `plex/1` listener off loopback without TLS: other machines must
    /// come over `tls://`, with an access token.
    #[error(
        "refusing to listen on {addr} over plex/1 without TLS: other machines may connect \
         only over tls://, with an access token; listen on tls://{addr} with a certificate, \
         or on 127.0.0.1 or [::1]"
    )]
    PlexOffLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// A `tls://` listener without a certificate ([`crate::Config::listen_tls`]).
    #[error("the plex/1 listener {url} needs a TLS certificate")]
    PlexNoCertificate {
        /// The listener's URL.
        url: String,
    },
    /// The socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The pool directory could not be created or resolved.
    #[error("cannot use the pool directory {}: {source}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The key-value store of the store ports could not be opened.
    #[error("cannot open the key-value store {}: {reason}", path.display())]
    Store {
        /// Its file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Syncing a pool at shutdown failed.
    #[error("cannot sync a pool at shutdown: {0}")]
    Sync(#[source] plex_store::Error),
}

/// The protocol's error kinds (Plasmite's, which plex's store shares):
/// the one table of kinds, shared with remote pools and the `plex` CLI,
/// with [`crate::remote::error_kind`] mapping the store's to it.
pub(crate) use plex_proto::pools::ErrorKind as Kind;

/// Plasmite's status for a kind (`interface_wire::error_policy`).
fn status(kind: Kind) -> StatusCode {
    match kind {
        Kind::Usage => StatusCode::BAD_REQUEST,
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::AlreadyExists => StatusCode::CONFLICT,
        Kind::Busy => StatusCode::LOCKED,
        Kind::Permission => StatusCode::UNAUTHORIZED,
        Kind::RetentionGap => StatusCode::GONE,
        // Internal, Corrupt, Io, and any kind a newer protocol adds.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A failed request: an error envelope and its status.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) kind: Kind,
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) path: Option<String>,
    pub(crate) seq: Option<u64>,
    /// The methods a route takes, for a 405's `Allow` header.
    pub(crate) allow: Option<String>,
}

impl ApiError {
    /// An error of `kind` with Plasmite's status for it.
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            status: status(kind),
            message: message.into(),
            path: None,
            seq: None,
            allow: None,
        }
    }

    /// A [`Kind::Usage`] error (400).
    pub(crate) fn usage(message: impl Into<String>) -> ApiError {
        ApiError::new(Kind::Usage, message)
    }

    /// A [`Kind::Busy`] error (423).
    pub(crate) fn busy(message: impl Into<String>) -> ApiError {
        ApiError::new(Kind::Busy, message)
    }

    /// A store failure on the pool file at `path`.
    pub(crate) fn store(e: &plex_store::Error, path: &std::path::Path) -> ApiError {
        let mut err = ApiError::new(crate::remote::error_kind(e.kind()), e.to_string());
        err.path = Some(path.to_string_lossy().into_owned());
        match e {
            plex_store::Error::SeqNotFound { seq, .. } => {
                // Plasmite's wording, which its clients show.
                err.message = "message not found".into();
                err.seq = Some(seq.get());
            }
            plex_store::Error::Corrupt {
                at: plex_store::Location::Seq(seq),
                ..
            } => err.seq = Some(seq.get()),
            plex_store::Error::RetentionGap { lost } => err.seq = Some(lost.start.get()),
            _ => {}
        }
        err
    }

    /// Replaces the status (the kind stays): 403, 413, 415, 405.
    pub(crate) fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    /// Adds the seq the error is about.
    pub(crate) fn with_seq(mut self, seq: u64) -> ApiError {
        self.seq = Some(seq);
        self
    }

    /// The envelope `{"error":{"kind":…,"message":…,"path":…,"seq":…}}`.
    pub(crate) fn envelope(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Envelope<'a> {
            error: Body<'a>,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            kind: &'static str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            path: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            seq: Option<u64>,
        }
        let envelope = Envelope {
            error: Body {
                kind: self.kind.name(),
                message: &self.message,
                path: self.path.as_deref(),
                seq: self.seq,
            },
        };
        // Strings and integers always serialise.
        serde_json::to_vec(&envelope).unwrap_or_default()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.kind.name(),
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_plasmites_statuses() {
        let cases = [
            (Kind::Usage, 400),
            (Kind::NotFound, 404),
            (Kind::AlreadyExists, 409),
            (Kind::Busy, 423),
            (Kind::Permission, 401),
            (Kind::Corrupt, 500),
            (Kind::Io, 500),
            (Kind::Internal, 500),
            (Kind::RetentionGap, 410),
        ];
        for (kind, status) in cases {
            let err = ApiError::new(kind, "m");
            assert_eq!(err.status.as_u16(), status, "{kind:?}");
            let envelope: serde_json::Value = serde_json::from_slice(&err.envelope()).unwrap();
            assert_eq!(
                envelope,
                serde_json::json!({"error": {"kind": kind.name(), "message": "m"}})
            );
        }
    }

    #[test]
    fn store_errors_keep_their_path_and_seq() {
        let path = std::path::Path::new("/pools/a.plex");
        let missing = plex_store::Error::SeqNotFound {
            seq: plex_store::Seq(7),
            oldest: plex_store::Seq(1),
            newest: plex_store::Seq(3),
        };
        let err = ApiError::store(&missing, path);
        assert_eq!((err.kind, err.status.as_u16()), (Kind::NotFound, 404));
        assert_eq!(err.message, "message not found");
        assert_eq!(
            (err.path.as_deref(), err.seq),
            (Some("/pools/a.plex"), Some(7))
        );
        let gap = plex_store::Error::RetentionGap {
            lost: plex_store::Seq(2)..plex_store::Seq(5),
        };
        let err = ApiError::store(&gap, path);
        assert_eq!(
            (err.kind, err.status.as_u16(), err.seq),
            (Kind::RetentionGap, 410, Some(2))
        );
        let exists = plex_store::Error::AlreadyExists { path: path.into() };
        assert_eq!(ApiError::store(&exists, path).status.as_u16(), 409);
    }
}
