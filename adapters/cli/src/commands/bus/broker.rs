//! `plex bus broker`: a broker on its own, until `plex serve` hosts one.

use plex_bus::{Broker, BrokerConfig};
use plex_runtime::Config;

use crate::cli::BrokerArgs;
use crate::commands::Outcome;
use crate::error::{Error, Kind, Result};
use crate::output::Out;

/// Listens, prints the URL it listens on, and serves every connection
/// until killed.
pub(super) async fn run(args: BrokerArgs, out: &mut Out) -> Result<Outcome> {
    let url = &args.listen;
    let server = plex_tokio::listen(url, Config::default())
        .await
        .map_err(|e| match e {
            plex_runtime::Error::Endpoint(_) => {
                Error::usage(format!("invalid listen URL `{url}`: {e}"))
                    .with_hint("like tcp://127.0.0.1:7070 or ws://127.0.0.1:7070/bus")
            }
            _ => Error::new(Kind::Io, format!("cannot listen on {url}: {e}")),
        })?;
    out.bytes(format!("{}\n", server.local_endpoint()).as_bytes())?;
    out.flush()?;
    let broker = Broker::new(BrokerConfig::default());
    loop {
        // Fails only when the listener itself does: a client that fails on
        // its own is skipped by `accept`.
        let (session, _peer) = server
            .accept()
            .await
            .map_err(|e| Error::new(Kind::Io, format!("cannot accept on {url}: {e}")))?;
        let broker = broker.clone();
        tokio::spawn(async move { broker.serve(session).await });
    }
}
