//! The JavaScript test peer of `tests/js` (real npm `protomux`): finding
//! it, installing its packages, running its server and its client, and the
//! Rust side of its test services (`tests/js/SERVICES.md`), so that each
//! side's client runs against the other side's server.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use plex_peer::{expose_store_port, Code, Entries, Error, MemoryStore, Range, StoreFuture};
use plex_peer::{Caps, Peer, PeerConfig, StorePort};
use plex_runtime::mux::{Mux, MuxChannel, MuxListener};
use plex_runtime::Runtime;
use sha2::{Digest, Sha256};

/// The echo service: handshake `srv:` + the opener's, every message back.
pub const ECHO: &str = "plex-test/echo";
/// Nothing listens: every OPEN is rejected.
pub const REJECT: &str = "plex-test/reject";
/// Echoes the first message, then closes.
pub const CLOSE: &str = "plex-test/close";
/// Accepts with `b1`, `b2`, `b3` in one BATCH with its OPEN, then echoes.
pub const BATCH: &str = "plex-test/batch";
/// Sends `m0..m<N-1>` for the handshake `N`, then closes.
pub const COUNT: &str = "plex-test/count";
/// Answers every message with `"<len> <sha256 hex>"`.
pub const SINK: &str = "plex-test/sink";
/// The services' default protocol base (neonplex's default protocol).
pub const BASE: &str = "neonloom/protocol/v1";
/// The store port's default channel id.
pub const STORE_ID: &str = "example-store";
/// How long a GET of `example/slow` takes.
pub const SLOW: Duration = Duration::from_secs(2);
/// The scenarios `peer.js client` runs, as `tests/js/README.md` lists them.
pub const SCENARIOS: &[&str] = &[
    "echo",
    "echo-many-channels",
    "reject",
    "close",
    "batch",
    "order-1000",
    "count",
    "big",
    "early-data",
    "reopen",
    "smoke",
    "rpc",
    "rpc-scan-interleaved",
];

/// How long a JS process may take to start listening or to be stopped.
const PROCESS_LIMIT: Duration = Duration::from_secs(30);

/// The directory of the JavaScript peer, `tests/js`.
pub fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// The peer's CLI, `tests/js/peer.js`.
pub fn node_peer() -> PathBuf {
    js_dir().join("peer.js")
}

/// Checks that `node` runs and installs the peer's npm packages
/// (`npm ci`) if `tests/js/node_modules` is missing, once per process.
/// Panics with the reason if node or npm is missing or the install fails:
/// the interop tests never skip.
pub fn ensure_node() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let version = Command::new("node").arg("--version").output();
        match version {
            Ok(out) if out.status.success() => {}
            Ok(out) => return Err(format!("`node --version` failed: {}", out.status)),
            Err(e) => return Err(format!("node is needed for the JS interop tests: {e}")),
        }
        if js_dir().join("node_modules").is_dir() {
            return Ok(());
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(js_dir())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("npm is needed to install tests/js's packages: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "`npm ci` in {} failed: {status}",
                js_dir().display()
            ))
        }
    });
    if let Err(e) = ready {
        panic!("{e}");
    }
}

fn node(args: &[&str]) -> Command {
    ensure_node();
    let mut command = Command::new("node");
    command.arg(node_peer()).args(args).current_dir(js_dir());
    command
}

/// A running `peer.js server`. Dropping it closes its stdin (which stops
/// it) and kills it if it has not exited within 30 s.
pub struct JsServer {
    child: Child,
    stdin: Option<ChildStdin>,
    url: String,
}

impl JsServer {
    /// Starts `node tests/js/peer.js server --listen <listen>` and waits
    /// (at most 30 s) for its `LISTENING <url>` line.
    pub fn spawn(listen: &str) -> JsServer {
        let mut child = node(&["server", "--listen", listen])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node peer.js server");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            // Keep reading so that the server never blocks on its stdout.
            lines.for_each(drop);
        });
        let line = match rx.recv_timeout(PROCESS_LIMIT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("peer.js server on {listen} printed no LISTENING line: {other:?}");
            }
        };
        let url = line
            .strip_prefix("LISTENING ")
            .unwrap_or_else(|| panic!("peer.js server printed {line:?}, not LISTENING <url>"))
            .to_owned();
        JsServer { child, stdin, url }
    }

    /// The URL it listens on, with the real port.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for JsServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + PROCESS_LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a `peer.js client` run printed and how it ended.
#[derive(Debug)]
pub struct ClientRun {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout: one `ok NAME` or `FAIL NAME: why` per scenario.
    pub stdout: String,
    /// Its stderr (`note …` remarks, errors).
    pub stderr: String,
}

impl ClientRun {
    /// The names of the scenarios it printed `ok` for.
    pub fn passed(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter_map(|line| line.strip_prefix("ok "))
            .collect()
    }

    /// Every line that is not `ok NAME` (failures, anything unexpected).
    pub fn failures(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|line| !line.starts_with("ok "))
            .collect()
    }
}

/// Runs `node tests/js/peer.js client --connect <url>` (with `--only` if
/// `only` names scenarios) to its end; kills it after `limit`.
pub fn run_js_client(url: &str, only: &[&str], limit: Duration) -> ClientRun {
    let joined = only.join(",");
    let mut args = vec!["client", "--connect", url];
    if !only.is_empty() {
        args.extend(["--only", &joined]);
    }
    let mut child = node(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node peer.js client");
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for peer.js client") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "peer.js client against {url} ran over {limit:?}; output so far:\n{}",
                stdout.join().unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    ClientRun {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn read_all(mut from: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let _ = from.read_to_string(&mut text);
        text
    })
}

/// Serves every service of `tests/js/SERVICES.md` on `mux`, as `peer.js
/// server` does, until the connection closes: the raw Protomux services
/// (`plex-test/*`), the smoke echo on `base` itself with any id, and the
/// store port `id` on `<base>/rpc` over a [`Peer`] sharing the connection,
/// backed by a store of its own. Spawns its tasks on the mux's runtime.
///
/// Differences a client can see: nothing can send an empty message on the
/// Rust Protomux (`MuxLocalError::EmptyMessage`), so the echo services
/// drop the zero-length messages they receive instead of echoing them; and
/// the claim grace (`MuxConfig::claim_grace`, 1 s) delays the REJECT of
/// `plex-test/reject` and of other unserved protocols by that long: it is
/// what lets a client open a channel the moment it connects, before these
/// listeners exist.
pub async fn serve_test_services(mux: Mux, base: &str, id: &str) {
    let rt = mux.runtime().clone();
    serve(&rt, mux.listen(ECHO, None), Service::Echo);
    serve(&rt, mux.listen(CLOSE, None), Service::Close);
    serve(&rt, mux.listen(COUNT, None), Service::Count);
    serve(&rt, mux.listen(SINK, None), Service::Sink);
    serve(&rt, mux.listen(BATCH, None), Service::Batch);
    serve(&rt, mux.listen(base, None), Service::Smoke);
    let peer = Peer::protomux_with_config(mux.clone(), PeerConfig::default().base(base))
        .expect("the default peer config is valid");
    let store = TestStore {
        store: MemoryStore::new(),
        runtime: rt.clone(),
    };
    let serving = expose_store_port(&peer, Bytes::copy_from_slice(id.as_bytes()), "rpc", store);
    mux.closed().await;
    drop(serving);
}

/// What a listener's channels get: how one is accepted, then served.
#[derive(Clone, Copy)]
enum Service {
    /// Accepted with `srv:` + the opener's handshake, then `echo`.
    Echo,
    /// Accepted with an empty handshake, then `close`.
    Close,
    /// Accepted with an empty handshake; the opener's handshake is the count.
    Count,
    /// Accepted with an empty handshake, then hashes.
    Sink,
    /// Accepted with `b1..b3` batched with the OPEN, then `echo`.
    Batch,
    /// Accepted with an empty handshake, then `echo`.
    Smoke,
}

/// Accepts every channel of `listener` until the connection closes, each
/// served by a task of its own.
fn serve(rt: &Arc<dyn Runtime>, listener: MuxListener, service: Service) {
    let spawner = rt.clone();
    rt.spawn(Box::pin(async move {
        loop {
            let accepted = match service {
                Service::Echo => {
                    listener
                        .accept_with(|theirs| [&b"srv:"[..], theirs].concat().into())
                        .await
                }
                Service::Batch => {
                    listener
                        .accept_batch(|_| {
                            let first = [&b"b1"[..], b"b2", b"b3"].map(Bytes::from_static).to_vec();
                            (Bytes::new(), first)
                        })
                        .await
                }
                _ => listener.accept_with(|_| Bytes::new()).await,
            };
            let Ok((channel, theirs)) = accepted else {
                return;
            };
            spawner.spawn(Box::pin(run(service, channel, theirs)));
        }
    }));
}

async fn run(service: Service, channel: MuxChannel, theirs: Bytes) {
    match service {
        Service::Echo | Service::Batch | Service::Smoke => echo(&channel).await,
        Service::Close => {
            if let Ok(Some(first)) = channel.recv().await {
                if !first.is_empty() {
                    let _ = channel.send(first).await;
                }
            }
            channel.close();
        }
        Service::Count => {
            let n = std::str::from_utf8(&theirs)
                .ok()
                .filter(|s| (1..=7).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u32>().ok())
                .filter(|&n| n <= 1_000_000)
                .unwrap_or(0);
            for i in 0..n {
                if channel.send(Bytes::from(format!("m{i}"))).await.is_err() {
                    return;
                }
            }
            channel.close();
        }
        Service::Sink => {
            while let Ok(Some(message)) = channel.recv().await {
                let digest = Sha256::digest(&message);
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                let answer = format!("{} {hex}", message.len());
                if channel.send(answer.into()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Echoes every message until the peer closes; zero-length messages
/// cannot be sent on the Rust Protomux and are dropped.
async fn echo(channel: &MuxChannel) {
    while let Ok(Some(message)) = channel.recv().await {
        if message.is_empty() {
            continue;
        }
        if channel.send(message).await.is_err() {
            return;
        }
    }
}

/// The store port of the test services: a [`MemoryStore`] with the
/// special keys and caps of `SERVICES.md` §8.
struct TestStore {
    store: MemoryStore,
    runtime: Arc<dyn Runtime>,
}

/// `CapabilityDenied`/`denied` for the caps token `deny`.
fn check(caps: &Caps) -> Result<(), Error> {
    if caps.as_ref() == b"deny" {
        return Err(Error::failed(Code::CapabilityDenied, "denied"));
    }
    Ok(())
}

impl StorePort for TestStore {
    fn get(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, Option<Bytes>> {
        Box::pin(async move {
            check(&caps)?;
            match key.as_ref() {
                b"example/fail" => Err(Error::failed(Code::BadArg, "forced error")),
                b"example/slow" => {
                    let deadline = self.runtime.now() + SLOW;
                    self.runtime.sleep_until(deadline).await;
                    self.store.get(key, caps).await
                }
                _ => self.store.get(key, caps).await,
            }
        })
    }

    fn put(&self, key: Bytes, value: Bytes, caps: Caps) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            check(&caps)?;
            self.store.put(key, value, caps).await
        })
    }

    fn del(&self, key: Bytes, caps: Caps) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            check(&caps)?;
            self.store.del(key, caps).await
        })
    }

    fn append(&self, value: Bytes, caps: Caps) -> StoreFuture<'_, Bytes> {
        Box::pin(async move {
            check(&caps)?;
            self.store.append(value, caps).await
        })
    }

    fn scan(&self, range: Range, caps: Caps) -> StoreFuture<'_, Entries> {
        Box::pin(async move {
            check(&caps)?;
            self.store.scan(range, caps).await
        })
    }
}
