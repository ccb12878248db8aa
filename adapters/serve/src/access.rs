//! Who may use a listener: this machine only (loopback, guarded against
//! DNS rebinding), or whoever presents a live access token (TLS).

use hyper::header::{HeaderMap, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::StatusCode;

use crate::error::{ApiError, Kind};
use crate::guard;
use crate::tokens::TokenStore;

/// A listener's access rule.
#[derive(Debug)]
pub(crate) enum Access {
    /// Plain HTTP on loopback: no credentials, but `Host` and `Origin`
    /// must be this machine's ([`guard::check`]).
    Local,
    /// TLS, anywhere: every request but `/healthz` carries
    /// `Authorization: Bearer <secret>` of a live token.
    Tokens(TokenStore),
}

impl Access {
    /// Admits a request for `path`, or says why not.
    pub(crate) fn check(&self, headers: &HeaderMap, path: &str) -> Result<(), ApiError> {
        let store = match self {
            Access::Local => return guard::check(headers),
            Access::Tokens(store) => store,
        };
        if path == "/healthz" {
            return Ok(());
        }
        let denied = |message: &str| ApiError::new(Kind::Permission, message);
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(denied("missing access key"));
        };
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| denied("invalid access key"))?;
        match store.verify(secret) {
            Ok(Some(token)) => {
                tracing::debug!(token = %token.id, "admitted");
                Ok(())
            }
            Ok(None) => Err(denied("invalid access key")),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the token file");
                Err(ApiError::new(Kind::Internal, "cannot check the access key")
                    .with_status(StatusCode::INTERNAL_SERVER_ERROR))
            }
        }
    }

    /// Whether a refusal should ask for a bearer token.
    pub(crate) fn challenges(&self) -> Option<(hyper::header::HeaderName, &'static str)> {
        match self {
            Access::Local => None,
            Access::Tokens(_) => Some((WWW_AUTHENTICATE, "Bearer")),
        }
    }
}
