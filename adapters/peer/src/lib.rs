//! Plex's layer above streams (seed 000, the JavaScript `@neonloom/plex`):
//! message channels, peers with lanes, RPC with neonplex's frames, store
//! ports and a peer pool. It runs on any runtime the `plex-runtime` driver
//! runs on; the call semantics live in the sans-IO [`plex_proto::rpc`].
//!
//! A store port served by one peer and called by another, over TCP:
//!
//! ```
//! use bytes::Bytes;
//! use plex_peer::{connect_store_port, expose_store_port, MemoryStore, Peer, Range, StorePort};
//! use plex_runtime::Config;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = plex_tokio::listen("tcp://127.0.0.1:0", Config::default()).await?;
//! let url = server.local_endpoint().to_string();
//! let (client, accepted) = tokio::join!(plex_tokio::connect(&url, Config::default()), server.accept());
//! let (client, server) = (Peer::new(client?), Peer::new(accepted?.0));
//!
//! // Served until `serving` drops; each call is its own stream.
//! let serving = expose_store_port(&server, "example-store", "rpc", MemoryStore::new());
//! let store = connect_store_port(&client, "example-store", "rpc");
//! store.put("fruit/apple".into(), "red".into(), Bytes::new()).await?;
//! assert_eq!(store.get("fruit/apple".into(), Bytes::new()).await?, Some("red".into()));
//! let key = store.append("opened".into(), Bytes::new()).await?;
//! assert_eq!(key, "log/00000000000000000001");
//! let fruit = store.scan(Range::prefix("fruit/"), Bytes::new()).await?.collect().await?;
//! assert_eq!(fruit.len(), 1);
//! assert_eq!(serving.stats().dispatched, 4);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod channel;
mod error;
mod peer;
pub mod pool;
pub mod rpc;
pub mod store;

pub use channel::{Channel, MessageChannel};
pub use error::{Code, Error};
pub use peer::{LaneListener, Peer, PeerConfig, Wire, DEFAULT_BASE, EVENTS_LANE, RPC_LANE};
/// neonplex's service ids (`deriveId`): every piece length-prefixed.
pub use plex_proto::rpc::derive_id;
pub use pool::{Member, MemberId, MemberInfo, PeerPool, Policy, PoolConfig, PoolPort};
pub use rpc::{Answer, Replies, RpcClient, RpcListener, Serving};
pub use store::{
    append_key, connect_store_port, expose_store_port, parse_append_key, with_caps, Caps, Entries,
    Entry, MemoryStore, Range, RemoteStore, StoreFuture, StorePort, StoreServer,
};
