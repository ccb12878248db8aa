//! A real Syncthing relay (`strelaysrv`) on loopback for the `relay://`
//! tests: one per test, stopped when dropped.
//!
//! It listens on `127.0.0.1` only, joins no public pool, runs no status
//! server and no UPnP. A missing binary fails the test with the command
//! that installs it (`tests/relay/install.sh`); it is never skipped.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use plex_runtime::relay::DeviceId;

/// The binary: `$STRELAYSRV`, or `strelaysrv` on the `PATH`.
fn binary() -> String {
    std::env::var("STRELAYSRV").unwrap_or_else(|_| "strelaysrv".into())
}

/// A running `strelaysrv`, killed on drop.
pub struct Relay {
    child: Child,
    addr: SocketAddr,
    id: DeviceId,
    keys: tempfile::TempDir,
    extra: Vec<String>,
}

impl Relay {
    /// Starts a relay with the default timings.
    pub fn start() -> Relay {
        Relay::with_args(&[])
    }

    /// Starts a relay with extra flags (`-message-timeout=1s`, …).
    pub fn with_args(extra: &[&str]) -> Relay {
        let keys = tempfile::tempdir().expect("relay key directory");
        // A free port: bound, then released for the relay.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let (child, id) = spawn(addr, keys.path(), &extra);
        Relay {
            child,
            addr,
            id,
            keys,
            extra,
        }
    }

    /// Kills the relay and starts it again on the same address with the
    /// same keys (so the same relay id), as a relay restart does.
    pub fn restart(&mut self) {
        self.kill();
        let (child, id) = spawn(self.addr, self.keys.path(), &self.extra);
        assert_eq!(id, self.id, "the same keys, the same relay id");
        self.child = child;
    }

    /// `relay://127.0.0.1:PORT`, unpinned: where a listener joins.
    pub fn url(&self) -> String {
        format!("relay://{}", self.addr)
    }

    /// The URL pinned to this relay's certificate (`?relay=ID`).
    pub fn pinned_url(&self) -> String {
        format!("relay://{}/?relay={}", self.addr, self.id)
    }

    /// The relay's own device id, from its log.
    pub fn id(&self) -> DeviceId {
        self.id
    }

    /// Kills the relay (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `strelaysrv` on `addr` with the keys in `keys`; returns it, once
/// it listens, and its id.
fn spawn(addr: SocketAddr, keys: &std::path::Path, extra: &[String]) -> (Child, DeviceId) {
    let mut child = Command::new(binary())
        .arg(format!("-listen={addr}"))
        .arg(format!("-keys={}", keys.display()))
        .args(["-pools=", "-status-srv=", "-nat=false"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): the relay:// tests need Syncthing's relay server. \
                 Install it with `bash tests/relay/install.sh` (apt-get install -y \
                 syncthing-relaysrv, then systemctl disable --now syncthing-relaysrv), \
                 or point $STRELAYSRV at the binary.",
                binary()
            )
        });
    // The log goes to stderr or stdout depending on the version: read
    // both, to the end, so that the relay never blocks on a full pipe.
    let (lines, found) = mpsc::channel();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
    }
    let mut fail = |why: String| -> ! {
        let _ = child.kill();
        let _ = child.wait();
        panic!("strelaysrv did not start: {why}")
    };
    let id = loop {
        match found.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                if let Some(id) = uri_id(&line) {
                    break id;
                }
            }
            Err(_) => fail("no `URI:` line in its log within 20 s".into()),
        }
    };
    // The URI is printed before the bind.
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if start.elapsed() > Duration::from_secs(20) {
            fail(format!("nothing listens on {addr}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, id)
}

/// The relay id in a `URI: relay://…/?id=ID&…` log line.
fn uri_id(line: &str) -> Option<DeviceId> {
    let uri = &line[line.find("URI: relay://")?..];
    let id = &uri[uri.find("?id=")? + 4..];
    id.split('&').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_relay_id_is_read_from_its_uri_line() {
        let line = "2026/11/30 23:00:00 main.go:259: URI: relay://127.0.0.1:22067/\
                    ?id=P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2\
                    &pingInterval=1m0s&networkTimeout=2m0s";
        let id = super::uri_id(line).unwrap();
        assert_eq!(
            id.to_string(),
            "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2"
        );
        assert_eq!(super::uri_id("listening on 127.0.0.1:22067"), None);
    }
}
