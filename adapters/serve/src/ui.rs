//! The web page at `/`: one HTML page with its script and style sheet,
//! embedded in the binary (no build step, nothing fetched from elsewhere),
//! served with the headers that keep a browser from running anything else.
//!
//! The page lists the pools (size, message count, seq bounds, and a rate
//! it computes from successive listings), tails the chosen one live through
//! [`crate::events`], fetches a message by seq and appends from a feed box,
//! all through the protocol's own endpoints.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{
    HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};
use hyper::Response;

use crate::routes::Body;

/// The page's policy: its own script, style sheet and endpoints, nothing
/// inline, no frames around it, no forms posted elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

const PAGE: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/app.css");

/// `GET /`: the page.
pub(crate) fn page() -> Response<Body> {
    respond(PAGE, "text/html; charset=utf-8")
}

/// `GET /ui/assets/{name}`: the page's script or style sheet; `None` for
/// another name.
pub(crate) fn asset(name: &str) -> Option<Response<Body>> {
    match name {
        "app.js" => Some(respond(SCRIPT, "text/javascript; charset=utf-8")),
        "app.css" => Some(respond(STYLE, "text/css; charset=utf-8")),
        _ => None,
    }
}

/// Adds the headers every response of the page carries: the policy, no
/// caching (the page and the data change with the server), no content-type
/// sniffing, no referrer.
pub(crate) fn secure(headers: &mut HeaderMap) {
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

fn respond(body: &'static str, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure(headers);
    response
}
