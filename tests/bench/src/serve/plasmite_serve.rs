//! The `plasmite serve` process the Plasmite rows run against: Plasmite's
//! 1.2.1 CLI, installed as `tests/plasmite/cli.sh` installs it when
//! missing, serving a temporary pool directory on a free loopback port,
//! killed when dropped.

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use plasmite::api::RemoteClient;

use super::Result;

/// The CLI version compared against, the one the `plasmite` crate is.
const VERSION: &str = "1.2.1";

/// How long the server may take to answer its first request.
const STARTUP: Duration = Duration::from_secs(20);

/// A running `plasmite serve`; dropping it kills it and removes its pools.
#[derive(Debug)]
pub(crate) struct PlasmiteServe {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// `plasmite --version`.
    pub(crate) version: String,
    /// The pool directory and the server's `HOME`.
    _dir: tempfile::TempDir,
}

impl PlasmiteServe {
    /// Installs the CLI if it is missing, starts `plasmite serve` on a free
    /// loopback port and waits until it answers.
    pub(crate) fn start() -> Result<PlasmiteServe> {
        let program = program()?;
        let version = version(&program)?;
        let dir = tempfile::tempdir()?;
        // Plasmite keeps saved connections and keys under HOME: none.
        let home = dir.path().join("home");
        let pools = dir.path().join("pools");
        std::fs::create_dir_all(&home)?;
        std::fs::create_dir_all(&pools)?;
        // The port is free now; the server binds it right after.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let child = Command::new(&program)
            .arg("--dir")
            .arg(&pools)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .env("HOME", &home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let mut server = PlasmiteServe {
            child,
            url: format!("http://127.0.0.1:{port}"),
            version,
            _dir: dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Lists pools until that succeeds, or the server exits.
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + STARTUP;
        let client = RemoteClient::new(self.url.clone())?;
        loop {
            let error = match client.list_pools() {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("plasmite serve exited at startup ({status})").into());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "plasmite serve at {}: no answer within {STARTUP:?} ({error})",
                    self.url
                )
                .into());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PlasmiteServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repository's root: the bench crate is `tests/bench` in it.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `target/plasmite-cli/bin/plasmite` under the repository's root,
/// installed first if it is not there.
fn program() -> Result<PathBuf> {
    let root = repo_root();
    let program = root.join("target/plasmite-cli/bin/plasmite");
    if program.is_file() {
        return Ok(program);
    }
    eprintln!(
        "serve: {} not found; installing plasmite {VERSION} (a few minutes)",
        program.display()
    );
    // `cargo run` says which cargo it is; otherwise the one on PATH.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["install", "plasmite", "--version", VERSION, "--locked"])
        .arg("--root")
        .arg(root.join("target/plasmite-cli"))
        .arg("--target-dir")
        .arg(root.join("target/plasmite-build"))
        .stdin(Stdio::null())
        .stdout(io::stderr())
        .status()
        .map_err(|e| format!("cargo install plasmite: {e}"))?;
    if !status.success() || !program.is_file() {
        return Err(format!(
            "installing plasmite {VERSION} failed ({status}); run tests/plasmite/cli.sh \
             or `cargo install plasmite --version {VERSION} --locked --root \
             target/plasmite-cli` and run again"
        )
        .into());
    }
    Ok(program)
}

/// `plasmite --version`, trimmed.
fn version(program: &Path) -> Result<String> {
    let out = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{} --version: {e}", program.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
