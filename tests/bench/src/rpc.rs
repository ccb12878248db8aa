//! The `rpc` suite: store-port calls over plex RPC (plex-peer on
//! plex-tokio) side by side with gRPC (tonic), over loopback TCP on one
//! multi-threaded tokio runtime per run.
//!
//! - `get_1`, `get_64`: `get` of a 64-byte key whose value is 1 KiB, with
//!   1 and 64 calls in flight; calls per second and latency percentiles.
//! - `put_1`, `put_64`: `put` of a 64-byte key and a 1 KiB value, likewise.
//!
//! Both serve the same [`MemoryStore`](plex_peer::MemoryStore), so the
//! work per call behind the wire is the same; each client holds one
//! connection (a plex session, an HTTP/2 connection) and multiplexes its
//! calls on it. The implementations alternate, each run on a fresh
//! runtime, and every figure is the median of the runs.

mod plex_stack;
mod tonic_stack;
mod workload;

use std::time::Duration;

use plex_stack::PlexStore;
use tonic_stack::TonicStore;
use workload::{Op, Shape, StoreClient};

use crate::report::{Figure, Report, Scenario, Target};
use crate::Options;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Result<T> = std::result::Result<T, BoxError>;

/// A run that takes longer than this has hung.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Runs every scenario of the suite.
pub(crate) fn run(options: Options) -> Result<Report> {
    let mut report = Report::default();
    let shape = Shape::of(options);
    for plan in plans() {
        let rates = measure(&plan, shape, options.runs())?;
        let metrics = [
            (plan.rate, "calls/s", true, plan.rate_targets),
            (plan.p50, "µs", false, plan.p50_targets),
            (plan.p99, "µs", false, Vec::new()),
        ];
        for (i, (name, unit, higher_is_better, targets)) in metrics.into_iter().enumerate() {
            let results = rates
                .iter()
                .map(|(stack, runs)| (*stack, Figure::of(runs.iter().map(|r| r[i]).collect())))
                .collect();
            report.push(Scenario {
                name,
                unit,
                higher_is_better,
                targets,
                results,
            });
        }
    }
    for note in notes(shape, options) {
        report.note(note);
    }
    Ok(report)
}

/// An implementation under comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    Plex,
    Tonic,
}

impl Stack {
    /// Every implementation, in report order.
    const ALL: [Stack; 2] = [Stack::Plex, Stack::Tonic];

    fn name(self) -> &'static str {
        match self {
            Stack::Plex => PlexStore::NAME,
            Stack::Tonic => TonicStore::NAME,
        }
    }
}

/// A scenario: the calls it makes and the three rows it reports.
struct Plan {
    op: Op,
    in_flight: usize,
    rate: &'static str,
    p50: &'static str,
    p99: &'static str,
    rate_targets: Vec<Target>,
    p50_targets: Vec<Target>,
}

fn plans() -> Vec<Plan> {
    // The goals: twice tonic's rate with many calls in flight, and
    // no slower than tonic for one call at a time.
    let tonic = |ratio| Target::Ratio {
        of: TonicStore::NAME,
        ratio,
    };
    let plan = |op, in_flight, [rate, p50, p99]: [&'static str; 3]| Plan {
        op,
        in_flight,
        rate,
        p50,
        p99,
        rate_targets: if in_flight > 1 {
            vec![tonic(2.0)]
        } else {
            Vec::new()
        },
        p50_targets: if in_flight == 1 {
            vec![tonic(1.0)]
        } else {
            Vec::new()
        },
    };
    vec![
        plan(Op::Get, 1, ["get_1", "get_1_p50", "get_1_p99"]),
        plan(Op::Get, 64, ["get_64", "get_64_p50", "get_64_p99"]),
        plan(Op::Put, 1, ["put_1", "put_1_p50", "put_1_p99"]),
        plan(Op::Put, 64, ["put_64", "put_64_p50", "put_64_p99"]),
    ]
}

/// One run's figures: calls per second, p50 and p99 in µs.
type Figures = [f64; 3];

/// Runs a plan `runs` times, each implementation once per run, starting
/// with a different one each time.
fn measure(plan: &Plan, shape: Shape, runs: usize) -> Result<Vec<(&'static str, Vec<Figures>)>> {
    let mut figures: Vec<_> = Stack::ALL.iter().map(|s| (s.name(), Vec::new())).collect();
    for run in 0..runs {
        for k in 0..Stack::ALL.len() {
            let i = (run + k) % Stack::ALL.len();
            let stack = Stack::ALL[i];
            eprintln!(
                "rpc: {} run {}/{runs}: {}",
                plan.rate,
                run + 1,
                stack.name()
            );
            let rate = run_once(stack, plan.op, plan.in_flight, shape)
                .map_err(|e| format!("{} on {}: {e}", plan.rate, stack.name()))?;
            figures[i].1.push([rate.per_second, rate.p50, rate.p99]);
        }
    }
    Ok(figures)
}

/// One run on a runtime of its own, so that nothing of one run lingers
/// into the next.
fn run_once(stack: Stack, op: Op, in_flight: usize, shape: Shape) -> Result<workload::Rate> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let task = runtime.spawn(async move {
        let run = async move {
            match stack {
                Stack::Plex => workload::calls::<PlexStore>(op, in_flight, shape).await,
                Stack::Tonic => workload::calls::<TonicStore>(op, in_flight, shape).await,
            }
        };
        tokio::time::timeout(RUN_LIMIT, run)
            .await
            .map_err(|_| format!("no result within {RUN_LIMIT:?}"))?
    });
    runtime.block_on(task)?
}

/// What the table cannot say: settings and caveats.
fn notes(shape: Shape, options: Options) -> Vec<String> {
    vec![
        format!(
            "{} runs per figure; each run: {:?} warm-up, then calls completed in \
             {:?}; tokio multi-thread runtime, TCP_NODELAY on both",
            options.runs(),
            shape.warmup,
            shape.measured
        ),
        format!(
            "{}-byte keys ({} of them, cycled per task), {}-byte values; gets hit keys \
             stored beforehand, puts overwrite them; both serve one MemoryStore",
            workload::KEY_LEN,
            workload::KEYS,
            workload::VALUE_LEN
        ),
        "plex: plex-tokio session (Config::default()), Peer::new, expose_store_port / \
         connect_store_port on lane `rpc` (PeerConfig::default()); a plex/1 stream per call"
            .into(),
        "tonic: hand-written prost messages and service (what tonic-build generates), \
         Server::builder() router defaults, one Channel (one HTTP/2 connection); \
         no compression, no TLS"
            .into(),
        "in flight = tasks each making calls back to back on a clone of one client".into(),
        "targets are plex's goals, judged on the medians, never asserted".into(),
    ]
}
