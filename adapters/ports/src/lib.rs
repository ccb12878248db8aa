//! Store-port backends that persist: [`RedbStore`], a key-value store in
//! a redb file, and [`PoolStore`], the append-only log of a plex-store
//! pool. Both implement [`plex_peer::StorePort`], so a peer serves either
//! (or [`plex_peer::MemoryStore`]) as `Arc<dyn StorePort>`.
//!
//! Both run on any runtime: blocking file work goes to the
//! runtime-agnostic `blocking` thread pool or, for redb writes, to one
//! writer thread that commits concurrent writes together.
//!
//! Why redb: a pure-Rust, maintained, ACID B-tree with durable commits and
//! MVCC reads that never wait for the writer; sled is an unmaintained
//! beta, rocksdb needs a C++ build and is heavy, and fjall is a younger
//! LSM tree.
//!
//! ```
//! use bytes::Bytes;
//! use plex_peer::{Range, StorePort};
//! use plex_ports::RedbStore;
//! # let dir = tempfile::tempdir().unwrap();
//! let store = RedbStore::open(dir.path().join("kv.redb"))?;
//! smol::block_on(async {
//!     store.put("greeting".into(), "hello".into(), Bytes::new()).await?;
//!     let key = store.append("first".into(), Bytes::new()).await?;
//!     assert_eq!(store.get(key, Bytes::new()).await?.as_deref(), Some(&b"first"[..]));
//!     let all = store.scan(Range::all(), Bytes::new()).await?.collect().await?;
//!     assert_eq!(all.len(), 2);
//!     Ok::<(), plex_peer::Error>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![cfg(unix)]

mod batches;
mod kv;
mod open_error;
mod pool;
mod writer;

pub use kv::{RedbStore, Stats};
pub use open_error::OpenError;
pub use pool::PoolStore;
