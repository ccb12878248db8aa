//! plex-serve driven over loopback by a real HTTP client (hyper's).

mod common;
mod limits;
mod pools;
mod tail;
mod tls;
mod ui;
