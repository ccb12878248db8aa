//! The store ports `pool/NAME`: served on demand, so that a pool created
//! after a session began is reachable through it, and resolved on every
//! call, so that a deleted pool fails with a clear error.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use plex_peer::{
    Caps, Code, Entries, Error, Peer, Range, Serving, StoreFuture, StorePort, StoreServer,
};
use plex_ports::PoolStore;
use plex_runtime::Session;

use crate::pools::Pools;
use crate::remote::STORE_LANE;

/// The most pool ports one session serves at once: calls for further
/// pools are refused (the client sees the port unavailable).
const MAX_PORTS: usize = 1024;

/// The prefix of a pool's store port id.
const PREFIX: &[u8] = b"pool/";

/// Serves the calls no listener of `session` claims: a call for `pool/NAME`
/// starts that pool's port (which then claims the calls that follow);
/// anything else is refused. Ends when the session closes.
pub(crate) async fn serve(session: Session, peer: Peer, pools: Arc<Pools>) {
    let lane = peer.protocol(STORE_LANE);
    let mut serving: HashMap<Bytes, Serving> = HashMap::new();
    while let Ok(incoming) = session.accept_incoming().await {
        let id = incoming.channel_id().clone();
        let name = match id.strip_prefix(PREFIX).map(std::str::from_utf8) {
            Some(Ok(name))
                if *incoming.protocol() == lane && crate::pools::check_name(name).is_ok() =>
            {
                name.to_owned()
            }
            _ => {
                incoming.refuse();
                continue;
            }
        };
        if !serving.contains_key(&id) && serving.len() >= MAX_PORTS {
            incoming.refuse();
            continue;
        }
        let port = serving.entry(id.clone()).or_insert_with(|| {
            let port = PoolPort {
                pools: pools.clone(),
                name,
            };
            StoreServer::new(port).expose(&peer, id, STORE_LANE)
        });
        port.adopt(incoming);
    }
}

/// The store port of pool `name`, opened for each call.
struct PoolPort {
    pools: Arc<Pools>,
    name: String,
}

impl PoolPort {
    /// The port over the pool as it is now.
    async fn open(&self) -> Result<PoolStore, Error> {
        let name = self.name.clone();
        let opened = self
            .pools
            .run(move |pools| pools.open_store(&name).map_err(|e| pools.error(&name, &e)))
            .await;
        match opened {
            Ok(entry) => Ok(PoolStore::new(entry.pool.clone())),
            Err(e) if e.kind == crate::error::Kind::NotFound => Err(Error::failed(
                Code::NotAvailable,
                format!("pool {} does not exist (or was deleted)", self.name),
            )),
            Err(e) if e.kind == crate::error::Kind::Busy => {
                Err(Error::failed(Code::NotReady, e.message))
            }
            Err(e) => Err(Error::failed(Code::DriverError, e.message)),
        }
    }
}

impl StorePort for PoolPort {
    fn get(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, Option<Bytes>> {
        Box::pin(async move { self.open().await?.get(key, caps).await })
    }

    fn put(&self, key: Bytes, value: Bytes, caps: Caps) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.open().await?.put(key, value, caps).await })
    }

    fn del(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.open().await?.del(key, caps).await })
    }

    fn append(&self, value: Bytes, caps: Caps) -> StoreFuture<'_, Bytes> {
        Box::pin(async move { self.open().await?.append(value, caps).await })
    }

    fn scan(&self, range: Range, caps: Caps) -> StoreFuture<'_, Entries> {
        Box::pin(async move { self.open().await?.scan(range, caps).await })
    }
}
