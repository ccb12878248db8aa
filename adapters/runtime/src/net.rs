//! Dialling and accepting sessions through a [`Transport`].

use std::sync::Arc;

use plex_proto::Config;

#[cfg(feature = "tls")]
use crate::tls::ClientTls;
use crate::transport::{Transport, TransportListener};
use crate::{DriverConfig, Endpoint, Error, Role, Runtime, Session};

/// Dials `url` through `transport` and starts a client session.
pub async fn connect(
    transport: &dyn Transport,
    runtime: Arc<dyn Runtime>,
    url: &str,
    config: Config,
) -> Result<Session, Error> {
    let endpoint: Endpoint = url.parse()?;
    let io = transport.dial(&endpoint).await?;
    Session::client(io, config, runtime)
}

/// Listens on `url` through `transport`.
pub async fn listen(
    transport: &dyn Transport,
    runtime: Arc<dyn Runtime>,
    url: &str,
    config: Config,
) -> Result<Server, Error> {
    let endpoint: Endpoint = url.parse()?;
    let listener = transport.listen(&endpoint).await?;
    Ok(Server {
        listener,
        runtime,
        config,
        driver: DriverConfig::default(),
    })
}

/// Accepts plex connections on one endpoint.
pub struct Server {
    listener: Box<dyn TransportListener>,
    runtime: Arc<dyn Runtime>,
    config: Config,
    driver: DriverConfig,
}

impl Server {
    /// Runs the sessions of later connections with `driver`'s settings.
    pub fn with_driver(mut self, driver: DriverConfig) -> Server {
        self.driver = driver;
        self
    }

    /// The next connection, as a server session, with its peer's address.
    ///
    /// Fails only when the listener itself fails (or the config is
    /// invalid): a connection that fails on its own (reset while queued, a
    /// WebSocket handshake that fails or times out) is skipped, so an accept
    /// loop may stop at the first error.
    pub async fn accept(&self) -> Result<(Session, String), Error> {
        let (io, peer) = self.listener.accept().await?;
        let (config, driver) = (self.config.clone(), self.driver.clone());
        let session = Session::with_driver(io, Role::Server, config, driver, self.runtime.clone())?;
        Ok((session, peer))
    }

    /// The endpoint actually bound (port 0 resolved).
    pub fn local_endpoint(&self) -> Endpoint {
        self.listener.local_endpoint()
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("endpoint", &self.local_endpoint())
            .finish()
    }
}

/// How [`connect_with`] (and each adapter's `connect_with`) dials and
/// authenticates: the session's config,
/// what `tls://` trusts, and the access token the connection presents.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use plex_runtime::{Runtime, Transport};
/// # async fn demo(transport: &dyn Transport, runtime: Arc<dyn Runtime>)
/// # -> Result<(), plex_runtime::Error> {
/// use plex_runtime::tls::ClientTls;
/// use plex_runtime::ConnectOptions;
///
/// let options = ConnectOptions::default()
///     .tls(ClientTls::ca_file("server-ca.pem")?)
///     .token("plxt_0123");
/// // An adapter's `connect_with` (`plex_tokio::connect_with(url, &options)`)
/// // builds its transport with `options.tls`; here it is given.
/// let url = "tls://example.net:7443";
/// let session = plex_runtime::connect_with(transport, runtime, url, &options).await?;
/// # let _ = session; Ok(()) }
/// ```
#[cfg(feature = "tls")]
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// The session's config.
    pub config: Config,
    /// What `tls://` trusts: the system's roots by default; a
    /// `?fingerprint=` in the URL pins that connection whatever this says.
    pub tls: ClientTls,
    /// The bearer token presented in the connection's authentication
    /// ([`crate::auth`]); none by default.
    pub token: Option<String>,
}

#[cfg(feature = "tls")]
impl ConnectOptions {
    /// Sets the session's config.
    pub fn config(mut self, config: Config) -> ConnectOptions {
        self.config = config;
        self
    }

    /// Sets what `tls://` trusts.
    pub fn tls(mut self, tls: ClientTls) -> ConnectOptions {
        self.tls = tls;
        self
    }

    /// Presents `token` when the connection authenticates.
    pub fn token(mut self, token: impl Into<String>) -> ConnectOptions {
        self.token = Some(token.into());
        self
    }
}

/// The token is a secret: it is never printed.
#[cfg(feature = "tls")]
impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("config", &self.config)
            .field("tls", &self.tls)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

/// Dials `url` through `transport` as [`connect`] does, with `options`'
/// config, and authenticates the connection with its token (or none)
/// before returning it ([`crate::auth::authenticate`]): a server that
/// refuses it gives [`Error::Auth`], saying whether a token was missing,
/// not valid, or could not be checked. `options.tls` is the transport's
/// to apply: each adapter's `connect_with` builds its transport with it.
#[cfg(feature = "tls")]
pub async fn connect_with(
    transport: &dyn Transport,
    runtime: Arc<dyn Runtime>,
    url: &str,
    options: &ConnectOptions,
) -> Result<Session, Error> {
    let session = connect(transport, runtime, url, options.config.clone()).await?;
    crate::auth::authenticate(&session, options.token.as_deref()).await?;
    Ok(session)
}
