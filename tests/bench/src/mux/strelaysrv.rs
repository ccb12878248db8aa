//! The relay rows' Syncthing relay: one `strelaysrv` on loopback for the
//! whole suite, killed when dropped. It joins no public pool, runs no
//! status server and no UPnP. (plex-tests has the same fixture, but it
//! panics where a benchmark reports, and would bring every runtime in.)

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use plex_runtime::relay::DeviceId;

use super::Result;

/// How long the relay may take to print its id and to listen.
const START_LIMIT: Duration = Duration::from_secs(20);

/// Where the relay runs: what the relay peers need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RelayAt {
    addr: SocketAddr,
    id: DeviceId,
}

impl RelayAt {
    /// `relay://127.0.0.1:PORT/?relay=ID`: pinned to the relay's
    /// certificate, where a listener joins.
    pub(crate) fn url(&self) -> String {
        format!("relay://{}/?relay={}", self.addr, self.id)
    }

    /// Its loopback address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The relay's own device id: the SHA-256 of its certificate.
    pub(crate) fn id(&self) -> DeviceId {
        self.id
    }
}

/// A running `strelaysrv`, killed on drop.
pub(crate) struct Relay {
    child: Child,
    at: RelayAt,
    /// Its certificate and key; removed on drop.
    _keys: tempfile::TempDir,
}

impl Relay {
    /// Starts `$STRELAYSRV` (default `strelaysrv` on the `PATH`) on a free
    /// loopback port and waits until it listens.
    pub(crate) fn start() -> Result<Relay> {
        let binary = std::env::var("STRELAYSRV").unwrap_or_else(|_| "strelaysrv".into());
        let keys = tempfile::tempdir()?;
        // A free port: bound, then released for the relay.
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut child = Command::new(&binary)
            .arg(format!("-listen={addr}"))
            .arg(format!("-keys={}", keys.path().display()))
            .args(["-pools=", "-status-srv=", "-nat=false"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run {binary} ({e}): the relay row needs Syncthing's relay server. \
                     Install it with `bash tests/relay/install.sh` (apt-get install -y \
                     syncthing-relaysrv, then systemctl disable --now syncthing-relaysrv), or \
                     point $STRELAYSRV at the binary."
                )
            })?;
        match wait_until_listening(&mut child, addr) {
            Ok(id) => Ok(Relay {
                child,
                at: RelayAt { addr, id },
                _keys: keys,
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("strelaysrv did not start: {e}").into())
            }
        }
    }

    /// Where it runs.
    pub(crate) fn at(&self) -> RelayAt {
        self.at
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the relay's id from its log, then waits until `addr` accepts.
fn wait_until_listening(child: &mut Child, addr: SocketAddr) -> Result<DeviceId> {
    // The log goes to stderr or stdout depending on the version: read
    // both, to the end, so that the relay never blocks on a full pipe.
    let (lines, found) = mpsc::channel();
    let stdout = child
        .stdout
        .take()
        .map(|p| Box::new(p) as Box<dyn Read + Send>);
    let stderr = child
        .stderr
        .take()
        .map(|p| Box::new(p) as Box<dyn Read + Send>);
    for pipe in [stdout, stderr].into_iter().flatten() {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(std::io::Result::ok) {
                // Nobody listens once the id is found.
                let _ = lines.send(line);
            }
        });
    }
    let start = Instant::now();
    let id = loop {
        let left = START_LIMIT.saturating_sub(start.elapsed());
        match found.recv_timeout(left) {
            Ok(line) => {
                if let Some(id) = uri_id(&line) {
                    break id;
                }
            }
            Err(_) => {
                return Err(format!("no `URI:` line in its log within {START_LIMIT:?}").into())
            }
        }
    };
    // The URI is printed before the bind.
    while TcpStream::connect(addr).is_err() {
        if start.elapsed() > START_LIMIT {
            return Err(format!("nothing listens on {addr}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(id)
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
