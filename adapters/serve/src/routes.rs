//! Requests: the guard, the routes of Plasmite's v0 protocol, bodies and
//! responses. Every response carries `plasmite-version: 0`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use plex_store::{Durability, Message, Seq};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{watch, Semaphore};

use crate::access::Access;
use crate::config::Limits;
use crate::error::{ApiError, Kind};
use crate::pools::{check_name, Pools};
use crate::tail::{Format, Tail, TailQuery};
use crate::{events, ui, wire};

/// The body of every response.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) pools: Arc<Pools>,
    pub(crate) limits: Limits,
    pub(crate) tails: Arc<Semaphore>,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Who may use the listener.
    pub(crate) access: Access,
}

/// Bytes of a refused request's body read before answering, so that the
/// answer is not lost to a reset (a close with unread input).
const DRAIN_BYTES: usize = 64 * 1024;

/// How long a refused request's body is read for.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// The size of a pool created without `size_bytes`, as in Plasmite.
const DEFAULT_POOL_SIZE: u64 = 1 << 20;

/// Answers one request.
pub(crate) async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut response = match app.access.check(req.headers(), &path) {
        Ok(()) => route(&app, req).await.unwrap_or_else(|e| error(&e)),
        Err(e) => {
            drain(req.into_body()).await;
            let mut response = error(&e);
            if let Some((name, value)) = app.access.challenges() {
                if response.status() == StatusCode::UNAUTHORIZED {
                    response
                        .headers_mut()
                        .insert(name, HeaderValue::from_static(value));
                }
            }
            response
        }
    };
    response
        .headers_mut()
        .insert("plasmite-version", HeaderValue::from_static("0"));
    tracing::debug!(%method, %path, status = response.status().as_u16(), "request");
    response
}

/// Dispatches by path, then by method.
async fn route(app: &Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(&path).split('/').collect();
    let method = req.method();
    match segments.as_slice() {
        [""] | ["ui"] => {
            allow(method, &[Method::GET])?;
            Ok(ui::page())
        }
        ["ui", "assets", asset] => {
            allow(method, &[Method::GET])?;
            ui::asset(asset)
                .ok_or_else(|| ApiError::new(Kind::NotFound, format!("no such asset: {asset}")))
        }
        ["v0", "ui", "pools", pool, "events"] => {
            allow(method, &[Method::GET])?;
            let pool = decode(pool)?;
            Ok(events::stream(app, pool, &req))
        }
        ["healthz"] => {
            allow(method, &[Method::GET])?;
            Ok(json(StatusCode::OK, b"{\"ok\":true}".to_vec()))
        }
        ["v0", "pools"] => match *method {
            Method::GET => list(app).await,
            Method::POST => create(app, req).await,
            _ => Err(not_allowed(&[Method::GET, Method::POST])),
        },
        ["v0", "pools", "open"] if method == Method::POST => open(app, req).await,
        ["v0", "pools", pool] => {
            allow(method, &[Method::DELETE])?;
            delete(app, decode(pool)?).await
        }
        ["v0", "pools", pool, "info"] => {
            allow(method, &[Method::GET])?;
            info(app, decode(pool)?).await
        }
        ["v0", "pools", pool, "append"] => {
            allow(method, &[Method::POST])?;
            let pool = decode(pool)?;
            append(app, pool, req).await
        }
        ["v0", "pools", pool, "messages", seq] => {
            allow(method, &[Method::GET])?;
            let seq = seq
                .parse::<u64>()
                .map_err(|_| ApiError::usage("invalid seq: expected an unsigned integer"))?;
            get(app, decode(pool)?, seq).await
        }
        ["v0", "pools", pool, "tail"] => {
            allow(method, &[Method::GET])?;
            let pool = decode(pool)?;
            tail(app, pool, req.uri().query())
        }
        ["v0", "pools", _, "append_lite3" | "tail_lite3"]
        | ["v0", "pools", _, "messages", _, "lite3"] => Err(ApiError::usage(
            "plex serve does not offer Lite3 endpoints; use the JSON endpoints \
             (/append, /messages/{seq}, /tail)",
        )),
        _ => Err(ApiError::new(
            Kind::NotFound,
            format!("no such route: {path}"),
        )),
    }
}

/// `GET /v0/pools`.
async fn list(app: &Arc<App>) -> Result<Response<Body>, ApiError> {
    let pools = app
        .pools
        .run(|pools| {
            let infos: Vec<_> = pools
                .list()?
                .iter()
                .map(|e| e.info(pools.wire_path(&e.name)))
                .collect();
            Ok(infos)
        })
        .await?;
    Ok(json_value(&serde_json::json!({ "pools": pools })))
}

/// `POST /v0/pools`: `{"pool":NAME,"size_bytes":N?}`.
async fn create(app: &Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    #[derive(Deserialize)]
    struct CreateRequest {
        pool: String,
        size_bytes: Option<u64>,
    }
    let body: CreateRequest = json_body(app, req).await?;
    check_name(&body.pool)?;
    let size = body.size_bytes.unwrap_or(DEFAULT_POOL_SIZE);
    let info = app
        .pools
        .run(move |pools| {
            let entry = pools.create(&body.pool, size)?;
            Ok(entry.info(pools.wire_path(&body.pool)))
        })
        .await?;
    Ok(json_value(&serde_json::json!({ "pool": info })))
}

/// `POST /v0/pools/open`: `{"pool":NAME}`, 404 when missing.
async fn open(app: &Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    #[derive(Deserialize)]
    struct OpenRequest {
        pool: String,
    }
    let body: OpenRequest = json_body(app, req).await?;
    info(app, body.pool).await
}

/// `GET /v0/pools/{pool}/info`.
async fn info(app: &Arc<App>, name: String) -> Result<Response<Body>, ApiError> {
    check_name(&name)?;
    let info = app
        .pools
        .run(move |pools| Ok(pools.open(&name)?.info(pools.wire_path(&name))))
        .await?;
    Ok(json_value(&serde_json::json!({ "pool": info })))
}

/// `DELETE /v0/pools/{pool}`.
async fn delete(app: &Arc<App>, name: String) -> Result<Response<Body>, ApiError> {
    check_name(&name)?;
    app.pools.run(move |pools| pools.delete(&name)).await?;
    Ok(json(StatusCode::OK, b"{\"ok\":true}".to_vec()))
}

/// `POST /v0/pools/{pool}/append`:
/// `{"data":{…},"tags":[…]?,"durability":"fast"|"flush"?}`.
async fn append(
    app: &Arc<App>,
    name: String,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    #[derive(Deserialize)]
    struct AppendRequest {
        data: Box<RawValue>,
        tags: Option<Vec<String>>,
        durability: Option<String>,
    }
    check_name(&name)?;
    let body: AppendRequest = json_body(app, req).await?;
    if !body.data.get().starts_with('{') {
        return Err(ApiError::usage("data must be object"));
    }
    let mut data = Vec::with_capacity(body.data.get().len());
    wire::compact_into(body.data.get(), &mut data);
    let tags = body.tags.unwrap_or_default();
    // As in Plasmite: anything but "flush" is fast.
    let durability = match body.durability.as_deref() {
        Some("flush") => Durability::Flush,
        _ => Durability::Fast,
    };
    let msg = app
        .pools
        .run(move |pools| {
            let entry = pools.open(&name)?;
            let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
            let receipt = entry
                .pool
                .append_receipt_with(&refs, &data, durability)
                .map_err(|e| pools.error(&name, &e))?;
            Ok(Message {
                seq: receipt.seq,
                time: receipt.time,
                tags,
                data,
            })
        })
        .await?;
    Ok(message(&msg))
}

/// `GET /v0/pools/{pool}/messages/{seq}`.
async fn get(app: &Arc<App>, name: String, seq: u64) -> Result<Response<Body>, ApiError> {
    check_name(&name)?;
    let msg = app
        .pools
        .run(move |pools| {
            let entry = pools.open(&name)?;
            entry.pool.get(Seq(seq)).map_err(|e| pools.error(&name, &e))
        })
        .await?;
    Ok(message(&msg))
}

/// `GET /v0/pools/{pool}/tail`: checks the query and the tail limit, then
/// answers 200 with a stream. Failures after that, a missing pool
/// included, are the stream's one terminal error line, as in Plasmite.
fn tail(app: &Arc<App>, name: String, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    check_name(&name)?;
    let query = TailQuery::parse(query)?;
    let max = app.limits.max_tail_timeout;
    if query.timeout.is_some_and(|t| t > max) {
        return Err(ApiError::usage("tail timeout exceeds server limit"));
    }
    let permit = app
        .tails
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::busy("too many concurrent tail requests"))?;
    let deadline = tokio::time::Instant::now() + query.timeout.unwrap_or(max);
    tracing::debug!(pool = %name, ?query, "tail started");
    let tail = Tail {
        pools: app.pools.clone(),
        name,
        query,
        deadline: Some(deadline),
        format: Format::JsonLines,
        _slot: permit,
        shutdown: app.shutdown.clone(),
    };
    let body = StreamBody::new(tail.into_stream().map(|b| Ok(Frame::data(b))));
    let mut response = Response::new(BodyExt::boxed_unsync(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/jsonl"));
    Ok(response)
}

/// Reads a JSON request body of at most `max_body_bytes`.
async fn json_body<T: DeserializeOwned>(app: &App, req: Request<Incoming>) -> Result<T, ApiError> {
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        drain(req.into_body()).await;
        return Err(
            ApiError::usage("expected request with `Content-Type: application/json`")
                .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        );
    }
    let max = app.limits.max_body_bytes;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        ApiError::usage(format!("request body exceeds the limit of {max} bytes"))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    if declared.is_some_and(|n| n > max.saturating_add(DRAIN_BYTES)) {
        return Err(too_large());
    }
    let mut body = req.into_body();
    let read = async {
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ApiError::usage(format!("cannot read the body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > max {
                    return Ok(None);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(Some(buf))
    };
    let buf = tokio::time::timeout(app.limits.body_timeout, read)
        .await
        .map_err(|_| ApiError::usage("the request body did not arrive in time"))??;
    let Some(buf) = buf else {
        drain(body).await;
        return Err(too_large());
    };
    serde_json::from_slice(&buf).map_err(|e| ApiError::usage(format!("invalid JSON body: {e}")))
}

/// Reads and drops what is left of a refused request's body, within
/// [`DRAIN_BYTES`] and [`DRAIN_TIME`].
async fn drain(mut body: Incoming) {
    let read = async {
        let mut seen = 0;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}

/// Percent-decodes a `{pool}` path segment (`%2F` is a `/`, refused later).
fn decode(segment: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::usage("pool name is not UTF-8"))
}

/// Refuses a method the route does not take.
fn allow(method: &Method, allowed: &[Method]) -> Result<(), ApiError> {
    if allowed.contains(method) {
        Ok(())
    } else {
        Err(not_allowed(allowed))
    }
}

fn not_allowed(allowed: &[Method]) -> ApiError {
    let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    let names = names.join(", ");
    let mut err = ApiError::usage(format!("method not allowed; this route takes {names}"))
        .with_status(StatusCode::METHOD_NOT_ALLOWED);
    err.allow = Some(names);
    err
}

/// `{"message":ENVELOPE}`.
fn message(msg: &Message) -> Response<Body> {
    let mut out = b"{\"message\":".to_vec();
    wire::envelope_into(msg, &mut out);
    out.push(b'}');
    json(StatusCode::OK, out)
}

/// A 200 JSON response of `value`.
fn json_value(value: &serde_json::Value) -> Response<Body> {
    // A Value always serialises.
    json(
        StatusCode::OK,
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

/// A JSON response.
fn json(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The error envelope with its status.
fn error(e: &ApiError) -> Response<Body> {
    let mut response = json(e.status, e.envelope());
    if let Some(v) = e
        .allow
        .as_deref()
        .and_then(|a| HeaderValue::from_str(a).ok())
    {
        response.headers_mut().insert(ALLOW, v);
    }
    response
}
