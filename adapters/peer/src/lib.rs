//! Plex's layer above streams (seed 000, the JavaScript `@neonloom/plex`):
//! message channels, peers with lanes, RPC with neonplex's frames, store
//! ports and a peer pool. It runs on any runtime the `plex-runtime` driver
//! runs on; the call semantics live in the sans-IO [`plex_proto::rpc`].
#![deny(missing_docs)]

mod error;
pub mod pool;
pub mod store;

pub use error::{Code, Error};
pub use pool::{Member, MemberId, MemberInfo, PeerPool, Policy, PoolConfig, PoolPort};
pub use store::{Entries, Entry, MemoryStore, Range, StorePort};
