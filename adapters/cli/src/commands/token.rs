//! `plex token create|list|revoke`: the access tokens of `plex serve`,
//! kept hashed in the pool directory (`plex_serve::tokens`).

use plex_serve::tokens::{TokenError, TokenInfo, TokenStore};
use serde::Serialize;

use crate::cli::TokenCommand;
use crate::commands::Outcome;
use crate::error::{Error, Kind, Result};
use crate::output::Out;
use crate::refs::PoolDir;

/// A new token's record: its info and, this once, its secret.
#[derive(Serialize)]
struct Created<'a> {
    #[serde(flatten)]
    info: &'a TokenInfo,
    secret: &'a str,
}

/// Runs one `plex token` subcommand.
pub(crate) fn run(command: TokenCommand, dir: &PoolDir, out: &mut Out) -> Result<Outcome> {
    let store = TokenStore::new(dir.path()?);
    match command {
        TokenCommand::Create(args) => {
            let (info, secret) = store.create(&args.name).map_err(report)?;
            out.record(&Created {
                info: &info,
                secret: &secret,
            })?;
        }
        TokenCommand::List => {
            for info in store.list().map_err(report)? {
                out.record(&info)?;
            }
        }
        TokenCommand::Revoke(args) => out.record(&store.revoke(&args.token).map_err(report)?)?,
    }
    Ok(Outcome::Success)
}

fn report(e: TokenError) -> Error {
    match &e {
        TokenError::Io { path, source } => Error::io("cannot use the token file", path, source),
        TokenError::Corrupt { .. } => Error::new(Kind::Corrupt, e.to_string()),
        TokenError::NotFound(_) => {
            Error::new(Kind::NotFound, e.to_string()).with_hint("`plex token list` shows them")
        }
        TokenError::Exists(_) => Error::new(Kind::AlreadyExists, e.to_string()),
        TokenError::BadName(_) => Error::usage(e.to_string()),
        _ => Error::new(Kind::Internal, e.to_string()),
    }
}
