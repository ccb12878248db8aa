//! `follow_latency`: a message appended in this process, woken for in
//! another one (this binary, re-run as [`FOLLOWER_COMMAND`]).
//!
//! The writer first fills the pool once around its ring with messages
//! stamped [`WARM`], the last one stamped [`READY`], so that both processes
//! then work on a wrapped pool whose pages are mapped. The follower reads
//! through them from the oldest and says `ready`. Then the writer appends
//! one message every [`PACE`], slow enough that wake-ups are measured rather
//! than queueing, each carrying CLOCK_MONOTONIC nanoseconds taken just
//! before the append. The clock is the same in every process on the
//! machine: the follower records its reading minus the stamp when it wakes.

use std::io::{self, BufRead, BufReader, Lines, Write};
use std::path::Path;
use std::process::{ChildStdout, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rustix::time::{clock_gettime, ClockId};

use super::backend::{Backend, Durability, Plasmite, Plex};
use super::{Payload, Result};

/// The hidden subcommand that runs the follower.
pub(crate) const FOLLOWER_COMMAND: &str = "__store-follower";

/// The writer's interval between appends.
const PACE: Duration = Duration::from_micros(500);
/// A run that takes longer than this has hung.
const LIMIT: Duration = Duration::from_secs(120);
/// The stamp of the messages that warm the pool up.
const WARM: u64 = 0;
/// The stamp of the last warm-up message.
const READY: u64 = 1;

/// Wake-up latency percentiles of one run, in µs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Latency {
    pub(super) p50: f64,
    pub(super) p99: f64,
}

/// One run with `B`: a fresh pool of `pool_size` bytes at `path`, then
/// `count` timed messages.
pub(super) fn run<B: Backend>(
    path: &Path,
    pool_size: u64,
    payload: &mut Payload,
    count: u64,
) -> Result<Latency> {
    B::create(path, pool_size)?;
    let mut writer = B::open(path, Durability::Fast)?;
    // More payload bytes than the pool holds: the ring wraps.
    let warm = pool_size / payload.len() as u64;
    for i in 1..=warm {
        let stamp = if i == warm { READY } else { WARM };
        B::append(&mut writer, payload.stamped(stamp))?;
    }
    let mut child = Command::new(std::env::current_exe()?)
        .arg(FOLLOWER_COMMAND)
        .arg(B::NAME)
        .arg(path)
        .arg(count.to_string())
        .arg(payload.stamp_at().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("the follower has no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let result = expect_line(&mut lines, "ready")
        .and_then(|line| match line.as_str() {
            "ready" => Ok(()),
            other => Err(format!("expected `ready` from the follower, got `{other}`").into()),
        })
        .and_then(|()| paced::<B>(&mut writer, payload, count))
        .and_then(|()| latency(&expect_line(&mut lines, "the result")?));
    if result.is_err() {
        // It may be waiting for messages that will not come.
        let _ = child.kill();
    }
    let status = child.wait()?;
    match result {
        Ok(latency) if status.success() => Ok(latency),
        Ok(_) => Err(format!("the {} follower failed: {status}", B::NAME).into()),
        Err(e) => Err(format!("{} follow: {e} (follower: {status})", B::NAME).into()),
    }
}

/// The follower process: `__store-follower <implementation> <pool path>
/// <count> <stamp offset>`. Prints `ready` once caught up, then
/// `<p50 ns> <p99 ns>` after `count` timed messages.
pub(crate) fn follower_main(args: impl Iterator<Item = String>) -> ExitCode {
    match follower(&args.collect::<Vec<_>>()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plex-bench {FOLLOWER_COMMAND}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn follower(args: &[String]) -> Result<()> {
    let [name, path, count, stamp_at] = args else {
        return Err(format!("expected 4 arguments, got {}", args.len()).into());
    };
    let count: u64 = count.parse()?;
    let stamp_at: usize = stamp_at.parse()?;
    let mut histogram = Histogram::<u64>::new_with_bounds(1, LIMIT.as_nanos().try_into()?, 3)?;
    let mut out = io::stdout().lock();
    let mut on_message = |payload: &[u8]| -> Result<bool> {
        let now = monotonic_ns()?;
        match Payload::stamp(payload, stamp_at)? {
            WARM => {}
            READY => {
                writeln!(out, "ready")?;
                out.flush()?;
            }
            sent => histogram.record(now.saturating_sub(sent).max(1))?,
        }
        Ok(histogram.len() < count)
    };
    let path = Path::new(path);
    match name.as_str() {
        Plex::NAME => Plex::follow(path, LIMIT, &mut on_message)?,
        Plasmite::NAME => Plasmite::follow(path, LIMIT, &mut on_message)?,
        other => return Err(format!("unknown implementation `{other}`").into()),
    }
    writeln!(
        out,
        "{} {}",
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99)
    )?;
    Ok(())
}

/// CLOCK_MONOTONIC in nanoseconds: comparable across processes.
fn monotonic_ns() -> Result<u64> {
    let now = clock_gettime(ClockId::Monotonic);
    let secs = u64::try_from(now.tv_sec)?;
    let nanos = u64::try_from(now.tv_nsec)?;
    Ok(secs * 1_000_000_000 + nanos)
}

/// Appends `count` stamped messages, one every [`PACE`].
fn paced<B: Backend>(writer: &mut B::Handle, payload: &mut Payload, count: u64) -> Result<()> {
    let start = Instant::now();
    for i in 0..count {
        let due = start + PACE * u32::try_from(i)?;
        let early = due.saturating_duration_since(Instant::now());
        if !early.is_zero() {
            thread::sleep(early);
        }
        B::append(writer, payload.stamped(monotonic_ns()?))?;
    }
    Ok(())
}

/// The next line from the follower, which must exist.
fn expect_line(lines: &mut Lines<BufReader<ChildStdout>>, what: &str) -> Result<String> {
    match lines.next() {
        Some(line) => Ok(line?),
        None => Err(format!("the follower exited before printing {what}").into()),
    }
}

/// Parses `<p50 ns> <p99 ns>`.
fn latency(line: &str) -> Result<Latency> {
    let parsed: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()?;
    let [p50, p99] = parsed[..] else {
        return Err(format!("bad follower result `{line}`").into());
    };
    Ok(Latency {
        p50: p50 as f64 / 1e3,
        p99: p99 as f64 / 1e3,
    })
}
