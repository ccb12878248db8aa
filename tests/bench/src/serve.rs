//! The `serve` suite: remote pools over loopback TCP, `plex serve` side by
//! side with `plasmite serve` (Plasmite's 1.2.1 CLI), the same 1 KiB JSON
//! messages on every side.
//!
//! - `append_1`, `append_8`: 1 and 8 clients, each on a connection of its
//!   own, append to one pool as fast as they are acknowledged; acknowledged
//!   messages per second, all clients together.
//! - `follow_p50`, `follow_p99`: a writer appends one message at a time,
//!   each carrying its send time, and a follower on another connection
//!   records its delivery; percentiles of append-to-delivery.
//!
//! Three columns: `plex` is `plex serve` (the `plex_serve` library in this
//! process, on a runtime thread of its own) driven by Plex's remote pool
//! client, `plex_serve::remote::RemotePools`, over `plex/1` `tcp://`;
//! `plex-http` is the same server's Plasmite-compatible HTTP endpoint
//! driven by Plasmite's own `RemoteClient`; `plasmite` is `plasmite serve`
//! driven by the same `RemoteClient`. The two HTTP columns tell server
//! speed from protocol. The implementations alternate run by run, and
//! every figure is the median of the runs, with their min and max.

mod clients;
mod plasmite_serve;
mod plex_serve;

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use plasmite_serve::PlasmiteServe;
use plex_serve::PlexServe;

use crate::latency;
use crate::report::{Figure, Report, Scenario, Target, PLEX};
use crate::Options;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Result<T> = std::result::Result<T, BoxError>;

/// Bytes of every message: a JSON object, as both protocols carry it.
const PAYLOAD_LEN: usize = 1024;
/// The pool every append scenario of a column appends to, filled around
/// its ring by the first runs.
const APPEND_POOL_SIZE: u64 = 64 << 20;
/// The pools of the follow runs, a fresh one per run.
const FOLLOW_POOL_SIZE: u64 = 4 << 20;
/// The stamp of the message that tells the writer the follower is reading.
const READY: u64 = 0;
/// Client counts of the append scenarios.
const CLIENTS: [usize; 2] = [1, 8];

/// Runs every scenario of the suite.
pub(crate) fn run(options: Options) -> Result<Report> {
    // First: it may have to install plasmite.
    let plasmite = PlasmiteServe::start()?;
    let plex = PlexServe::start()?;
    eprintln!(
        "serve: {} at {}; plex serve at {} and {}",
        plasmite.version, plasmite.url, plex.http, plex.plex
    );
    let servers = Servers {
        plex: &plex,
        plasmite: &plasmite,
    };
    let payload = Payload::new()?;
    let shape = Shape::of(options);
    let runs = options.runs();
    let mut report = Report::default();
    for stack in Stack::ALL {
        servers.create(stack, stack.pool("append"), APPEND_POOL_SIZE)?;
    }
    for (clients, name) in CLIENTS.into_iter().zip(["append_1", "append_8"]) {
        let figures = alternate(name, runs, |stack, _| {
            servers.appends(stack, clients, &payload, shape)
        })?;
        report.push(Scenario {
            name,
            unit: "msg/s",
            higher_is_better: true,
            targets: vec![Target::Ratio {
                of: Stack::Plasmite.name(),
                ratio: 10.0,
            }],
            results: figures
                .into_iter()
                .map(|(stack, runs)| (stack, Figure::of(runs)))
                .collect(),
        });
    }
    let latencies = alternate("follow", runs, |stack, run| {
        let pool = stack.pool(&format!("follow-{run}"));
        let histogram = servers.follow(stack, &pool, &payload, shape)?;
        Ok([0.5, 0.99].map(|q| latency::micros(histogram.value_at_quantile(q))))
    })?;
    for (i, (name, targets)) in [
        ("follow_p50", vec![Target::Value(100.0)]),
        ("follow_p99", Vec::new()),
    ]
    .into_iter()
    .enumerate()
    {
        report.push(Scenario {
            name,
            unit: "µs",
            higher_is_better: false,
            targets,
            results: latencies
                .iter()
                .map(|(stack, runs)| (*stack, Figure::of(runs.iter().map(|r| r[i]).collect())))
                .collect(),
        });
    }
    for note in notes(shape, runs, &plasmite.version) {
        report.note(note);
    }
    Ok(report)
}

/// A server and the client that drives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    /// `plex serve` over `plex/1`, Plex's `RemotePools`.
    Plex,
    /// `plex serve` over HTTP, Plasmite's `RemoteClient`.
    PlexHttp,
    /// `plasmite serve` over HTTP, Plasmite's `RemoteClient`.
    Plasmite,
}

impl Stack {
    /// Every column, in report order.
    const ALL: [Stack; 3] = [Stack::Plex, Stack::PlexHttp, Stack::Plasmite];

    fn name(self) -> &'static str {
        match self {
            Stack::Plex => PLEX,
            Stack::PlexHttp => "plex-http",
            Stack::Plasmite => "plasmite",
        }
    }

    /// Its pool for `purpose`: the two plex columns share a directory.
    fn pool(self, purpose: &str) -> String {
        format!("{purpose}-{}", self.name())
    }
}

/// The two servers.
struct Servers<'a> {
    plex: &'a PlexServe,
    plasmite: &'a PlasmiteServe,
}

impl Servers<'_> {
    fn create(&self, stack: Stack, pool: String, size: u64) -> Result<()> {
        match stack {
            Stack::Plex => clients::plex_create(&self.plex.plex, &pool, size),
            Stack::PlexHttp => clients::http_create(&self.plex.http, &pool, size),
            Stack::Plasmite => clients::http_create(&self.plasmite.url, &pool, size),
        }
    }

    fn appends(
        &self,
        stack: Stack,
        clients: usize,
        payload: &Payload,
        shape: Shape,
    ) -> Result<f64> {
        let pool = stack.pool("append");
        match stack {
            Stack::Plex => {
                clients::plex_appends(&self.plex.plex, &pool, clients, &payload.bytes, shape)
            }
            Stack::PlexHttp => {
                clients::http_appends(&self.plex.http, &pool, clients, &payload.value, shape)
            }
            Stack::Plasmite => {
                clients::http_appends(&self.plasmite.url, &pool, clients, &payload.value, shape)
            }
        }
    }

    fn follow(
        &self,
        stack: Stack,
        pool: &str,
        payload: &Payload,
        shape: Shape,
    ) -> Result<hdrhistogram::Histogram<u64>> {
        match stack {
            Stack::Plex => clients::plex_follow(&self.plex.plex, pool, payload, shape),
            Stack::PlexHttp => clients::http_follow(&self.plex.http, pool, payload, shape),
            Stack::Plasmite => clients::http_follow(&self.plasmite.url, pool, payload, shape),
        }
    }
}

/// Runs `measure` `runs` times per column, starting with a different one
/// each run; each column's figures, in report order.
fn alternate<T>(
    name: &str,
    runs: usize,
    mut measure: impl FnMut(Stack, usize) -> Result<T>,
) -> Result<Vec<(&'static str, Vec<T>)>> {
    let mut figures: Vec<_> = Stack::ALL.iter().map(|s| (s.name(), Vec::new())).collect();
    for run in 0..runs {
        for k in 0..Stack::ALL.len() {
            let i = (run + k) % Stack::ALL.len();
            let stack = Stack::ALL[i];
            eprintln!("serve: {name} run {}/{runs}: {}", run + 1, stack.name());
            let figure =
                measure(stack, run).map_err(|e| format!("{name} on {}: {e}", stack.name()))?;
            figures[i].1.push(figure);
        }
    }
    Ok(figures)
}

/// How long and how much each scenario runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Appending before the count starts.
    warmup: Duration,
    /// Appends counted for this long.
    span: Duration,
    /// Timed messages of a follow run.
    follow_count: u64,
    /// The writer's interval between follow messages (at least).
    pace: Duration,
}

impl Shape {
    fn of(options: Options) -> Shape {
        if options.quick {
            Shape {
                warmup: Duration::from_millis(200),
                span: Duration::from_millis(500),
                follow_count: 1_000,
                pace: Duration::from_millis(1),
            }
        } else {
            Shape {
                warmup: Duration::from_millis(500),
                span: Duration::from_secs(2),
                follow_count: 2_000,
                pace: Duration::from_millis(1),
            }
        }
    }
}

/// The message every scenario appends: `{"stamp":"<20 digits>","pad":"x…"}`,
/// [`PAYLOAD_LEN`] bytes of JSON, whose stamp the follow runs set to the
/// send time (nanoseconds since the run's start, plus one).
#[derive(Debug, Clone)]
pub(crate) struct Payload {
    /// The JSON text, as Plex's client sends it.
    bytes: Bytes,
    /// The same document, as Plasmite's client takes it.
    value: Value,
}

/// The JSON before the stamp's digits.
const STAMP_PREFIX: &[u8] = b"{\"stamp\":\"";
/// Digits of a stamp: any u64.
const STAMP_DIGITS: usize = 20;

impl Payload {
    fn new() -> Result<Payload> {
        let head = format!("{{\"stamp\":\"{READY:020}\",\"pad\":\"");
        let tail = "\"}";
        let pad = PAYLOAD_LEN
            .checked_sub(head.len() + tail.len())
            .ok_or("the payload is too short for its stamp")?;
        let json = format!("{head}{}{tail}", "x".repeat(pad));
        let value = serde_json::from_str(&json)?;
        Ok(Payload {
            bytes: Bytes::from(json),
            value,
        })
    }

    /// The JSON text with `stamp` as its stamp.
    fn stamped(&self, stamp: u64) -> Bytes {
        let mut bytes = self.bytes.to_vec();
        let at = STAMP_PREFIX.len();
        bytes[at..at + STAMP_DIGITS].copy_from_slice(format!("{stamp:020}").as_bytes());
        Bytes::from(bytes)
    }

    /// The document with `stamp` as its stamp.
    fn stamped_value(&self, stamp: u64) -> Value {
        let mut value = self.value.clone();
        value["stamp"] = Value::String(format!("{stamp:020}"));
        value
    }

    /// The stamp of a message's bytes as sent by Plex's client.
    fn stamp_of(data: &[u8]) -> Option<u64> {
        let digits = data.strip_prefix(STAMP_PREFIX)?.get(..STAMP_DIGITS)?;
        std::str::from_utf8(digits).ok()?.parse().ok()
    }

    /// The stamp of a message's document.
    fn stamp_in(data: &Value) -> Option<u64> {
        data.get("stamp")?.as_str()?.parse().ok()
    }
}

/// What the table cannot say: settings and caveats.
fn notes(shape: Shape, runs: usize, plasmite_version: &str) -> Vec<String> {
    vec![
        format!(
            "{runs} runs per figure; loopback TCP; every message the same \
             {PAYLOAD_LEN}-byte JSON object, no tags, Durability::Fast everywhere"
        ),
        format!(
            "plex: plex_serve::Server in this process (its own multi-thread tokio runtime \
             on a thread of its own, default limits, HTTP and plex/1 tcp:// listeners); \
             RemotePools per client on a multi-thread tokio runtime, one session each, \
             one append stream each with one message per batch and up to {} batches in \
             flight; a message counts when its receipt arrives (the server appended it \
             to the pool's shared mapping, not synced)",
            clients::IN_FLIGHT
        ),
        format!(
            "plex-http, plasmite: plasmite::api::RemoteClient (blocking, one keep-alive \
             HTTP/1.1 connection per client, a thread each), append_json_now one request \
             at a time; a message counts when its response (the stored message, with its \
             seq) arrives; plasmite serve ({plasmite_version}, `plasmite --dir TMP serve \
             --bind 127.0.0.1:PORT`, a separate process) stores Lite3 converted from the \
             JSON, plex serve the JSON bytes as sent"
        ),
        format!(
            "append_*: {:?} of warm-up, then acknowledgements counted for {:?}; the \
             clients of a column share one {} MiB pool",
            shape.warmup,
            shape.span,
            APPEND_POOL_SIZE >> 20
        ),
        format!(
            "follow_*: a fresh {} MiB pool per run; the writer appends {} messages, one \
             at a time, each acknowledged, at most one per {:?}, stamped just before it \
             sends (plex: a task on the client's runtime, paced by tokio's millisecond \
             timer; others: a thread); the follower (plex: remote::Follow over plex/1; \
             others: RemoteClient tail, JSON Lines over HTTP) on its own connection reads \
             from seq 1 and records delivery minus stamp on one clock; p50 and p99 of \
             each run, medians of the runs",
            FOLLOW_POOL_SIZE >> 20,
            shape.follow_count,
            shape.pace
        ),
        "targets are plex's goals, judged on the medians, never asserted".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_one_kib_of_json_with_a_stamp() {
        let payload = Payload::new().unwrap();
        assert_eq!(payload.bytes.len(), PAYLOAD_LEN);
        assert_eq!(
            serde_json::to_vec(&payload.value).unwrap().len(),
            PAYLOAD_LEN
        );
        let stamped = payload.stamped(u64::MAX);
        assert_eq!(stamped.len(), PAYLOAD_LEN);
        assert_eq!(Payload::stamp_of(&stamped), Some(u64::MAX));
        let value: Value = serde_json::from_slice(&stamped).unwrap();
        assert_eq!(Payload::stamp_in(&value), Some(u64::MAX));
        assert_eq!(Payload::stamp_in(&payload.stamped_value(42)), Some(42));
        assert_eq!(Payload::stamp_of(&payload.bytes), Some(READY));
        assert_eq!(Payload::stamp_of(b"{\"other\":1}"), None);
    }

    #[test]
    fn runs_alternate_which_column_goes_first() {
        let mut order = Vec::new();
        let figures = alternate("t", 3, |stack, run| {
            order.push(stack);
            Ok(run)
        })
        .unwrap();
        let [a, b, c] = Stack::ALL;
        assert_eq!(order, [a, b, c, b, c, a, c, a, b]);
        for (i, (name, runs)) in figures.iter().enumerate() {
            assert_eq!(*name, Stack::ALL[i].name());
            assert_eq!(runs, &[0, 1, 2]);
        }
    }
}
