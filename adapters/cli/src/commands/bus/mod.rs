//! `plex bus …`: a client of a bus broker (`plex-bus`), and a broker, on a
//! tokio runtime that lives for the command.

mod broker;
mod pubsub;
mod reply;
mod request;

use plex_bus::{BusClient, BusError};

use crate::cli::{BusCommand, BusUrl};
use crate::commands::Outcome;
use crate::error::{Error, Kind, Result};
use crate::output::Out;

/// Runs a `plex bus` command to its end.
pub(crate) fn run(command: BusCommand, out: &mut Out) -> Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::new(Kind::Io, format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(async {
        match command {
            BusCommand::Request(args) => request::run(args, out).await,
            BusCommand::Reply(args) => reply::run(args).await,
            BusCommand::Pub(args) => pubsub::publish(args).await,
            BusCommand::Sub(args) => pubsub::subscribe(args, out).await,
            BusCommand::Broker(args) => broker::run(args, out).await,
        }
    });
    // A request that failed while reading stdin leaves tokio's blocking
    // read of it behind; waiting for it would wait for the user's input.
    runtime.shutdown_background();
    result
}

/// Connects to the broker at `bus.url`, authenticating with its access
/// options.
async fn connect(bus: &BusUrl) -> Result<BusClient> {
    let url = &bus.url;
    let options = bus.access.options()?;
    match plex_tokio::connect_with(url, &options).await {
        Ok(session) => Ok(BusClient::new(session)),
        Err(e @ plex_runtime::Error::Endpoint(_)) => {
            Err(Error::usage(format!("invalid broker URL `{url}`: {e}"))
                .with_hint("like tcp://127.0.0.1:7070, ws://host:port/path or tls://host:port"))
        }
        Err(e) => {
            let refused = match &e {
                plex_runtime::Error::Auth(auth) => crate::access::refused(url, auth),
                _ => None,
            };
            Err(refused.unwrap_or_else(|| {
                Error::new(
                    Kind::Unreachable,
                    format!("cannot connect to the broker at {url}: {e}"),
                )
                .with_hint("start one with `plex bus broker`, or give its --url")
            }))
        }
    }
}

/// The report of a bus operation on `channel` that failed.
fn bus_error(e: BusError, channel: &str) -> Error {
    match e {
        BusError::NoResponders => Error::new(
            Kind::NoResponders,
            format!("no responders on channel `{channel}`"),
        )
        .with_hint(format!(
            "answer it with `plex bus reply {channel} -- COMMAND`"
        )),
        BusError::ResponderGone => Error::new(
            Kind::ResponderGone,
            format!("the responder on `{channel}` failed before it answered"),
        ),
        BusError::Timeout(after) => Error::new(
            Kind::Timeout,
            format!("no answer on `{channel}` within {after:?}"),
        )
        .with_hint("a longer --timeout waits more"),
        BusError::SlowConsumer => Error::new(
            Kind::RetentionGap,
            format!("the broker ended the subscription to `{channel}`: it fell too far behind"),
        ),
        BusError::TooLarge { len, max } => {
            Error::usage(format!("a {len}-byte payload is over the {max}-byte limit"))
        }
        BusError::Wire(e) => Error::usage(format!("`{channel}`: {e}"))
            .with_hint("channels are UTF-8 names; a pattern may end in `*` to match a prefix"),
        BusError::Refused => Error::usage(format!("the broker refused `{channel}`")),
        BusError::Source(e) => Error::new(Kind::Io, format!("cannot read the input: {e}")),
        BusError::Transport(e) => Error::new(
            Kind::Unreachable,
            format!("the connection to the broker failed: {e}"),
        ),
        // Closed (never here: no command closes its client early) and any
        // error a newer bus adds.
        e => Error::new(Kind::Internal, e.to_string()),
    }
}
