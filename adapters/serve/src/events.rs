//! `GET /v0/ui/pools/{pool}/events`: the web page's live tail, as
//! server-sent events (`text/event-stream`), as Plasmite's UI serves it.
//!
//! It takes the tail's query (`since_seq`, `max`, `timeout_ms`,
//! `gap_policy`, `tag`) and runs the same tail, with a slot of `max_tails`
//! for as long as it lives. Each message is an `event: message` whose `id`
//! is its seq and whose `data` is its envelope, so a browser that
//! reconnects sends `Last-Event-ID` and resumes after the last message it
//! got. Without `timeout_ms` the stream lasts until the client goes away or
//! the server shuts down; a `: keep-alive` comment is sent whenever it has
//! been silent for [`crate::Limits::keep_alive`], so that idle proxies keep
//! it open and a vanished client is noticed. Like the JSON Lines tail, it
//! is read only as fast as hyper writes it: at most one chunk of about
//! 64 KiB is buffered per connection.
//!
//! Every refusal after the Host/Origin guard (a bad query, a missing pool,
//! no free tail slot) is a 200 stream of one `event: error` whose data is
//! the error envelope: a browser's `EventSource` shows nothing of a non-200
//! response. The page closes its `EventSource` on that event, so it does
//! not reconnect into the same error.
//!
//! A stream of a pool that is deleted ends with such an event too (a
//! NotFound, "pool NAME was deleted"): at once when the pool is deleted
//! through this server, else at the next keep-alive, which checks that the
//! pool's file is still there.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response};

use crate::error::ApiError;
use crate::pools::check_name;
use crate::routes::{App, Body};
use crate::tail::{Format, Tail, TailQuery};
use crate::ui;

/// The first bytes of every stream: how long a browser waits before it
/// reconnects (milliseconds).
const PRELUDE: &[u8] = b"retry: 2000\n\n";

/// Answers the request with a stream of events.
pub(crate) fn stream(app: &Arc<App>, name: String, req: &Request<Incoming>) -> Response<Body> {
    let format = Format::Sse {
        keep_alive: app.limits.keep_alive,
    };
    let prelude = stream::once(async { Bytes::from_static(PRELUDE) });
    let events = match start(app, name, req, format) {
        Ok(tail) => prelude.chain(tail.into_stream()).boxed(),
        Err(e) => {
            tracing::debug!(error = %e, "event stream refused");
            prelude
                .chain(stream::once(async move { format.error(&e) }))
                .boxed()
        }
    };
    let body = StreamBody::new(events.map(|b| Ok(Frame::data(b))));
    let mut response = Response::new(BodyExt::boxed_unsync(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    ui::secure(headers);
    response
}

/// Checks the request and takes a tail slot.
fn start(
    app: &Arc<App>,
    name: String,
    req: &Request<Incoming>,
    format: Format,
) -> Result<Tail, ApiError> {
    check_name(&name)?;
    let mut query = TailQuery::parse(req.uri().query())?;
    if let Some(last) = req.headers().get("last-event-id") {
        let last = last
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::usage("invalid Last-Event-ID: expected a seq"))?;
        query.since = Some(last.saturating_add(1));
    }
    if query
        .timeout
        .is_some_and(|t| t > app.limits.max_tail_timeout)
    {
        return Err(ApiError::usage("tail timeout exceeds server limit"));
    }
    let slot = app
        .tails
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::busy("too many concurrent tail requests"))?;
    let deadline = query.timeout.map(|t| tokio::time::Instant::now() + t);
    tracing::debug!(pool = %name, ?query, "event stream started");
    Ok(Tail {
        pools: app.pools.clone(),
        name,
        query,
        deadline,
        format,
        _slot: slot,
        shutdown: app.shutdown.clone(),
    })
}
