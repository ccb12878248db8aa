//! The calls each scenario makes, written once for every implementation.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use plex_peer::{MemoryStore, StorePort};

use super::Result;
use crate::latency::{histogram, micros, nanos};
use crate::Options;

/// Bytes in a key.
pub(crate) const KEY_LEN: usize = 64;
/// Bytes in a value.
pub(crate) const VALUE_LEN: usize = 1024;
/// Distinct keys the calls cycle through.
pub(crate) const KEYS: usize = 1024;

/// A store served on loopback and a client of it, as one implementation
/// does it. Clones share the client's connection.
pub(crate) trait StoreClient: Clone + Send + Sync + 'static {
    /// The implementation's name in the report.
    const NAME: &'static str;

    /// Serves `store` on an ephemeral loopback port and connects to it.
    /// Servers live on the caller's tokio runtime, or as long as a clone.
    fn start(store: MemoryStore) -> impl Future<Output = Result<Self>> + Send;

    /// The value under `key`.
    fn get(&mut self, key: Bytes) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// Sets `key` to `value`.
    fn put(&mut self, key: Bytes, value: Bytes) -> impl Future<Output = Result<()>> + Send;
}

/// The store method a scenario calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Get,
    Put,
}

/// How long each run warms up and is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Calls made before the measured window, uncounted.
    pub(crate) warmup: Duration,
    /// The window whose completed calls count.
    pub(crate) measured: Duration,
}

impl Shape {
    /// Short runs for `--quick`, longer ones otherwise.
    pub(crate) fn of(options: Options) -> Shape {
        if options.quick {
            Shape {
                warmup: Duration::from_millis(300),
                measured: Duration::from_millis(1500),
            }
        } else {
            Shape {
                warmup: Duration::from_secs(1),
                measured: Duration::from_secs(5),
            }
        }
    }
}

/// Throughput and latency of a run of calls.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rate {
    /// Calls completed per second in the measured window.
    pub(crate) per_second: f64,
    /// Median latency, µs.
    pub(crate) p50: f64,
    /// 99th percentile latency, µs.
    pub(crate) p99: f64,
}

/// `in_flight` tasks each make `op` calls back to back on a clone of one
/// client; counts the calls that complete within the measured window
/// after the warm-up, and their latencies.
pub(crate) async fn calls<C: StoreClient>(op: Op, in_flight: usize, shape: Shape) -> Result<Rate> {
    let keys: Arc<[Bytes]> = (0..KEYS).map(key).collect();
    let value = Bytes::from(vec![0x5a; VALUE_LEN]);
    let store = MemoryStore::new();
    for key in keys.iter() {
        store.put(key.clone(), value.clone(), Bytes::new()).await?;
    }
    let client = C::start(store).await?;
    let begin = Instant::now();
    let window = (begin + shape.warmup, begin + shape.warmup + shape.measured);
    let tasks: Vec<_> = (0..in_flight)
        .map(|task| {
            let lane = Lane {
                client: client.clone(),
                keys: keys.clone(),
                value: value.clone(),
                next: task * KEYS / in_flight,
            };
            tokio::spawn(lane.run(op, window))
        })
        .collect();
    let (mut completed, mut latencies) = (0, histogram()?);
    for task in tasks {
        let (count, lane) = task.await??;
        completed += count;
        latencies.add(lane)?;
    }
    if completed == 0 {
        return Err("no call completed in the measured window".into());
    }
    Ok(Rate {
        per_second: completed as f64 / shape.measured.as_secs_f64(),
        p50: micros(latencies.value_at_quantile(0.5)),
        p99: micros(latencies.value_at_quantile(0.99)),
    })
}

/// One task's calls.
struct Lane<C> {
    client: C,
    keys: Arc<[Bytes]>,
    value: Bytes,
    /// Index of the next key.
    next: usize,
}

impl<C: StoreClient> Lane<C> {
    /// Calls until one completes past the window's end; returns the count
    /// and latencies of those that completed within it.
    async fn run(
        mut self,
        op: Op,
        (from, until): (Instant, Instant),
    ) -> Result<(u64, Histogram<u64>)> {
        let (mut count, mut latencies) = (0, histogram()?);
        loop {
            let sent = Instant::now();
            self.call(op).await?;
            let done = Instant::now();
            if done >= until {
                return Ok((count, latencies));
            }
            if done >= from {
                count += 1;
                latencies.saturating_record(nanos(done - sent));
            }
        }
    }

    async fn call(&mut self, op: Op) -> Result<()> {
        let key = self.keys[self.next % self.keys.len()].clone();
        self.next += 1;
        match op {
            Op::Get => match self.client.get(key).await? {
                Some(value) if value.len() == VALUE_LEN => Ok(()),
                Some(value) => Err(format!("get: a {}-byte value", value.len()).into()),
                None => Err("get: a stored key is missing".into()),
            },
            Op::Put => self.client.put(key, self.value.clone()).await,
        }
    }
}

/// The `i`th key: its index in decimal, padded to [`KEY_LEN`] bytes.
fn key(i: usize) -> Bytes {
    format!("bench/{i:0width$}", width = KEY_LEN - "bench/".len()).into()
}
