//! Plex: a [`Broker`] served on plex-tokio TCP loopback, each client a
//! [`BusClient`] on a session of its own.

use std::sync::Arc;

use bytes::Bytes;
use plex_bus::{Broker, BrokerConfig, BusClient, Event};
use plex_runtime::Config;

use super::workload::{BusPeer, Tally};
use super::Result;
use crate::report::PLEX;

/// A plex-bus client.
#[derive(Clone)]
pub(crate) struct PlexBus {
    client: BusClient,
}

impl BusPeer for PlexBus {
    const NAME: &'static str = PLEX;

    /// The broker's URL; its accept loop lives on the run's runtime.
    type Broker = String;

    async fn broker(_nats_url: &str) -> Result<String> {
        let listener = plex_tokio::listen("tcp://127.0.0.1:0", Config::default()).await?;
        let url = listener.local_endpoint().to_string();
        let broker = Broker::new(BrokerConfig::default());
        tokio::spawn(async move {
            while let Ok((session, _)) = listener.accept().await {
                let broker = broker.clone();
                tokio::spawn(async move { broker.serve(session).await });
            }
        });
        Ok(url)
    }

    async fn connect(url: &String) -> Result<PlexBus> {
        let session = plex_tokio::connect(url, Config::default()).await?;
        Ok(PlexBus {
            client: BusClient::new(session),
        })
    }

    async fn respond(&self, channel: &'static str) -> Result<()> {
        let mut responder = self.client.respond(channel).await?;
        tokio::spawn(async move {
            while let Some(mut request) = responder.next().await {
                // A task per request, so that a body still arriving holds
                // up no other request.
                tokio::spawn(async move {
                    let body = request.body().await?;
                    request.reply(body).await
                });
            }
        });
        Ok(())
    }

    async fn request(&self, channel: &'static str, payload: Bytes) -> Result<Bytes> {
        Ok(self.client.request(channel, payload).await?)
    }

    async fn subscribe(&self, channel: &'static str, tally: Arc<Tally>) -> Result<()> {
        let mut subscription = self.client.subscribe(channel).await?;
        tokio::spawn(async move {
            while let Some(Ok(event)) = subscription.next().await {
                if let Event::Message { .. } = event {
                    tally.hit();
                }
            }
        });
        Ok(())
    }

    async fn publish(&self, channel: &'static str, payload: Bytes) -> Result<()> {
        Ok(self.client.publish(channel, payload).await?)
    }

    /// A publish returns once its record is in the session's send buffer,
    /// and the fan-out run waits for the deliveries: nothing to do.
    async fn flush(&self) -> Result<()> {
        Ok(())
    }
}
