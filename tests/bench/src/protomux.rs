//! The `protomux` suite: the Rust peer on the Protomux wire, serving a
//! JavaScript client built on the npm `protomux` packages
//! (`tests/js/peer.js bench-client`), side by side with a JavaScript peer
//! (`tests/js/peer.js bench-server`) serving the same client, over
//! loopback TCP.
//!
//! - `echo_1k`: 1 KiB messages echoed on one channel (`plex-test/echo`),
//!   64 in flight; messages per second.
//! - `rpc_get`: store-port `get` of a 1 KiB value on the `rpc` lane
//!   (`example-store`), 64 calls in flight on one lane channel; calls per
//!   second, p50 and p99 as the client measures them.
//!
//! The client is the same program against both, so the ratio says how the
//! servers compare; the JavaScript client itself bounds both rates.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use plex_peer::{expose_store_port, MemoryStore, Peer};
use plex_runtime::mux::{Mux, MuxConfig};

use crate::report::{Figure, Report, Scenario, PLEX};
use crate::Options;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The JavaScript peer's name in the report.
const JS: &str = "js-protomux";

/// Runs every scenario of the suite.
pub(crate) fn run(options: Options) -> Result<Report> {
    install()?;
    let seconds = if options.quick { 2 } else { 5 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let rust_url = runtime.block_on(serve_rust())?;
    let mut js_server = JsServer::start()?;
    let mut figures: [(&str, Vec<[f64; 4]>); 2] = [(PLEX, Vec::new()), (JS, Vec::new())];
    for run in 0..options.runs() {
        for k in 0..2 {
            let i = (run + k) % 2;
            let url = if i == 0 { &rust_url } else { &js_server.url };
            eprintln!(
                "protomux: run {}/{}: {}",
                run + 1,
                options.runs(),
                figures[i].0
            );
            figures[i].1.push(bench_client(url, seconds)?);
        }
    }
    js_server.stop();
    let mut report = Report::default();
    let rows = [
        ("echo_1k", "msgs/s", true),
        ("rpc_get", "calls/s", true),
        ("rpc_get_p50", "µs", false),
        ("rpc_get_p99", "µs", false),
    ];
    for (i, (name, unit, higher_is_better)) in rows.into_iter().enumerate() {
        let results = figures
            .iter()
            .map(|(who, runs)| (*who, Figure::of(runs.iter().map(|r| r[i]).collect())))
            .collect();
        report.push(Scenario {
            name,
            unit,
            higher_is_better,
            targets: Vec::new(),
            results,
        });
    }
    report.note(format!(
        "{} runs per figure; each run: `node tests/js/peer.js bench-client --seconds \
         {seconds} --inflight 64` (npm protomux 3.10.1, framed-stream, Node {}) against each \
         server over loopback TCP",
        options.runs(),
        node_version()?
    ));
    report.note(
        "plex: plex-tokio `listen_mux`, an echo listener on `plex-test/echo` and \
         `Peer::over_protomux` + `expose_store_port(MemoryStore)` on each connection; \
         js-protomux: `tests/js/peer.js bench-server`, the same services in JavaScript"
            .into(),
    );
    report.note("the client is JavaScript for both: it bounds both rates".into());
    Ok(report)
}

/// The JavaScript peer's directory.
fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../js")
}

/// `npm ci` in `tests/js` when its packages are missing.
fn install() -> Result<()> {
    if js_dir().join("node_modules").is_dir() {
        return Ok(());
    }
    eprintln!("protomux: npm ci in {}", js_dir().display());
    let status = Command::new("npm")
        .arg("ci")
        .current_dir(js_dir())
        .status()
        .map_err(|e| format!("npm (Node.js) is needed for this suite: {e}"))?;
    if !status.success() {
        return Err(format!("npm ci failed: {status}").into());
    }
    Ok(())
}

fn node_version() -> Result<String> {
    let out = Command::new("node").arg("--version").output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Starts the Rust server on the current runtime; returns its URL.
async fn serve_rust() -> Result<String> {
    let server = plex_tokio::listen_mux("tcp://127.0.0.1:0", MuxConfig::default()).await?;
    let url = server.local_endpoint().to_string();
    tokio::spawn(async move {
        while let Ok((mux, _)) = server.accept().await {
            tokio::spawn(serve_connection(mux));
        }
    });
    Ok(url)
}

/// The bench client's two services on one connection.
async fn serve_connection(mux: Mux) {
    let peer = Peer::over_protomux(mux.clone());
    let _serving = expose_store_port(&peer, "example-store", "rpc", MemoryStore::new());
    let echo = mux.listen("plex-test/echo", None);
    while let Ok((channel, _)) = echo
        .accept_with(|theirs| [&b"srv:"[..], theirs].concat().into())
        .await
    {
        tokio::spawn(async move {
            while let Ok(Some(message)) = channel.recv().await {
                if channel.send(message).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// One bench-client run: echo msgs/s, get calls/s, p50 µs, p99 µs.
fn bench_client(url: &str, seconds: u64) -> Result<[f64; 4]> {
    let out = Command::new("node")
        .arg(js_dir().join("peer.js"))
        .args([
            "bench-client",
            "--connect",
            url,
            "--inflight",
            "64",
            "--seconds",
        ])
        .arg(seconds.to_string())
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("bench-client against {url} failed: {}", out.status).into());
    }
    let text = String::from_utf8(out.stdout)?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("bench-client printed no result: {text:?}"))?;
    let field = |name: &str| -> Result<f64> {
        let at = line
            .find(&format!("\"{name}\":"))
            .ok_or_else(|| format!("no {name} in {line}"))?;
        let rest = &line[at + name.len() + 3..];
        let end = rest
            .find([',', '}'])
            .ok_or_else(|| format!("bad {name} in {line}"))?;
        Ok(rest[..end].trim().parse()?)
    };
    Ok([
        field("echo_msgs_per_s")?,
        field("rpc_calls_per_s")?,
        field("rpc_p50_us")?,
        field("rpc_p99_us")?,
    ])
}

/// `peer.js bench-server`, stopped by closing its stdin.
struct JsServer {
    child: Option<Child>,
    url: String,
}

impl JsServer {
    fn start() -> Result<JsServer> {
        let mut child = Command::new("node")
            .arg(js_dir().join("peer.js"))
            .args(["bench-server", "--listen", "tcp://127.0.0.1:0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let url = line
            .trim()
            .strip_prefix("LISTENING ")
            .ok_or_else(|| format!("bench-server said {line:?}"))?
            .to_owned();
        Ok(JsServer {
            child: Some(child),
            url,
        })
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for JsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
