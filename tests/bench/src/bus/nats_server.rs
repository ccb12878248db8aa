//! The `nats-server` process the NATS rows run against: installed from
//! the Debian package when missing, started on a free loopback port,
//! killed when dropped.

use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::Result;

/// The server binary, and the Debian package that has it.
const PROGRAM: &str = "nats-server";
const PACKAGE: &str = "nats-server";

/// How long the server may take to accept connections.
const STARTUP: Duration = Duration::from_secs(10);

/// A running `nats-server`; dropping it kills it.
#[derive(Debug)]
pub(crate) struct NatsServer {
    child: Child,
    /// `nats://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// `nats-server --version`.
    pub(crate) version: String,
}

impl NatsServer {
    /// Installs `nats-server` if it is missing, starts it on a free
    /// loopback port and waits until it accepts connections.
    pub(crate) fn start() -> Result<NatsServer> {
        let version = match version() {
            Ok(version) => version,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                install()?;
                version().map_err(|e| format!("{PROGRAM} after installing {PACKAGE}: {e}"))?
            }
            Err(e) => return Err(format!("{PROGRAM} --version: {e}").into()),
        };
        // The port is free now; the server binds it right after.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let child = Command::new(PROGRAM)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {PROGRAM}: {e}"))?;
        let mut server = NatsServer {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            version,
        };
        server.wait_ready(port)?;
        Ok(server)
    }

    /// Polls the port until it accepts a connection, or the server exits.
    fn wait_ready(&mut self, port: u16) -> Result<()> {
        let deadline = Instant::now() + STARTUP;
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(
                    format!("{PROGRAM} on port {port} exited at startup ({status})").into(),
                );
            }
            if Instant::now() >= deadline {
                return Err(
                    format!("{PROGRAM} on port {port}: no connection within {STARTUP:?}").into(),
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `nats-server --version`, trimmed; `NotFound` when it is not installed.
fn version() -> io::Result<String> {
    let out = Command::new(PROGRAM)
        .arg("--version")
        .stdin(Stdio::null())
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `apt-get install -y nats-server`, after an `apt-get update` if the
/// first try fails (a fresh machine has no package lists); apt's output
/// goes to stderr.
fn install() -> Result<()> {
    eprintln!("bus: {PROGRAM} not found; installing it: apt-get install -y {PACKAGE}");
    if apt(&["install", "-y", PACKAGE]).is_ok() {
        return Ok(());
    }
    eprintln!("bus: apt-get install failed; running apt-get update and trying again");
    apt(&["update"])
        .and_then(|()| apt(&["install", "-y", PACKAGE]))
        .map_err(|e| {
            format!(
                "{PROGRAM} is missing and installing the Debian package {PACKAGE} failed \
                 ({e}); install it (apt-get install nats-server) and run again"
            )
            .into()
        })
}

/// Runs `apt-get` with `args`, its output on stderr.
fn apt(args: &[&str]) -> std::result::Result<(), String> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(io::stderr())
        .status()
        .map_err(|e| format!("apt-get {}: {e}", args.join(" ")))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("apt-get {}: {status}", args.join(" ")))
    }
}
