//! `plex serve` as a process: prints its URL, serves the pool directory the
//! other commands use, refuses what it must, and exits 0 on SIGTERM and
//! SIGINT after syncing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};

use serde_json::Value;

use crate::common::{Env, Run};

/// A running `plex serve`, killed if the test fails before stopping it.
pub(crate) struct Serve {
    child: Option<Child>,
    url: String,
    /// The plex/1 listener's URL.
    pub(crate) plex: String,
}

impl Serve {
    fn start(env: &Env) -> Serve {
        Serve::listening(env, "tcp://127.0.0.1:0")
    }

    /// With its plex/1 listener on `listen`.
    fn listening(env: &Env, listen: &str) -> Serve {
        Serve::with(env, listen, &[])
    }

    /// With its plex/1 listener on `listen`, and more arguments.
    pub(crate) fn with(env: &Env, listen: &str, more: &[&str]) -> Serve {
        let mut child = env
            .cmd()
            .args(["serve", "--http", "http://127.0.0.1:0", "--listen", listen])
            .args(more)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn plex serve");
        // The HTTP URL, then the plex/1 one, a line each.
        let mut stdout = BufReader::new(child.stdout.as_mut().unwrap());
        let mut lines = [String::new(), String::new()];
        for line in &mut lines {
            stdout.read_line(line).expect("read the URLs");
        }
        let url = lines[0].trim_end().to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "printed {lines:?}");
        let plex = lines[1].trim_end().to_owned();
        assert!(
            plex.starts_with(&listen[..listen.len() - 1]),
            "printed {lines:?}"
        );
        Serve {
            child: Some(child),
            url,
            plex,
        }
    }

    /// `host:port`.
    fn authority(&self) -> &str {
        self.url.strip_prefix("http://").unwrap()
    }

    /// One HTTP/1.1 request on its own connection: status and body.
    fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut stream = TcpStream::connect(self.authority()).expect("connect");
        let body = body.unwrap_or("");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.authority(),
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read response");
        let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
        assert!(
            head.to_ascii_lowercase()
                .contains("\r\nplasmite-version: 0"),
            "{head}"
        );
        let status = head[9..12].parse().expect("a status");
        // `Connection: close` responses of a known length are not chunked.
        (status, body.to_owned())
    }

    /// The next line plex serve wrote on stderr.
    pub(crate) fn stderr_line(&mut self) -> String {
        let child = self.child.as_mut().unwrap();
        let mut line = String::new();
        let mut byte = [0u8];
        // Byte by byte: what follows stays in the pipe for `stop`.
        while child.stderr.as_mut().unwrap().read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            line.push(char::from(byte[0]));
        }
        line
    }

    /// Sends `signal` and waits for the exit.
    pub(crate) fn stop(mut self, signal: &str) -> Run {
        let child = self.child.take().unwrap();
        let pid = child.id().to_string();
        let killed = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(killed.success());
        Run::from(child.wait_with_output().expect("wait"))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn serves_the_pools_of_the_cli_and_exits_0_on_sigterm() {
    let env = Env::new();
    env.create("demo", "1M");
    env.ok(&["feed", "demo", r#"{"from":"cli"}"#, "--tag", "t"]);
    let serve = Serve::start(&env);

    let (status, body) = serve.request("GET", "/healthz", None);
    assert_eq!((status, body.as_str()), (200, r#"{"ok":true}"#));
    let (status, body) = serve.request("GET", "/v0/pools/demo/messages/1", None);
    assert_eq!(status, 200, "{body}");
    let msg: Value = serde_json::from_str(&body).unwrap();
    // The same envelope as `plex fetch` prints.
    let fetched = env.ok(&["fetch", "demo", "1"]).records();
    assert_eq!(msg["message"], fetched[0]);

    let (status, body) = serve.request(
        "POST",
        "/v0/pools/demo/append",
        Some(r#"{"data":{"from":"http"},"tags":["h"],"durability":"flush"}"#),
    );
    assert_eq!(status, 200, "{body}");
    let fetched = env.ok(&["fetch", "demo", "2"]).records();
    assert_eq!(fetched[0]["data"]["from"], "http");
    let (status, body) = serve.request("GET", "/v0/pools/nope/info", None);
    assert_eq!(status, 404, "{body}");

    let run = serve.stop("-TERM");
    assert_eq!(run.code, 0, "{run:?}");
    let info = env.ok(&["pool", "info", "demo"]).records();
    assert_eq!(info[0]["synced"], 2);
}

#[test]
fn sigint_also_stops_it_cleanly() {
    let env = Env::new();
    let serve = Serve::start(&env);
    let (status, body) = serve.request("POST", "/v0/pools", Some(r#"{"pool":"made"}"#));
    assert_eq!(status, 200, "{body}");
    let run = serve.stop("-INT");
    assert_eq!(run.code, 0, "{run:?}");
    // Created over HTTP, used by the CLI.
    env.ok(&["feed", "made", "1"]);
}

#[test]
fn refuses_listeners_off_loopback_and_bad_urls() {
    let env = Env::new();
    let err = env
        .run(&["serve", "--http", "http://0.0.0.0:0"])
        .fails(2, "Usage");
    assert!(
        err["message"].as_str().unwrap().contains("without TLS"),
        "{err}"
    );
    for url in [
        "127.0.0.1:9700",
        "https://127.0.0.1:1",
        "http://127.0.0.1:1/x",
    ] {
        env.run(&["serve", "--http", url]).fails(2, "Usage");
    }
    let err = env
        .run(&[
            "serve",
            "--http",
            "http://127.0.0.1:0",
            "--listen",
            "tcp://0.0.0.0:0",
        ])
        .fails(2, "Usage");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("only over tls://"),
        "{err}"
    );
    for url in [
        "tls://127.0.0.1:0",
        "http://127.0.0.1:0",
        "tcp://example.com:1",
    ] {
        env.run(&["serve", "--http", "http://127.0.0.1:0", "--listen", url])
            .fails(2, "Usage");
    }
}

#[test]
fn a_remote_follow_resumes_by_seq_when_plex_serve_restarts() {
    let env = Env::new();
    let serve = Serve::start(&env);
    let pool = format!("{}/p", serve.plex);
    env.ok(&["pool", "create", &pool, "--size", "64K"]);
    let mut follower = env
        .cmd()
        .args(["follow", &pool, "--since", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    let mut next_seq = || {
        let line = lines.next().expect("a line").expect("read the follower");
        serde_json::from_str::<Value>(&line).unwrap()["seq"]
            .as_u64()
            .unwrap()
    };
    env.ok(&["feed", &pool, "1"]);
    env.ok(&["feed", &pool, "2"]);
    assert_eq!((next_seq(), next_seq()), (1, 2));
    let listen = serve.plex.clone();
    assert_eq!(serve.stop("-TERM").code, 0);

    // Another server on the same address and directory.
    let serve = Serve::listening(&env, &listen);
    env.ok(&["feed", &pool, "3"]);
    env.ok(&["feed", &pool, "4"]);
    // Each seq once: none again after the reconnection, none missed.
    assert_eq!((next_seq(), next_seq()), (3, 4));
    follower.kill().unwrap();
    let run = follower.wait_with_output().unwrap();
    assert!(run.stderr.is_empty(), "{run:?}");
    assert_eq!(serve.stop("-TERM").code, 0);
}

#[test]
fn https_listens_with_a_certificate_and_refuses_plain_http() {
    let env = Env::new();
    let mut child = env
        .cmd()
        .args([
            "serve",
            "--http",
            "https://127.0.0.1:0",
            "--tls-self-signed",
            "--listen",
            "tcp://127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plex serve");
    let mut stdout = BufReader::new(child.stdout.as_mut().unwrap());
    let mut lines = [String::new(), String::new()];
    for line in &mut lines {
        stdout.read_line(line).expect("read the URLs");
    }
    let serve = Serve {
        child: Some(child),
        url: lines[0].trim_end().to_owned(),
        plex: lines[1].trim_end().to_owned(),
    };
    let authority = serve.url.strip_prefix("https://").expect("an https URL");
    // Plain HTTP gets no HTTP answer: the listener speaks TLS only.
    let mut stream = TcpStream::connect(authority).expect("connect");
    // The server may drop the connection (not a TLS ClientHello) before
    // the whole request is written: a failed write is that answer too.
    let _ = write!(
        stream,
        "GET /v0/pools HTTP/1.1\r\nHost: {authority}\r\n\r\n"
    );
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    let run = serve.stop("-TERM");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("self-signed certificate, fingerprint sha256:"),
        "{run:?}"
    );
    // TLS flags need https, and https needs a certificate.
    env.run(&["serve", "--http", "http://127.0.0.1:0", "--tls-self-signed"])
        .fails(2, "Usage");
    env.run(&["serve", "--http", "https://127.0.0.1:0"])
        .fails(2, "Usage");
    let missing = env.root().join("missing.pem");
    let missing = missing.to_str().unwrap();
    env.run(&[
        "serve",
        "--http",
        "https://127.0.0.1:0",
        "--tls-cert",
        missing,
        "--tls-key",
        missing,
    ])
    .fails(2, "Usage");
}
