//! Access control for a whole `plex/1` connection: the exchange of
//! [`plex_proto::auth`] on a session, for clients and servers.
//!
//! A client's first act is [`authenticate`]: one stream for
//! [`AUTH_PROTOCOL`] carrying its bearer token (or none) in the OPEN
//! handshake, answered by the server's verdict. A server that requires a
//! token runs [`gate`] on each session before it serves anything on it:
//! until the exchange is done the session accepts no other stream (they
//! wait, unaccepted, within the session's `max_pending_accepts`), and a
//! peer that does not authenticate within the deadline gets
//! [`AuthError::TimedOut`]; the server then drops it. A server that
//! requires none answers every exchange with [`admit_all`].
//!
//! ```no_run
//! # async fn demo(client: plex_runtime::Session, server: plex_runtime::Session)
//! # -> Result<(), plex_runtime::auth::AuthError> {
//! use std::time::Duration;
//! use plex_runtime::auth::{authenticate, gate, Refusal};
//!
//! // The server side, on each session it accepts:
//! let request = gate(&server, Duration::from_secs(10)).await?;
//! if request.token() == Some("plxt_secret") {
//!     request.admit()?; // then serve the session
//! } else {
//!     request.refuse(Refusal::Denied, "invalid or revoked access token")?;
//!     // then close the session
//! }
//! // The client side, before anything else on its session:
//! authenticate(&client, Some("plxt_secret")).await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use bytes::Bytes;
pub use plex_proto::auth::{AuthWireError, Hello, Refusal, Verdict, AUTH_PROTOCOL};
use plex_proto::{ErrorCode, ResetReason};

use crate::accept::first;
use crate::{Error, Incoming, OpenOptions, Session};

/// How long a client waits for the server's verdict by default.
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection was not admitted.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The server requires an access token and none was sent.
    #[error("the server requires an access token ({0})")]
    Required(String),
    /// The server refused the token: not one of its live tokens (unknown,
    /// mistyped or revoked).
    #[error("the server refused the access token ({0})")]
    Denied(String),
    /// The server could not check the token.
    #[error("the server could not check the access token ({0})")]
    Unavailable(String),
    /// The exchange did not finish within the deadline.
    #[error("no authentication within {0:?}")]
    TimedOut(Duration),
    /// The peer's handshake is not the exchange's.
    #[error("bad authentication handshake: {0}")]
    Wire(#[from] AuthWireError),
    /// The connection failed during the exchange.
    #[error("the connection failed during authentication: {0}")]
    Connection(Box<Error>),
}

impl From<Error> for AuthError {
    fn from(e: Error) -> AuthError {
        AuthError::Connection(Box::new(e))
    }
}

/// Authenticates the connection with `token` (or none), waiting
/// [`DEFAULT_AUTH_TIMEOUT`] at most for the verdict.
///
/// A server without access control, one that does not know the exchange
/// and refuses its stream, admits the connection: so does a server that
/// takes no credentials, whatever `token` is.
pub async fn authenticate(session: &Session, token: Option<&str>) -> Result<(), AuthError> {
    authenticate_within(session, token, DEFAULT_AUTH_TIMEOUT).await
}

/// [`authenticate`], waiting at most `timeout`.
pub async fn authenticate_within(
    session: &Session,
    token: Option<&str>,
    timeout: Duration,
) -> Result<(), AuthError> {
    let hello = token.map_or(Hello::Anonymous, Hello::bearer);
    let exchange = async {
        let options = OpenOptions::new(AUTH_PROTOCOL, Bytes::new()).handshake(hello.to_bytes());
        let stream = session.open_stream(options).await?;
        let verdict = match stream.remote_open().await {
            Ok(handshake) => Verdict::decode(&handshake)?,
            Err(Error::Reset(ResetReason::Remote(code))) if code == ErrorCode::REFUSED_STREAM => {
                Verdict::Admitted
            }
            Err(e) => return Err(e.into()),
        };
        // Nothing flows on the stream: end our side at once.
        let _ = stream.finish();
        Ok(verdict)
    };
    let runtime = session.runtime();
    let expiry = runtime.sleep_until(runtime.now() + timeout);
    match first(exchange, expiry).await {
        None => Err(AuthError::TimedOut(timeout)),
        Some(Err(e)) => Err(e),
        Some(Ok(Verdict::Refused { refusal, message })) => Err(match refusal {
            Refusal::Required => AuthError::Required(message),
            Refusal::Unavailable => AuthError::Unavailable(message),
            // `Denied` and any refusal a newer server adds.
            _ => AuthError::Denied(message),
        }),
        Some(Ok(_)) => Ok(()),
    }
}

/// A client's authentication, waiting for the server's verdict
/// ([`AuthRequest::admit`] or [`AuthRequest::refuse`]). Dropping it
/// refuses the stream without a verdict.
#[derive(Debug)]
pub struct AuthRequest {
    incoming: Incoming,
    hello: Hello,
}

impl AuthRequest {
    /// The bearer token the client sent, if any.
    pub fn token(&self) -> Option<&str> {
        self.hello.token()
    }

    /// Admits the connection.
    pub fn admit(self) -> Result<(), Error> {
        answer(self.incoming, &Verdict::Admitted)
    }

    /// Refuses the connection, telling the client why. The caller then
    /// closes the session: gracefully (`Session::close`), so that the
    /// verdict reaches the client before the connection ends.
    pub fn refuse(self, refusal: Refusal, message: &str) -> Result<(), Error> {
        let verdict = Verdict::Refused {
            refusal,
            message: message.to_owned(),
        };
        answer(self.incoming, &verdict)
    }
}

/// Waits, at most `timeout`, for the client's authentication on a
/// session nothing has been served on yet.
///
/// From the call on, the session accepts no stream that no listener
/// claims: such streams wait up to `timeout` for one, within the
/// session's `max_pending_accepts`, and then are refused; the layers the
/// caller starts once it has admitted the connection claim those still
/// waiting. A handshake that is not a [`Hello`] is refused (the client
/// gets [`AuthError::Denied`]) and returned as [`AuthError::Wire`].
pub async fn gate(session: &Session, timeout: Duration) -> Result<AuthRequest, AuthError> {
    let listener = session.listen(AUTH_PROTOCOL, Bytes::new());
    session.set_accept_any(false);
    session.set_claim_grace(Some(timeout));
    let runtime = session.runtime();
    let expiry = runtime.sleep_until(runtime.now() + timeout);
    let incoming = match first(listener.accept(), expiry).await {
        None => return Err(AuthError::TimedOut(timeout)),
        Some(accepted) => accepted?,
    };
    match Hello::decode(incoming.handshake()) {
        Ok(hello) => Ok(AuthRequest { incoming, hello }),
        Err(e) => {
            let refused = Verdict::Refused {
                refusal: Refusal::Denied,
                message: format!("malformed authentication: {e}"),
            };
            answer(incoming, &refused)?;
            Err(e.into())
        }
    }
}

/// Admits every authentication on `session` until it closes, without
/// checking tokens: for servers that take no credentials.
pub async fn admit_all(session: &Session) {
    let listener = session.listen(AUTH_PROTOCOL, Bytes::new());
    while let Ok(incoming) = listener.accept().await {
        // A stream the client reset meanwhile needs no answer.
        let _ = answer(incoming, &Verdict::Admitted);
    }
}

/// Accepts the authentication stream with `verdict` as the handshake and
/// ends our side: nothing else flows on it.
fn answer(incoming: Incoming, verdict: &Verdict) -> Result<(), Error> {
    let stream = incoming.accept(verdict.to_bytes())?;
    stream.finish()
}
