//! The two clients and what they do: Plex's `RemotePools` over `plex/1`
//! (on a tokio runtime of the run's own), and Plasmite's blocking
//! `RemoteClient` over HTTP (a thread per client).

use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use plasmite::api::{
    Durability as HttpDurability, PoolOptions, PoolRef, RemoteClient, TailOptions,
};
use plex_proto::pools::{Durability, TailQuery, TailStart};
use plex_serve::remote::{Appender, Follow, RemotePools, TailEvent};
use serde_json::Value;
use tokio::sync::oneshot;

use super::{Payload, Result, Shape, READY};
use crate::latency;

/// Batches a Plex client keeps in flight on its append stream.
pub(super) const IN_FLIGHT: usize = 64;
/// A run that takes longer than this has hung.
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// A follower whose tail brings nothing for this long gives up.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(20);

/// Creates pool `pool` of `size` bytes over `plex/1`.
pub(super) fn plex_create(url: &str, pool: &str, size: u64) -> Result<()> {
    runtime()?.block_on(async {
        RemotePools::connect(url)
            .await?
            .create(pool, size, None)
            .await?;
        Ok(())
    })
}

/// Creates pool `pool` of `size` bytes over HTTP.
pub(super) fn http_create(url: &str, pool: &str, size: u64) -> Result<()> {
    RemoteClient::new(url)?.create_pool(&PoolRef::name(pool), PoolOptions::new(size))?;
    Ok(())
}

/// Acknowledged appends per second of `clients` Plex clients, each on a
/// session of its own with [`IN_FLIGHT`] one-message batches in flight.
pub(super) fn plex_appends(
    url: &str,
    pool: &str,
    clients: usize,
    data: &Bytes,
    shape: Shape,
) -> Result<f64> {
    let runtime = runtime()?;
    runtime.block_on(async {
        let mut streams = Vec::with_capacity(clients);
        for _ in 0..clients {
            let pools = RemotePools::connect(url).await?;
            let appender = pools.appender(pool, Durability::Fast).await?;
            streams.push((pools, appender));
        }
        let window = Window::starting_now(shape);
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|(pools, appender)| {
                tokio::spawn(plex_append_loop(pools, appender, data.clone(), window))
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += tokio::time::timeout(RUN_LIMIT, task)
                .await
                .map_err(|_| format!("no result within {RUN_LIMIT:?}"))???;
        }
        Ok(total as f64 / shape.span.as_secs_f64())
    })
}

/// Sends while fewer than [`IN_FLIGHT`] batches wait for their receipts;
/// returns the messages acknowledged within `window`.
async fn plex_append_loop(
    pools: RemotePools,
    mut appender: Appender,
    data: Bytes,
    window: Window,
) -> Result<u64> {
    let batch = [(Vec::new(), data)];
    let mut counted = 0;
    loop {
        while appender.in_flight() < IN_FLIGHT {
            appender.send(&batch).await?;
        }
        let receipt = appender.receipt().await?;
        match window.at(Instant::now()) {
            Phase::WarmingUp => {}
            Phase::Measuring => counted += u64::from(receipt.count),
            Phase::Over => break,
        }
    }
    appender.finish().await?;
    drop(pools);
    Ok(counted)
}

/// Acknowledged appends per second of `clients` Plasmite `RemoteClient`s,
/// each on a thread and a connection of its own, one request at a time.
pub(super) fn http_appends(
    url: &str,
    pool: &str,
    clients: usize,
    data: &Value,
    shape: Shape,
) -> Result<f64> {
    let pools = (0..clients)
        .map(|_| Ok(RemoteClient::new(url)?.open_pool(&PoolRef::name(pool))?))
        .collect::<Result<Vec<_>>>()?;
    let window = Window::starting_now(shape);
    let counts = thread::scope(|scope| {
        let workers: Vec<_> = pools
            .into_iter()
            .map(|pool| {
                scope.spawn(move || -> Result<u64> {
                    let mut counted = 0;
                    loop {
                        pool.append_json_now(data, &[], HttpDurability::Fast)?;
                        match window.at(Instant::now()) {
                            Phase::WarmingUp => {}
                            Phase::Measuring => counted += 1,
                            Phase::Over => return Ok(counted),
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().map_err(|_| "an append client panicked")?)
            .collect::<Result<Vec<u64>>>()
    })?;
    Ok(counts.iter().sum::<u64>() as f64 / shape.span.as_secs_f64())
}

/// Follow latency over `plex/1`: a fresh pool `pool`, a [`Follow`] from its
/// first seq, and a writer appending stamped messages one at a time, each
/// acknowledged before the next.
pub(super) fn plex_follow(
    url: &str,
    pool: &str,
    payload: &Payload,
    shape: Shape,
) -> Result<Histogram<u64>> {
    let runtime = runtime()?;
    let (pools, appender) = runtime.block_on(async {
        let pools = RemotePools::connect(url).await?;
        pools.create(pool, super::FOLLOW_POOL_SIZE, None).await?;
        let appender = pools.appender(pool, Durability::Fast).await?;
        Ok::<_, super::BoxError>((pools, appender))
    })?;
    let query = TailQuery {
        start: TailStart::Seq(1),
        follow: true,
        max: Some(shape.follow_count + 1),
        timeout_ms: Some(millis(FOLLOW_TIMEOUT)),
        tags: Vec::new(),
    };
    let follow = Follow::new(url, pool, query);
    let base = Instant::now();
    let (ready_tx, ready_rx) = oneshot::channel();
    let count = shape.follow_count;
    let payload = payload.clone();
    runtime.block_on(async move {
        let follower = tokio::spawn(plex_follower(follow, count, base, ready_tx));
        // A task, as an async client's writer is: its writes go out from
        // the runtime's threads.
        let writer = tokio::spawn(plex_writer(appender, payload, shape, base, ready_rx));
        let (histogram, appender) = tokio::time::timeout(RUN_LIMIT, async {
            // A failed write fails the run at once; the follower is
            // dropped with the runtime.
            let appender = writer.await??;
            Ok::<_, super::BoxError>((follower.await??, appender))
        })
        .await
        .map_err(|_| format!("no result within {RUN_LIMIT:?}"))??;
        appender.finish().await?;
        drop(pools);
        Ok(histogram)
    })
}

/// The writer's side of a follow run over `plex/1`, as [`paced`]: each
/// message acknowledged before the next.
async fn plex_writer(
    mut appender: Appender,
    payload: Payload,
    shape: Shape,
    base: Instant,
    ready: oneshot::Receiver<()>,
) -> Result<Appender> {
    appender
        .send(&[(Vec::new(), payload.stamped(READY))])
        .await?;
    appender.receipt().await?;
    ready
        .await
        .map_err(|_| "the follower did not see the first message")?;
    let start = tokio::time::Instant::now();
    for i in 0..shape.follow_count {
        tokio::time::sleep_until(start + shape.pace * u32::try_from(i)?).await;
        let stamp = stamp_now(base);
        appender
            .send(&[(Vec::new(), payload.stamped(stamp))])
            .await?;
        appender.receipt().await?;
    }
    Ok(appender)
}

async fn plex_follower(
    mut follow: Follow,
    count: u64,
    base: Instant,
    ready: oneshot::Sender<()>,
) -> Result<Histogram<u64>> {
    let mut ready = Some(ready);
    let mut histogram = latency::histogram()?;
    while histogram.len() < count {
        let msg = match follow.next().await? {
            Some(TailEvent::Message(msg)) => msg,
            Some(other) => return Err(format!("the follower got {other:?}").into()),
            None => return Err("the follower's tail ended early".into()),
        };
        let now = stamp_now(base);
        let stamp = Payload::stamp_of(&msg.data).ok_or("a message without a stamp")?;
        record(&mut histogram, &mut ready, stamp, now)?;
    }
    Ok(histogram)
}

/// Follow latency over HTTP with Plasmite's `RemoteClient`: as
/// [`plex_follow`], the follower a `RemoteTail` on a thread.
pub(super) fn http_follow(
    url: &str,
    pool: &str,
    payload: &Payload,
    shape: Shape,
) -> Result<Histogram<u64>> {
    let client = RemoteClient::new(url)?;
    let pool_ref = PoolRef::name(pool);
    client.create_pool(&pool_ref, PoolOptions::new(super::FOLLOW_POOL_SIZE))?;
    let writer = client.open_pool(&pool_ref)?;
    let reader = RemoteClient::new(url)?.open_pool(&pool_ref)?;
    let mut options = TailOptions::new();
    options.since_seq = Some(1);
    options.max_messages = Some(usize::try_from(shape.follow_count + 1)?);
    options.timeout = Some(FOLLOW_TIMEOUT);
    let count = shape.follow_count;
    let base = Instant::now();
    let (ready_tx, ready_rx) = oneshot::channel();
    thread::scope(|scope| {
        let follower = scope.spawn(move || -> Result<Histogram<u64>> {
            let mut ready = Some(ready_tx);
            let mut tail = reader.tail(options)?;
            let mut histogram = latency::histogram()?;
            while histogram.len() < count {
                let msg = tail
                    .next_message()?
                    .ok_or("the follower's tail ended early")?;
                let now = stamp_now(base);
                let stamp = Payload::stamp_in(&msg.data).ok_or("a message without a stamp")?;
                record(&mut histogram, &mut ready, stamp, now)?;
            }
            Ok(histogram)
        });
        let written = paced(shape, base, ready_rx, |stamp| {
            writer.append_json_now(&payload.stamped_value(stamp), &[], HttpDurability::Fast)?;
            Ok(())
        });
        // On a failed write the follower ends at its timeout.
        let followed = follower.join().map_err(|_| "the follower panicked")?;
        written.and(followed)
    })
}

/// The writer's side of a follow run: the [`READY`] message, then, once the
/// follower has read it, [`Shape::follow_count`] stamped messages, one
/// every [`Shape::pace`] at most.
fn paced(
    shape: Shape,
    base: Instant,
    ready: oneshot::Receiver<()>,
    mut append: impl FnMut(u64) -> Result<()>,
) -> Result<()> {
    append(READY)?;
    // The follower drops its end when it fails or times out.
    ready
        .blocking_recv()
        .map_err(|_| "the follower did not see the first message")?;
    let start = Instant::now();
    for i in 0..shape.follow_count {
        let due = start + shape.pace * u32::try_from(i)?;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        append(stamp_now(base))?;
    }
    Ok(())
}

/// Records a delivery at `now` of a message stamped `stamp`, or says that
/// the follower is ready.
fn record(
    histogram: &mut Histogram<u64>,
    ready: &mut Option<oneshot::Sender<()>>,
    stamp: u64,
    now: u64,
) -> Result<()> {
    if stamp == READY {
        // The writer waits for this; if it left, the run failed already.
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
    } else {
        histogram.record(now.saturating_sub(stamp).max(1))?;
    }
    Ok(())
}

/// Nanoseconds since `base`, plus one: never [`READY`].
fn stamp_now(base: Instant) -> u64 {
    latency::nanos(base.elapsed()).saturating_add(1)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// When an append rate is measured.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

/// Where an instant falls in a [`Window`].
enum Phase {
    WarmingUp,
    Measuring,
    Over,
}

impl Window {
    /// Measuring from the end of the warm-up, starting now.
    fn starting_now(shape: Shape) -> Window {
        let start = Instant::now() + shape.warmup;
        Window {
            start,
            end: start + shape.span,
        }
    }

    fn at(&self, now: Instant) -> Phase {
        if now < self.start {
            Phase::WarmingUp
        } else if now < self.end {
            Phase::Measuring
        } else {
            Phase::Over
        }
    }
}

/// A runtime of the run's own, so that nothing of one run lingers into
/// the next.
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
