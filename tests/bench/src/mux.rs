//! The `mux` suite: plex (plex-tokio) over loopback TCP, side by side with
//! raw TCP, yamux and h2, on one multi-threaded tokio runtime per run.
//!
//! - `bulk_1`: one stream carries 1 GiB one way; MB/s.
//! - `bulk_100`: 100 streams carry 10 MiB each at once; aggregate MB/s.
//!   Raw TCP uses 100 connections.
//! - `rpc_1`, `rpc_64`: 64-byte requests echoed back, with 1 and 64 in
//!   flight, a stream (raw TCP: a connection) per lane; requests per second
//!   and latency percentiles.
//! - `open_echo`: open a stream, echo one byte, close, one after another.
//!   Raw TCP opens a connection and h2 makes a request per operation.
//! - `idle_streams`: heap and resident memory per idle stream with 10,000
//!   streams open on one connection, both ends in this process.
//! - `tls_bulk_1`, `tls_rpc_1`, `tls_rpc_64`: `bulk_1`, `rpc_1` and
//!   `rpc_64` with plex over `tls://` against raw rustls over TCP (a
//!   connection and a handshake per stream, made before the clock starts
//!   for rpc's lanes, as raw TCP's).
//! - `relay_bulk_1`: `bulk_1` through one `strelaysrv` on loopback, which
//!   the suite runs: plex over `relay://` (one relayed session, mutual TLS
//!   inside) against raw relayed sessions (one per stream, no TLS).
//!
//! The implementations alternate, each run on a fresh runtime, and every
//! figure is the median of the runs. `idle_streams` runs in a fresh process
//! (this binary, re-run as [`IDLE_COMMAND`]), so that its resident memory
//! grows instead of reusing what earlier runs freed.

mod h2_peer;
mod peer;
mod relay_peer;
mod relayed;
mod strelaysrv;
mod tls_peer;
mod workload;
mod yamux_peer;

use std::error::Error;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use h2_peer::H2;
use peer::{Mux, Plex, Tcp};
use relay_peer::{PlexRelay, RawRelay};
use strelaysrv::{Relay, RelayAt};
use tls_peer::{PlexTls, RawTls};
use yamux_peer::Yamux;

use crate::pattern::pattern;
use crate::report::{Figure, Report, Scenario, Target};
use crate::Options;

pub(crate) type BoxError = Box<dyn Error + Send + Sync>;
pub(crate) type Result<T> = std::result::Result<T, BoxError>;

/// Streams each implementation allows on one connection: room for
/// `idle_streams`. The only setting plex changes from its defaults.
pub(crate) const STREAM_LIMIT: usize = 2 * IDLE_STREAMS;
/// Streams held open in `idle_streams`.
const IDLE_STREAMS: usize = 10_000;
/// Streams of `bulk_100`.
const BULK_STREAMS: usize = 100;
/// Length of the repeating bulk payload: not a multiple of any frame or
/// buffer size, so misplaced bytes cannot match by accident.
const PATTERN_LEN: usize = (1 << 20) + 13;
/// A run that takes longer than this has hung.
const RUN_LIMIT: Duration = Duration::from_secs(300);

const MIB: u64 = 1 << 20;

/// The hidden subcommand that measures one `idle_streams` run.
pub(crate) const IDLE_COMMAND: &str = "__mux-idle";

/// Runs every scenario of the suite.
pub(crate) fn run(options: Options) -> Result<Report> {
    let mut report = Report::default();
    // Started for the first plan that goes through it; killed at the end.
    let mut relay: Option<Relay> = None;
    for plan in plans(options) {
        let at = match (&relay, plan.peers.iter().any(|p| p.relayed())) {
            (Some(running), true) => Some(running.at()),
            (None, true) => Some(relay.insert(Relay::start()?).at()),
            (_, false) => None,
        };
        let figures = measure(&plan, options.runs(), at)?;
        for (i, metric) in plan.metrics.into_iter().enumerate() {
            let results = figures
                .iter()
                .map(|(name, runs)| (*name, Figure::of(runs.iter().map(|f| f[i]).collect())))
                .collect();
            report.push(Scenario {
                name: metric.name,
                unit: metric.unit,
                higher_is_better: metric.higher_is_better,
                targets: metric.targets,
                results,
            });
        }
    }
    for note in notes(options) {
        report.note(note);
    }
    Ok(report)
}

/// One run's figures, one per metric of its plan.
type Figures = Vec<f64>;

/// An implementation under comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Plex,
    Raw,
    Yamux,
    H2,
    /// Plex over `tls://`, reported as plex in the TLS rows.
    PlexTls,
    RawTls,
    /// Plex over `relay://`, reported as plex in the relay row.
    PlexRelay,
    RawRelay,
}

impl Peer {
    /// Every implementation, in report order.
    const ALL: [Peer; 4] = [Peer::Plex, Peer::Raw, Peer::Yamux, Peer::H2];
    /// Those with streams: raw TCP cannot hold 10,000 idle connections
    /// within the open-file limit, and their cost is the kernel's anyway.
    const MULTIPLEXED: [Peer; 3] = [Peer::Plex, Peer::Yamux, Peer::H2];
    /// The TLS rows: plex over `tls://` and raw rustls over TCP.
    const TLS: [Peer; 2] = [Peer::PlexTls, Peer::RawTls];
    /// The relay row: plex over `relay://` and raw relayed sessions.
    const RELAY: [Peer; 2] = [Peer::PlexRelay, Peer::RawRelay];

    fn name(self) -> &'static str {
        match self {
            Peer::Plex => Plex::NAME,
            Peer::Raw => Tcp::NAME,
            Peer::Yamux => Yamux::NAME,
            Peer::H2 => H2::NAME,
            Peer::PlexTls => PlexTls::NAME,
            Peer::RawTls => RawTls::NAME,
            Peer::PlexRelay => PlexRelay::NAME,
            Peer::RawRelay => RawRelay::NAME,
        }
    }

    /// Whether it goes through the suite's relay.
    fn relayed(self) -> bool {
        matches!(self, Peer::PlexRelay | Peer::RawRelay)
    }
}

/// What a scenario makes each implementation do.
#[derive(Debug, Clone)]
enum Workload {
    Bulk {
        streams: usize,
        per_stream: u64,
        pattern: Arc<[u8]>,
    },
    Rpc {
        lanes: usize,
        requests: usize,
    },
    OpenEcho {
        ops: usize,
    },
    Idle {
        streams: usize,
    },
}

impl Workload {
    /// One run's figures, in the order of the plan's metrics: bulk gives
    /// MB/s and CPU seconds per GB; rpc and open_echo give the rate, p50 and p99; idle gives heap
    /// and resident bytes per stream.
    async fn run<M: Mux>(self, env: M::Env) -> Result<Figures> {
        Ok(match self {
            Workload::Bulk {
                streams,
                per_stream,
                pattern,
            } => {
                let bulk = workload::bulk::<M>(env, streams, per_stream, pattern).await?;
                vec![bulk.mb_per_s, bulk.cpu_per_gb]
            }
            Workload::Rpc { lanes, requests } => {
                let rate = workload::rpc::<M>(env, lanes, requests).await?;
                vec![rate.per_second, rate.p50, rate.p99]
            }
            Workload::OpenEcho { ops } => {
                let rate = workload::open_echo::<M>(env, ops).await?;
                vec![rate.per_second, rate.p50, rate.p99]
            }
            Workload::Idle { streams } => {
                let footprint = workload::idle::<M>(env, streams).await?;
                vec![footprint.heap, footprint.rss]
            }
        })
    }
}

/// A scenario: its workload, who runs it, and the rows it reports.
struct Plan {
    label: &'static str,
    workload: Workload,
    peers: &'static [Peer],
    metrics: Vec<Metric>,
}

/// One row of the report.
struct Metric {
    name: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    targets: Vec<Target>,
}

impl Metric {
    fn higher(name: &'static str, unit: &'static str, targets: Vec<Target>) -> Metric {
        Metric {
            name,
            unit,
            higher_is_better: true,
            targets,
        }
    }

    fn lower(name: &'static str, unit: &'static str, targets: Vec<Target>) -> Metric {
        Metric {
            name,
            unit,
            higher_is_better: false,
            targets,
        }
    }
}

/// A bulk scenario's rows: throughput, with `targets`, and what it cost in
/// CPU time per GB.
fn bulk_metrics(name: &'static str, cpu: &'static str, targets: Vec<Target>) -> Vec<Metric> {
    vec![
        Metric::higher(name, "MB/s", targets),
        Metric::lower(cpu, "CPU s/GB", Vec::new()),
    ]
}

/// A target of `times` the figure of `of`.
fn ratio(of: Peer, times: f64) -> Target {
    Target::Ratio {
        of: of.name(),
        ratio: times,
    }
}

fn plans(options: Options) -> Vec<Plan> {
    let quick = options.quick;
    let pattern: Arc<[u8]> = pattern(PATTERN_LEN).into();
    let requests = if quick { 10_000 } else { 50_000 };
    let rpc_of =
        |peers, [label, p50, p99]: [&'static str; 3], lanes, rate_targets, p50_targets| Plan {
            label,
            workload: Workload::Rpc { lanes, requests },
            peers,
            metrics: vec![
                Metric::higher(label, "req/s", rate_targets),
                Metric::lower(p50, "µs", p50_targets),
                Metric::lower(p99, "µs", Vec::new()),
            ],
        };
    vec![
        Plan {
            label: "bulk_1",
            workload: Workload::Bulk {
                streams: 1,
                per_stream: if quick { 256 * MIB } else { 1024 * MIB },
                pattern: pattern.clone(),
            },
            peers: &Peer::ALL,
            metrics: bulk_metrics(
                "bulk_1",
                "bulk_1_cpu",
                vec![ratio(Peer::Raw, 0.9), ratio(Peer::Yamux, 1.5)],
            ),
        },
        Plan {
            label: "bulk_100",
            workload: Workload::Bulk {
                streams: BULK_STREAMS,
                per_stream: if quick { 2 * MIB } else { 10 * MIB },
                pattern: pattern.clone(),
            },
            peers: &Peer::ALL,
            metrics: bulk_metrics("bulk_100", "bulk_100_cpu", vec![ratio(Peer::Raw, 0.85)]),
        },
        rpc_of(
            &Peer::ALL,
            ["rpc_1", "rpc_1_p50", "rpc_1_p99"],
            1,
            Vec::new(),
            vec![ratio(Peer::Raw, 1.3)],
        ),
        rpc_of(
            &Peer::ALL,
            ["rpc_64", "rpc_64_p50", "rpc_64_p99"],
            64,
            vec![ratio(Peer::Yamux, 2.0)],
            Vec::new(),
        ),
        Plan {
            label: "open_echo",
            workload: Workload::OpenEcho {
                ops: if quick { 2_000 } else { 10_000 },
            },
            peers: &Peer::ALL,
            metrics: vec![
                Metric::higher("open_echo", "op/s", Vec::new()),
                Metric::lower("open_echo_p50", "µs", Vec::new()),
                Metric::lower("open_echo_p99", "µs", Vec::new()),
            ],
        },
        Plan {
            label: "idle_streams",
            workload: Workload::Idle {
                streams: IDLE_STREAMS,
            },
            peers: &Peer::MULTIPLEXED,
            metrics: vec![
                Metric::lower("idle_streams", "B/stream", vec![Target::Value(1024.0)]),
                Metric::lower("idle_streams_rss", "B/stream", Vec::new()),
            ],
        },
        Plan {
            label: "tls_bulk_1",
            workload: Workload::Bulk {
                streams: 1,
                per_stream: if quick { 256 * MIB } else { 1024 * MIB },
                pattern: pattern.clone(),
            },
            peers: &Peer::TLS,
            metrics: bulk_metrics(
                "tls_bulk_1",
                "tls_bulk_1_cpu",
                vec![ratio(Peer::RawTls, 0.9)],
            ),
        },
        rpc_of(
            &Peer::TLS,
            ["tls_rpc_1", "tls_rpc_1_p50", "tls_rpc_1_p99"],
            1,
            Vec::new(),
            Vec::new(),
        ),
        rpc_of(
            &Peer::TLS,
            ["tls_rpc_64", "tls_rpc_64_p50", "tls_rpc_64_p99"],
            64,
            Vec::new(),
            Vec::new(),
        ),
        Plan {
            label: "relay_bulk_1",
            workload: Workload::Bulk {
                streams: 1,
                per_stream: if quick { 256 * MIB } else { 1024 * MIB },
                pattern,
            },
            peers: &Peer::RELAY,
            metrics: bulk_metrics("relay_bulk_1", "relay_bulk_1_cpu", Vec::new()),
        },
    ]
}

/// Runs a plan `runs` times, each implementation once per run, starting
/// with a different one each time, relay peers through `relay`. Returns
/// each implementation's figures per run.
fn measure(
    plan: &Plan,
    runs: usize,
    relay: Option<RelayAt>,
) -> Result<Vec<(&'static str, Vec<Figures>)>> {
    let mut figures: Vec<_> = plan.peers.iter().map(|p| (p.name(), Vec::new())).collect();
    for run in 0..runs {
        for k in 0..plan.peers.len() {
            let i = (run + k) % plan.peers.len();
            let peer = plan.peers[i];
            eprintln!(
                "mux: {} run {}/{runs}: {}",
                plan.label,
                run + 1,
                peer.name()
            );
            let run_figures = match plan.workload {
                Workload::Idle { streams } => idle_in_child(peer, streams),
                ref workload => run_once(workload.clone(), peer, relay),
            }
            .map_err(|e| format!("{} on {}: {e}", plan.label, peer.name()))?;
            assert_eq!(
                run_figures.len(),
                plan.metrics.len(),
                "{}: a figure per metric",
                plan.label
            );
            figures[i].1.push(run_figures);
        }
    }
    Ok(figures)
}

/// One run of `workload` by `peer` on a runtime of its own, so that nothing
/// of one run lingers into the next; relay peers go through `relay`.
fn run_once(workload: Workload, peer: Peer, relay: Option<RelayAt>) -> Result<Figures> {
    let relay = move || relay.ok_or_else(|| format!("{} needs the relay", peer.name()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let task = runtime.spawn(async move {
        let run = async move {
            match peer {
                Peer::Plex => workload.run::<Plex>(()).await,
                Peer::Raw => workload.run::<Tcp>(()).await,
                Peer::Yamux => workload.run::<Yamux>(()).await,
                Peer::H2 => workload.run::<H2>(()).await,
                Peer::PlexTls => workload.run::<PlexTls>(()).await,
                Peer::RawTls => workload.run::<RawTls>(()).await,
                Peer::PlexRelay => workload.run::<PlexRelay>(relay()?).await,
                Peer::RawRelay => workload.run::<RawRelay>(relay()?).await,
            }
        };
        tokio::time::timeout(RUN_LIMIT, run)
            .await
            .map_err(|_| format!("no result within {RUN_LIMIT:?}"))?
    });
    runtime.block_on(task)?
}

/// One `idle_streams` run in a child process: `IDLE_COMMAND <peer> <streams>`.
fn idle_in_child(peer: Peer, streams: usize) -> Result<Figures> {
    let output = Command::new(std::env::current_exe()?)
        .arg(IDLE_COMMAND)
        .arg(peer.name())
        .arg(streams.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("{IDLE_COMMAND}: {}", output.status).into());
    }
    let figures = String::from_utf8(output.stdout)?
        .split_whitespace()
        .map(str::parse)
        .collect::<std::result::Result<Figures, _>>()?;
    Ok(figures)
}

/// The child side of [`idle_in_child`]: prints the run's figures.
pub(crate) fn idle_main(mut args: impl Iterator<Item = String>) -> ExitCode {
    let mut figures = || -> Result<Figures> {
        let name = args.next().ok_or("no implementation given")?;
        let peer = Peer::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| format!("unknown implementation `{name}`"))?;
        let streams = args.next().ok_or("no stream count given")?.parse()?;
        run_once(Workload::Idle { streams }, peer, None)
    };
    match figures() {
        Ok(figures) => {
            let line: Vec<String> = figures.iter().map(f64::to_string).collect();
            println!("{}", line.join(" "));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("plex-bench {IDLE_COMMAND}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the table cannot say: settings and caveats.
fn notes(options: Options) -> Vec<String> {
    vec![
        format!(
            "{} runs per figure; tokio multi-thread runtime, TCP_NODELAY everywhere; \
             64 KiB writes and reads in bulk",
            options.runs()
        ),
        format!(
            "plex: Config::default() but max_concurrent_streams {STREAM_LIMIT} \
             (for idle_streams)"
        ),
        format!(
            "yamux: defaults (256 KiB auto-tuned stream windows, 16 KiB split_send_size) \
             but max_num_streams {STREAM_LIMIT} and no max_connection_receive_window \
             (yamux requires 256 KiB of it per allowed stream)"
        ),
        format!(
            "h2: initial_window_size {} MiB and initial_connection_window_size {} MiB on both \
             ends, server max_concurrent_streams {STREAM_LIMIT}, 16 KiB frames; writes \
             reserve_capacity/poll_capacity, reads release_capacity as consumed",
            h2_peer::STREAM_WINDOW >> 20,
            h2_peer::CONNECTION_WINDOW >> 20
        ),
        format!(
            "idle_streams: {IDLE_STREAMS} streams that each carried 1 byte both ways, both ends \
             counted, each run in a fresh process; heap is the counting allocator's live \
             bytes (allocator overhead excluded), rss the growth of /proc/self/statm's \
             resident pages; raw TCP omitted (a connection per stream; kernel memory)"
        ),
        "tls_*: plex over tls:// (one TLS connection) against raw rustls over TCP (a TLS \
         connection per stream); rustls 0.23 with ring on both, one self-signed certificate \
         pinned by fingerprint"
            .into(),
        "relay_bulk_1: bulk_1 through one strelaysrv on loopback (no rate limits), which \
         shares the 2 cores with both ends; plex over relay:// runs mutual TLS inside the \
         relayed session (rustls, ring), raw relay sends the bytes in the clear, a session \
         per stream, each write behind a 4-byte length and an empty one as the end (the \
         relay passes no close on); so plex/raw relay prices plex's mux and inner TLS \
         together; no target set"
            .into(),
        "*_cpu: CPU seconds (user + system) per GB of payload over the timed part, both \
         ends (the whole process; the relay rows leave out strelaysrv's): steadier than \
         MB/s on a busy machine"
            .into(),
        "targets are plex's goals, judged on the medians, never asserted".into(),
    ]
}
