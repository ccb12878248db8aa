//! An in-memory store port served over Protomux, the wire JavaScript Plex
//! (neonplex) speaks: every connection may call the store `example-store`
//! on lane `neonloom/protocol/v1/rpc`, and all connections share one store.
//!
//! ```text
//! protomux_store_server --listen ADDR [--base B] [--id utf8:NAME|hex:HEX]
//! ```
//!
//! ADDR is `HOST:PORT` (TCP, u32 little-endian length before every
//! message) or a `tcp://` or `ws://HOST:PORT/PATH` URL; it serves until
//! killed. For neonplex's tests it also answers as `tests/js/SERVICES.md`
//! §8 does: a GET of `example/fail` fails with `BadArg`, a GET of
//! `example/slow` answers after 2 s, and calls with caps `deny` are refused
//! with `CapabilityDenied`. `protomux_store_client` calls it.

#[path = "shared/store.rs"]
mod store;

use std::process::ExitCode;

use plex_peer::MemoryStore;

// One thread is plenty for an example.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let served = async {
        let options = store::Options::parse("--listen")?;
        let url = options.url.as_deref().ok_or(
            "usage: protomux_store_server --listen ADDR [--base B] [--id utf8:NAME|hex:HEX]",
        )?;
        let server = store::bind(url, &options).await?;
        store::serve(server, options.config, options.id, MemoryStore::new()).await
    };
    match served.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("protomux_store_server: {e}");
            ExitCode::FAILURE
        }
    }
}
