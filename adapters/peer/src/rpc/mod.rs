//! RPC on `plex/1`: neonplex's frames and call semantics, a stream per
//! call. `proto/RPC.md` specifies the mapping.

mod client;
mod server;

pub use client::{Answer, Replies, RpcClient};
pub use server::{Request, Response, RpcListener, Service, Serving};
