//! Store ports: a key-value store with an append log and range scans,
//! served and reached over RPC (neonplex's `StorePort`).

mod memory;
mod range;
mod remote;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;

pub use memory::MemoryStore;
pub use range::{bounds_cross, Range};
pub use remote::{
    connect_store_port, expose_store_port, with_caps, CapsCheck, RemoteStore, StoreServer, WithCaps,
};

use crate::Error;

/// The future a [`StorePort`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// A capability token sent with a call; empty means none. The serving side
/// may check it and answer with [`Code::CapabilityDenied`](crate::Code::CapabilityDenied).
pub type Caps = Bytes;

/// The key of the `seq`th append (from 1): `log/` and the seq as 20
/// decimal digits, so that keys sort in append order. Every backend uses it.
pub fn append_key(seq: u64) -> Bytes {
    format!("log/{seq:020}").into()
}

/// The seq of an [`append_key`], `None` for any other key.
pub fn parse_append_key(key: &[u8]) -> Option<u64> {
    let digits = key.strip_prefix(b"log/")?;
    if digits.len() != 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// One key and its value, as a scan yields them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: Bytes,
    /// Its value.
    pub value: Bytes,
}

/// A key-value store with an append log and range scans.
///
/// The methods return boxed futures so that a port can be used as
/// `Arc<dyn StorePort>` (a server picks its backend at run time). Every
/// call carries a [`Caps`] token; backends themselves ignore it, and
/// `expose_store_port` checks it before calling them.
pub trait StorePort: Send + Sync {
    /// The value under `key`, `None` if there is none.
    fn get(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, Option<Bytes>>;
    /// Sets `key` to `value`. When the future resolves the write is as
    /// durable as the backend promises.
    fn put(&self, key: Bytes, value: Bytes, caps: Caps) -> StoreFuture<'_, ()>;
    /// Removes `key`; removing a missing key is not an error.
    fn del(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, ()>;
    /// Appends `value` to the store's log and returns the key it was
    /// stored under. Keys of later appends sort after earlier ones.
    fn append(&self, value: Bytes, caps: Caps) -> StoreFuture<'_, Bytes>;
    /// The entries in `range`, in key order (or reverse order).
    fn scan(&self, range: Range, caps: Caps) -> StoreFuture<'_, Entries>;
}

impl<P: StorePort + ?Sized> StorePort for std::sync::Arc<P> {
    fn get(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, Option<Bytes>> {
        (**self).get(key, caps)
    }
    fn put(&self, key: Bytes, value: Bytes, caps: Caps) -> StoreFuture<'_, ()> {
        (**self).put(key, value, caps)
    }
    fn del(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, ()> {
        (**self).del(key, caps)
    }
    fn append(&self, value: Bytes, caps: Caps) -> StoreFuture<'_, Bytes> {
        (**self).append(value, caps)
    }
    fn scan(&self, range: Range, caps: Caps) -> StoreFuture<'_, Entries> {
        (**self).scan(range, caps)
    }
}

/// The entries of a scan, produced as they are consumed: a backend reads
/// ahead by at most a small batch, and a remote scan by at most what the
/// call stream's flow-control window holds.
pub struct Entries(Pin<Box<dyn Stream<Item = Result<Entry, Error>> + Send>>);

impl Entries {
    /// Wraps a stream of entries.
    pub fn new(stream: impl Stream<Item = Result<Entry, Error>> + Send + 'static) -> Entries {
        Entries(Box::pin(stream))
    }

    /// The next entry; `None` at the end. Dropping `Entries` early stops
    /// the scan (a remote one is cancelled at the server).
    pub async fn next(&mut self) -> Option<Result<Entry, Error>> {
        std::future::poll_fn(|cx| self.0.as_mut().poll_next(cx)).await
    }

    /// Every remaining entry. For tests and small ranges: it holds them all.
    pub async fn collect(mut self) -> Result<Vec<Entry>, Error> {
        let mut all = Vec::new();
        while let Some(entry) = self.next().await {
            all.push(entry?);
        }
        Ok(all)
    }
}

impl Stream for Entries {
    type Item = Result<Entry, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Entries")
    }
}
