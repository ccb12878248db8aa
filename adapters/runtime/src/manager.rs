//! Connection pooling: streams to endpoints over as few connections as the
//! limits allow.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use plex_proto::{Config, ErrorCode, LocalError, OpenOptions};

use crate::transport::Transport;
use crate::waiters::{self, Waiters};
use crate::{DriverConfig, Endpoint, Error, Runtime, Session, Stream};

/// Limits and timers of a [`Manager`]. Defaults follow the Syndicate v3 mux.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManagerConfig {
    /// Connections kept per endpoint.
    pub max_connections: usize,
    /// Streams per connection before another connection is dialled.
    pub max_streams_per_connection: usize,
    /// A connection with no streams for this long is closed.
    pub idle_timeout: Duration,
    /// Keep-alive PING interval of pooled connections.
    pub keep_alive_interval: Duration,
    /// Configuration of each session.
    pub session: Config,
    /// Connection-task settings of each session (the linger bound).
    pub driver: DriverConfig,
}

impl Default for ManagerConfig {
    fn default() -> ManagerConfig {
        ManagerConfig {
            max_connections: 10,
            max_streams_per_connection: 100,
            idle_timeout: Duration::from_secs(5 * 60),
            keep_alive_interval: Duration::from_secs(30),
            session: Config::default(),
            driver: DriverConfig::default(),
        }
    }
}

/// A snapshot of a [`Manager`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ManagerStats {
    /// Open pooled connections.
    pub total_connections: usize,
    /// Pooled connections with at least one stream.
    pub active_connections: usize,
    /// Streams handed out since the start.
    pub total_streams: u64,
    /// Streams handed out and not yet dropped.
    pub active_streams: usize,
    /// Bytes sent over every connection, closed ones included.
    pub bytes_sent: u64,
    /// Bytes received over every connection, closed ones included.
    pub bytes_received: u64,
    /// Connections dialled successfully.
    pub connections_created: u64,
    /// Dials that failed, and connections that died with streams on them.
    pub connection_errors: u64,
}

/// Hands out streams to endpoints, pooling connections per endpoint.
///
/// A stream goes to the least loaded connection under
/// `max_streams_per_connection`; when every one is full, another is dialled,
/// up to `max_connections`; past that, [`get_stream`](Manager::get_stream)
/// waits for a stream to be dropped. Idle connections close after
/// `idle_timeout`.
#[derive(Clone)]
pub struct Manager {
    shared: Arc<Shared>,
}

struct Shared {
    transport: Arc<dyn Transport>,
    runtime: Arc<dyn Runtime>,
    config: ManagerConfig,
    state: Mutex<State>,
    total_streams: AtomicU64,
    connections_created: AtomicU64,
    connection_errors: AtomicU64,
}

#[derive(Default)]
struct State {
    pools: HashMap<Endpoint, Pool>,
    retired_sent: u64,
    retired_received: u64,
    closed: bool,
}

#[derive(Default)]
struct Pool {
    connections: Vec<Pooled>,
    /// Dials under way, each reserved by a [`Dialing`] guard.
    dialing: usize,
    waiters: Waiters,
}

struct Pooled {
    id: u64,
    session: Session,
    streams: usize,
    idle_since: Option<Instant>,
}

/// Held by a stream the manager handed out; returns its slot on drop.
pub(crate) struct Lease {
    shared: Weak<Shared>,
    endpoint: Endpoint,
    connection: u64,
}

impl Manager {
    /// A manager dialling through `transport`, with timers on `runtime`.
    pub fn new(
        transport: Arc<dyn Transport>,
        runtime: Arc<dyn Runtime>,
        config: ManagerConfig,
    ) -> Manager {
        let shared = Arc::new(Shared {
            transport,
            runtime: runtime.clone(),
            config,
            state: Mutex::new(State::default()),
            total_streams: AtomicU64::new(0),
            connections_created: AtomicU64::new(0),
            connection_errors: AtomicU64::new(0),
        });
        runtime.spawn(Box::pin(reap_idle(Arc::downgrade(&shared))));
        Manager { shared }
    }

    /// A stream to `endpoint` (`tcp://…` or `ws://…`), on a pooled
    /// connection when one has room.
    pub async fn get_stream(&self, endpoint: &str) -> Result<Stream, Error> {
        self.get_stream_with(endpoint, OpenOptions::default()).await
    }

    /// [`get_stream`](Manager::get_stream) with open options.
    pub async fn get_stream_with(
        &self,
        endpoint: &str,
        options: OpenOptions,
    ) -> Result<Stream, Error> {
        let endpoint: Endpoint = endpoint.parse()?;
        loop {
            match self.pick(&endpoint).await? {
                Pick::Connection(id, session) => {
                    let lease = Lease {
                        shared: Arc::downgrade(&self.shared),
                        endpoint: endpoint.clone(),
                        connection: id,
                    };
                    match session.open_stream(options.clone()).await {
                        Ok(stream) => {
                            self.shared.total_streams.fetch_add(1, Ordering::Relaxed);
                            return Ok(stream.with_lease(lease));
                        }
                        // The connection died or is going away: drop it
                        // from the pool and try another.
                        Err(
                            Error::Closed(_) | Error::Io(_) | Error::Local(LocalError::GoingAway),
                        ) => {
                            drop(lease);
                            self.shared.retire(&endpoint, id, true);
                        }
                        Err(e) => return Err(e),
                    }
                }
                Pick::Dial(reservation) => self.dial(&endpoint, reservation).await?,
            }
        }
    }

    /// Counters over every pooled connection.
    pub fn stats(&self) -> ManagerStats {
        let state = self.shared.lock();
        let mut stats = ManagerStats {
            total_streams: self.shared.total_streams.load(Ordering::Relaxed),
            connections_created: self.shared.connections_created.load(Ordering::Relaxed),
            connection_errors: self.shared.connection_errors.load(Ordering::Relaxed),
            bytes_sent: state.retired_sent,
            bytes_received: state.retired_received,
            ..ManagerStats::default()
        };
        for pooled in state.pools.values().flat_map(|p| &p.connections) {
            let s = pooled.session.stats();
            stats.total_connections += 1;
            stats.active_connections += usize::from(pooled.streams > 0);
            stats.active_streams += pooled.streams;
            stats.bytes_sent += s.bytes_sent;
            stats.bytes_received += s.bytes_received;
        }
        stats
    }

    /// Tasks registered as waiting for room at `endpoint`, for the tests.
    #[cfg(test)]
    pub(crate) fn waiting(&self, endpoint: &str) -> usize {
        let endpoint: Endpoint = endpoint.parse().expect("endpoint");
        let state = self.shared.lock();
        state.pools.get(&endpoint).map_or(0, |p| p.waiters.len())
    }

    /// Closes every connection gracefully and refuses new streams. Streams
    /// already handed out finish first.
    pub async fn close(&self) {
        let mut wake = Vec::new();
        let sessions: Vec<Session> = {
            let mut state = self.shared.lock();
            state.closed = true;
            for pool in state.pools.values_mut() {
                wake.extend(pool.waiters.drain());
            }
            state
                .pools
                .values()
                .flat_map(|p| p.connections.iter().map(|c| c.session.clone()))
                .collect()
        };
        wake.into_iter().for_each(Waker::wake);
        for session in sessions {
            // A connection that died already needs no goodbye.
            let _ = session.close().await;
        }
        let state = self.shared.lock();
        let ids: Vec<(Endpoint, u64)> = state
            .pools
            .iter()
            .flat_map(|(e, p)| p.connections.iter().map(move |c| (e.clone(), c.id)))
            .collect();
        drop(state);
        for (endpoint, id) in ids {
            self.shared.retire(&endpoint, id, false);
        }
    }

    /// Waits for a connection with room, or for the right to dial one.
    async fn pick(&self, endpoint: &Endpoint) -> Result<Pick, Error> {
        let limits = &self.shared.config;
        let waiting = PoolWait {
            shared: &self.shared,
            endpoint,
            key: waiters::key(),
        };
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.closed {
                return Poll::Ready(Err(Error::Local(LocalError::Closed)));
            }
            let pool = state.pools.entry(endpoint.clone()).or_default();
            pool.waiters.remove(waiting.key);
            let best = pool
                .connections
                .iter_mut()
                .filter(|c| c.streams < limits.max_streams_per_connection && !c.session.is_closed())
                .min_by_key(|c| c.streams);
            if let Some(c) = best {
                c.streams += 1;
                c.idle_since = None;
                return Poll::Ready(Ok(Pick::Connection(c.id, c.session.clone())));
            }
            let live = pool
                .connections
                .iter()
                .filter(|c| !c.session.is_closed())
                .count();
            if live + pool.dialing < limits.max_connections {
                pool.dialing += 1;
                return Poll::Ready(Ok(Pick::Dial(Dialing {
                    shared: self.shared.clone(),
                    endpoint: endpoint.clone(),
                })));
            }
            pool.waiters.register(waiting.key, cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Dials a connection into the pool. The reservation is released
    /// however this ends, the future being dropped mid-dial included.
    async fn dial(&self, endpoint: &Endpoint, reservation: Dialing) -> Result<(), Error> {
        let shared = &self.shared;
        let mut config = shared.config.session.clone();
        config.ping_interval = Some(shared.config.keep_alive_interval);
        let dialled = match shared.transport.dial(endpoint).await {
            Ok(io) => Session::with_driver(
                io,
                plex_proto::Role::Client,
                config,
                shared.config.driver.clone(),
                shared.runtime.clone(),
            ),
            Err(e) => Err(e),
        };
        let mut state = shared.lock();
        let pool = state.pools.entry(endpoint.clone()).or_default();
        let result = match dialled {
            Ok(session) => {
                let id = shared.connections_created.fetch_add(1, Ordering::Relaxed);
                pool.connections.push(Pooled {
                    id,
                    session,
                    streams: 0,
                    idle_since: Some(shared.runtime.now()),
                });
                Ok(())
            }
            Err(e) => {
                shared.connection_errors.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        };
        drop(state);
        drop(reservation);
        result
    }
}

enum Pick {
    Connection(u64, Session),
    Dial(Dialing),
}

/// A reserved dial: counted in its pool's `dialing` until dropped, so that a
/// `get_stream` cancelled mid-dial cannot wedge the endpoint.
struct Dialing {
    shared: Arc<Shared>,
    endpoint: Endpoint,
}

impl Drop for Dialing {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        let wake: Vec<Waker> = match state.pools.get_mut(&self.endpoint) {
            Some(pool) => {
                pool.dialing -= 1;
                pool.waiters.drain().collect()
            }
            None => Vec::new(),
        };
        drop(state);
        wake.into_iter().for_each(Waker::wake);
    }
}

/// A `pick` future's place among its pool's waiters, left when dropped.
struct PoolWait<'a> {
    shared: &'a Shared,
    endpoint: &'a Endpoint,
    key: u64,
}

impl Drop for PoolWait<'_> {
    fn drop(&mut self) {
        if let Some(pool) = self.shared.lock().pools.get_mut(self.endpoint) {
            pool.waiters.remove(self.key);
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a connection out of the pool, keeping its byte counts.
    fn retire(&self, endpoint: &Endpoint, id: u64, failed: bool) {
        let mut state = self.lock();
        let State {
            pools,
            retired_sent,
            retired_received,
            ..
        } = &mut *state;
        let Some(pool) = pools.get_mut(endpoint) else {
            return;
        };
        let Some(pos) = pool.connections.iter().position(|c| c.id == id) else {
            return;
        };
        let pooled = pool.connections.swap_remove(pos);
        let stats = pooled.session.stats();
        *retired_sent += stats.bytes_sent;
        *retired_received += stats.bytes_received;
        if failed {
            self.connection_errors.fetch_add(1, Ordering::Relaxed);
        }
        let wake: Vec<Waker> = pool.waiters.drain().collect();
        drop(state);
        wake.into_iter().for_each(Waker::wake);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let now = shared.runtime.now();
        let mut state = shared.lock();
        let Some(pool) = state.pools.get_mut(&self.endpoint) else {
            return;
        };
        if let Some(c) = pool
            .connections
            .iter_mut()
            .find(|c| c.id == self.connection)
        {
            c.streams -= 1;
            if c.streams == 0 {
                c.idle_since = Some(now);
            }
        }
        let wake: Vec<Waker> = pool.waiters.drain().collect();
        drop(state);
        wake.into_iter().for_each(Waker::wake);
    }
}

/// Closes connections idle for longer than the idle timeout, and drops dead
/// ones, until the manager is gone.
async fn reap_idle(shared: Weak<Shared>) {
    loop {
        let (period, runtime) = match shared.upgrade() {
            Some(s) => (
                (s.config.idle_timeout / 4).max(Duration::from_millis(10)),
                s.runtime.clone(),
            ),
            None => return,
        };
        runtime.sleep_until(runtime.now() + period).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = shared.runtime.now();
        let mut expired = Vec::new();
        {
            let state = shared.lock();
            if state.closed {
                return;
            }
            for (endpoint, pool) in &state.pools {
                for c in &pool.connections {
                    let idle = c
                        .idle_since
                        .is_some_and(|t| now - t >= shared.config.idle_timeout);
                    if idle || c.session.is_closed() {
                        expired.push((endpoint.clone(), c.id, c.session.clone(), c.streams > 0));
                    }
                }
            }
        }
        for (endpoint, id, session, busy) in expired {
            shared.retire(&endpoint, id, busy && session.is_closed());
            // Graceful: with no streams left it closes at once.
            let _ = session.go_away(ErrorCode::NO_ERROR);
        }
    }
}
