//! Who may use a `plex/1` listener: this machine only (`tcp://`, `ws://`
//! on loopback, no credentials), or whoever authenticates the session with
//! a live access token (`tls://`, required off loopback).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use plex_runtime::auth::{gate, AuthError, Refusal};
use plex_runtime::{Endpoint, ErrorCode, Scheme, Session};

use crate::error::ServeError;
use crate::tokens::TokenStore;

/// A checked `plex/1` listener URL.
#[derive(Debug, Clone)]
pub(crate) struct ListenUrl {
    /// Where to listen.
    pub(crate) endpoint: Endpoint,
    /// Whether its sessions must authenticate with an access token.
    pub(crate) tokens: bool,
}

/// Checks a `plex/1` listener URL: `tcp://` or `ws://` on loopback, or
/// `tls://` anywhere given a certificate (`tls`). Sessions must
/// authenticate off loopback, and everywhere with `require_token`.
pub(crate) fn check_listen_url(
    url: &str,
    tls: bool,
    require_token: bool,
) -> Result<ListenUrl, ServeError> {
    let bad = |reason: &str| ServeError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let expected = "expected tcp://HOST:PORT, ws://HOST:PORT[/PATH] or tls://HOST:PORT";
    let endpoint: Endpoint = url.parse().map_err(|e| bad(&format!("{e}; {expected}")))?;
    match endpoint.scheme {
        Scheme::Tcp | Scheme::Ws => {}
        Scheme::Tls if endpoint.fingerprint.is_some() => {
            return Err(bad("a listener takes no ?fingerprint="))
        }
        Scheme::Tls if !tls => {
            return Err(ServeError::PlexNoCertificate {
                url: url.to_owned(),
            })
        }
        Scheme::Tls => {}
        _ => return Err(bad(expected)),
    }
    let ip = endpoint
        .ip()
        .ok_or_else(|| bad("the host must be an IP address or localhost"))?;
    let loopback = ip.is_loopback();
    if !loopback && endpoint.scheme != Scheme::Tls {
        return Err(ServeError::PlexOffLoopback {
            addr: SocketAddr::new(ip, endpoint.port),
        });
    }
    Ok(ListenUrl {
        endpoint,
        tokens: require_token || !loopback,
    })
}

/// How often an admitted session's token is checked again, so that a
/// revocation ends the sessions it admitted.
const RECHECK: Duration = Duration::from_secs(1);

/// The admission of sessions that must authenticate.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    pub(crate) tokens: Arc<TokenStore>,
    /// How long a session may take to authenticate.
    pub(crate) timeout: Duration,
}

impl Gate {
    /// Runs the session's authentication: the secret it was admitted
    /// with, or `None` when it was not. A session refused is told why and
    /// closed gracefully (within the timeout); one that does not
    /// authenticate in time is dropped.
    pub(crate) async fn admit(&self, session: &Session) -> Option<String> {
        let request = match gate(session, self.timeout).await {
            Ok(request) => request,
            Err(AuthError::Wire(e)) => {
                // Refused already; let the verdict out before closing.
                tracing::debug!(error = %e, "malformed authentication");
                self.close(session).await;
                return None;
            }
            Err(e) => {
                tracing::debug!(error = %e, "not authenticated; dropping the session");
                // Closed already, unless the deadline passed.
                let _ = session.go_away(ErrorCode::PROTOCOL_ERROR);
                return None;
            }
        };
        let refused = match request.token() {
            None => Some((Refusal::Required, "this server requires an access token")),
            Some(secret) => match self.tokens.verify(secret) {
                Ok(Some(token)) => {
                    tracing::debug!(token = %token.id, "admitted");
                    None
                }
                Ok(None) => Some((Refusal::Denied, "invalid or revoked access token")),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the token file");
                    Some((Refusal::Unavailable, "cannot check the access token"))
                }
            },
        };
        match refused {
            None => {
                let secret = request.token().map(str::to_owned);
                request.admit().ok().and(secret)
            }
            Some((refusal, message)) => {
                tracing::debug!(reason = message, "refused");
                if request.refuse(refusal, message).is_ok() {
                    self.close(session).await;
                }
                None
            }
        }
    }

    /// Closes the session once the token it was admitted with is revoked
    /// (checked every [`RECHECK`]); returns when the session closes.
    pub(crate) async fn watch(&self, session: &Session, secret: &str) {
        loop {
            tokio::select! {
                _ = session.closed() => return,
                () = tokio::time::sleep(RECHECK) => {}
            }
            match self.tokens.verify(secret) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    tracing::info!("its access token was revoked; closing the session");
                    let _ = session.go_away(ErrorCode::CANCEL);
                    return;
                }
                // Unreadable for now: the session keeps its admission,
                // and new ones are refused until the file reads again.
                Err(e) => tracing::error!(error = %e, "cannot read the token file"),
            }
        }
    }

    /// Closes gracefully, so that a verdict reaches the client, within the
    /// timeout.
    async fn close(&self, session: &Session) {
        if tokio::time::timeout(self.timeout, session.close())
            .await
            .is_err()
        {
            let _ = session.go_away(ErrorCode::PROTOCOL_ERROR);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_urls_are_plex_on_loopback_or_tls() {
        for good in [
            crate::DEFAULT_PLEX,
            "tcp://localhost:0",
            "ws://127.0.0.1:0/plex",
            "tcp://[::1]:7070",
        ] {
            let checked = check_listen_url(good, false, false).unwrap();
            assert!(!checked.tokens, "{good}");
            assert!(check_listen_url(good, false, true).unwrap().tokens);
        }
        let tls = check_listen_url("tls://127.0.0.1:0", true, false).unwrap();
        assert!(!tls.tokens);
        let anywhere = check_listen_url("tls://0.0.0.0:7443", true, false).unwrap();
        assert!(anywhere.tokens);
        for off in ["tcp://0.0.0.0:7070", "ws://192.0.2.1:80/plex"] {
            assert!(
                matches!(
                    check_listen_url(off, true, true),
                    Err(ServeError::PlexOffLoopback { .. })
                ),
                "{off}"
            );
        }
        assert!(matches!(
            check_listen_url("tls://0.0.0.0:7443", false, false),
            Err(ServeError::PlexNoCertificate { .. })
        ));
        for bad in [
            "http://127.0.0.1:1",
            "tcp://example.com:1",
            "tls://127.0.0.1:1?fingerprint=sha256:00",
            "nonsense",
        ] {
            assert!(
                matches!(
                    check_listen_url(bad, true, false),
                    Err(ServeError::Url { .. })
                ),
                "{bad}"
            );
        }
    }
}
