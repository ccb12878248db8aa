//! Running the built `plex` binary against a temporary directory.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;
use tempfile::TempDir;

/// Runs a test twice: against local pool refs (`local`), and against
/// remote refs (`remote`) through a `plex serve` of the same pool
/// directory. The body names pools through [`Env::p`], so that one suite
/// checks that both kinds give the same output and exit codes.
macro_rules! local_and_remote {
    ($(#[$meta:meta])* fn $name:ident($env:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($env: &crate::common::Env) $body

            #[test]
            fn local() {
                body(&crate::common::Env::new())
            }

            #[test]
            fn remote() {
                body(&crate::common::Env::remote())
            }
        }
    };
}

/// A scratch directory with a pool directory inside, and a fake home; for
/// remote tests also a `plex serve` of that pool directory.
pub(crate) struct Env {
    root: TempDir,
    serve: Option<Served>,
}

/// A `plex serve` on free loopback ports, killed with its [`Env`].
struct Served {
    child: Child,
    /// Its plex/1 URL, `tcp://127.0.0.1:PORT`.
    url: String,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(served) = &mut self.serve {
            let _ = served.child.kill();
            let _ = served.child.wait();
        }
    }
}

/// A finished `plex` run.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Env {
    pub(crate) fn new() -> Env {
        Env {
            root: tempfile::tempdir().expect("temp dir"),
            serve: None,
        }
    }

    /// An Env whose pools are reached through a `plex serve` of its pool
    /// directory, listening on free ports.
    pub(crate) fn remote() -> Env {
        let mut env = Env::new();
        let mut child = env
            .cmd()
            .args([
                "serve",
                "--http",
                "http://127.0.0.1:0",
                "--listen",
                "tcp://127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn plex serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut lines = [String::new(), String::new()];
        for line in &mut lines {
            stdout.read_line(line).expect("read the URLs of plex serve");
        }
        let url = lines[1].trim_end().to_owned();
        assert!(url.starts_with("tcp://127.0.0.1:"), "printed {lines:?}");
        env.serve = Some(Served { child, url });
        env
    }

    /// Whether pools are local files to this test (not behind a server).
    pub(crate) fn is_local(&self) -> bool {
        self.serve.is_none()
    }

    /// How the command line names pool `name`: the name itself, or
    /// `tcp://127.0.0.1:PORT/NAME` for a remote Env.
    pub(crate) fn p(&self, name: &str) -> String {
        match &self.serve {
            None => name.to_owned(),
            Some(served) => format!("{}/{name}", served.url),
        }
    }

    /// `plex pool list` of the pool directory, or of the server; asserts
    /// that it succeeded.
    pub(crate) fn list(&self) -> Run {
        let run = self.list_run();
        assert_eq!(run.code, 0, "plex pool list failed: {run:?}");
        run
    }

    /// `plex pool list` of the pool directory, or of the server.
    pub(crate) fn list_run(&self) -> Run {
        match &self.serve {
            None => self.run(&["pool", "list"]),
            Some(served) => self.run(&["pool", "list", &served.url]),
        }
    }

    /// The scratch directory.
    pub(crate) fn root(&self) -> &Path {
        self.root.path()
    }

    /// The pool directory given to plex through `PLEX_DIR`.
    pub(crate) fn pools(&self) -> PathBuf {
        self.root().join("pools")
    }

    /// `plex` with a clean environment: `PLEX_DIR` set to [`Env::pools`],
    /// `HOME` inside the scratch directory, no `XDG_DATA_HOME`, `PLEX_TOKEN`
    /// or `PLEX_TLS_CA`.
    pub(crate) fn cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_plex"));
        cmd.env("PLEX_DIR", self.pools())
            .env("HOME", self.root().join("home"))
            .env_remove("XDG_DATA_HOME")
            .env_remove("PLEX_TOKEN")
            .env_remove("PLEX_TLS_CA")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `plex args…` to completion.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd().args(args).output().expect("run plex"))
    }

    /// Runs `plex args…` as a user that file modes apply to. Run as root
    /// (as CI runs tests), the child drops to `nobody`; otherwise it runs as
    /// the current user, who is not privileged. The scratch and pool
    /// directories are opened to other users so that `nobody` can reach the
    /// pool files. Panics if privileges cannot be dropped.
    pub(crate) fn run_unprivileged(&self, args: &[&str]) -> Run {
        for dir in [self.root(), &self.pools()] {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
                .expect("open the scratch directories to other users");
        }
        let mut cmd = self.cmd();
        // The scratch directory was created by this process: its owner is
        // our effective uid.
        let euid = fs::metadata(self.root()).expect("stat scratch").uid();
        if euid == 0 {
            let (uid, gid) = nobody();
            // As root, std also clears the supplementary groups.
            cmd.uid(uid).gid(gid);
        }
        let out = cmd
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run plex without privileges (uid {euid}): {e}"));
        Run::from(out)
    }

    /// Runs `plex args…` with `input` on stdin.
    pub(crate) fn run_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        let child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn plex");
        feed_and_wait(child, input)
    }

    /// Runs `plex args…` and asserts that it succeeded.
    pub(crate) fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, 0, "plex {args:?} failed: {run:?}");
        run
    }

    /// Creates pool `name` (see [`Env::p`]) of `size` (like `64K`).
    pub(crate) fn create(&self, name: &str, size: &str) {
        self.ok(&["pool", "create", &self.p(name), "--size", size]);
    }

    /// Feeds JSON Lines to pool `pool` (see [`Env::p`]) and asserts
    /// success; returns the receipts.
    pub(crate) fn feed(&self, pool: &str, lines: &str) -> Vec<Value> {
        let run = self.run_stdin(&["feed", &self.p(pool)], lines.as_bytes());
        assert_eq!(run.code, 0, "feed failed: {run:?}");
        run.records()
    }
}

/// The uid and gid of the `nobody` user, from `/etc/passwd`.
fn nobody() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let entry = passwd
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .expect("no `nobody` user in /etc/passwd: cannot drop privileges");
    let fields: Vec<&str> = entry.split(':').collect();
    let id = |i: usize| -> u32 {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("malformed /etc/passwd entry: {entry}"))
    };
    (id(2), id(3))
}

/// Writes `input` to the child's stdin, closes it and collects the output.
pub(crate) fn feed_and_wait(mut child: Child, input: &[u8]) -> Run {
    let mut stdin = child.stdin.take().expect("piped stdin");
    match stdin.write_all(input) {
        // A plex that fails before reading its input closes it early.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => written.expect("write stdin"),
    }
    drop(stdin);
    Run::from(child.wait_with_output().expect("wait for plex"))
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().expect("plex exited by a signal"),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }
}

impl Run {
    /// Every stdout line, parsed as JSON.
    pub(crate) fn records(&self) -> Vec<Value> {
        parse_lines(&self.stdout)
    }

    /// Every stderr line, parsed as JSON error lines, unwrapped.
    pub(crate) fn errors(&self) -> Vec<Value> {
        parse_lines(&self.stderr)
            .into_iter()
            .map(|line| {
                let obj = line.as_object().expect("error line is an object");
                assert_eq!(obj.len(), 1, "only `error` at the top: {line}");
                obj["error"].clone()
            })
            .collect()
    }

    /// Asserts the exit code and exactly one JSON error line of `kind`,
    /// well formed, and returns it.
    pub(crate) fn fails(&self, code: i32, kind: &str) -> Value {
        assert_eq!(self.code, code, "{self:?}");
        let errors = self.errors();
        assert_eq!(errors.len(), 1, "one error line: {self:?}");
        let err = errors.into_iter().next().unwrap();
        assert_eq!(err["kind"], kind, "{err}");
        let message = err["message"].as_str().expect("message is a string");
        assert!(!message.is_empty());
        for (field, value) in err.as_object().unwrap() {
            let ok = match field.as_str() {
                "kind" | "message" | "hint" | "path" => value.is_string(),
                "seq" | "line" => value.is_u64(),
                _ => false,
            };
            assert!(ok, "unexpected field {field}: {value}");
        }
        err
    }
}

fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// `n` JSON Lines `{"i":0}` … `{"i":n-1}`, each padded with `pad` bytes.
pub(crate) fn numbered(n: usize, pad: usize) -> String {
    let pad = "x".repeat(pad);
    (0..n)
        .map(|i| format!("{{\"i\":{i},\"pad\":\"{pad}\"}}\n"))
        .collect()
}
