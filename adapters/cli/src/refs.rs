//! Pool references: a bare name inside the pool directory, or a path.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use plex_store::{Options, Pool};

use crate::error::{Error, Kind, Result};

/// The file extension of named pools: `NAME` is `<dir>/NAME.plex`.
pub(crate) const EXTENSION: &str = "plex";

/// The size of a pool created without `--size` or `--create-size`: 64 MiB.
pub(crate) const DEFAULT_SIZE: u64 = 64 << 20;

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

    /// Creates the pool file with `size` and `options` and opens it. A named
    /// pool gets its directory created first. A pool that is already there
    /// is an [`Kind::AlreadyExists`] error.
    pub(crate) fn create(&self, size: u64, options: Options) -> Result<Pool> {
        if self.name.is_some() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io("cannot create the pool directory", dir, &e))?;
            }
        }
        Pool::create(&self.path, size, options).map_err(|e| {
            let err = Error::from(e);
            match err.kind() {
                Kind::AlreadyExists => self.already_exists(),
                Kind::NotFound => err.with_hint("the directory of the pool file does not exist"),
                _ => err,
            }
        })
    }

    /// Opens the pool for appending like [`PoolRef::open`], creating it
    /// first (like [`PoolRef::create`], with `size` or else
    /// [`DEFAULT_SIZE`]) if it does not exist. When `size` is given, an
    /// existing pool of another size is refused with
    /// [`Kind::AlreadyExists`] rather than used: what was asked for is not
    /// what is there. Two processes racing to create the pool both end up
    /// with the one that won.
    pub(crate) fn open_or_create(&self, size: Option<u64>, options: Options) -> Result<Pool> {
        let existing = match Pool::open_with(&self.path, options.clone()) {
            Ok(pool) => pool,
            Err(e) if Kind::from(e.kind()) == Kind::NotFound => {
                match self.create(size.unwrap_or(DEFAULT_SIZE), options.clone()) {
                    Ok(pool) => return Ok(pool),
                    // Another process created it since.
                    Err(e) if e.kind() == Kind::AlreadyExists => self.open(options)?,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(self.open_failed(e)),
        };
        match size {
            Some(size) if size != existing.info().file_len => Err(Error::new(
                Kind::AlreadyExists,
                format!(
                    "pool already exists with another size: {} has {} bytes, not {size}",
                    self.path.display(),
                    existing.info().file_len
                ),
            )
            .with_path(&self.path)
            .with_hint(format!(
                "omit --create-size to use the pool as it is, or delete it first with `plex pool delete {}`",
                self.arg.to_string_lossy()
            ))),
            _ => Ok(existing),
        }
    }

    /// The error for a pool file that is already there.
    pub(crate) fn already_exists(&self) -> Error {
        Error::new(
            Kind::AlreadyExists,
            format!("pool already exists: {}", self.path.display()),
        )
        .with_path(&self.path)
        .with_hint(format!(
            "choose another name, or delete it first with `plex pool delete {}`",
            self.arg.to_string_lossy()
        ))
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
                "create it with `plex pool create {}` (or feed it with --create)",
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
