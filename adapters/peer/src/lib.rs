//! Plex's layer above streams (seed 000, the JavaScript `@neonloom/plex`):
//! message channels, peers with lanes, RPC with neonplex's frames, store
//! ports and a peer pool. It runs on any runtime the `plex-runtime` driver
//! runs on; the call semantics live in the sans-IO [`plex_proto::rpc`].
#![deny(missing_docs)]

pub mod channel;
mod error;
mod peer;
pub mod pool;
pub mod rpc;
pub mod store;

pub use channel::{Channel, MessageChannel};
pub use error::{Code, Error};
pub use peer::{LaneListener, Peer, PeerConfig, DEFAULT_BASE, EVENTS_LANE, RPC_LANE};
pub use pool::{Member, MemberId, MemberInfo, PeerPool, Policy, PoolConfig, PoolPort};
pub use rpc::{Answer, Replies, RpcClient, RpcListener, Serving};
pub use store::{
    append_key, connect_store_port, expose_store_port, parse_append_key, with_caps, Caps,
    Entries, Entry, MemoryStore, Range, RemoteStore, StoreFuture, StorePort, StoreServer,
};
