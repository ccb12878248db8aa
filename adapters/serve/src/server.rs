//! The listener: accepting connections within the limit, serving each
//! with hyper, and shutting down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tracing::Instrument;

use crate::access::Access;
use crate::config::Config;
use crate::error::ServeError;
use crate::pools::Pools;
use crate::remote::Remote;
use crate::routes::{self, App};
use crate::tokens::TokenStore;

/// A bound server; [`Server::run`] serves until told to stop.
///
/// ```no_run
/// # async fn demo() -> Result<(), plex_serve::ServeError> {
/// use plex_serve::{Config, Server};
/// let server = Server::bind(Config::new("pools")).await?;
/// println!("serving {}", server.url());
/// server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
/// # }
/// ```
pub struct Server {
    listener: TcpListener,
    /// With TLS: the handshake, and how long a client has for it.
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    stop_tails: watch::Sender<bool>,
    /// The `plex/1` listeners, if any.
    remote: Option<Remote>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("url", &self.url())
            .field("access", &self.app.access)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Creates the pool directory if needed and binds the listener.
    ///
    /// Without TLS the listener is for this machine only: an address off
    /// loopback is refused with [`ServeError::OffLoopback`]. With TLS
    /// ([`Config::tls`]) it may listen anywhere, and every request needs an
    /// access token of the directory ([`crate::tokens`]).
    pub async fn bind(config: Config) -> Result<Server, ServeError> {
        if !config.addr.ip().is_loopback() && config.tls.is_none() {
            return Err(ServeError::OffLoopback { addr: config.addr });
        }
        config.limits.check()?;
        for url in &config.listen {
            crate::remote::check_listen_url(
                url,
                config.listen_tls.is_some(),
                config.require_token,
            )?;
        }
        let dir_error = |source| ServeError::Dir {
            path: config.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&config.dir).map_err(dir_error)?;
        let dir = std::fs::canonicalize(&config.dir).map_err(dir_error)?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: config.addr,
                source,
            })?;
        let remote = match config.listen.is_empty() {
            true => None,
            false => Some(
                Remote::bind(
                    &config.listen,
                    config.listen_tls.as_ref(),
                    config.require_token,
                    &dir,
                )
                .await?,
            ),
        };
        let (stop_tails, shutdown) = watch::channel(false);
        let limits = config.limits;
        let access = match &config.tls {
            Some(_) => Access::Tokens(TokenStore::new(&dir)),
            None => Access::Local,
        };
        let app = Arc::new(App {
            pools: Arc::new(Pools::new(dir, limits.max_storage_calls)),
            tails: Arc::new(Semaphore::new(limits.max_tails)),
            limits,
            shutdown,
            access,
        });
        let tls = config.tls.map(|tls| {
            // The certificate's settings, speaking HTTP/1.1 rather than plex/1.
            let mut rustls = (*tls.rustls_config()).clone();
            rustls.alpn_protocols = vec![b"http/1.1".to_vec()];
            TlsAcceptor::from(Arc::new(rustls))
        });
        Ok(Server {
            listener,
            tls,
            app,
            stop_tails,
            remote,
        })
    }

    /// The address the listener is bound to (with the port chosen for 0).
    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has an address.
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The listener's URL, `http://127.0.0.1:9700` (`https://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr())
    }

    /// The `plex/1` listeners' URLs (`tcp://127.0.0.1:7070`), ports
    /// resolved; empty without [`crate::Config::listen`].
    pub fn plex_urls(&self) -> Vec<String> {
        self.remote.as_ref().map(Remote::urls).unwrap_or_default()
    }

    /// Serves until `shutdown` completes, then stops accepting, ends the
    /// tails, lets in-flight requests finish within
    /// [`crate::Limits::shutdown_grace`] (closing the connections left
    /// after it), and syncs every pool it opened.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let Server {
            listener,
            tls,
            app,
            stop_tails,
            remote,
        } = self;
        let remote = remote.map(|remote| {
            let shutdown = app.shutdown.clone();
            tokio::spawn(remote.run(app.clone(), shutdown))
        });
        let limits = app.limits.clone();
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let accept = async {
                // The semaphore is never closed.
                let slot = slots.clone().acquire_owned().await.ok();
                (slot, listener.accept().await)
            };
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = connections.join_next() => {}
                (slot, accepted) = accept => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // Out of descriptors, or a connection reset
                            // before it was accepted: try again shortly.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let app = app.clone();
                    let service = service_fn(move |req| {
                        let app = app.clone();
                        async move { Ok::<_, std::convert::Infallible>(routes::handle(app, req).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(limits.header_timeout)
                        .to_owned();
                    let (tls, watcher) = (tls.clone(), graceful.watcher());
                    let handshake = limits.header_timeout;
                    let span = tracing::info_span!("connection", %peer);
                    connections.spawn(
                        async move {
                            tracing::debug!("accepted");
                            let io = match tls {
                                None => Either::Left(stream),
                                Some(tls) => {
                                    match tokio::time::timeout(handshake, tls.accept(stream)).await {
                                        Ok(Ok(stream)) => Either::Right(stream),
                                        Ok(Err(e)) => {
                                            tracing::debug!(error = %e, "TLS handshake failed");
                                            return;
                                        }
                                        Err(_) => {
                                            tracing::debug!("TLS handshake timed out");
                                            return;
                                        }
                                    }
                                }
                            };
                            let conn = watcher.watch(http.serve_connection(TokioIo::new(io), service));
                            if let Err(e) = conn.await {
                                tracing::debug!(error = %e, "connection failed");
                            }
                            tracing::debug!("closed");
                            drop(slot);
                        }
                        .instrument(span),
                    );
                }
            }
        }
        drop(listener);
        tracing::info!("shutting down: accepting no more connections, ending tails");
        // Receivers live in the app as long as the server does.
        let _ = stop_tails.send(true);
        if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("requests still running after the grace period; closing them");
        }
        connections.shutdown().await;
        if let Some(remote) = remote {
            // It ends its sessions within the grace period itself.
            if let Err(e) = remote.await {
                tracing::error!(error = %e, "the plex/1 listeners failed");
            }
        }
        let pools = app.pools.clone();
        let synced = tokio::task::spawn_blocking(move || pools.sync_all()).await;
        match synced {
            Ok(result) => result.map_err(ServeError::Sync),
            Err(e) => Err(ServeError::Sync(plex_store::Error::Internal(format!(
                "the sync task failed: {e}"
            )))),
        }
    }
}
