//! What each scenario does, written once for every implementation.

use std::sync::Arc;
use std::time::{Duration, Instant};
use std::{fs, io};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Barrier};

use super::peer::Mux;
use super::Result;
use crate::counting_alloc::live_bytes;
use crate::cpu;
use crate::latency::{histogram, micros, nanos};
use crate::pattern::Sampled;

/// Bytes per write in the bulk scenarios.
const WRITE_CHUNK: usize = 64 * 1024;
/// Read buffer of the bulk receivers.
const READ_BUF: usize = 64 * 1024;
/// Size of an RPC request and of its response.
const MESSAGE: usize = 64;

/// Throughput and latency of a run of requests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rate {
    /// Requests (or operations) completed per second.
    pub(crate) per_second: f64,
    /// Median latency, µs.
    pub(crate) p50: f64,
    /// 99th percentile latency, µs.
    pub(crate) p99: f64,
}

/// What holding idle streams costs, per stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Footprint {
    /// Live heap bytes the program asked for.
    pub(crate) heap: f64,
    /// Resident set growth, bytes.
    pub(crate) rss: f64,
}

/// What moving bytes in bulk achieved and cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Throughput {
    /// MB/s of payload.
    pub(crate) mb_per_s: f64,
    /// CPU seconds (user + system, both ends: the whole process) per GB.
    pub(crate) cpu_per_gb: f64,
}

/// `streams` streams each carry `per_stream` bytes of `pattern` from client
/// to server at once; measured from the first byte written to the last one
/// checked.
pub(crate) async fn bulk<M: Mux>(
    env: M::Env,
    streams: usize,
    per_stream: u64,
    pattern: Arc<[u8]>,
) -> Result<Throughput> {
    let (done, mut received) = mpsc::unbounded_channel();
    let mux = M::start(env, move |stream| {
        let done = done.clone();
        tokio::spawn(async move {
            // The scenario may have failed and gone already.
            let _ = done.send(receive(stream).await);
        });
    })
    .await?;
    let expected = Sampled::of_repeated(&pattern, per_stream);
    let mut opened = Vec::with_capacity(streams);
    for _ in 0..streams {
        opened.push(mux.open().await?);
    }
    let start = Instant::now();
    let cpu_start = cpu::process_time();
    let senders: Vec<_> = opened
        .into_iter()
        .map(|stream| tokio::spawn(send_pattern(stream, pattern.clone(), per_stream)))
        .collect();
    for _ in 0..streams {
        let sum = received.recv().await.ok_or("the server stopped")??;
        if sum != expected {
            return Err(format!(
                "{}: received {} bytes that do not match the {per_stream} sent",
                M::NAME,
                sum.len
            )
            .into());
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu::process_time() - cpu_start;
    for sender in senders {
        sender.await??;
    }
    let bytes = streams as u64 * per_stream;
    Ok(Throughput {
        mb_per_s: bytes as f64 / elapsed.as_secs_f64() / 1e6,
        cpu_per_gb: cpu::seconds_per_gb(cpu, bytes),
    })
}

/// Writes `len` bytes of repeated `pattern`, ends the stream, and waits
/// for the receiver to end its side: an HTTP/2 stream dropped half-open is
/// cancelled, data in flight included.
async fn send_pattern<S>(mut stream: S, pattern: Arc<[u8]>, len: u64) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut sent = 0;
    while sent < len {
        let at = (sent % pattern.len() as u64) as usize;
        let room = usize::try_from(len - sent).unwrap_or(usize::MAX);
        let end = pattern.len().min(at + WRITE_CHUNK.min(room));
        sent += stream.write(&pattern[at..end]).await? as u64;
    }
    stream.shutdown().await?;
    match stream.read(&mut [0u8]).await? {
        0 => Ok(()),
        _ => Err(io::Error::other("bulk: the receiver sent data")),
    }
}

/// Reads to end-of-stream, summing what arrives, then ends our side.
async fn receive<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> io::Result<Sampled> {
    let mut buf = vec![0; READ_BUF];
    let mut sum = Sampled::default();
    loop {
        match stream.read(&mut buf).await? {
            0 => break,
            n => sum.update(&buf[..n]),
        }
    }
    stream.shutdown().await?;
    Ok(sum)
}

/// `lanes` streams each make `requests / lanes` sequential round trips of
/// a 64-byte request echoed back.
pub(crate) async fn rpc<M: Mux>(env: M::Env, lanes: usize, requests: usize) -> Result<Rate> {
    let mux = M::start(env, |stream| {
        tokio::spawn(echo_messages(stream));
    })
    .await?;
    let per_lane = requests / lanes;
    let gate = Arc::new(Barrier::new(lanes));
    let mut tasks = Vec::with_capacity(lanes);
    for lane in 0..lanes {
        let mut stream = mux.open().await?;
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let mut request = [0u8; MESSAGE];
            request[..8].copy_from_slice(&(lane as u64).to_le_bytes());
            // One untimed round trip sets the stream up end to end.
            round_trip(&mut stream, &mut request, 0).await?;
            gate.wait().await;
            let mut latencies = histogram()?;
            let start = Instant::now();
            for seq in 1..=per_lane {
                let sent = Instant::now();
                round_trip(&mut stream, &mut request, seq).await?;
                latencies.saturating_record(nanos(sent.elapsed()));
            }
            Ok::<_, super::BoxError>((start, Instant::now(), latencies))
        }));
    }
    let (mut first, mut last, mut latencies) = (None::<Instant>, None::<Instant>, histogram()?);
    for task in tasks {
        let (start, end, lane) = task.await??;
        first = Some(first.map_or(start, |t| t.min(start)));
        last = Some(last.map_or(end, |t| t.max(end)));
        latencies.add(lane)?;
    }
    let elapsed = match (first, last) {
        (Some(first), Some(last)) => last - first,
        _ => return Err("rpc: no lanes".into()),
    };
    Ok(Rate {
        per_second: (per_lane * lanes) as f64 / elapsed.as_secs_f64(),
        p50: micros(latencies.value_at_quantile(0.5)),
        p99: micros(latencies.value_at_quantile(0.99)),
    })
}

/// Sends `request` stamped with `seq` and checks that it comes back.
async fn round_trip<S>(stream: &mut S, request: &mut [u8; MESSAGE], seq: usize) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    request[8..16].copy_from_slice(&(seq as u64).to_le_bytes());
    stream.write_all(request).await?;
    let mut response = [0u8; MESSAGE];
    stream.read_exact(&mut response).await?;
    if response != *request {
        return Err(format!("rpc: response {seq} is not its request").into());
    }
    Ok(())
}

/// Echoes 64-byte messages until end-of-stream.
async fn echo_messages<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> io::Result<()> {
    let mut message = [0u8; MESSAGE];
    loop {
        match stream.read_exact(&mut message).await {
            Ok(_) => stream.write_all(&message).await?,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return stream.shutdown().await,
            Err(e) => return Err(e),
        }
    }
}

/// `ops` times, one after the other: open a stream, send one byte and end
/// it, read the echo to end-of-stream.
pub(crate) async fn open_echo<M: Mux>(env: M::Env, ops: usize) -> Result<Rate> {
    let mux = M::start(env, |stream| {
        tokio::spawn(echo_to_end(stream));
    })
    .await?;
    // Untimed: the first stream sets up what the connection allocates once.
    echo_once(&mux).await?;
    let mut latencies = histogram()?;
    let start = Instant::now();
    for _ in 0..ops {
        let opened = Instant::now();
        echo_once(&mux).await?;
        latencies.saturating_record(nanos(opened.elapsed()));
    }
    let elapsed = start.elapsed();
    Ok(Rate {
        per_second: ops as f64 / elapsed.as_secs_f64(),
        p50: micros(latencies.value_at_quantile(0.5)),
        p99: micros(latencies.value_at_quantile(0.99)),
    })
}

async fn echo_once<M: Mux>(mux: &M) -> Result<()> {
    let mut stream = mux.open().await?;
    stream.write_all(b"x").await?;
    stream.shutdown().await?;
    let mut echo = Vec::with_capacity(1);
    stream.read_to_end(&mut echo).await?;
    if echo != b"x" {
        return Err(format!("open_echo: got {echo:?} back").into());
    }
    Ok(())
}

/// Sends back everything the stream carries, then ends it.
async fn echo_to_end<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> io::Result<()> {
    let mut data = Vec::with_capacity(1);
    stream.read_to_end(&mut data).await?;
    stream.write_all(&data).await?;
    stream.shutdown().await
}

/// Opens `streams` streams on one connection and holds them idle, both
/// ends in this process, each having carried one byte each way.
pub(crate) async fn idle<M: Mux>(env: M::Env, streams: usize) -> Result<Footprint> {
    let (established, mut accepted) = mpsc::unbounded_channel();
    let mux = M::start(env, move |mut stream| {
        let established = established.clone();
        tokio::spawn(async move {
            if answer_ping(&mut stream).await.is_ok() {
                // The scenario may have failed and gone already.
                let _ = established.send(stream);
            }
        });
    })
    .await?;
    // Untimed: the first stream sets up what the connection allocates once.
    let first = (ping(&mux).await?, accepted.recv().await);
    settle().await;
    let (heap, rss) = (live_bytes(), resident_bytes()?);
    let mut opened = Vec::with_capacity(streams);
    let mut served = Vec::with_capacity(streams);
    for _ in 0..streams {
        opened.push(ping(&mux).await?);
    }
    while served.len() < streams {
        served.push(accepted.recv().await.ok_or("the server stopped")?);
    }
    settle().await;
    let footprint = Footprint {
        heap: (live_bytes() as f64 - heap as f64) / streams as f64,
        rss: (resident_bytes()? as f64 - rss as f64) / streams as f64,
    };
    drop((first, opened, served));
    Ok(footprint)
}

/// Opens a stream and sees one byte there and back.
async fn ping<M: Mux>(mux: &M) -> Result<M::Stream> {
    let mut stream = mux.open().await?;
    stream.write_all(b"p").await?;
    let mut pong = [0u8];
    stream.read_exact(&mut pong).await?;
    Ok(stream)
}

async fn answer_ping<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> io::Result<()> {
    let mut ping = [0u8];
    stream.read_exact(&mut ping).await?;
    stream.write_all(&ping).await
}

/// Lets control frames still in flight (acknowledgements, window updates)
/// land before memory is counted.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// The process's resident set, from `/proc/self/statm`.
fn resident_bytes() -> Result<usize> {
    let statm = fs::read_to_string("/proc/self/statm")?;
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .ok_or("/proc/self/statm: no resident field")?
        .parse()?;
    Ok(pages * rustix::param::page_size())
}
