//! The `plex/1` listeners of `plex serve`: every session they accept is
//! served by the bus broker, the Plex layer's store ports and remote pools
//! ([`plex_proto::pools`]), side by side on its streams; on a listener
//! that requires access tokens, only once it has authenticated
//! ([`plex_runtime::auth`]).

mod client;
mod describe;
mod gate;
mod ops;
mod ports;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use plex_bus::{Broker, BrokerConfig};
use plex_peer::{expose_store_port, Peer};
use plex_ports::RedbStore;
use plex_proto::pools::POOLS_PROTOCOL;
use plex_runtime::tls::{ServerTls, TlsConfig};
use plex_runtime::{Config as SessionConfig, Session};
use plex_tokio::{TokioRuntime, TokioTransport};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

pub use client::{
    Appender, BatchReceipt, Follow, RemoteError, RemotePools, Tail, TailEvent, DEFAULT_MAX_RECORD,
};
pub use describe::{error_kind, error_record, pool_info, skipped_record, time_of};

pub(crate) use gate::check_listen_url;
use gate::Gate;

use crate::error::ServeError;
use crate::routes::App;
use crate::tokens::TokenStore;

/// The default `plex/1` listener of `plex serve`.
pub const DEFAULT_PLEX: &str = "tcp://127.0.0.1:7070";

/// The store port id of the server's persistent key-value store
/// ([`plex_ports::RedbStore`] in `DIR/`[`KV_FILE`]).
pub const KV_PORT: &str = "kv";

/// The file of the key-value store, in the pool directory.
pub const KV_FILE: &str = "kv.redb";

/// The lane store ports are served on (neonplex's default).
pub const STORE_LANE: &str = "rpc";

/// The store port id of pool `name`: `pool/NAME`, a
/// [`plex_ports::PoolStore`] over the pool's messages. Any pool of the
/// directory is reachable, whenever it was created: the port is served
/// from the first call for it, and resolves the pool on every call (a
/// deleted pool fails with `NotAvailable`).
pub fn pool_port(name: &str) -> String {
    format!("pool/{name}")
}

/// The bound `plex/1` listeners (and whether their sessions must
/// authenticate) and what their sessions share.
pub(crate) struct Remote {
    listeners: Vec<(plex_runtime::Server, bool)>,
    broker: Broker,
    kv: Arc<RedbStore>,
    tokens: Arc<TokenStore>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("urls", &self.urls())
            .finish()
    }
}

impl Remote {
    /// Binds every URL (checked first, all of them; `tls://` with `tls`'s
    /// certificate) and opens the key-value store in `dir`.
    pub(crate) async fn bind(
        urls: &[String],
        tls: Option<&ServerTls>,
        require_token: bool,
        dir: &Path,
    ) -> Result<Remote, ServeError> {
        let checked = urls
            .iter()
            .map(|u| check_listen_url(u, tls.is_some(), require_token))
            .collect::<Result<Vec<_>, _>>()?;
        let mut settings = TlsConfig::default();
        if let Some(tls) = tls {
            settings = settings.with_server(tls.clone());
        }
        let transport = TokioTransport::with_tls(settings);
        let mut listeners = Vec::with_capacity(checked.len());
        for listen in checked {
            let endpoint = listen.endpoint;
            let server = plex_runtime::listen(
                &transport,
                TokioRuntime::current(),
                &endpoint.to_string(),
                SessionConfig::default(),
            )
            .await
            .map_err(|e| ServeError::Bind {
                addr: SocketAddr::new(
                    endpoint
                        .host
                        .parse()
                        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                    endpoint.port,
                ),
                source: io_error(&e),
            })?;
            listeners.push((server, listen.tokens));
        }
        let path = dir.join(KV_FILE);
        let open = path.clone();
        let kv = tokio::task::spawn_blocking(move || RedbStore::open(open))
            .await
            .map_err(|e| ServeError::Store {
                path: path.clone(),
                reason: e.to_string(),
            })?
            .map_err(|e| ServeError::Store {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        Ok(Remote {
            listeners,
            broker: Broker::new(BrokerConfig::default()),
            kv: Arc::new(kv),
            tokens: Arc::new(TokenStore::new(dir)),
        })
    }

    /// The listeners' URLs, ports resolved.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.listeners
            .iter()
            .map(|(l, _)| l.local_endpoint().to_string())
            .collect()
    }

    /// Accepts sessions until `shutdown` turns true, then closes them
    /// gracefully (GOAWAY; tails end) within the shutdown grace.
    pub(crate) async fn run(self, app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
        let Remote {
            listeners,
            broker,
            kv,
            tokens,
        } = self;
        let gate = Gate {
            tokens,
            timeout: app.limits.auth_timeout,
        };
        let slots = Arc::new(Semaphore::new(app.limits.max_sessions));
        let sessions: Arc<Mutex<HashMap<u64, Session>>> = Arc::default();
        let mut tasks = JoinSet::new();
        let mut accepting = JoinSet::new();
        let (session_tx, mut session_rx) = tokio::sync::mpsc::channel(1);
        for (listener, authenticate) in listeners {
            let slots = slots.clone();
            let tx = session_tx.clone();
            let gate = authenticate.then(|| gate.clone());
            accepting.spawn(async move {
                loop {
                    // The semaphore is never closed.
                    let Ok(slot) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    match listener.accept().await {
                        Ok((session, peer)) => {
                            if tx.send((session, peer, slot, gate.clone())).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "plex/1 listener failed");
                            return;
                        }
                    }
                }
            });
        }
        drop(session_tx);
        let mut next_id = 0u64;
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                Some(_) = tasks.join_next() => {}
                accepted = session_rx.recv() => {
                    let Some((session, peer, slot, gate)) = accepted else { break };
                    next_id += 1;
                    let id = next_id;
                    lock(&sessions).insert(id, session.clone());
                    let span = tracing::info_span!("session", %peer);
                    let shared = Shared { app: app.clone(), broker: broker.clone(), kv: kv.clone() };
                    let served = serve_session(shared, session, gate, slot);
                    let sessions = sessions.clone();
                    tasks.spawn(
                        async move {
                            tracing::debug!("accepted");
                            served.await;
                            lock(&sessions).remove(&id);
                            tracing::debug!("closed");
                        }
                        .instrument(span),
                    );
                }
            }
        }
        accepting.shutdown().await;
        // Subscriptions end cleanly now, rather than at the grace.
        broker.shutdown();
        let open: Vec<Session> = lock(&sessions).values().cloned().collect();
        let closing = futures_util::future::join_all(open.iter().map(Session::close));
        if tokio::time::timeout(app.limits.shutdown_grace, closing)
            .await
            .is_err()
        {
            tracing::warn!("plex/1 sessions still open after the grace period; closing them");
        }
        tasks.shutdown().await;
        // The store ports' tasks end as their sessions do; the store's file
        // is released with the last of them, so that the directory can be
        // served again by this process.
        let released = async {
            while Arc::strong_count(&kv) > 1 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        if tokio::time::timeout(app.limits.shutdown_grace, released)
            .await
            .is_err()
        {
            tracing::warn!("the key-value store is still in use after the grace period");
        }
    }
}

/// What every session is served by.
struct Shared {
    app: Arc<App>,
    broker: Broker,
    kv: Arc<RedbStore>,
}

/// Serves one session until it closes: the bus broker, the store ports
/// and the pool operations. With a `gate`, only once the session has
/// authenticated: before, nothing else on it is accepted, and a session
/// refused or late is closed; the revocation of its token closes it
/// later. Without one, authentications are admitted whatever they carry
/// (loopback takes no credentials).
async fn serve_session(
    shared: Shared,
    session: Session,
    gate: Option<Gate>,
    slot: OwnedSemaphorePermit,
) {
    match gate {
        Some(gate) => {
            let Some(secret) = gate.admit(&session).await else {
                return;
            };
            let session = session.clone();
            tokio::spawn(async move { gate.watch(&session, &secret).await }.in_current_span());
        }
        None => {
            let session = session.clone();
            tokio::spawn(
                async move { plex_runtime::auth::admit_all(&session).await }.in_current_span(),
            );
        }
    }
    let Shared { app, broker, kv } = shared;
    let peer = Peer::new(session.clone());
    let kv_port = expose_store_port(&peer, KV_PORT, STORE_LANE, kv);
    // Calls no listener claims come to the pool ports, rather than wait
    // out the peer's claim grace: they start the port of their pool.
    session.set_accept_any(true);
    let operations = session.listen(POOLS_PROTOCOL, Bytes::new());
    let serving_pools = async {
        while let Ok(incoming) = operations.accept().await {
            let app = app.clone();
            tokio::spawn(ops::serve(app, incoming).in_current_span());
        }
    };
    // The broker's listeners are in place before the pool ports take
    // what is unclaimed: `join!` polls in order.
    tokio::join!(
        broker.serve(session.clone()),
        serving_pools,
        ports::serve(session.clone(), peer, app.pools.clone())
    );
    drop(kv_port);
    drop(slot);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A runtime error as the operating system's, for [`ServeError::Bind`].
fn io_error(e: &plex_runtime::Error) -> std::io::Error {
    match e {
        plex_runtime::Error::Io(io) => std::io::Error::new(io.kind(), io.to_string()),
        other => std::io::Error::other(other.to_string()),
    }
}
