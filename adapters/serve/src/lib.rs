//! Serves plex pools over HTTP with Plasmite's remote protocol v0, so that
//! Plasmite's own clients (its CLI, its Rust and Node `RemoteClient`s)
//! work against `plex serve` unchanged.
//!
//! The routes are Plasmite's JSON subset: `GET|POST /v0/pools`,
//! `POST /v0/pools/open`, `GET /v0/pools/{pool}/info`,
//! `DELETE /v0/pools/{pool}`, `POST /v0/pools/{pool}/append`,
//! `GET /v0/pools/{pool}/messages/{seq}`, `GET /v0/pools/{pool}/tail` (JSON
//! Lines) and `GET /healthz`; Lite3 endpoints answer 400. `GET /` is a web
//! page that watches pools live, with its assets under `/ui/assets/` and
//! its live tail as server-sent events from
//! `GET /v0/ui/pools/{pool}/events` (outside the protocol, as Plasmite's
//! own UI routes are). Errors are
//! Plasmite's envelope `{"error":{"kind","message","path"?,"seq"?}}` with
//! its statuses, and every response carries `plasmite-version: 0`.
//!
//! Pool `NAME` is the file `DIR/NAME.plex`, shared with the `plex` CLI.
//! Plasmite's CLI names a listed pool by the basename of `path` minus
//! `.plasmite`, so pool info reports `path` as `DIR/NAME.plasmite` and the
//! real file as the additional field `file` ([`WIRE_EXTENSION`]).
//!
//! Where it knowingly differs from `plasmite serve` 1.2.1: the Lite3
//! endpoints answer 400 Usage (no Lite3 codec outside the `plasmite`
//! crate); refusals that Plasmite's framework sends without an envelope
//! carry one here (413 body too large, 415 not JSON, 405 method, 404 route,
//! and 400 rather than 422 for a missing field); a message whose stored
//! bytes are not JSON (fed by another tool) has its data as a string with
//! `meta.encoding` `"text"` or `"base64"`, as `plex follow` prints it; and a
//! tail that starts before the oldest message held reports the gap at once
//! rather than on the next message.
//!
//! A plain HTTP listener must be on loopback: it is credential-free like
//! Plasmite's local one and guarded against DNS rebinding by `Host` and
//! `Origin` checks (403); other addresses are refused
//! ([`ServeError::OffLoopback`]). With a certificate ([`Config::tls`]) the
//! listener speaks HTTPS and may listen anywhere, and every request but
//! `/healthz` needs `Authorization: Bearer <secret>` of a live access token
//! ([`tokens`]), else 401 Permission. Messages print as [`wire::envelope_into`] renders
//! them, byte for byte as `plex follow` prints them. The crate logs through
//! `tracing` events, with a span per connection; it installs no subscriber.
//!
//! With [`Config::listen`] it also listens on `plex/1`: each session is
//! served by one bus broker for the whole server ([`plex_bus::Broker`]),
//! the Plex layer's store ports (the key-value store [`remote::KV_PORT`] in
//! `DIR/kv.redb`, and [`remote::pool_port`] for each pool) and remote pools
//! ([`plex_proto::pools`], whose client is [`remote::RemotePools`]).
//! `tcp://` and `ws://` listeners must be on loopback and take no
//! credentials; other machines come over `tls://` (with
//! [`Config::listen_tls`]), whose sessions off loopback must first
//! authenticate with a live access token ([`plex_runtime::auth`]): until
//! then nothing else on the session is served, a missing, unknown or
//! revoked token is refused with its reason and the connection closed,
//! a session that does not authenticate within [`Limits::auth_timeout`]
//! is dropped, and revoking a token closes the sessions it admitted
//! within a second ([`Config::require_token`] applies all this on
//! loopback too). The store ports' caps tokens grant nothing
//! then: the session's authentication is the access control, and every
//! admitted session may call every port (the `kv` and `pool/NAME` ports
//! ignore caps).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg(unix)]

mod access;
mod config;
mod error;
mod events;
mod guard;
mod pools;
pub mod remote;
mod routes;
mod server;
mod tail;
pub mod tokens;
mod ui;
pub mod wire;

pub use config::{parse_http_url, Config, HttpUrl, Limits, DEFAULT_HTTP};
pub use error::ServeError;
/// TLS certificates for [`Config::tls`] (PEM files, or self-signed for
/// development), from the runtime's `tls://`.
pub use plex_runtime::tls::ServerTls;
pub use pools::{EXTENSION, WIRE_EXTENSION};
pub use remote::DEFAULT_PLEX;
pub use server::Server;
