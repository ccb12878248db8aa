//! Persistent pools: bounded ring logs in memory-mapped files that many
//! processes append to, read and follow.
//!
//! A pool is one file, `header | index | ring`, specified normatively in
//! `FORMAT.md`. Writers in any number of processes serialise through a file
//! lock; readers take no lock and validate every frame (length, seq,
//! CRC32C) so they never return a torn or overwritten message. Followers
//! sleep on a futex in the mapping. Opening a pool for writing recovers it
//! after a crash, reporting damaged messages instead of dropping them;
//! opening it read-only takes no lock and writes nothing. This crate does
//! file IO and reads the wall clock for timestamps;
//! it starts no threads except inside [`Notifier`].
//!
//! ```
//! use plex_store::{Options, Pool, Seq, Start};
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("demo.pool");
//! let pool = Pool::create(&path, 1 << 20, Options::new())?;
//! let seq = pool.append(&["greeting"], b"hello")?;
//! assert_eq!(seq, Seq(1));
//! assert_eq!(pool.get(seq)?.data, b"hello");
//! let mut cursor = pool.cursor(Start::Oldest);
//! assert_eq!(cursor.try_next()?.map(|m| m.tags), Some(vec!["greeting".to_owned()]));
//! # Ok::<(), plex_store::Error>(())
//! ```
#![deny(missing_docs)]
#![cfg(unix)]

mod append;
#[cfg(test)]
mod cost_tests;
mod cursor;
mod durability;
mod error;
mod failpoint;
mod frame;
mod header;
mod map;
mod message;
mod notifier;
mod notify;
mod pool;
#[cfg(test)]
mod read_tests;
mod recover;
mod ring;
mod space;
mod waiters;
mod walk;

pub use append::TryAppend;
pub use cursor::{Cursor, Start};
pub use error::{Error, ErrorKind, Location, Result};
pub use message::{BatchReceipt, Message, MessageBuf, Receipt, Seq, Tags};
pub use notifier::{Notifier, WaitFor};
pub use pool::{is_pool, Durability, Info, Options, Pool, MAGIC};
pub use recover::{check_bytes, CheckReport, Recovery};
