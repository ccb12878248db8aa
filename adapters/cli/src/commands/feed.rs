//! `plex feed`: append one JSON argument, or JSON Lines from stdin or a file.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use plex_store::{Durability, Options, Pool};

use crate::cli::{DurabilityArg, FeedArgs, OnError};
use crate::commands::Outcome;
use crate::error::{Error, Kind, Result};
use crate::json;
use crate::lines::{Line, Lines};
use crate::output::Out;
use crate::record::{rfc3339, Receipt};
use crate::refs::{PoolDir, PoolRef};
use crate::remote::RemoteRef;

/// Runs `plex feed`.
pub(crate) fn run(args: FeedArgs, dir: &PoolDir, out: &mut Out) -> Result<Outcome> {
    // Checked before the pool is opened, so that a bad argument never
    // creates a pool with --create.
    let json_arg = args.json.clone();
    let argument = match &json_arg {
        Some(value) => Some(json::validate(value.as_bytes()).map_err(|e| {
            Error::usage(format!("the JSON argument is not valid: {}", e.reason)).with_hint(
                "quote it for the shell, like '{\"a\":1}'; omit it to read JSON Lines from stdin",
            )
        })?),
        None => None,
    };
    if let Some(remote) = RemoteRef::parse(&args.pool) {
        return crate::remote::feed(remote?, args, argument, out);
    }
    let target = PoolRef::resolve(&args.pool, dir)?;
    let durability = match args.durability {
        DurabilityArg::Fast => Durability::Fast,
        DurabilityArg::Flush => Durability::Flush,
    };
    let options = Options::new().durability(durability);
    let pool = if args.create {
        target.open_or_create(args.create_size, options)?
    } else {
        target.open(options)?
    };
    warn_about_recovery(&pool);
    feed(Box::new(LocalSink(pool)), args, argument, out)
}

/// Feeds the argument, or the lines of the input, into `sink`.
pub(crate) fn feed(
    sink: Box<dyn Sink + '_>,
    args: FeedArgs,
    argument: Option<&str>,
    out: &mut Out,
) -> Result<Outcome> {
    // A batch never exceeds a quarter of the ring, so it cannot evict its
    // own messages before they are printed; nor the largest message, which
    // a server bounds by the longest batch it takes.
    let batch_bytes = (sink.ring_len() / 4)
        .min(MAX_BATCH_BYTES)
        .min(sink.max_frame());
    let mut feeder = Feeder {
        sink,
        tags: args.tags,
        data: Vec::new(),
        ends: Vec::new(),
        batch_bytes,
        pending_bytes: 0,
    };
    if let Some(text) = argument {
        feeder.push(text, out)?;
        feeder.append_pending(out)?;
        feeder.sink.settle(out)?;
        return Ok(Outcome::Success);
    }
    let (input, size): (Box<dyn Read>, Option<u64>) = match &args.file {
        Some(path) => {
            let file = File::open(path).map_err(|e| Error::io("cannot open", path, &e))?;
            // Pipes and devices have no size to show progress against.
            let size = file
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            (Box::new(file), size)
        }
        None => (Box::new(io::stdin().lock()), None),
    };
    let progress = Progress::start(size);
    let streamed = feeder.stream(input, args.errors, &progress, out);
    progress.finish(streamed.as_ref().ok());
    let stats = streamed?;
    Ok(match stats.skipped {
        0 => Outcome::Success,
        _ => Outcome::SkippedLines,
    })
}

/// The most messages appended as one batch.
const MAX_BATCH_MESSAGES: usize = 1024;
/// The most bytes (frames, headers included) appended as one batch.
const MAX_BATCH_BYTES: u64 = 1 << 20;

/// Where fed batches go: a local pool, or a remote one through `plex serve`.
pub(crate) trait Sink {
    /// The ring's length, which bounds a batch.
    fn ring_len(&self) -> u64;
    /// The largest frame the pool takes.
    fn max_frame(&self) -> u64;
    /// The Usage error an append of a message with `tags` and `len` bytes
    /// of data would fail with, if any.
    fn check(&self, tags: &[&str], len: usize) -> Result<()>;
    /// Appends `data`, cut at `ends`, each message with `tags`, as one
    /// batch; its receipts are printed now or by a later [`Sink::settle`].
    fn append(&mut self, tags: &[String], data: &[u8], ends: &[usize], out: &mut Out)
        -> Result<()>;
    /// Prints the receipts of every batch appended so far.
    fn settle(&mut self, out: &mut Out) -> Result<()>;
}

/// A local pool, appended to in this process.
struct LocalSink(Pool);

impl Sink for LocalSink {
    fn ring_len(&self) -> u64 {
        self.0.info().ring_len
    }

    fn max_frame(&self) -> u64 {
        self.0.info().max_frame
    }

    fn check(&self, tags: &[&str], len: usize) -> Result<()> {
        Ok(self.0.check_message(tags, len)?)
    }

    fn append(
        &mut self,
        tags: &[String],
        data: &[u8],
        ends: &[usize],
        out: &mut Out,
    ) -> Result<()> {
        let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        let mut batch = Vec::with_capacity(ends.len());
        let mut start = 0;
        for &end in ends {
            batch.push((&tag_refs[..], &data[start..end]));
            start = end;
        }
        let receipt = self.0.append_batch_receipt(&batch)?;
        let time = rfc3339(receipt.time);
        for r in receipt.receipts() {
            out.record(&Receipt {
                seq: r.seq.get(),
                time: &time,
                tags,
            })?;
        }
        Ok(())
    }

    fn settle(&mut self, _out: &mut Out) -> Result<()> {
        Ok(())
    }
}

/// An open pool and the messages read but not yet appended.
///
/// Lines already read are appended together with one `append_batch` (one
/// lock, one publication, and with `--durability flush` one sync), up to
/// the batch limits and never past a bad line or a wait for input: each
/// line still gets its own receipt or error, in input order.
struct Feeder<'a> {
    sink: Box<dyn Sink + 'a>,
    tags: Vec<String>,
    /// The compacted data of the pending messages, back to back.
    data: Vec<u8>,
    /// Where each pending message ends in `data`.
    ends: Vec<usize>,
    /// Batch size limit in bytes.
    batch_bytes: u64,
    /// Bytes of the pending messages' frames.
    pending_bytes: u64,
}

/// What a stream of lines amounted to.
struct Stats {
    messages: u64,
    bytes: u64,
    skipped: u64,
    elapsed: Duration,
}

impl Feeder<'_> {
    /// Queues the validated JSON `text` for appending, after checking that
    /// it fits the pool; appends the queue first if it is full. Fails with a
    /// usage error for a message the pool cannot take. Returns the length
    /// of the message's data.
    fn push(&mut self, text: &str, out: &mut Out) -> Result<usize> {
        let start = self.data.len();
        json::compact_into(text, &mut self.data);
        let len = self.data.len() - start;
        let tags: Vec<&str> = self.tags.iter().map(String::as_str).collect();
        if let Err(e) = self.sink.check(&tags, len) {
            self.data.truncate(start);
            return Err(e);
        }
        let frame = 32 + tags.iter().map(|t| 2 + t.len() as u64).sum::<u64>() + len as u64;
        if !self.ends.is_empty()
            && (self.ends.len() == MAX_BATCH_MESSAGES
                || self.pending_bytes + frame > self.batch_bytes)
        {
            // Appends what came before; this message starts the next batch.
            let moved = self.data.split_off(start);
            self.append_pending(out)?;
            self.data = moved;
        }
        self.ends.push(self.data.len());
        self.pending_bytes += frame;
        Ok(len)
    }

    /// Appends the pending messages as one batch and prints their receipts.
    fn append_pending(&mut self, out: &mut Out) -> Result<()> {
        if self.ends.is_empty() {
            return Ok(());
        }
        self.sink.append(&self.tags, &self.data, &self.ends, out)?;
        self.data.clear();
        self.ends.clear();
        self.pending_bytes = 0;
        Ok(())
    }

    /// Feeds every line of `input`, handling bad lines per `on_error`.
    fn stream(
        &mut self,
        input: impl Read,
        on_error: OnError,
        progress: &Progress,
        out: &mut Out,
    ) -> Result<Stats> {
        let started = Instant::now();
        let limit = usize::try_from(self.sink.max_frame()).unwrap_or(usize::MAX);
        let mut lines = Lines::new(input, limit);
        let mut stats = Stats {
            messages: 0,
            bytes: 0,
            skipped: 0,
            elapsed: Duration::ZERO,
        };
        loop {
            if lines.would_block() {
                // Lines read so far are appended, and their receipts reach
                // their reader, before plex waits for input.
                self.append_pending(out)?;
                self.sink.settle(out)?;
                out.flush()?;
            }
            let read = lines
                .next_line(&mut |n| progress.bar.inc(n))
                .map_err(|e| Error::new(Kind::Io, format!("cannot read the input: {e}")))?;
            let Some(read) = read else { break };
            let line = lines.number();
            let bad = match read {
                Line::TooLong(len) => Some(format!(
                    "line of {len} bytes exceeds this pool's largest message ({limit} bytes)"
                )),
                Line::Ok if lines.line().trim_ascii().is_empty() => continue,
                Line::Ok => match json::validate(lines.line()) {
                    Ok(text) => match self.push(text, out) {
                        Ok(len) => {
                            stats.messages += 1;
                            stats.bytes += len as u64;
                            None
                        }
                        // Too large once tagged: this line's fault.
                        Err(e) if e.kind() == Kind::Usage => Some(e.to_string()),
                        Err(e) => return Err(e),
                    },
                    Err(invalid) => Some(invalid.reason),
                },
            };
            if let Some(reason) = bad {
                // The receipts of the lines before it come first.
                self.append_pending(out)?;
                self.sink.settle(out)?;
                let err = Error::usage(format!("line {line}: {reason}")).with_line(line);
                match on_error {
                    OnError::Stop => {
                        return Err(err.with_hint(
                            "fix the line, or pass --errors skip to feed the other lines",
                        ))
                    }
                    OnError::Skip => {
                        out.flush()?;
                        progress.bar.suspend(|| err.report());
                        stats.skipped += 1;
                    }
                }
            }
        }
        self.append_pending(out)?;
        self.sink.settle(out)?;
        stats.elapsed = started.elapsed();
        Ok(stats)
    }
}

/// Tells a person on a terminal what recovery found when plex opened the
/// pool: damaged messages stay published (reads of them fail), and frames a
/// crashed writer never published were discarded. Scripts see the damage
/// through `plex pool info` and the errors of reads; stderr JSON is only
/// for errors.
fn warn_about_recovery(pool: &Pool) {
    let Some(recovery) = pool.recovery().filter(|r| !r.is_clean()) else {
        return;
    };
    if !io::stderr().is_terminal() {
        return;
    }
    let mut found = Vec::new();
    let damaged = recovery.damaged_count();
    if damaged > 0 {
        let seqs: Vec<String> = recovery
            .damaged
            .iter()
            .map(|r| format!("{}..{}", r.start, r.end))
            .collect();
        found.push(format!(
            "{damaged} damaged message(s) that cannot be read (seqs {})",
            seqs.join(", ")
        ));
    }
    if !recovery.discarded.is_empty() {
        found.push(format!(
            "discarded never-published seqs {}..{} left by a crashed writer",
            recovery.discarded.start, recovery.discarded.end
        ));
    }
    eprintln!(
        "warning: recovering {}: {}",
        pool.path().display(),
        found.join("; ")
    );
}

/// The progress bar and final summary, shown only to a person: on stderr
/// when it is a terminal. The bar also needs stdout redirected (receipts
/// scrolling on the same terminal would tear it) and a known input size.
struct Progress {
    bar: ProgressBar,
    summary: bool,
}

impl Progress {
    /// Starts the bar for an input of `size` bytes, if known.
    fn start(size: Option<u64>) -> Progress {
        let summary = io::stderr().is_terminal();
        let bar = match size {
            Some(size) if summary && !io::stdout().is_terminal() => {
                let style = ProgressStyle::with_template(
                    "{elapsed_precise} [{wide_bar}] {binary_bytes}/{binary_total_bytes} ({eta} left)",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr())
                    .with_style(style.progress_chars("=> "))
            }
            _ => ProgressBar::hidden(),
        };
        Progress { bar, summary }
    }

    /// Clears the bar, and prints the summary line if feeding completed.
    fn finish(&self, stats: Option<&Stats>) {
        self.bar.finish_and_clear();
        if let Some(stats) = stats.filter(|_| self.summary) {
            eprintln!("{}", summary(stats));
        }
    }
}

/// `fed 100000 messages (97.7 MiB) in 0.41s: 243k msg/s`.
fn summary(stats: &Stats) -> String {
    let secs = stats.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        stats.messages as f64 / secs
    } else {
        0.0
    };
    let rate = if rate >= 1e6 {
        format!("{:.2}M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.0}k", rate / 1e3)
    } else {
        format!("{rate:.0}")
    };
    let noun = if stats.messages == 1 {
        "message"
    } else {
        "messages"
    };
    let mut line = format!(
        "fed {} {noun} ({}) in {secs:.2}s: {rate} msg/s",
        stats.messages,
        binary_size(stats.bytes),
    );
    if stats.skipped > 0 {
        let lines = if stats.skipped == 1 { "line" } else { "lines" };
        line.push_str(&format!("; skipped {} bad {lines}", stats.skipped));
    }
    line
}

/// A byte count in B, KiB, MiB or GiB with one decimal.
fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_well() {
        let stats = Stats {
            messages: 100_000,
            bytes: 102_400_000,
            skipped: 0,
            elapsed: Duration::from_millis(410),
        };
        assert_eq!(
            summary(&stats),
            "fed 100000 messages (97.7 MiB) in 0.41s: 244k msg/s"
        );
        let stats = Stats {
            messages: 1,
            bytes: 10,
            skipped: 2,
            elapsed: Duration::from_secs(2),
        };
        assert_eq!(
            summary(&stats),
            "fed 1 message (10 B) in 2.00s: 0 msg/s; skipped 2 bad lines"
        );
        assert_eq!(binary_size(1536), "1.5 KiB");
        assert_eq!(binary_size(3 << 30), "3.0 GiB");
    }
}
