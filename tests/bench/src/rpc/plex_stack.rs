//! Plex: a store port exposed on one plex-tokio session and reached over
//! plex RPC, a `plex/1` stream per call.

use std::sync::Arc;

use bytes::Bytes;
use plex_peer::{connect_store_port, expose_store_port, MemoryStore, Peer, RemoteStore, StorePort};
use plex_runtime::Config;

use super::workload::StoreClient;
use super::Result;
use crate::report::PLEX;

/// The store port's id and lane on both peers.
const PORT_ID: &str = "bench";
const LANE: &str = "rpc";

/// A client of a store port served by a peer in this process.
#[derive(Clone)]
pub(crate) struct PlexStore {
    store: RemoteStore,
    /// The serving side: its peer and the handle that keeps it serving.
    _server: Arc<(Peer, plex_peer::Serving)>,
    /// The calling side's peer, which owns the session.
    _client: Peer,
}

impl StoreClient for PlexStore {
    const NAME: &'static str = PLEX;

    async fn start(store: MemoryStore) -> Result<PlexStore> {
        let listener = plex_tokio::listen("tcp://127.0.0.1:0", Config::default()).await?;
        let url = listener.local_endpoint().to_string();
        let (accepted, connected) = tokio::join!(
            listener.accept(),
            plex_tokio::connect(&url, Config::default())
        );
        let server = Peer::new(accepted?.0);
        let serving = expose_store_port(&server, PORT_ID, LANE, store);
        let client = Peer::new(connected?);
        Ok(PlexStore {
            store: connect_store_port(&client, PORT_ID, LANE),
            _server: Arc::new((server, serving)),
            _client: client,
        })
    }

    async fn get(&mut self, key: Bytes) -> Result<Option<Bytes>> {
        Ok(self.store.get(key, Bytes::new()).await?)
    }

    async fn put(&mut self, key: Bytes, value: Bytes) -> Result<()> {
        Ok(self.store.put(key, value, Bytes::new()).await?)
    }
}
