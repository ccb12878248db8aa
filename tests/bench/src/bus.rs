//! The `bus` suite: a plex-bus broker and clients (plex-tokio, loopback
//! TCP) side by side with NATS (`nats-server` through `async-nats`), in
//! one run.
//!
//! - `req_128_1`, `req_128_64`, `req_16k_1`, `req_16k_64`: request/reply
//!   with 128-byte and 16 KiB payloads, 1 and 64 requests in flight on one
//!   requesting client, echoed by a responder on another; requests per
//!   second and latency percentiles.
//! - `fanout_1`, `fanout_16`: one publisher's 128-byte messages to 1 and
//!   16 subscribers, each on its own connection; messages per second
//!   delivered, counted at the subscribers, and the share dropped.
//!
//! The implementations alternate, each run on a fresh tokio runtime (and,
//! for plex, a fresh broker; the one `nats-server` serves every NATS
//! run), and every figure is the median of the runs.

mod nats_server;
mod nats_stack;
mod plex_stack;
mod workload;

use std::time::Duration;

use nats_server::NatsServer;
use nats_stack::NatsBus;
use plex_stack::PlexBus;
use workload::{BusPeer, Shape};

use crate::report::{Figure, Report, Scenario, Target};
use crate::Options;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Result<T> = std::result::Result<T, BoxError>;

/// A run that takes longer than this has hung.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Runs every scenario of the suite.
pub(crate) fn run(options: Options) -> Result<Report> {
    let server = NatsServer::start()?;
    eprintln!("bus: {} at {}", server.version, server.url);
    let shape = Shape::of(options);
    let mut report = Report::default();
    for plan in plans() {
        let figures = measure(&plan, &server.url, shape, options.runs())?;
        for (i, row) in plan.rows.into_iter().enumerate() {
            let results = figures
                .iter()
                .map(|(stack, runs)| (*stack, Figure::of(runs.iter().map(|r| r[i]).collect())))
                .collect();
            report.push(Scenario {
                name: row.name,
                unit: row.unit,
                higher_is_better: row.higher_is_better,
                targets: row.targets,
                results,
            });
        }
    }
    for note in notes(shape, options, &server.version) {
        report.note(note);
    }
    Ok(report)
}

/// An implementation under comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    Plex,
    Nats,
}

impl Stack {
    /// Every implementation, in report order.
    const ALL: [Stack; 2] = [Stack::Plex, Stack::Nats];

    fn name(self) -> &'static str {
        match self {
            Stack::Plex => PlexBus::NAME,
            Stack::Nats => NatsBus::NAME,
        }
    }
}

/// What a scenario does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// Request/reply: payload bytes, requests in flight.
    Requests { payload: usize, in_flight: usize },
    /// Publish/subscribe to this many subscribers.
    Fanout { subscribers: usize },
}

/// One row a scenario reports.
struct Row {
    name: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    targets: Vec<Target>,
}

/// A scenario and its rows, in the order of its figures.
struct Plan {
    work: Work,
    rows: Vec<Row>,
}

fn plans() -> Vec<Plan> {
    // The goals: NATS's throughput or better, and its median
    // latency or better, in every scenario.
    let nats = || {
        vec![Target::Ratio {
            of: NatsBus::NAME,
            ratio: 1.0,
        }]
    };
    let row = |name, unit, higher_is_better, targets| Row {
        name,
        unit,
        higher_is_better,
        targets,
    };
    let requests = |payload, in_flight, [rate, p50, p99]: [&'static str; 3]| Plan {
        work: Work::Requests { payload, in_flight },
        rows: vec![
            row(rate, "req/s", true, nats()),
            row(p50, "µs", false, nats()),
            row(p99, "µs", false, Vec::new()),
        ],
    };
    let fanout = |subscribers, [rate, lost]: [&'static str; 2]| Plan {
        work: Work::Fanout { subscribers },
        rows: vec![
            row(rate, "msgs/s", true, nats()),
            row(lost, "%", false, Vec::new()),
        ],
    };
    vec![
        requests(128, 1, ["req_128_1", "req_128_1_p50", "req_128_1_p99"]),
        requests(128, 64, ["req_128_64", "req_128_64_p50", "req_128_64_p99"]),
        requests(16 << 10, 1, ["req_16k_1", "req_16k_1_p50", "req_16k_1_p99"]),
        requests(
            16 << 10,
            64,
            ["req_16k_64", "req_16k_64_p50", "req_16k_64_p99"],
        ),
        fanout(1, ["fanout_1", "fanout_1_lost"]),
        fanout(16, ["fanout_16", "fanout_16_lost"]),
    ]
}

/// One run's figures, in the order of its plan's rows.
type Figures = Vec<f64>;

/// Runs a plan `runs` times, each implementation once per run, starting
/// with a different one each time; each run's figures, in row order.
fn measure(
    plan: &Plan,
    nats_url: &str,
    shape: Shape,
    runs: usize,
) -> Result<Vec<(&'static str, Vec<Figures>)>> {
    let name = plan.rows[0].name;
    let mut figures: Vec<_> = Stack::ALL.iter().map(|s| (s.name(), Vec::new())).collect();
    for run in 0..runs {
        for k in 0..Stack::ALL.len() {
            let i = (run + k) % Stack::ALL.len();
            let stack = Stack::ALL[i];
            eprintln!("bus: {name} run {}/{runs}: {}", run + 1, stack.name());
            let run = run_once(stack, plan.work, nats_url, shape)
                .map_err(|e| format!("{name} on {}: {e}", stack.name()))?;
            figures[i].1.push(run);
        }
    }
    Ok(figures)
}

/// One run on a runtime of its own, so that nothing of one run lingers
/// into the next.
fn run_once(stack: Stack, work: Work, nats_url: &str, shape: Shape) -> Result<Figures> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let nats_url = nats_url.to_owned();
    let task = runtime.spawn(async move {
        let run = async move {
            match stack {
                Stack::Plex => work_on::<PlexBus>(work, &nats_url, shape).await,
                Stack::Nats => work_on::<NatsBus>(work, &nats_url, shape).await,
            }
        };
        tokio::time::timeout(RUN_LIMIT, run)
            .await
            .map_err(|_| format!("no result within {RUN_LIMIT:?}"))?
    });
    runtime.block_on(task)?
}

async fn work_on<P: BusPeer>(work: Work, nats_url: &str, shape: Shape) -> Result<Figures> {
    Ok(match work {
        Work::Requests { payload, in_flight } => {
            let rate = workload::requests::<P>(nats_url, payload, in_flight, shape).await?;
            vec![rate.per_second, rate.p50, rate.p99]
        }
        Work::Fanout { subscribers } => {
            let fanout = workload::fanout::<P>(nats_url, subscribers, shape).await?;
            vec![fanout.per_second, fanout.lost]
        }
    })
}

/// What the table cannot say: settings and caveats.
fn notes(shape: Shape, options: Options, nats_version: &str) -> Vec<String> {
    vec![
        format!(
            "{} runs per figure; tokio multi-thread runtime, loopback TCP \
             (TCP_NODELAY on both)",
            options.runs()
        ),
        format!(
            "req_*: {:?} warm-up, then replies counted in {:?}; in flight = tasks each \
             requesting back to back on one requesting client; one responder client echoes \
             every payload (byte-checked)",
            shape.warmup, shape.measured
        ),
        format!(
            "fanout_*: {}-byte messages published back to back for {:?} (after {:?} of \
             warm-up), then deliveries counted until all owed arrived or none came for \
             {:?}; rate = deliveries / (last delivery - first publish); *_lost = owed but \
             dropped for a slow subscriber",
            workload::MESSAGE_LEN,
            shape.measured,
            shape.warmup,
            workload::QUIET
        ),
        "plex: Broker (BrokerConfig::default(): 8 MiB per subscriber, drop with gap) on a \
         plex-tokio listener, a fresh one per run; BusClient per connection \
         (Config::default()); the responder spawns a task per request (body, then reply)"
            .into(),
        format!(
            "nats: {nats_version}, defaults, one server for every run (`nats-server -a \
             127.0.0.1 -p PORT`); async-nats 0.50 defaults; requests via Client::request, \
             the responder a queue-group subscription replying inline, flush after publishing"
        ),
        "targets are plex's goals, judged on the medians, never asserted".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rate_and_median_row_is_judged_against_nats() {
        let plans = plans();
        let mut names: Vec<_> = plans.iter().flat_map(|p| &p.rows).map(|r| r.name).collect();
        assert_eq!(names.len(), 4 * 3 + 2 * 2);
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 4 * 3 + 2 * 2, "row names are unique");
        for plan in &plans {
            let goal = Target::Ratio {
                of: "nats",
                ratio: 1.0,
            };
            assert_eq!(plan.rows[0].targets, vec![goal]);
            assert!(plan.rows[0].higher_is_better);
            if let Work::Requests { .. } = plan.work {
                assert_eq!(plan.rows[1].targets, vec![goal]);
                assert!(!plan.rows[1].higher_is_better);
            }
        }
    }
}
