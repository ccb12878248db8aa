//! What each scenario does, written once for every implementation.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;

use super::Result;
use crate::latency::{histogram, micros, nanos};
use crate::Options;

/// The channel (NATS subject) requests go to.
pub(crate) const REQUEST_CHANNEL: &str = "bench.echo";
/// The channel (NATS subject) messages are published to.
pub(crate) const FANOUT_CHANNEL: &str = "bench.fanout";
/// Bytes in a published message.
pub(crate) const MESSAGE_LEN: usize = 128;
/// How long deliveries may pause before a fan-out run counts what arrived.
pub(crate) const QUIET: Duration = Duration::from_millis(250);

/// A bus as one implementation runs it: its broker on loopback and a
/// client on a connection of its own. Clones share the connection.
pub(crate) trait BusPeer: Clone + Send + Sync + 'static {
    /// The implementation's name in the report.
    const NAME: &'static str;

    /// What clients connect to; it serves as long as it lives.
    type Broker: Send + Sync + 'static;

    /// A broker on loopback for one run, on the caller's tokio runtime or,
    /// for NATS, the `nats-server` at `nats_url`.
    fn broker(nats_url: &str) -> impl Future<Output = Result<Self::Broker>> + Send;

    /// A client on a connection of its own.
    fn connect(broker: &Self::Broker) -> impl Future<Output = Result<Self>> + Send;

    /// Answers every request to `channel` with its payload, from tasks on
    /// the caller's runtime, once this returns.
    fn respond(&self, channel: &'static str) -> impl Future<Output = Result<()>> + Send;

    /// Sends `payload` to one responder of `channel`; its reply.
    fn request(
        &self,
        channel: &'static str,
        payload: Bytes,
    ) -> impl Future<Output = Result<Bytes>> + Send;

    /// Counts every message published to `channel` in `tally`, from a task
    /// on the caller's runtime, once this returns.
    fn subscribe(
        &self,
        channel: &'static str,
        tally: Arc<Tally>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Publishes `payload` to `channel`.
    fn publish(
        &self,
        channel: &'static str,
        payload: Bytes,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Waits until what was published has been handed to the broker.
    fn flush(&self) -> impl Future<Output = Result<()>> + Send;
}

/// How long each run warms up and is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Work done before the measured window, uncounted.
    pub(crate) warmup: Duration,
    /// The window whose requests count, or during which messages are
    /// published.
    pub(crate) measured: Duration,
}

impl Shape {
    /// Short runs for `--quick`, longer ones otherwise.
    pub(crate) fn of(options: Options) -> Shape {
        if options.quick {
            Shape {
                warmup: Duration::from_millis(300),
                measured: Duration::from_millis(1200),
            }
        } else {
            Shape {
                warmup: Duration::from_secs(1),
                measured: Duration::from_secs(5),
            }
        }
    }
}

/// Throughput and latency of a run of requests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rate {
    /// Requests answered per second in the measured window.
    pub(crate) per_second: f64,
    /// Median latency, µs.
    pub(crate) p50: f64,
    /// 99th percentile latency, µs.
    pub(crate) p99: f64,
}

/// `in_flight` tasks each send `payload_len`-byte requests back to back on
/// one requesting client, answered by a responder on another; counts the
/// replies within the measured window after the warm-up, and their
/// latencies.
pub(crate) async fn requests<P: BusPeer>(
    nats_url: &str,
    payload_len: usize,
    in_flight: usize,
    shape: Shape,
) -> Result<Rate> {
    let broker = P::broker(nats_url).await?;
    let responder = P::connect(&broker).await?;
    responder.respond(REQUEST_CHANNEL).await?;
    let requester = P::connect(&broker).await?;
    let begin = Instant::now();
    let window = (begin + shape.warmup, begin + shape.warmup + shape.measured);
    let tasks: Vec<_> = (0..in_flight)
        .map(|task| {
            let lane = Lane {
                client: requester.clone(),
                payload: payload(payload_len, task),
            };
            tokio::spawn(lane.run(window))
        })
        .collect();
    let (mut completed, mut latencies) = (0, histogram()?);
    for task in tasks {
        let (count, lane) = task.await??;
        completed += count;
        latencies.add(lane)?;
    }
    drop((responder, broker));
    if completed == 0 {
        return Err("no request completed in the measured window".into());
    }
    Ok(Rate {
        per_second: completed as f64 / shape.measured.as_secs_f64(),
        p50: micros(latencies.value_at_quantile(0.5)),
        p99: micros(latencies.value_at_quantile(0.99)),
    })
}

/// Deliveries of a fan-out run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Fanout {
    /// Messages delivered per second, summed over the subscribers.
    pub(crate) per_second: f64,
    /// Percent of the deliveries owed that never came (dropped for a slow
    /// subscriber).
    pub(crate) lost: f64,
}

impl Fanout {
    /// The figures of `delivered` messages, of `published` × `subscribers`
    /// owed, the last of them `elapsed` after the first publish.
    pub(crate) fn of(
        published: u64,
        subscribers: usize,
        delivered: u64,
        elapsed: Duration,
    ) -> Fanout {
        let owed = published * subscribers as u64;
        let lost = if owed == 0 {
            0.0
        } else {
            100.0 * owed.saturating_sub(delivered) as f64 / owed as f64
        };
        Fanout {
            per_second: delivered as f64 / elapsed.as_secs_f64().max(1e-9),
            lost,
        }
    }
}

/// One publisher sends [`MESSAGE_LEN`]-byte messages as fast as it can
/// for the measured window (after a warm-up) to `subscribers` clients,
/// each on its own connection; counts what they receive until every
/// message owed has arrived or deliveries pause for [`QUIET`].
pub(crate) async fn fanout<P: BusPeer>(
    nats_url: &str,
    subscribers: usize,
    shape: Shape,
) -> Result<Fanout> {
    let broker = P::broker(nats_url).await?;
    let publisher = P::connect(&broker).await?;
    let base = Instant::now();
    let tallies: Vec<Arc<Tally>> = (0..subscribers)
        .map(|_| Arc::new(Tally::new(base)))
        .collect();
    let mut clients = Vec::with_capacity(subscribers);
    for tally in &tallies {
        let client = P::connect(&broker).await?;
        client.subscribe(FANOUT_CHANNEL, tally.clone()).await?;
        clients.push(client);
    }
    let payload = payload(MESSAGE_LEN, 0);
    let warm = publish_for(&publisher, &payload, shape.warmup).await?;
    publisher.flush().await?;
    settle(&tallies, warm * subscribers as u64).await;
    let before = delivered(&tallies);
    let start = Instant::now();
    let published = publish_for(&publisher, &payload, shape.measured).await?;
    publisher.flush().await?;
    settle(&tallies, before + published * subscribers as u64).await;
    let count = delivered(&tallies) - before;
    let last = tallies.iter().map(|t| t.last()).max().unwrap_or(start);
    drop((clients, publisher, broker));
    if count == 0 {
        return Err("no message delivered in the measured window".into());
    }
    Ok(Fanout::of(
        published,
        subscribers,
        count,
        last.saturating_duration_since(start),
    ))
}

/// Messages one subscriber received, and when the last came.
#[derive(Debug)]
pub(crate) struct Tally {
    base: Instant,
    count: AtomicU64,
    /// Nanoseconds after `base` of the last delivery.
    last: AtomicU64,
}

impl Tally {
    fn new(base: Instant) -> Tally {
        Tally {
            base,
            count: AtomicU64::new(0),
            last: AtomicU64::new(0),
        }
    }

    /// Counts a delivery, now.
    pub(crate) fn hit(&self) {
        self.last
            .store(nanos(self.base.elapsed()), Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Release);
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_nanos(self.last.load(Ordering::Relaxed))
    }
}

fn delivered(tallies: &[Arc<Tally>]) -> u64 {
    tallies.iter().map(|t| t.count()).sum()
}

/// Waits until `owed` messages were delivered in all, or none came for
/// [`QUIET`] (the rest were dropped).
async fn settle(tallies: &[Arc<Tally>], owed: u64) {
    let mut seen = delivered(tallies);
    let mut since = Instant::now();
    while seen < owed && since.elapsed() < QUIET {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = delivered(tallies);
        if now != seen {
            (seen, since) = (now, Instant::now());
        }
    }
}

/// Publishes `payload` back to back for `duration`; how many.
async fn publish_for<P: BusPeer>(
    publisher: &P,
    payload: &Bytes,
    duration: Duration,
) -> Result<u64> {
    let until = Instant::now() + duration;
    let mut sent = 0u64;
    loop {
        for _ in 0..64 {
            publisher.publish(FANOUT_CHANNEL, payload.clone()).await?;
        }
        sent += 64;
        if Instant::now() >= until {
            return Ok(sent);
        }
    }
}

/// One task's requests.
struct Lane<P> {
    client: P,
    payload: Bytes,
}

impl<P: BusPeer> Lane<P> {
    /// Requests until one is answered past the window's end; returns the
    /// count and latencies of those answered within it.
    async fn run(self, (from, until): (Instant, Instant)) -> Result<(u64, Histogram<u64>)> {
        let (mut count, mut latencies) = (0, histogram()?);
        loop {
            let sent = Instant::now();
            let reply = self
                .client
                .request(REQUEST_CHANNEL, self.payload.clone())
                .await?;
            let done = Instant::now();
            if reply != self.payload {
                return Err(format!(
                    "a {}-byte reply to a {}-byte request is not its echo",
                    reply.len(),
                    self.payload.len()
                )
                .into());
            }
            if done >= until {
                return Ok((count, latencies));
            }
            if done >= from {
                count += 1;
                latencies.saturating_record(nanos(done - sent));
            }
        }
    }
}

/// `len` bytes that differ from task to task, so that a reply crossed
/// with another task's shows.
fn payload(len: usize, task: usize) -> Bytes {
    (0..len).map(|i| (i + task * 7) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_counts_what_arrived_against_what_was_owed() {
        let full = Fanout::of(1000, 16, 16_000, Duration::from_secs(2));
        assert_eq!(full.per_second, 8000.0);
        assert_eq!(full.lost, 0.0);
        let quarter_lost = Fanout::of(1000, 4, 3000, Duration::from_millis(500));
        assert_eq!(quarter_lost.per_second, 6000.0);
        assert_eq!(quarter_lost.lost, 25.0);
        assert_eq!(Fanout::of(0, 1, 0, Duration::ZERO).lost, 0.0);
    }

    #[test]
    fn tasks_send_different_payloads() {
        assert_eq!(payload(128, 0).len(), 128);
        assert_ne!(payload(16, 0), payload(16, 1));
    }
}
