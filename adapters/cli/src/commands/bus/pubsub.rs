//! `plex bus pub` and `plex bus sub`.

use bytes::Bytes;
use plex_bus::{BusClient, ClientConfig, Event};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use super::{bus_error, connect};
use crate::cli::{PubArgs, SubArgs};
use crate::commands::Outcome;
use crate::error::{Error, Kind, Result};
use crate::json;
use crate::lines::{Line, Lines};
use crate::output::Out;

/// Publishes DATA, all of stdin, or each line of stdin, then closes the
/// connection gracefully so that every message reaches the broker.
pub(super) async fn publish(args: PubArgs) -> Result<Outcome> {
    let client = connect(&args.bus).await?;
    let max = ClientConfig::default().max_payload;
    let channel = args.channel;
    match args.data {
        Some(data) => send(&client, &channel, Bytes::from(data)).await?,
        None if args.lines => {
            // Lines are read by a blocking thread, one at a time: memory
            // holds one line however long stdin is.
            let client = client.clone();
            tokio::task::spawn_blocking(move || publish_lines(&client, &channel, max))
                .await
                .map_err(|e| Error::new(Kind::Internal, e.to_string()))??;
        }
        None => {
            let mut payload = Vec::new();
            tokio::io::stdin()
                .take(max as u64 + 1)
                .read_to_end(&mut payload)
                .await
                .map_err(|e| Error::new(Kind::Io, format!("cannot read the input: {e}")))?;
            if payload.len() > max {
                return Err(Error::usage(format!(
                    "stdin is over the {max}-byte message limit"
                )));
            }
            send(&client, &channel, Bytes::from(payload)).await?;
        }
    }
    client.close().await;
    Ok(Outcome::Success)
}

/// Prints each message published to a matching channel, until `--count`
/// messages or the end of the connection.
pub(super) async fn subscribe(args: SubArgs, out: &mut Out) -> Result<Outcome> {
    let client = connect(&args.bus).await?;
    let pattern = &args.pattern;
    let mut subscription = client
        .subscribe(pattern)
        .await
        .map_err(|e| bus_error(e, pattern))?;
    let mut printed = 0u64;
    let mut lost = false;
    while args.count.is_none_or(|count| printed < count) {
        let event = match subscription.next().await {
            Some(Ok(event)) => event,
            Some(Err(e)) => {
                out.flush()?;
                return Err(bus_error(e, pattern));
            }
            None => {
                out.flush()?;
                return Err(Error::new(
                    Kind::Unreachable,
                    format!("the broker ended the subscription to `{pattern}`"),
                ));
            }
        };
        match event {
            Event::Message { channel, payload } => {
                if args.json {
                    out.record(&MessageRecord::new(&channel, &payload))?;
                } else {
                    out.bytes(&payload)?;
                    out.bytes(b"\n")?;
                }
                printed += 1;
            }
            Event::Gap { dropped } => {
                if args.json {
                    out.record(&GapRecord { gap: dropped })?;
                }
                out.flush()?;
                Error::new(
                    Kind::RetentionGap,
                    format!("the broker dropped {dropped} messages to `{pattern}`: this subscriber fell behind"),
                )
                .with_hint("the messages after them follow")
                .report();
                lost = true;
            }
            // Events a newer bus adds carry nothing to print.
            _ => {}
        }
        out.flush()?;
    }
    // Unsubscribes first: a graceful close waits for open streams.
    drop(subscription);
    client.close().await;
    Ok(if lost {
        Outcome::Reported(Kind::RetentionGap)
    } else {
        Outcome::Success
    })
}

/// What `plex bus sub --json` prints for a message.
#[derive(Debug, Serialize)]
struct MessageRecord<'a> {
    /// The channel it was published to.
    channel: &'a str,
    /// The payload: its text, or its standard base64.
    payload: String,
    /// `"text"` or `"base64"`.
    encoding: &'static str,
}

impl<'a> MessageRecord<'a> {
    fn new(channel: &'a str, payload: &[u8]) -> MessageRecord<'a> {
        match std::str::from_utf8(payload) {
            Ok(text) => MessageRecord {
                channel,
                payload: text.to_owned(),
                encoding: "text",
            },
            Err(_) => {
                let mut encoded = Vec::new();
                json::base64_into(payload, &mut encoded);
                MessageRecord {
                    channel,
                    // base64 is ASCII.
                    payload: String::from_utf8_lossy(&encoded).into_owned(),
                    encoding: "base64",
                }
            }
        }
    }
}

/// What `plex bus sub --json` prints where the broker dropped messages.
#[derive(Debug, Serialize)]
struct GapRecord {
    /// How many.
    gap: u64,
}

/// Publishes one message.
async fn send(client: &BusClient, channel: &str, payload: Bytes) -> Result<()> {
    client
        .publish(channel, payload)
        .await
        .map_err(|e| bus_error(e, channel))
}

/// Publishes each line of stdin; runs on a blocking thread.
fn publish_lines(client: &BusClient, channel: &str, max: usize) -> Result<()> {
    let runtime = tokio::runtime::Handle::current();
    let mut lines = Lines::new(std::io::stdin().lock(), max);
    while let Some(line) = lines
        .next_line(&mut |_| {})
        .map_err(|e| Error::new(Kind::Io, format!("cannot read the input: {e}")))?
    {
        match line {
            Line::Ok => {
                let payload = Bytes::copy_from_slice(lines.line());
                runtime.block_on(send(client, channel, payload))?;
            }
            Line::TooLong(len) => {
                return Err(Error::usage(format!(
                    "line {}: {len} bytes is over the {max}-byte message limit",
                    lines.number()
                ))
                .with_line(lines.number()));
            }
        }
    }
    Ok(())
}
