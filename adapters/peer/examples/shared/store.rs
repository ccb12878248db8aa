//! What `protomux_store_server` and `protomux_store_client` share: the
//! command line, the served store and the serving loop.

use std::time::Duration;

use bytes::Bytes;
use plex_peer::{
    Caps, Code, Entries, Error, MemoryStore, Peer, PeerConfig, Range, StoreFuture, StorePort,
    StoreServer, RPC_LANE,
};
use plex_runtime::mux::{MuxConfig, MuxServer};

/// The store id served and called unless `--id` says otherwise.
pub(crate) const DEFAULT_ID: &str = "utf8:example-store";
/// The caps token the server refuses (as `tests/js/SERVICES.md` §8 does).
pub(crate) const DENY: &[u8] = b"deny";
/// The key whose GET fails with `BadArg "forced error"`.
pub(crate) const FAIL_KEY: &[u8] = b"example/fail";
/// The key whose GET answers after [`SLOW_DELAY`].
const SLOW_KEY: &[u8] = b"example/slow";
const SLOW_DELAY: Duration = Duration::from_secs(2);

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The options both examples take.
pub(crate) struct Options {
    /// `--listen` or `--connect`, as a URL.
    pub(crate) url: Option<String>,
    /// The lanes' protocol base and limits.
    pub(crate) config: PeerConfig,
    /// The store id (`--id utf8:NAME` or `--id hex:HEX`).
    pub(crate) id: Bytes,
}

impl Options {
    /// Parses `[FLAG ADDR] [--base B] [--id utf8:NAME|hex:HEX]`; `flag` is
    /// `--listen` or `--connect`. ADDR is `HOST:PORT` (TCP) or a
    /// `tcp://` / `ws://` URL.
    pub(crate) fn parse(flag: &str) -> Result<Options, BoxError> {
        let mut options = Options {
            url: None,
            config: PeerConfig::default(),
            id: parse_id(DEFAULT_ID)?,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let value = args.next().ok_or(format!("{arg} needs a value"))?;
            match arg.as_str() {
                a if a == flag && value.contains("://") => options.url = Some(value),
                a if a == flag => options.url = Some(format!("tcp://{value}")),
                "--base" => options.config = options.config.base(value),
                "--id" => options.id = parse_id(&value)?,
                _ => return Err(format!("unknown argument {arg}").into()),
            }
        }
        Ok(options)
    }
}

/// `utf8:NAME` as NAME's bytes, `hex:HEX` as the bytes HEX spells.
fn parse_id(id: &str) -> Result<Bytes, BoxError> {
    if let Some(name) = id.strip_prefix("utf8:") {
        return Ok(Bytes::copy_from_slice(name.as_bytes()));
    }
    let hex = id
        .strip_prefix("hex:")
        .ok_or(format!("--id {id}: expected utf8:NAME or hex:HEX"))?;
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return Err(format!("--id {id}: odd or non-ASCII hex").into());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|e| format!("--id {id}: {e}"))?;
    Ok(bytes.into())
}

/// Listens on `url` for Protomux connections and says where.
pub(crate) async fn bind(url: &str, options: &Options) -> Result<MuxServer, BoxError> {
    let server = plex_tokio::listen_mux(url, MuxConfig::default()).await?;
    println!(
        "serving store {:?} on {}/{RPC_LANE} at {}",
        show(&options.id),
        options.config.base,
        server.local_endpoint()
    );
    Ok(server)
}

/// Serves `store` on every connection `server` accepts. A client may send
/// its OPEN the moment it connects: it waits for the listener within the
/// claim grace (1 s).
pub(crate) async fn serve(
    server: MuxServer,
    config: PeerConfig,
    id: Bytes,
    store: MemoryStore,
) -> Result<(), BoxError> {
    loop {
        let (mux, from) = server.accept().await?;
        let peer = Peer::protomux_with_config(mux, config.clone())?;
        let serving = StoreServer::new(TestHooks(store.clone()))
            .check_caps(|_, caps| caps != DENY)
            .expose(&peer, id.clone(), RPC_LANE);
        println!("connection from {from}");
        tokio::spawn(async move {
            peer.closed().await;
            println!(
                "connection from {from} closed; served {:?}",
                serving.stats()
            );
        });
    }
}

/// A [`MemoryStore`] with the test keys of `tests/js/SERVICES.md` §8, so
/// that neonplex's external tests can observe errors and slow calls.
struct TestHooks(MemoryStore);

impl StorePort for TestHooks {
    fn get(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, Option<Bytes>> {
        match &key[..] {
            FAIL_KEY => Box::pin(async { Err(Error::failed(Code::BadArg, "forced error")) }),
            SLOW_KEY => Box::pin(async move {
                tokio::time::sleep(SLOW_DELAY).await;
                self.0.get(key, caps).await
            }),
            _ => self.0.get(key, caps),
        }
    }

    fn put(&self, key: Bytes, value: Bytes, caps: Caps) -> StoreFuture<'_, ()> {
        self.0.put(key, value, caps)
    }

    fn del(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, ()> {
        self.0.del(key, caps)
    }

    fn append(&self, value: Bytes, caps: Caps) -> StoreFuture<'_, Bytes> {
        self.0.append(value, caps)
    }

    fn scan(&self, range: Range, caps: Caps) -> StoreFuture<'_, Entries> {
        self.0.scan(range, caps)
    }
}

/// Bytes as text, for printing.
pub(crate) fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
