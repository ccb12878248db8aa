//! Access tokens for listeners off loopback: bearer secrets, stored hashed.
//!
//! A token is a name, an id and a secret. The secret (`plxt_` and 64 hex
//! digits, 32 random bytes) is shown once, when it is created; the store
//! keeps only its SHA-256, in `DIR/.plex-serve/tokens.json` (mode 0600),
//! so a copy of the file grants nothing. Clients send the secret as
//! `Authorization: Bearer plxt_…`. A revoked token stays listed, refused.
//!
//! The file is shared by `plex token create|list|revoke` and a running
//! `plex serve`: writers take an exclusive lock on `tokens.lock` and
//! replace the file whole (write and rename), and the server reloads it
//! when it changes, so a revocation takes effect on the next request.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::wire::rfc3339;

/// Where the server's own files live in the served directory.
pub const STATE_DIR: &str = ".plex-serve";
/// The token file, in [`STATE_DIR`].
pub const TOKENS_FILE: &str = "tokens.json";
/// What every secret starts with, so that secret scanners and people
/// recognise one.
pub const SECRET_PREFIX: &str = "plxt_";

/// Longest token name.
const MAX_NAME: usize = 128;

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token file or its directory could not be read or written.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The token file is not what this program writes.
    #[error("token file {path} is damaged: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No token has this id or name.
    #[error("no token `{0}`")]
    NotFound(String),
    /// A token with this name exists.
    #[error("a token named `{0}` exists")]
    Exists(String),
    /// Names are 1 to 128 printable characters.
    #[error("invalid token name `{0}`: 1 to 128 characters, no control characters")]
    BadName(String),
    /// The operating system's random source failed.
    #[error("no randomness for a new token")]
    Random,
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Its id (`t` and 16 hex digits), random, for revoking.
    pub id: String,
    /// The name given when it was created.
    pub name: String,
    /// When it was created (RFC 3339).
    pub created: String,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// One entry of the file: the info and the secret's SHA-256, hex.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    info: TokenInfo,
    sha256: String,
}

/// The file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    tokens: Vec<Stored>,
}

/// The tokens of one served directory.
#[derive(Debug)]
pub struct TokenStore {
    dir: PathBuf,
    /// The tokens as last read, and the file's identity then (inode,
    /// size, modification time), to notice a change.
    cache: Mutex<Option<(FileId, Vec<Stored>)>>,
}

type FileId = (u64, u64, i64, i64);

impl TokenStore {
    /// The tokens of the directory `dir` serves (nothing is read yet).
    pub fn new(dir: impl AsRef<Path>) -> TokenStore {
        TokenStore {
            dir: dir.as_ref().join(STATE_DIR),
            cache: Mutex::new(None),
        }
    }

    /// The token file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(TOKENS_FILE)
    }

    /// Creates a token named `name` and returns it with its secret, which
    /// is not stored and cannot be shown again.
    pub fn create(&self, name: &str) -> Result<(TokenInfo, String), TokenError> {
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control)
        {
            return Err(TokenError::BadName(name.to_owned()));
        }
        let random = SystemRandom::new();
        let mut secret = [0u8; 32];
        let mut id = [0u8; 8];
        random.fill(&mut secret).map_err(|_| TokenError::Random)?;
        random.fill(&mut id).map_err(|_| TokenError::Random)?;
        let secret = format!("{SECRET_PREFIX}{}", hex(&secret));
        let info = TokenInfo {
            id: format!("t{}", hex(&id)),
            name: name.to_owned(),
            created: rfc3339(SystemTime::now()),
            revoked: false,
        };
        self.update(|tokens| {
            if tokens.iter().any(|t| t.info.name == name) {
                return Err(TokenError::Exists(name.to_owned()));
            }
            tokens.push(Stored {
                info: info.clone(),
                sha256: hex(&sha256(secret.as_bytes())),
            });
            Ok(())
        })?;
        Ok((info, secret))
    }

    /// Every token, oldest first.
    pub fn list(&self) -> Result<Vec<TokenInfo>, TokenError> {
        Ok(self.current()?.into_iter().map(|t| t.info).collect())
    }

    /// Revokes the token with this id or name; revoking twice is harmless.
    pub fn revoke(&self, id_or_name: &str) -> Result<TokenInfo, TokenError> {
        let mut revoked = None;
        self.update(|tokens| {
            let token = tokens
                .iter_mut()
                .find(|t| t.info.id == id_or_name || t.info.name == id_or_name)
                .ok_or_else(|| TokenError::NotFound(id_or_name.to_owned()))?;
            token.info.revoked = true;
            revoked = Some(token.info.clone());
            Ok(())
        })?;
        Ok(revoked.expect("set by the update"))
    }

    /// The live token whose secret this is, if any. Reads the file again
    /// when it changed since the last call.
    pub fn verify(&self, secret: &str) -> Result<Option<TokenInfo>, TokenError> {
        // Digests are compared, not secrets: how long a comparison takes
        // can only tell a guesser about the SHA-256 of their own guess,
        // which they cannot steer towards a stored one.
        let presented = sha256(secret.as_bytes());
        Ok(self
            .current()?
            .into_iter()
            .find(|t| unhex(&t.sha256).is_some_and(|stored| stored == presented))
            .filter(|t| !t.info.revoked)
            .map(|t| t.info))
    }

    /// The tokens in the file now, from the cache if it has not changed.
    fn current(&self) -> Result<Vec<Stored>, TokenError> {
        let path = self.path();
        let id = match fs::metadata(&path) {
            Ok(meta) => Some((meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => return Err(TokenError::Io { path, source }),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match (&*cache, id) {
            (_, None) => Ok(Vec::new()),
            (Some((cached, tokens)), Some(id)) if *cached == id => Ok(tokens.clone()),
            (_, Some(id)) => {
                let tokens = self.read()?.tokens;
                *cache = Some((id, tokens.clone()));
                Ok(tokens)
            }
        }
    }

    fn read(&self) -> Result<TokenFile, TokenError> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(TokenFile::default()),
            Err(source) => return Err(TokenError::Io { path, source }),
        };
        let file: TokenFile = serde_json::from_slice(&bytes).map_err(|e| TokenError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if let Some(bad) = file.tokens.iter().find(|t| unhex(&t.sha256).is_none()) {
            return Err(TokenError::Corrupt {
                path,
                reason: format!("token {} has no valid hash", bad.info.id),
            });
        }
        Ok(file)
    }

    /// Changes the file under its lock: read, `change`, write whole.
    fn update(
        &self,
        change: impl FnOnce(&mut Vec<Stored>) -> Result<(), TokenError>,
    ) -> Result<(), TokenError> {
        let io = |source| TokenError::Io {
            path: self.dir.clone(),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(io)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join("tokens.lock"))
            .map_err(io)?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io(e.into()))?;
        let mut file = self.read()?;
        change(&mut file.tokens)?;
        let temp = self.dir.join(format!("{TOKENS_FILE}.tmp"));
        let json = serde_json::to_vec_pretty(&file).expect("tokens serialize");
        let written = (|| {
            let mut out = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&temp)?;
            out.write_all(&json)?;
            out.sync_all()?;
            fs::rename(&temp, self.path())?;
            File::open(&self.dir)?.sync_all()
        })();
        written.map_err(io)
        // The lock is released when `lock` is dropped.
    }
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_verify_revoke_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        assert_eq!(store.list().unwrap(), []);
        let (ci, secret) = store.create("ci").unwrap();
        assert!(secret.starts_with(SECRET_PREFIX) && secret.len() == 5 + 64);
        let (_, other) = store.create("laptop").unwrap();
        assert_ne!(secret, other);
        assert_eq!(store.verify(&secret).unwrap(), Some(ci.clone()));
        assert_eq!(store.verify("plxt_nope").unwrap(), None);
        assert!(matches!(store.create("ci"), Err(TokenError::Exists(_))));
        // The file holds hashes only.
        let file = fs::read_to_string(store.path()).unwrap();
        assert!(!file.contains(&secret[5..]));
        let mode = fs::metadata(store.path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Another handle (another process) revokes: this one notices.
        let revoked = TokenStore::new(dir.path()).revoke(&ci.id).unwrap();
        assert!(revoked.revoked);
        assert_eq!(store.verify(&secret).unwrap(), None);
        assert!(store.verify(&other).unwrap().is_some());
        assert!(store.revoke("laptop").unwrap().revoked);
        assert!(matches!(store.revoke("gone"), Err(TokenError::NotFound(_))));
        let names: Vec<_> = store.list().unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["ci", "laptop"]);
    }

    #[test]
    fn bad_names_and_a_damaged_file_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        for bad in ["", "a\nb", &"x".repeat(129)] {
            assert!(matches!(store.create(bad), Err(TokenError::BadName(_))));
        }
        store.create("ok").unwrap();
        fs::write(store.path(), b"{\"tokens\": [ {\"id\": 1} ]}").unwrap();
        assert!(matches!(store.list(), Err(TokenError::Corrupt { .. })));
        assert!(matches!(
            store.create("more"),
            Err(TokenError::Corrupt { .. })
        ));
        fs::write(
            store.path(),
            b"{\"tokens\":[{\"id\":\"t1\",\"name\":\"n\",\"created\":\"x\",\"revoked\":false,\"sha256\":\"zz\"}]}",
        )
        .unwrap();
        assert!(matches!(store.verify("x"), Err(TokenError::Corrupt { .. })));
    }
}
