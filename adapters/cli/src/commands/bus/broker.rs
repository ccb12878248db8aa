//! `plex bus broker`: a broker on its own, until `plex serve` hosts one.

use plex_bus::{Broker, BrokerConfig, SlowPolicy};
use plex_runtime::{Config, Endpoint};

use crate::cli::{BrokerArgs, SlowPolicyArg};
use crate::commands::Outcome;
use crate::error::{Error, Kind, Result};
use crate::output::Out;

/// Listens, prints the URL it listens on, and serves every connection
/// until killed.
pub(super) async fn run(args: BrokerArgs, out: &mut Out) -> Result<Outcome> {
    let url = &args.listen;
    check_loopback(url)?;
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
    let broker = Broker::new(config(&args)?);
    loop {
        // Fails only when the listener itself does: a client that fails on
        // its own is skipped by `accept`.
        let (session, _peer) = server
            .accept()
            .await
            .map_err(|e| Error::new(Kind::Io, format!("cannot accept on {url}: {e}")))?;
        let broker = broker.clone();
        // Clients authenticate first (`plex_runtime::auth`); this broker
        // takes no credentials and admits them all.
        tokio::spawn(async move {
            tokio::join!(
                broker.serve(session.clone()),
                plex_runtime::auth::admit_all(&session)
            );
        });
    }
}

/// This broker takes no credentials: it listens on loopback only, as
/// `plex serve` does without TLS. A URL that does not parse is left to the
/// listener, which says why.
fn check_loopback(url: &str) -> Result<()> {
    let Ok(endpoint) = url.parse::<Endpoint>() else {
        return Ok(());
    };
    if endpoint.ip().is_some_and(|ip| ip.is_loopback()) {
        return Ok(());
    }
    Err(Error::usage(format!(
        "plex bus broker takes no credentials, so it listens on loopback only, not on {}",
        endpoint.host
    ))
    .with_hint(
        "serve the bus to other machines with `plex serve --listen tls://HOST:PORT`, \
         which requires access tokens",
    ))
}

/// The broker's config from the flags; defaults where none is given.
fn config(args: &BrokerArgs) -> Result<BrokerConfig> {
    let size = |flag: &str, value: Option<u64>, default: usize| match value {
        None => Ok(default),
        Some(0) => Err(Error::usage(format!("{flag} must be more than 0"))),
        Some(bytes) => usize::try_from(bytes)
            .map_err(|_| Error::usage(format!("{flag} {bytes} is too large here"))),
    };
    let defaults = BrokerConfig::default();
    Ok(BrokerConfig::default()
        .max_payload(size(
            "--max-payload",
            args.max_payload,
            defaults.max_payload,
        )?)
        .subscriber_buffer(size(
            "--subscriber-buffer",
            args.subscriber_buffer,
            defaults.subscriber_buffer,
        )?)
        .max_buffered(size(
            "--max-buffered",
            args.max_buffered,
            defaults.max_buffered,
        )?)
        .slow_policy(match args.slow_policy {
            SlowPolicyArg::Drop => SlowPolicy::DropWithGap,
            SlowPolicyArg::Disconnect => SlowPolicy::Disconnect,
        }))
}
