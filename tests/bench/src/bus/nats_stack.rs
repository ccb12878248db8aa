//! NATS: `nats-server` on loopback, each client an `async-nats`
//! [`Client`] on a connection of its own.

use std::sync::Arc;

use async_nats::Client;
use bytes::Bytes;
use futures_util::StreamExt;

use super::workload::{BusPeer, Tally};
use super::Result;

/// The queue group every responder joins, so that each request goes to
/// one of them.
const QUEUE_GROUP: &str = "bench";

/// An async-nats client.
#[derive(Clone)]
pub(crate) struct NatsBus {
    client: Client,
}

impl BusPeer for NatsBus {
    const NAME: &'static str = "nats";

    /// The server's URL; the server outlives every run.
    type Broker = String;

    async fn broker(nats_url: &str) -> Result<String> {
        Ok(nats_url.to_owned())
    }

    async fn connect(url: &String) -> Result<NatsBus> {
        Ok(NatsBus {
            client: async_nats::connect(url.as_str()).await?,
        })
    }

    async fn respond(&self, channel: &'static str) -> Result<()> {
        let mut requests = self
            .client
            .queue_subscribe(channel, QUEUE_GROUP.into())
            .await?;
        // The subscription is at the server before any request is sent.
        self.client.flush().await?;
        let client = self.client.clone();
        tokio::spawn(async move {
            while let Some(message) = requests.next().await {
                // A publish is queued, not a round trip: replying inline
                // holds up no other request.
                if let Some(reply) = message.reply {
                    if client.publish(reply, message.payload).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(())
    }

    async fn request(&self, channel: &'static str, payload: Bytes) -> Result<Bytes> {
        Ok(self.client.request(channel, payload).await?.payload)
    }

    async fn subscribe(&self, channel: &'static str, tally: Arc<Tally>) -> Result<()> {
        let mut messages = self.client.subscribe(channel).await?;
        self.client.flush().await?;
        tokio::spawn(async move {
            while messages.next().await.is_some() {
                tally.hit();
            }
        });
        Ok(())
    }

    async fn publish(&self, channel: &'static str, payload: Bytes) -> Result<()> {
        Ok(self.client.publish(channel, payload).await?)
    }

    async fn flush(&self) -> Result<()> {
        Ok(self.client.flush().await?)
    }
}
