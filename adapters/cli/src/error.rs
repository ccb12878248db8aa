//! The command's error report: a stable kind with its exit code, a message,
//! and optional hint, path, seq and input line; rendered as text on a
//! terminal and as one JSON line otherwise.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use plex_proto::pools::{ErrorKind, ErrorRecord};
use plex_serve::remote::RemoteError;
use serde::Serialize;

/// The stable error kinds: the store's own (shared with Plasmite), then
/// the bus's. Each has a fixed exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A bug in plex.
    Internal,
    /// A bad argument or input.
    Usage,
    /// A pool, a seq or a file does not exist.
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
    /// Messages were lost before they were read: overwritten in a pool, or
    /// dropped by a bus broker for a subscriber that fell behind.
    RetentionGap,
    /// The bus broker could not be reached, or the connection to it failed.
    Unreachable,
    /// No responder is subscribed to the request's channel.
    NoResponders,
    /// The responder failed before it answered.
    ResponderGone,
    /// A bus request got no answer in time.
    Timeout,
}

impl Kind {
    /// The process exit code.
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Kind::Internal => 1,
            Kind::Usage => 2,
            Kind::NotFound => 3,
            Kind::AlreadyExists => 4,
            Kind::Busy => 5,
            Kind::Permission => 6,
            Kind::Corrupt => 7,
            Kind::Io => 8,
            Kind::RetentionGap => 9,
            Kind::Unreachable => 10,
            Kind::NoResponders => 11,
            Kind::ResponderGone => 12,
            // As `follow --timeout` and timeout(1).
            Kind::Timeout => 124,
        }
    }

    /// The stable name printed in JSON error lines.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Internal => "Internal",
            Kind::Usage => "Usage",
            Kind::NotFound => "NotFound",
            Kind::AlreadyExists => "AlreadyExists",
            Kind::Busy => "Busy",
            Kind::Permission => "Permission",
            Kind::Corrupt => "Corrupt",
            Kind::Io => "Io",
            Kind::RetentionGap => "RetentionGap",
            Kind::Unreachable => "Unreachable",
            Kind::NoResponders => "NoResponders",
            Kind::ResponderGone => "ResponderGone",
            Kind::Timeout => "Timeout",
        }
    }
}

impl From<plex_store::ErrorKind> for Kind {
    /// Through the kinds `plex serve` reports, which own the mapping of the
    /// store's: a local and a remote pool fail with the same kind.
    fn from(kind: plex_store::ErrorKind) -> Kind {
        Kind::from(plex_serve::remote::error_kind(kind))
    }
}

/// The kind of an operating-system error.
fn kind_of_io(e: &io::Error) -> Kind {
    match e.kind() {
        io::ErrorKind::NotFound => Kind::NotFound,
        io::ErrorKind::AlreadyExists => Kind::AlreadyExists,
        io::ErrorKind::PermissionDenied => Kind::Permission,
        _ => Kind::Io,
    }
}

/// A failure of a command, or of one input line of `plex feed`.
#[derive(Debug)]
pub(crate) struct Error {
    kind: Kind,
    message: String,
    hint: Option<String>,
    path: Option<PathBuf>,
    seq: Option<u64>,
    line: Option<u64>,
    /// Writing to stdout failed because its reader went away.
    broken_pipe: bool,
}

/// Shorthand for results of this crate.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with `message`.
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            hint: None,
            path: None,
            seq: None,
            line: None,
            broken_pipe: false,
        }
    }

    /// A [`Kind::Usage`] error.
    pub(crate) fn usage(message: impl Into<String>) -> Error {
        Error::new(Kind::Usage, message)
    }

    /// An operating-system error while `doing` something with `path`.
    pub(crate) fn io(doing: &str, path: &Path, e: &io::Error) -> Error {
        Error::new(
            kind_of_io(e),
            format!("{doing} {}: {}", path.display(), plain_io(e)),
        )
        .with_path(path)
    }

    /// An error writing the command's output to stdout.
    pub(crate) fn output(e: &io::Error) -> Error {
        let mut err = Error::new(Kind::Io, format!("cannot write to stdout: {}", plain_io(e)));
        err.broken_pipe = e.kind() == io::ErrorKind::BrokenPipe;
        err
    }

    /// Adds a hint: what the user could do about it.
    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    /// Adds the file the error is about.
    pub(crate) fn with_path(mut self, path: &Path) -> Error {
        self.path = Some(path.to_path_buf());
        self
    }

    /// Adds the input line (1-based) the error is about.
    pub(crate) fn with_line(mut self, line: u64) -> Error {
        self.line = Some(line);
        self
    }

    /// The stable kind.
    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// The hint, if any.
    pub(crate) fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// Whether stdout's reader went away, which ends a command quietly.
    pub(crate) fn is_broken_pipe(&self) -> bool {
        self.broken_pipe
    }

    /// Writes the report to stderr: readable text on a terminal, else one
    /// JSON line `{"error":{...}}`. Failing to write stderr leaves nowhere
    /// to report to, so it is ignored.
    pub(crate) fn report(&self) {
        let stderr = io::stderr();
        let mut out = stderr.lock();
        let _ = if stderr.is_terminal() {
            writeln!(out, "{}", self.text())
        } else {
            writeln!(out, "{}", self.json())
        };
    }

    /// The terminal form: `error: message` and an indented hint.
    fn text(&self) -> String {
        match &self.hint {
            Some(hint) => format!("error: {}\n  hint: {hint}", self.message),
            None => format!("error: {}", self.message),
        }
    }

    /// The machine form: one line of JSON, absent fields omitted.
    fn json(&self) -> String {
        let body = ErrorLine {
            error: ErrorBody {
                kind: self.kind.name(),
                message: &self.message,
                hint: self.hint.as_deref(),
                path: self.path.as_ref().map(|p| p.to_string_lossy()),
                seq: self.seq,
                line: self.line,
            },
        };
        // Serialising strings and integers into a String cannot fail.
        serde_json::to_string(&body).unwrap_or_default()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<plex_store::Error> for Error {
    /// The store's error as `plex serve` reports it for a remote pool: one
    /// wording and one set of hints, wherever the pool is.
    fn from(e: plex_store::Error) -> Error {
        Error::from(plex_serve::remote::error_record(&e))
    }
}

impl From<ErrorRecord> for Error {
    fn from(e: ErrorRecord) -> Error {
        Error {
            kind: Kind::from(e.kind),
            message: e.message,
            hint: e.hint,
            path: e.path.map(PathBuf::from),
            seq: e.seq,
            line: None,
            broken_pipe: false,
        }
    }
}

impl From<ErrorKind> for Kind {
    /// The CLI's kind (and so exit code) of a shared kind; its name is the
    /// shared kind's name.
    fn from(kind: ErrorKind) -> Kind {
        match kind {
            ErrorKind::Usage => Kind::Usage,
            ErrorKind::NotFound => Kind::NotFound,
            ErrorKind::AlreadyExists => Kind::AlreadyExists,
            ErrorKind::Busy => Kind::Busy,
            ErrorKind::Permission => Kind::Permission,
            ErrorKind::Corrupt => Kind::Corrupt,
            ErrorKind::Io => Kind::Io,
            ErrorKind::RetentionGap => Kind::RetentionGap,
            // Internal, and any kind a newer server adds.
            _ => Kind::Internal,
        }
    }
}

impl From<RemoteError> for Error {
    /// A remote pool's failure: the server's own error as it reported it,
    /// else Unreachable (exit 10) for a connection that could not be made
    /// or failed, like `plex bus`.
    fn from(e: RemoteError) -> Error {
        match e {
            RemoteError::Server(record) => Error::from(record),
            RemoteError::Auth {
                ref url,
                ref source,
            } => crate::access::refused(url, source)
                .unwrap_or_else(|| Error::new(Kind::Unreachable, e.to_string())),
            RemoteError::Connect { .. } => Error::new(Kind::Unreachable, e.to_string()).with_hint(
                "is `plex serve` running there? it listens on tcp://127.0.0.1:7070 by default",
            ),
            RemoteError::Invalid(_) => Error::usage(e.to_string()),
            other => Error::new(Kind::Unreachable, other.to_string()),
        }
    }
}

/// The JSON error line.
#[derive(Serialize)]
struct ErrorLine<'a> {
    error: ErrorBody<'a>,
}

/// The fields of a JSON error line.
#[derive(Serialize)]
struct ErrorBody<'a> {
    kind: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<std::borrow::Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
}

/// An OS error's description without Rust's ` (os error N)` suffix.
fn plain_io(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_kinds_keep_their_names_and_store_kinds_map_through_them() {
        let shared = [
            ErrorKind::Internal,
            ErrorKind::Usage,
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::Busy,
            ErrorKind::Permission,
            ErrorKind::Corrupt,
            ErrorKind::Io,
            ErrorKind::RetentionGap,
        ];
        for kind in shared {
            assert_eq!(Kind::from(kind).name(), kind.name());
        }
        let store = plex_store::Error::NotFound {
            path: "/p.plex".into(),
        };
        assert_eq!(Kind::from(store.kind()), Kind::NotFound);
        assert_eq!(Kind::from(store.kind()).exit_code(), 3);
    }
}
