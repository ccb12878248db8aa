//! The `store` suite: plex-store pools side by side with the `plasmite`
//! crate's, through each library's API, with the same 1 KiB messages, the
//! same pool sizes and the same disk.
//!
//! - `append_fast`: one writer appends as fast as it can; messages/s.
//!   Plex with `Durability::Fast`, plasmite with its default (`Fast`).
//! - `append_flush`: four writer threads, a pool handle each, append with
//!   the durability that syncs before acknowledging (`Flush` in both);
//!   messages/s all together.
//! - `get_random`: one reader gets random seqs of a pool holding
//!   [`READ_MESSAGES`] messages; gets/s. Plex reads into one reused
//!   `MessageBuf` (`Pool::get_into`); plasmite has no such read, and its
//!   `Pool::get` copies each payload into a new `Vec`.
//! - `follow_latency_p50`, `_p99`: from the append in this process to the
//!   wake-up of a follower in another one; see [`follow`].
//! - `read_all`: the same pool read through from the oldest message, over
//!   and over; messages/s. Plex through `Cursor::try_next_into` (one reused
//!   `MessageBuf`), plasmite through `Cursor::next` (a new `Vec` each).
//!
//! Appends go to a pool that was first filled once around its ring, so they
//! run in the steady state: every append evicts. The implementations
//! alternate run by run, and every figure is the median of the runs.

mod backend;
mod follow;

use std::error::Error;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use plasmite::api::lite3::Lite3Buf;

use backend::{Backend, Durability, Plasmite, Plex};
use follow::Latency;

use crate::report::{target_dir, Figure, Report, Scenario, Target, PLEX};
use crate::Options;

pub(crate) use follow::{follower_main, FOLLOWER_COMMAND};

pub(crate) type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// Bytes of every message: a Lite3 document, the message format of
/// plasmite's API, stored as it is by both implementations.
const PAYLOAD_LEN: usize = 1024;
/// The pools of every scenario but `follow_latency`.
const POOL_SIZE: u64 = 64 << 20;
/// The pools of `follow_latency`, filled once per run.
const FOLLOW_POOL_SIZE: u64 = 4 << 20;
/// Messages in the pool that `get_random` and `read_all` read: all of them
/// fit in [`POOL_SIZE`] in both implementations.
const READ_MESSAGES: u64 = 50_000;
/// Writer threads of `append_flush`.
const WRITERS: usize = 4;
/// Operations between two readings of the clock in the fast scenarios.
const BATCH: u64 = 64;

/// Runs every scenario of the suite.
pub(crate) fn run(options: Options) -> Result<Report> {
    let dir = PoolDir::create()?;
    let mut payload = Payload::new()?;
    let span = if options.quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(2)
    };
    let mut report = Report::default();

    eprintln!("store: append_fast, append_flush");
    let plex_pool = append_pool::<Plex>(&dir, &payload)?;
    let plasmite_pool = append_pool::<Plasmite>(&dir, &payload)?;
    let (plex, plasmite) = alternate(
        options,
        || append_fast::<Plex>(&plex_pool, &payload, span),
        || append_fast::<Plasmite>(&plasmite_pool, &payload, span),
    )?;
    report.push(higher(
        "append_fast",
        "msg/s",
        vec![Target::Ratio {
            of: Plasmite::NAME,
            ratio: 10.0,
        }],
        plex,
        plasmite,
    ));
    let (plex, plasmite) = alternate(
        options,
        || append_flush::<Plex>(&plex_pool, &payload, span),
        || append_flush::<Plasmite>(&plasmite_pool, &payload, span),
    )?;
    report.push(higher(
        "append_flush",
        "msg/s",
        vec![Target::Ratio {
            of: Plasmite::NAME,
            ratio: 5.0,
        }],
        plex,
        plasmite,
    ));

    eprintln!("store: get_random, read_all");
    let mut plex_reader = read_pool::<Plex>(&dir, &payload)?;
    let mut plasmite_reader = read_pool::<Plasmite>(&dir, &payload)?;
    let (plex, plasmite) = alternate(
        options,
        || get_random::<Plex>(&mut plex_reader, span),
        || get_random::<Plasmite>(&mut plasmite_reader, span),
    )?;
    report.push(higher(
        "get_random",
        "get/s",
        vec![Target::Value(5e6)],
        plex,
        plasmite,
    ));
    let (plex, plasmite) = alternate(
        options,
        || read_all::<Plex>(&mut plex_reader, span),
        || read_all::<Plasmite>(&mut plasmite_reader, span),
    )?;
    report.push(higher("read_all", "msg/s", Vec::new(), plex, plasmite));

    eprintln!("store: follow_latency");
    let count = if options.quick { 2_000 } else { 6_000 };
    let (mut plex, mut plasmite) = (Vec::new(), Vec::new());
    for _ in 0..options.runs() {
        plex.push(follow_run::<Plex>(&dir, &mut payload, count)?);
        plasmite.push(follow_run::<Plasmite>(&dir, &mut payload, count)?);
    }
    let pick = |runs: &[Latency], p: fn(&Latency) -> f64| Figure::of(runs.iter().map(p).collect());
    report.push(lower(
        "follow_latency_p50",
        vec![Target::Value(50.0)],
        pick(&plex, |l| l.p50),
        pick(&plasmite, |l| l.p50),
    ));
    report.push(lower(
        "follow_latency_p99",
        Vec::new(),
        pick(&plex, |l| l.p99),
        pick(&plasmite, |l| l.p99),
    ));

    report.note(format!(
        "pools in {} (the target dir's filesystem), removed after the run: \
         {} MiB ({} MiB for follow_latency); every message the same {PAYLOAD_LEN}-byte \
         Lite3 document",
        dir.path.display(),
        POOL_SIZE >> 20,
        FOLLOW_POOL_SIZE >> 20,
    ));
    report.note(
        "plasmite through plasmite::api: Pool::append_with_options (a wall-clock \
         timestamp, Durability::Fast or Flush), Pool::get, Cursor::next, and \
         tail_lite3 to follow; its Flush msyncs the frame, the index slot and the \
         header on every append"
            .into(),
    );
    report.note(
        "get_random and read_all: plex reads into one reused MessageBuf \
         (Pool::get_into, Cursor::try_next_into), allocating nothing per message; \
         plasmite's API has no such read, so each of its reads copies the payload \
         into a new Vec (Pool::get, Cursor::next)"
            .into(),
    );
    report.note(format!(
        "append_flush: {WRITERS} threads, a pool handle each; follow_latency: one \
         message every 500 µs, {count} per run, p50 and p99 of each run"
    ));
    Ok(report)
}

/// A scenario where a larger figure is better.
fn higher(
    name: &'static str,
    unit: &'static str,
    targets: Vec<Target>,
    plex: Figure,
    plasmite: Figure,
) -> Scenario {
    Scenario {
        name,
        unit,
        higher_is_better: true,
        targets,
        results: vec![(PLEX, plex), (Plasmite::NAME, plasmite)],
    }
}

/// A latency scenario, in µs: lower is better.
fn lower(name: &'static str, targets: Vec<Target>, plex: Figure, plasmite: Figure) -> Scenario {
    Scenario {
        higher_is_better: false,
        ..higher(name, "µs", targets, plex, plasmite)
    }
}

/// Runs plex and plasmite in turn, [`Options::runs`] times each; returns
/// the figure of each.
fn alternate(
    options: Options,
    mut plex: impl FnMut() -> Result<f64>,
    mut plasmite: impl FnMut() -> Result<f64>,
) -> Result<(Figure, Figure)> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..options.runs() {
        a.push(plex()?);
        b.push(plasmite()?);
    }
    Ok((Figure::of(a), Figure::of(b)))
}

/// One `follow_latency` run, on a fresh pool.
fn follow_run<B: Backend>(dir: &PoolDir, payload: &mut Payload, count: u64) -> Result<Latency> {
    let path = dir.pool::<B>("follow");
    remove_pool(&path)?;
    follow::run::<B>(&path, FOLLOW_POOL_SIZE, payload, count)
}

/// A pool for the append scenarios, filled once around its ring.
fn append_pool<B: Backend>(dir: &PoolDir, payload: &Payload) -> Result<PathBuf> {
    let path = dir.pool::<B>("append");
    B::create(&path, POOL_SIZE)?;
    let mut handle = B::open(&path, Durability::Fast)?;
    // More payload bytes than the pool holds: the ring wraps.
    for _ in 0..POOL_SIZE / PAYLOAD_LEN as u64 {
        B::append(&mut handle, payload.bytes())?;
    }
    Ok(path)
}

fn append_fast<B: Backend>(path: &Path, payload: &Payload, span: Duration) -> Result<f64> {
    let mut handle = B::open(path, Durability::Fast)?;
    let (count, elapsed) = repeat(span, || {
        for _ in 0..BATCH {
            B::append(&mut handle, payload.bytes())?;
        }
        Ok(BATCH)
    })?;
    Ok(count as f64 / elapsed.as_secs_f64())
}

fn append_flush<B: Backend>(path: &Path, payload: &Payload, span: Duration) -> Result<f64> {
    let start = Barrier::new(WRITERS);
    let runs = thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                scope.spawn(|| {
                    let mut handle = B::open(path, Durability::Flush)?;
                    start.wait();
                    repeat(span, || B::append(&mut handle, payload.bytes()).map(|()| 1))
                })
            })
            .collect();
        writers
            .into_iter()
            .map(|writer| {
                writer
                    .join()
                    .map_err(|_| "an append_flush writer panicked")?
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let count: u64 = runs.iter().map(|&(count, _)| count).sum();
    let elapsed = runs.iter().map(|&(_, elapsed)| elapsed).max();
    Ok(count as f64 / elapsed.ok_or("no writers")?.as_secs_f64())
}

/// A pool holding [`READ_MESSAGES`] messages, open for reading.
fn read_pool<B: Backend>(dir: &PoolDir, payload: &Payload) -> Result<B::Handle> {
    let path = dir.pool::<B>("read");
    B::create(&path, POOL_SIZE)?;
    let mut handle = B::open(&path, Durability::Fast)?;
    for _ in 0..READ_MESSAGES {
        B::append(&mut handle, payload.bytes())?;
    }
    // Every seq that `get_random` asks for is there, and nothing more.
    let held = B::read_all(&mut handle, PAYLOAD_LEN)?;
    if held != READ_MESSAGES || B::get(&mut handle, 1)? != PAYLOAD_LEN {
        return Err(format!("{} holds {held} messages, not {READ_MESSAGES}", B::NAME).into());
    }
    Ok(handle)
}

fn get_random<B: Backend>(handle: &mut B::Handle, span: Duration) -> Result<f64> {
    let mut rng = SplitMix64(0x5EED);
    let (count, elapsed) = repeat(span, || {
        for _ in 0..BATCH {
            let seq = 1 + rng.next() % READ_MESSAGES;
            let len = B::get(handle, seq)?;
            if len != PAYLOAD_LEN {
                return Err(format!("seq {seq} has {len} bytes").into());
            }
        }
        Ok(BATCH)
    })?;
    Ok(count as f64 / elapsed.as_secs_f64())
}

fn read_all<B: Backend>(handle: &mut B::Handle, span: Duration) -> Result<f64> {
    let (count, elapsed) = repeat(span, || {
        let read = B::read_all(handle, PAYLOAD_LEN)?;
        if read != READ_MESSAGES {
            return Err(format!("read {read} messages, not {READ_MESSAGES}").into());
        }
        Ok(read)
    })?;
    Ok(count as f64 / elapsed.as_secs_f64())
}

/// Calls `batch` until `span` has passed; returns the operations it
/// reported and the time they took.
fn repeat(span: Duration, mut batch: impl FnMut() -> Result<u64>) -> Result<(u64, Duration)> {
    let start = Instant::now();
    let mut count = 0;
    loop {
        count += batch()?;
        let elapsed = start.elapsed();
        if elapsed >= span {
            return Ok((count, elapsed));
        }
    }
}

/// The message every scenario appends: a plasmite message (`meta` and
/// `data`) in Lite3 of exactly [`PAYLOAD_LEN`] bytes, whose `data.stamp`
/// integer `follow_latency` overwrites in place with the send time.
struct Payload {
    bytes: Vec<u8>,
    stamp_at: usize,
}

impl Payload {
    /// A stamp value whose bytes appear nowhere else in the document.
    const MARK: i64 = 0x1122_3344_5566_7788;

    fn new() -> Result<Payload> {
        // Lite3 grows with the padding string; take the one that fits.
        for pad in (0..PAYLOAD_LEN).rev() {
            let json = format!(
                r#"{{"meta":{{"tags":[]}},"data":{{"stamp":{},"pad":"{}"}}}}"#,
                Self::MARK,
                "x".repeat(pad)
            );
            let doc = Lite3Buf::from_json_str(&json)?;
            let bytes = doc.as_slice();
            if bytes.len() > PAYLOAD_LEN {
                continue;
            }
            if bytes.len() < PAYLOAD_LEN {
                break;
            }
            let mark = Self::MARK.to_le_bytes();
            let mut found = bytes.windows(mark.len()).enumerate();
            let stamp_at = found.find(|(_, w)| *w == mark).map(|(at, _)| at);
            if let (Some(stamp_at), None) = (stamp_at, found.find(|(_, w)| *w == mark)) {
                return Ok(Payload {
                    bytes: bytes.to_vec(),
                    stamp_at,
                });
            }
            return Err("the Lite3 stamp is not one little-endian i64".into());
        }
        Err(format!("no Lite3 message of exactly {PAYLOAD_LEN} bytes").into())
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The offset of the stamp.
    fn stamp_at(&self) -> usize {
        self.stamp_at
    }

    /// The payload with `stamp` as its stamp.
    fn stamped(&mut self, stamp: u64) -> &[u8] {
        self.bytes[self.stamp_at..self.stamp_at + 8].copy_from_slice(&stamp.to_le_bytes());
        &self.bytes
    }

    /// The stamp of a payload read back.
    fn stamp(payload: &[u8], stamp_at: usize) -> Result<u64> {
        let bytes = payload
            .get(stamp_at..stamp_at + 8)
            .ok_or("a message too short for its stamp")?;
        Ok(u64::from_le_bytes(bytes.try_into()?))
    }
}

/// The directory of the suite's pools, `<target dir>/plex-bench/store-pools`,
/// removed on drop. Its path is the same on every run on purpose: plasmite
/// names a POSIX semaphore after each pool path and never unlinks it.
struct PoolDir {
    path: PathBuf,
}

impl PoolDir {
    fn create() -> Result<PoolDir> {
        let path = target_dir().join("plex-bench").join("store-pools");
        // Left behind by a run that was killed.
        match fs::remove_dir_all(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        fs::create_dir_all(&path)?;
        Ok(PoolDir {
            path: fs::canonicalize(path)?,
        })
    }

    /// The path of `B`'s pool for `purpose`.
    fn pool<B: Backend>(&self, purpose: &str) -> PathBuf {
        self.path.join(format!("{purpose}-{}.pool", B::NAME))
    }
}

impl Drop for PoolDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Removes the pool file at `path` if there is one.
fn remove_pool(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// SplitMix64: a small, fast, well-mixed generator for the seqs to get.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_one_kib_of_lite3_with_a_stamp() {
        let mut payload = Payload::new().unwrap();
        assert_eq!(payload.len(), PAYLOAD_LEN);
        let at = payload.stamp_at();
        let stamped = payload.stamped(0xABCD).to_vec();
        assert_eq!(Payload::stamp(&stamped, at).unwrap(), 0xABCD);
        plasmite::api::lite3::validate_bytes(&stamped).unwrap();
    }
}
