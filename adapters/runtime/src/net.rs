//! Dialling and accepting sessions through a [`Transport`].

use std::sync::Arc;

use plex_proto::Config;

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
