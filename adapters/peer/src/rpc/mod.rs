//! RPC: neonplex's frames and call semantics, on `plex/1` a stream per
//! call, on Protomux one lane channel multiplexed by request id.
//! `proto/RPC.md` specifies both mappings.

mod client;
mod lane_server;
mod server;

pub use client::{Answer, Replies, RpcClient};
pub use server::{Request, Response, RpcListener, Service, Serving};
