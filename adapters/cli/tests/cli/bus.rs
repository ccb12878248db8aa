//! `plex bus`: a broker, responders, requesters, publishers and
//! subscribers, each a real `plex` process.
//!
//! Nothing here sleeps to wait: a requester retries while its responder
//! is not in place yet, and a publisher publishes until its subscriber has
//! exited. The deadlines only turn a bug into a failure instead of a hang.
//!
//! "Not in place yet" is NoResponders (11), or ResponderGone (12): a
//! request the broker routes to a responder in the moment between the
//! broker registering it and its client filing it is refused by that
//! client and fails as ResponderGone (a race in `plex-bus`, not in the
//! command line).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{feed_and_wait, Env, Run};

/// How long any wait below may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// A `plex` process killed when the test ends, pass or fail.
struct Background(Option<Child>);

impl Background {
    fn spawn(cmd: &mut Command) -> Background {
        Background(Some(cmd.spawn().expect("spawn plex")))
    }

    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }

    /// Whether it has exited.
    fn exited(&mut self) -> bool {
        self.child().try_wait().expect("try_wait").is_some()
    }

    /// Waits for it to exit on its own.
    fn finish(mut self) -> Run {
        Run::from(self.0.take().unwrap().wait_with_output().expect("wait"))
    }

    /// Kills it and collects what it printed.
    fn stop(mut self) -> Run {
        let mut child = self.0.take().unwrap();
        child.kill().expect("kill");
        let out = child.wait_with_output().expect("wait");
        Run {
            // Killed by a signal: no exit code.
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `plex bus broker` on a free port, and the URL it printed.
struct Broker {
    url: String,
    _process: Background,
}

impl Broker {
    fn start(env: &Env, listen: &str) -> Broker {
        Broker::start_with(env, listen, &[])
    }

    /// With more flags.
    fn start_with(env: &Env, listen: &str, flags: &[&str]) -> Broker {
        let mut process = Background::spawn(
            env.cmd()
                .args(["bus", "broker", "--listen", listen])
                .args(flags)
                .stdout(Stdio::piped()),
        );
        let mut line = String::new();
        BufReader::new(process.child().stdout.as_mut().unwrap())
            .read_line(&mut line)
            .expect("read the broker's URL");
        let url = line.trim_end().to_owned();
        assert!(url.starts_with(&listen[..5]), "printed {line:?}");
        Broker {
            url,
            _process: process,
        }
    }

    fn tcp(env: &Env) -> Broker {
        Broker::start(env, "tcp://127.0.0.1:0")
    }

    /// The broker of a `plex serve` (its plex/1 listener), not a
    /// `plex bus broker`.
    fn serve(env: &Env) -> Broker {
        let mut process = Background::spawn(
            env.cmd()
                .args(["serve", "--http", "http://127.0.0.1:0"])
                .args(["--listen", "tcp://127.0.0.1:0"])
                .stdout(Stdio::piped()),
        );
        let mut stdout = BufReader::new(process.child().stdout.take().unwrap());
        let mut lines = [String::new(), String::new()];
        for line in &mut lines {
            stdout.read_line(line).expect("read the URLs of plex serve");
        }
        let url = lines[1].trim_end().to_owned();
        assert!(url.starts_with("tcp://127.0.0.1:"), "printed {lines:?}");
        Broker {
            url,
            _process: process,
        }
    }
}

/// Starts `plex bus reply CHANNEL -- command…`.
fn reply(env: &Env, broker: &Broker, channel: &str, command: &[&str]) -> Background {
    Background::spawn(
        env.cmd()
            .args(["bus", "reply", channel, "--url", &broker.url, "--"])
            .args(command)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
}

/// Runs `plex bus request …` until a responder is in place to take it
/// (NoResponders or ResponderGone until then, as the module doc says).
fn request_when_ready(env: &Env, broker: &Broker, args: &[&str], input: Option<&[u8]>) -> Run {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut cmd = env.cmd();
        cmd.args(["bus", "request", "--url", &broker.url])
            .args(args);
        let run = match input {
            Some(input) => feed_and_wait(
                cmd.stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn plex"),
                input,
            ),
            None => Run::from(cmd.output().expect("run plex")),
        };
        if run.code != 11 && run.code != 12 {
            return run;
        }
        assert!(Instant::now() < deadline, "no responder came: {run:?}");
    }
}

/// Calls `publish(i)` for i = 0, 1, … until every subscriber has exited.
fn publish_until_exit(subscribers: &mut [&mut Background], mut publish: impl FnMut(u64)) {
    let deadline = Instant::now() + PATIENCE;
    for i in 0.. {
        if subscribers.iter_mut().all(|s| s.exited()) {
            return;
        }
        assert!(Instant::now() < deadline, "the subscriber never finished");
        publish(i);
    }
}

/// Starts `plex bus sub PATTERN args…`.
fn sub(env: &Env, broker: &Broker, pattern: &str, args: &[&str]) -> Background {
    Background::spawn(
        env.cmd()
            .args(["bus", "sub", pattern, "--url", &broker.url])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
}

#[test]
fn a_request_is_answered_by_the_reply_command() {
    let env = Env::new();
    let broker = Broker::tcp(&env);
    let responder = reply(&env, &broker, "upper", &["tr", "a-z", "A-Z"]);
    let run = request_when_ready(&env, &broker, &["upper", "hello, bus"], None);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "HELLO, BUS"),
        "{run:?}"
    );
    assert!(run.stderr.is_empty(), "{run:?}");
    // Answered requests leave nothing on the responder's stderr.
    assert_eq!(responder.stop().stderr, "");
}

#[test]
fn a_request_body_streams_from_stdin_and_the_reply_is_raw_bytes() {
    let env = Env::new();
    let broker = Broker::tcp(&env);
    let _responder = reply(&env, &broker, "echo", &["cat"]);
    // Every byte value, over several 64 KiB reads.
    let body: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    let deadline = Instant::now() + PATIENCE;
    let out = loop {
        let mut child = env
            .cmd()
            .args(["bus", "request", "echo", "--url", &broker.url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // NoResponders ends plex before it reads all of its input.
        let _ = stdin.write_all(&body);
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        if !matches!(out.status.code(), Some(11 | 12)) {
            break out;
        }
        assert!(Instant::now() < deadline, "no responder came");
    };
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout == body, "the reply differs from the request");

    // An empty stdin is an empty request.
    let run = request_when_ready(&env, &broker, &["echo"], Some(b""));
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{run:?}");
}

#[test]
fn concurrent_requests_each_get_their_own_reply() {
    let env = Env::new();
    let broker = Broker::tcp(&env);
    let _responder = Background::spawn(
        env.cmd()
            .args(["bus", "reply", "echo", "--concurrency", "3", "--url"])
            .args([&broker.url, "--", "cat"])
            .stdout(Stdio::null()),
    );
    request_when_ready(&env, &broker, &["echo", "ready"], None);
    let requesters: Vec<(String, Child)> = (0..8)
        .map(|i| {
            let data = format!("request {i} {}", "x".repeat(i * 10_000));
            let child = env
                .cmd()
                .args(["bus", "request", "echo", &data, "--url", &broker.url])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (data, child)
        })
        .collect();
    for (data, child) in requesters {
        let run = Run::from(child.wait_with_output().unwrap());
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout == data, "a reply went to the wrong request");
    }
}

#[test]
fn no_responders_exits_11_at_once() {
    let env = Env::new();
    let broker = Broker::tcp(&env);
    let run = env.run(&["bus", "request", "nobody.home", "hi", "--url", &broker.url]);
    let err = run.fails(11, "NoResponders");
    assert!(err["message"].as_str().unwrap().contains("nobody.home"));
    assert!(run.stdout.is_empty());
}

#[test]
fn a_failing_command_drops_its_request_with_responder_gone() {
    let env = Env::new();
    let broker = Broker::tcp(&env);
    // Answers `probe`; fails with 3 on anything else.
    let script = r#"test "$(cat)" = probe && echo ready || exit 3"#;
    let responder = reply(&env, &broker, "fail", &["sh", "-c", script]);
    let run = request_when_ready(&env, &broker, &["fail", "probe"], None);
    assert_eq!((run.code, run.stdout.as_str()), (0, "ready\n"), "{run:?}");
    let run = env.run(&["bus", "request", "fail", "doomed", "--url", &broker.url]);
    run.fails(12, "ResponderGone");
    assert!(run.stdout.is_empty());
    // The responder said why on its stderr, and went on running.
    let run = env.run(&["bus", "request", "fail", "probe", "--url", &broker.url]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "ready\n"), "{run:?}");
    let lines: Vec<Value> = responder
        .stop()
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["error"]["kind"], "ResponderGone");
    let message = lines[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains("exit status: 3"), "{message}");
}

#[test]
fn a_reply_too_slow_for_the_timeout_exits_124() {
    let env = Env::new();
    let broker = Broker::tcp(&env);
    let _responder = reply(&env, &broker, "slow", &["sleep", "600"]);
    let run = request_when_ready(&env, &broker, &["slow", "--timeout", "200ms"], Some(b"x"));
    run.fails(124, "Timeout");
}

#[test]
fn a_command_that_cannot_start_ends_the_responder() {
    let env = Env::new();
    let broker = Broker::tcp(&env);
    let mut responder = reply(&env, &broker, "x", &["/nonexistent/plex-test-command"]);
    // Requests until one reaches the responder, which then exits.
    let deadline = Instant::now() + PATIENCE;
    while !responder.exited() {
        let run = env.run(&["bus", "request", "x", "hi", "--url", &broker.url]);
        assert!([11, 12].contains(&run.code), "{run:?}");
        assert!(Instant::now() < deadline, "the responder never exited");
    }
    let run = responder.finish();
    let err = run.fails(3, "NotFound");
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("plex-test-command"));
}

/// The standalone broker takes no credentials: an address off loopback is
/// refused before anything listens, with a hint to `plex serve`.
#[test]
fn a_broker_off_loopback_is_refused() {
    let env = Env::new();
    for listen in [
        "tcp://0.0.0.0:0",
        "ws://192.0.2.1:0/bus",
        "tcp://example.com:0",
    ] {
        let run = env.run(&["bus", "broker", "--listen", listen]);
        run.fails(2, "Usage");
        assert!(
            run.stderr.contains("loopback only") && run.stderr.contains("plex serve"),
            "{listen}: {}",
            run.stderr
        );
    }
}

#[test]
fn an_unreachable_broker_exits_10() {
    let env = Env::new();
    // A port that was free a moment ago, with nothing listening now.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    for args in [
        vec!["bus", "request", "a", "hi", "--url", &url],
        vec!["bus", "pub", "a", "hi", "--url", &url],
        vec!["bus", "sub", "a", "--url", &url],
    ] {
        let run = env.run(&args);
        run.fails(10, "Unreachable");
    }
    let run = env.run(&["bus", "request", "a", "hi", "--url", "carrier-pigeon://x"]);
    run.fails(2, "Usage");
}

#[test]
fn bad_command_lines_exit_2() {
    let env = Env::new();
    for args in [
        vec!["bus", "reply", "ch"],
        vec!["bus", "reply", "ch", "--concurrency", "0", "--", "cat"],
        vec!["bus", "pub", "ch", "data", "--lines"],
        vec!["bus", "sub", "ch", "--count", "0"],
        vec!["bus", "request", "ch", "--timeout", "soon"],
    ] {
        env.run(&args).fails(2, "Usage");
    }
}

#[test]
fn plex_serve_is_a_bus_broker_too() {
    let env = Env::new();
    let broker = Broker::serve(&env);
    let _responder = reply(&env, &broker, "upper", &["tr", "a-z", "A-Z"]);
    let run = request_when_ready(&env, &broker, &["upper", "served"], None);
    assert_eq!((run.code, run.stdout.as_str()), (0, "SERVED"), "{run:?}");
    let mut news = sub(&env, &broker, "news.*", &["--count", "2"]);
    publish_until_exit(&mut [&mut news], |i| {
        env.ok(&[
            "bus",
            "pub",
            "news.plex",
            &format!("m{i}"),
            "--url",
            &broker.url,
        ]);
    });
    let run = news.finish();
    assert_eq!((run.code, run.stdout.lines().count()), (0, 2), "{run:?}");
}

#[test]
fn a_wildcard_subscriber_prints_count_matching_messages() {
    let env = Env::new();
    let broker = Broker::tcp(&env);
    let mut json = sub(&env, &broker, "news.*", &["--json", "--count", "3"]);
    let mut plain = sub(&env, &broker, "news.*", &["--count", "3"]);
    publish_until_exit(&mut [&mut json, &mut plain], |i| {
        // Not matched: never printed.
        env.ok(&["bus", "pub", "sports", "no", "--url", &broker.url]);
        let channel = format!("news.{}.x", i % 2);
        env.ok(&[
            "bus",
            "pub",
            &channel,
            &format!("m{i}"),
            "--url",
            &broker.url,
        ]);
    });
    let run = json.finish();
    assert_eq!(run.code, 0, "{run:?}");
    let records = run.records();
    assert_eq!(records.len(), 3, "{run:?}");
    // Each message matches the pattern and is the one published to its
    // channel. Separate `plex bus pub` processes are separate publishers:
    // order is kept per publisher only, so only distinctness is checked.
    let mut seen = std::collections::HashSet::new();
    for record in &records {
        let k = number(record["payload"].as_str().unwrap());
        assert_eq!(record["channel"], format!("news.{}.x", k % 2));
        assert_eq!(record["encoding"], "text");
        assert!(seen.insert(k), "{run:?}");
    }
    // By default, each payload is a line.
    let run = plain.finish();
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{run:?}");
    let distinct: std::collections::HashSet<u64> = lines.iter().map(|l| number(l)).collect();
    assert_eq!(distinct.len(), 3, "{run:?}");
}

#[test]
fn broker_flags_set_its_limits() {
    let env = Env::new();
    let broker = Broker::start_with(
        &env,
        "tcp://127.0.0.1:0",
        &[
            "--max-payload",
            "1K",
            "--subscriber-buffer",
            "64K",
            "--max-buffered",
            "1M",
            "--slow-policy",
            "disconnect",
        ],
    );
    let url = broker.url.as_str();
    // Three messages: were the big ones delivered, one would be among them.
    let mut subscriber = sub(&env, &broker, "limits", &["--count", "3"]);
    let big = "x".repeat(1025);
    publish_until_exit(&mut [&mut subscriber], |i| {
        // Over --max-payload: the broker ends that publisher's stream and
        // no subscriber sees it.
        env.ok(&["bus", "pub", "limits", &big, "--url", url]);
        env.ok(&["bus", "pub", "limits", &format!("m{i}"), "--url", url]);
    });
    let run = subscriber.finish();
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{run:?}");
    assert!(lines.iter().all(|l| l.starts_with('m')), "{run:?}");
    for bad in [
        &["--max-payload", "0"][..],
        &["--subscriber-buffer", "lots"],
        &["--slow-policy", "ignore"],
    ] {
        let run = env.run(&[&["bus", "broker", "--listen", "tcp://127.0.0.1:0"][..], bad].concat());
        assert_eq!(run.code, 2, "{bad:?}: {run:?}");
    }
}

/// The number in a payload `m<N>`.
fn number(payload: &str) -> u64 {
    payload[1..].parse().expect("a payload m<N>")
}

#[test]
fn pub_reads_stdin_as_one_message_or_one_per_line() {
    let env = Env::new();
    let broker = Broker::tcp(&env);
    let pub_stdin = |args: &[&str], input: &[u8]| {
        let child = env
            .cmd()
            .args(["bus", "pub", "--url", &broker.url])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let run = feed_and_wait(child, input);
        assert_eq!(run.code, 0, "{run:?}");
    };

    // All of stdin, newlines and non-UTF-8 bytes included, is one message.
    let mut whole = sub(&env, &broker, "raw", &["--json", "--count", "1"]);
    publish_until_exit(&mut [&mut whole], |_| {
        pub_stdin(&["raw"], b"two\nlines\xff")
    });
    let run = whole.finish();
    assert_eq!(run.code, 0, "{run:?}");
    let records = run.records();
    assert_eq!(records.len(), 1, "{run:?}");
    // "two\nlines\xff" in standard base64.
    assert_eq!(records[0]["payload"], "dHdvCmxpbmVz/w==");
    assert_eq!(records[0]["encoding"], "base64");

    // With --lines, each line is a message, in order.
    let mut lines = sub(&env, &broker, "lines", &["--count", "3"]);
    publish_until_exit(&mut [&mut lines], |_| {
        pub_stdin(&["lines", "--lines"], b"a\nb\nc\n")
    });
    let run = lines.finish();
    assert_eq!(run.code, 0, "{run:?}");
    let got: Vec<&str> = run.stdout.lines().collect();
    // The subscriber may have joined in the middle of a run of `pub`.
    let rotations = [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]];
    assert!(rotations.iter().any(|r| got == r), "{got:?}");
}

#[test]
fn websocket_urls_work_end_to_end() {
    let env = Env::new();
    let broker = Broker::start(&env, "ws://127.0.0.1:0/bus");
    assert!(broker.url.ends_with("/bus"), "{}", broker.url);
    let _responder = reply(&env, &broker, "upper", &["tr", "a-z", "A-Z"]);
    let run = request_when_ready(&env, &broker, &["upper", "over websocket"], None);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "OVER WEBSOCKET"),
        "{run:?}"
    );
}

#[test]
fn a_subscriber_that_falls_behind_is_told_how_many_messages_it_lost() {
    let env = Env::new();
    let broker = Broker::tcp(&env);
    let mut subscriber = sub(&env, &broker, "firehose", &["--json"]);
    // One line at a time, and only when asked: while the test does not
    // ask, `plex bus sub` blocks on its stdout and falls behind.
    let (lines, next) = mpsc::sync_channel::<String>(0);
    let stdout = subscriber.child().stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines.send(line.expect("read a line")).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + PATIENCE;
    let publish = |args: &[&str], input: &[u8]| {
        let child = env
            .cmd()
            .args(["bus", "pub", "firehose", "--url", &broker.url])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let run = feed_and_wait(child, input);
        assert_eq!(run.code, 0, "{run:?}");
    };
    // Subscribed once a first message comes through.
    loop {
        publish(&["warm-up"], b"");
        if next.recv_timeout(Duration::from_millis(100)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the subscriber never subscribed");
    }
    // Far more than the broker buffers for one subscriber (8 MiB), then a
    // last message.
    let line = format!("{}\n", "x".repeat(1 << 20));
    publish(&["--lines"], line.repeat(64).as_bytes());
    publish(&["end"], b"");
    let (mut gaps, mut messages, mut ends) = (0, 0, 1);
    loop {
        let line = match next.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                // `end` itself may have come while the buffer was full.
                assert!(Instant::now() < deadline, "`end` never came");
                publish(&["end"], b"");
                ends += 1;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => panic!("the subscriber ended"),
        };
        let record: Value = serde_json::from_str(&line).unwrap();
        if let Some(dropped) = record["gap"].as_u64() {
            assert!(dropped > 0);
            gaps += dropped;
        } else if record["payload"] == "end" {
            break;
        } else if record["payload"] != "warm-up" {
            assert_eq!(record["payload"].as_str().map(str::len), Some(1 << 20));
            messages += 1;
        }
    }
    assert!(gaps > 0, "no gap: the subscriber kept up");
    // Every big message was printed or counted lost (and so perhaps were
    // the `end`s before the one printed).
    assert!(
        (64..64 + ends).contains(&(messages + gaps)),
        "{messages} + {gaps}"
    );
    let run = subscriber.stop();
    let errors = run.errors();
    assert!(!errors.is_empty());
    assert!(
        errors.iter().all(|e| e["kind"] == "RetentionGap"),
        "{errors:?}"
    );
}
