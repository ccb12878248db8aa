//! How remote commands reach a `plex serve` or a broker: the access token
//! they present and what `tls://` trusts (`--token` / `PLEX_TOKEN`,
//! `--tls-ca` / `PLEX_TLS_CA`).

use std::path::PathBuf;

use clap::Args;
use plex_runtime::auth::AuthError;
use plex_runtime::tls::ClientTls;
use plex_tokio::ConnectOptions;

use crate::error::{Error, Kind, Result};

/// The options of every command that may connect to a server.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct Access {
    /// The access token to present to a server that requires one (a
    /// tls:// listener off loopback): a secret of `plex token create`.
    /// PLEX_TOKEN keeps it out of the process list
    #[arg(
        long,
        env = "PLEX_TOKEN",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub(crate) token: Option<String>,
    /// Trust the CA certificates in this PEM file for tls:// (a server's
    /// own certificate, for one that is self-signed) rather than the
    /// system's roots; a URL's ?fingerprint=sha256:HEX pins one instead
    #[arg(long, env = "PLEX_TLS_CA", value_name = "FILE")]
    pub(crate) tls_ca: Option<PathBuf>,
}

impl Access {
    /// The options to dial with.
    pub(crate) fn options(&self) -> Result<ConnectOptions> {
        let mut options = ConnectOptions::default();
        if let Some(path) = &self.tls_ca {
            let tls = ClientTls::ca_file(path).map_err(|e| {
                Error::usage(format!("cannot use --tls-ca {}: {e}", path.display()))
                    .with_hint("give a PEM file of CERTIFICATE blocks (or set PLEX_TLS_CA)")
            })?;
            options = options.tls(tls);
        }
        if let Some(token) = self.token.as_deref().filter(|t| !t.is_empty()) {
            options = options.token(token);
        }
        Ok(options)
    }
}

/// The report of a server that did not admit the connection; `None` for
/// failures of the connection itself.
pub(crate) fn refused(url: &str, e: &AuthError) -> Option<Error> {
    let hint = match e {
        AuthError::Required(_) => {
            "pass --token SECRET or set PLEX_TOKEN (`plex token create NAME` on the server makes one)"
        }
        AuthError::Denied(_) => {
            "the token is not one of the server's live tokens (mistyped or revoked); \
             `plex token list` on the server shows them"
        }
        AuthError::Unavailable(_) => "the server cannot read its token file: see its log",
        _ => return None,
    };
    Some(Error::new(Kind::Permission, format!("{url}: {e}")).with_hint(hint))
}
