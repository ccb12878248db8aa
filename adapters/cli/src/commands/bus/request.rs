//! `plex bus request`: one request, its reply on stdout.

use bytes::Bytes;
use tokio_util::compat::TokioAsyncReadCompatExt;

use super::{bus_error, connect};
use crate::cli::RequestArgs;
use crate::commands::Outcome;
use crate::error::Result;
use crate::output::Out;

/// Sends DATA (or stdin, streamed) to one responder of the channel and
/// prints the reply's bytes as they are.
pub(super) async fn run(args: RequestArgs, out: &mut Out) -> Result<Outcome> {
    let client = connect(&args.bus).await?;
    let reply = match args.data {
        Some(data) => {
            client
                .request_timeout(&args.channel, Bytes::from(data), args.timeout)
                .await
        }
        None => {
            let mut stdin = tokio::io::stdin().compat();
            client
                .request_from(&args.channel, &mut stdin, args.timeout)
                .await
        }
    }
    .map_err(|e| bus_error(e, &args.channel))?;
    out.bytes(&reply)?;
    out.flush()?;
    client.close().await;
    Ok(Outcome::Success)
}
