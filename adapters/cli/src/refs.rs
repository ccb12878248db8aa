//! Pool references: a bare name inside the pool directory, or a path.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use plex_store::{Options, Pool};

use crate::error::{Error, Kind, Result};

/// The file extension of named pools: `NAME` is `<dir>/NAME.plex`.
pub(crate) const EXTENSION: &str = "plex";

/// Where named pools live: `--dir`, else `$PLEX_DIR`, else
/// `$XDG_DATA_HOME/plex/pools`, else `~/.local/share/plex/pools`.
#[derive(Debug, Clone)]
pub(crate) struct PoolDir {
    explicit: Option<PathBuf>,
}

impl PoolDir {
    /// The directory chosen by `--dir`, if given.
    pub(crate) fn new(explicit: Option<PathBuf>) -> PoolDir {
        PoolDir { explicit }
    }

    /// Resolves the directory; only named pools need it.
    pub(crate) fn path(&self) -> Result<PathBuf> {
        if let Some(dir) = &self.explicit {
            if dir.as_os_str().is_empty() {
                return Err(Error::usage("--dir must not be empty"));
            }
            return Ok(dir.clone());
        }
        let env = |key| std::env::var_os(key).filter(|v: &OsString| !v.is_empty());
        if let Some(dir) = env("PLEX_DIR") {
            return Ok(PathBuf::from(dir));
        }
        // The XDG spec says to ignore relative values.
        if let Some(data) = env("XDG_DATA_HOME").filter(|d| Path::new(d).is_absolute()) {
            return Ok(Path::new(&data).join("plex/pools"));
        }
        if let Some(home) = env("HOME") {
            return Ok(Path::new(&home).join(".local/share/plex/pools"));
        }
        Err(
            Error::usage("cannot choose a pool directory: HOME is not set")
                .with_hint("pass --dir DIR or set PLEX_DIR"),
        )
    }
}

/// A pool named on the command line.
#[derive(Debug, Clone)]
pub(crate) struct PoolRef {
    /// The argument as given.
    pub(crate) arg: OsString,
    /// The name, when the argument was a name rather than a path.
    pub(crate) name: Option<String>,
    /// The pool file.
    pub(crate) path: PathBuf,
}

impl PoolRef {
    /// Resolves `arg`: an argument containing `/` is a path, anything else a
    /// name in `dir`. A name that is empty, `.`, `..`, or holds a NUL or a
    /// path separator is refused, so names never leave the directory.
    pub(crate) fn resolve(arg: &OsStr, dir: &PoolDir) -> Result<PoolRef> {
        if arg.as_encoded_bytes().contains(&b'/') {
            return Ok(PoolRef {
                arg: arg.to_owned(),
                name: None,
                path: PathBuf::from(arg),
            });
        }
        check_name(arg)?;
        let mut file = arg.to_owned();
        file.push(".");
        file.push(EXTENSION);
        Ok(PoolRef {
            arg: arg.to_owned(),
            name: Some(arg.to_string_lossy().into_owned()),
            path: dir.path()?.join(file),
        })
    }

    /// Opens the pool for appending with `options` (taking the writer lock
    /// and recovering it), with a hint to create it if missing.
    pub(crate) fn open(&self, options: Options) -> Result<Pool> {
        Pool::open_with(&self.path, options).map_err(|e| self.open_failed(e))
    }

    /// Opens the pool for reading only: no lock, no recovery, no writes.
    pub(crate) fn open_read_only(&self) -> Result<Pool> {
        Pool::open_read_only(&self.path).map_err(|e| self.open_failed(e))
    }

    /// The error for a pool that could not be opened.
    fn open_failed(&self, e: plex_store::Error) -> Error {
        let err = Error::from(e);
        if err.kind() == Kind::NotFound {
            err.with_hint(format!(
                "create it with `plex pool create {}`",
                self.arg.to_string_lossy()
            ))
        } else {
            err
        }
    }
}

/// Refuses names that would escape or confuse the pool directory.
fn check_name(name: &OsStr) -> Result<()> {
    let bytes = name.as_encoded_bytes();
    let why = if bytes.is_empty() {
        "is empty"
    } else if bytes == b"." || bytes == b".." {
        "is a directory reference"
    } else if bytes.contains(&0) {
        "contains a NUL byte"
    } else if name.to_string_lossy().chars().any(std::path::is_separator) {
        "contains a path separator"
    } else {
        return Ok(());
    };
    Err(Error::usage(format!(
        "invalid pool name `{}`: it {why}",
        name.to_string_lossy()
    ))
    .with_hint("a name is one file name in the pool directory; give a path containing `/` for a pool elsewhere"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_in_the_directory() {
        let dir = PoolDir::new(Some(PathBuf::from("/pools")));
        let named = PoolRef::resolve(OsStr::new("orders"), &dir).unwrap();
        assert_eq!(named.path, Path::new("/pools/orders.plex"));
        assert_eq!(named.name.as_deref(), Some("orders"));
        let dotted = PoolRef::resolve(OsStr::new("..x"), &dir).unwrap();
        assert_eq!(dotted.path, Path::new("/pools/..x.plex"));
        let path = PoolRef::resolve(OsStr::new("./here.pool"), &dir).unwrap();
        assert_eq!(path.path, Path::new("./here.pool"));
        assert_eq!(path.name, None);
        for bad in ["", ".", "..", "a\0b"] {
            let err = PoolRef::resolve(OsStr::new(bad), &dir).unwrap_err();
            assert_eq!(err.kind(), Kind::Usage, "{bad:?}");
        }
    }

    #[test]
    fn empty_dir_is_refused() {
        let dir = PoolDir::new(Some(PathBuf::new()));
        let err = PoolRef::resolve(OsStr::new("a"), &dir).unwrap_err();
        assert_eq!(err.kind(), Kind::Usage);
    }
}
