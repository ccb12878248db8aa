//! A request/reply and publish/subscribe bus over `plex/1` (seed 003): a
//! [`Broker`] and a [`BusClient`], on any runtime the `plex-runtime`
//! driver runs on. The bytes and the routing are the sans-IO
//! [`plex_proto::bus`].
//!
//! Each request travels on a stream of its own, from the requester to the
//! broker and from the broker to one responder, so the frames of
//! concurrent requests cannot interleave: the seed's open bug cannot
//! happen by construction.
//!
//! ```
//! use bytes::Bytes;
//! use plex_bus::{Broker, BrokerConfig, BusClient, Event};
//! use plex_runtime::Config;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = Broker::new(BrokerConfig::default());
//! let server = plex_tokio::listen("tcp://127.0.0.1:0", Config::default()).await?;
//! let url = server.local_endpoint().to_string();
//! let serving = broker.clone();
//! tokio::spawn(async move {
//!     while let Ok((session, _)) = server.accept().await {
//!         tokio::spawn({ let broker = serving.clone(); async move { broker.serve(session).await } });
//!     }
//! });
//! let connect = || async { plex_tokio::connect(&url, Config::default()).await.map(BusClient::new) };
//! let (worker, caller) = (connect().await?, connect().await?);
//!
//! // Request/reply: one responder per request.
//! let mut responder = worker.respond("math.double").await?;
//! tokio::spawn(async move {
//!     while let Some(mut request) = responder.next().await {
//!         let n: u64 = String::from_utf8_lossy(&request.body().await?).parse()?;
//!         request.reply((n * 2).to_string().into()).await?;
//!     }
//!     Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! });
//! assert_eq!(caller.request("math.double", Bytes::from("21")).await?, "42");
//!
//! // Publish/subscribe: every subscriber, in order; `*` ends a prefix.
//! let mut feed = worker.subscribe("news.*").await?;
//! caller.publish("news.rust", Bytes::from("plex")).await?;
//! assert_eq!(
//!     feed.next().await.transpose()?,
//!     Some(Event::Message { channel: "news.rust".into(), payload: Bytes::from("plex") })
//! );
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod broker;
mod client;
mod error;
mod pipe;
mod subscription;

pub use broker::{Broker, BrokerConfig, BrokerStats};
pub use client::{BusClient, ClientConfig};
pub use error::BusError;
pub use plex_proto::bus::SlowPolicy;
pub use subscription::{Event, Request, Responder, Subscription};
