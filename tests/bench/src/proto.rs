//! The `proto` suite: the sans-IO state machine in memory, with no IO.
//!
//! - `codec_16k`: encode and decode 16 KiB DATA frames, against a plain
//!   memcpy of the same payloads; both count payload bytes.
//! - `bulk_pair`: one stream's bulk transfer through a zero-latency
//!   [`Pair`], read zero-copy with `read_chunk`, every byte verified.
//! - `open_close`: streams opened, accepted, finished both ways and read to
//!   end-of-stream on both sides.
//! - `idle_stream_mem`: heap bytes each end of a connection holds per open,
//!   accepted, idle stream.

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use plex_proto::sim::Pair;
use plex_proto::{
    Config, Decoder, Event, Frame, OpenOptions, ReadError, Session, StreamId, WriteError,
    HEADER_LEN,
};

use crate::counting_alloc::live_bytes;
use crate::pattern::{matches_pattern, pattern};
use crate::report::{Figure, Report, Scenario, Target, PLEX};
use crate::Options;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Runs every scenario of the suite.
pub(crate) fn run(options: Options) -> Result<Report> {
    let mut report = Report::default();
    eprintln!("proto: codec_16k");
    report.push(codec_16k(options)?);
    eprintln!("proto: bulk_pair");
    report.push(bulk_pair(options)?);
    eprintln!("proto: open_close");
    report.push(open_close(options)?);
    eprintln!("proto: idle_stream_mem");
    idle_stream_mem(options, &mut report)?;
    Ok(report)
}

/// DATA payload size of `codec_16k`: the default MAX_FRAME_SIZE.
const CODEC_PAYLOAD: usize = 16 * 1024;
/// Frames per encode/decode batch: 1 MiB, a large socket buffer's worth.
const CODEC_BATCH: usize = 64;

fn codec_16k(options: Options) -> Result<Scenario> {
    let batches = if options.quick { 1 << 13 } else { 1 << 15 };
    let payload: Bytes = pattern(CODEC_PAYLOAD).into();
    let payload_bytes = (batches * CODEC_BATCH * CODEC_PAYLOAD) as f64;
    let mut plex = Vec::new();
    let mut memcpy = Vec::new();
    for _ in 0..options.runs() {
        plex.push(gb_per_s(payload_bytes, codec_run(&payload, batches)?));
        memcpy.push(gb_per_s(payload_bytes, memcpy_run(&payload, batches)));
    }
    Ok(Scenario {
        name: "codec_16k",
        unit: "GB/s",
        higher_is_better: true,
        targets: Vec::new(),
        results: vec![(PLEX, Figure::of(plex)), ("memcpy", Figure::of(memcpy))],
    })
}

/// Encodes batches of DATA frames into one buffer and decodes them back.
fn codec_run(payload: &Bytes, batches: usize) -> Result<Duration> {
    let frame = Frame::Data {
        stream: StreamId::new(1),
        end_stream: false,
        payload: payload.clone(),
    };
    let mut buf = BytesMut::with_capacity(CODEC_BATCH * (HEADER_LEN + CODEC_PAYLOAD));
    let mut decoder = Decoder::new(CODEC_PAYLOAD as u32);
    let mut decoded = 0;
    let start = Instant::now();
    for _ in 0..batches {
        for _ in 0..CODEC_BATCH {
            black_box(&frame).encode(&mut buf);
        }
        // Once the batch is dropped, `buf` reuses its allocation.
        let mut wire = buf.split().freeze();
        while let Some(frame) = decoder.decode(&mut wire)? {
            let Frame::Data { payload, .. } = frame else {
                return Err(format!("decoded {frame:?}, not DATA").into());
            };
            decoded += black_box(payload).len();
        }
    }
    let elapsed = start.elapsed();
    check_count(
        "codec_16k decoded",
        decoded,
        batches * CODEC_BATCH * CODEC_PAYLOAD,
    )?;
    Ok(elapsed)
}

/// The copy encoding cannot avoid: the same payloads, as many times, into a
/// buffer of the same size, with a plain memcpy.
fn memcpy_run(payload: &[u8], batches: usize) -> Duration {
    let mut buf = vec![0u8; CODEC_BATCH * CODEC_PAYLOAD];
    let start = Instant::now();
    for _ in 0..batches {
        for slot in buf.chunks_exact_mut(CODEC_PAYLOAD) {
            slot.copy_from_slice(black_box(payload));
        }
        black_box(&mut buf);
    }
    start.elapsed()
}

/// Length of the repeating test pattern: not a multiple of any frame or
/// buffer size, so misplaced bytes cannot match by accident.
const PATTERN_LEN: usize = (1 << 20) + 13;

fn bulk_pair(options: Options) -> Result<Scenario> {
    let total = if options.quick { 128 << 20 } else { 1 << 30 };
    let pattern = pattern(PATTERN_LEN);
    let mut runs = Vec::new();
    for _ in 0..options.runs() {
        runs.push(gb_per_s(total as f64, bulk_run(&pattern, total)?));
    }
    Ok(Scenario {
        name: "bulk_pair",
        unit: "GB/s",
        higher_is_better: true,
        targets: Vec::new(),
        results: vec![(PLEX, Figure::of(runs))],
    })
}

/// Sends `total` bytes of `pattern` from client to server on one stream and
/// checks every byte that arrives.
fn bulk_run(pattern: &[u8], total: usize) -> Result<Duration> {
    let mut pair = connected(Config::default())?;
    let stream = open_accepted(&mut pair)?;
    let (mut sent, mut received, mut finished) = (0, 0, false);
    let start = Instant::now();
    loop {
        while sent < total {
            let at = sent % pattern.len();
            let end = pattern.len().min(at + (total - sent));
            match pair.client.write(stream, &pattern[at..end]) {
                Ok(n) => sent += n,
                Err(WriteError::Blocked) => break,
                Err(e) => return Err(e.into()),
            }
        }
        if sent == total && !finished {
            pair.client.finish(stream)?;
            finished = true;
        }
        drive(&mut pair)?;
        drain_events(&mut pair.client)?;
        drain_events(&mut pair.server)?;
        loop {
            match pair.server.read_chunk(stream, usize::MAX) {
                Ok(Some(chunk)) => {
                    if !matches_pattern(pattern, received, &chunk) {
                        return Err(format!("bulk_pair: wrong bytes at offset {received}").into());
                    }
                    received += chunk.len();
                }
                Ok(None) => {
                    let elapsed = start.elapsed();
                    check_count("bulk_pair received", received, total)?;
                    return Ok(elapsed);
                }
                Err(ReadError::Blocked) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Streams opened at once in `open_close`, within the default
/// MAX_CONCURRENT_STREAMS of 100.
const OPEN_CLOSE_BATCH: usize = 64;

fn open_close(options: Options) -> Result<Scenario> {
    let streams = if options.quick { 500_000 } else { 2_000_000 };
    let mut runs = Vec::new();
    for _ in 0..options.runs() {
        let elapsed = open_close_run(streams)?;
        runs.push(streams as f64 / elapsed.as_secs_f64());
    }
    Ok(Scenario {
        name: "open_close",
        unit: "streams/s",
        higher_is_better: true,
        targets: Vec::new(),
        results: vec![(PLEX, Figure::of(runs))],
    })
}

/// Runs `streams` streams through their whole life, a batch at a time: the
/// client opens and finishes, the server accepts, finishes and reads
/// end-of-stream, then the client reads end-of-stream.
fn open_close_run(streams: usize) -> Result<Duration> {
    let mut pair = connected(Config::default())?;
    let mut opened = Vec::with_capacity(OPEN_CLOSE_BATCH);
    let mut accepted = Vec::with_capacity(OPEN_CLOSE_BATCH);
    let start = Instant::now();
    for done in (0..streams).step_by(OPEN_CLOSE_BATCH) {
        for _ in 0..OPEN_CLOSE_BATCH.min(streams - done) {
            let stream = pair.client.open(OpenOptions::default())?;
            pair.client.finish(stream)?;
            opened.push(stream);
        }
        drive(&mut pair)?;
        while let Some(event) = pair.server.poll_event() {
            if let Event::Incoming { stream, .. } = event {
                pair.server.accept(stream, Bytes::new())?;
                pair.server.finish(stream)?;
                accepted.push(stream);
            }
        }
        if accepted != opened {
            return Err(format!("open_close: opened {opened:?}, accepted {accepted:?}").into());
        }
        for stream in accepted.drain(..) {
            read_eof(&mut pair.server, stream)?;
        }
        drain_events(&mut pair.server)?;
        drive(&mut pair)?;
        drain_events(&mut pair.client)?;
        for stream in opened.drain(..) {
            read_eof(&mut pair.client, stream)?;
        }
    }
    drive(&mut pair)?;
    let elapsed = start.elapsed();
    for session in [&pair.client, &pair.server] {
        let stats = session.stats();
        check_count("open_close live streams", stats.active_streams as usize, 0)?;
        check_count(
            "open_close closed streams",
            stats.streams_closed as usize,
            streams,
        )?;
    }
    Ok(elapsed)
}

/// Idle streams held open in `idle_stream_mem`.
const IDLE_STREAMS: usize = 10_000;
/// Streams opened per round trip while building them up.
const IDLE_BATCH: usize = 100;
/// The goal for each end, in bytes per stream.
const IDLE_TARGET: f64 = 512.0;

/// Measures what each session's heap grows by per idle stream, and adds
/// three scenarios: both ends together, the client's and the server's.
fn idle_stream_mem(options: Options, report: &mut Report) -> Result<()> {
    let mut config = Config::default();
    config.max_concurrent_streams = IDLE_STREAMS as u32;
    config.max_pending_accepts = IDLE_STREAMS as u32;
    let (mut client, mut server, mut both) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..options.runs() {
        let (client_empty, server_empty) = footprints(&config, 0)?;
        let (client_full, server_full) = footprints(&config, IDLE_STREAMS)?;
        let per_stream =
            |full: usize, empty: usize| (full as f64 - empty as f64) / IDLE_STREAMS as f64;
        client.push(per_stream(client_full, client_empty));
        server.push(per_stream(server_full, server_empty));
        both.push(per_stream(
            client_full + server_full,
            client_empty + server_empty,
        ));
    }
    let scenario = |name, targets, runs| Scenario {
        name,
        unit: "B/stream",
        higher_is_better: false,
        targets,
        results: vec![(PLEX, Figure::of(runs))],
    };
    report.push(scenario("idle_stream_mem", Vec::new(), both));
    report.push(scenario(
        "idle_stream_mem_client",
        vec![Target::Value(IDLE_TARGET)],
        client,
    ));
    report.push(scenario(
        "idle_stream_mem_server",
        vec![Target::Value(IDLE_TARGET)],
        server,
    ));
    report.note(format!(
        "idle_stream_mem: heap requested per stream with {IDLE_STREAMS} idle streams, \
         allocator overhead excluded; one stream's state is {} B",
        Session::stream_state_size()
    ));
    Ok(())
}

/// Heap bytes owned by the client and by the server of a connected pair
/// with `streams` open, accepted, idle streams: what dropping each frees.
fn footprints(config: &Config, streams: usize) -> Result<(usize, usize)> {
    let mut pair = connected(config.clone())?;
    for done in (0..streams).step_by(IDLE_BATCH) {
        let batch = IDLE_BATCH.min(streams - done);
        for _ in 0..batch {
            pair.client.open(OpenOptions::default())?;
        }
        drive(&mut pair)?;
        let mut incoming = 0;
        while let Some(event) = pair.server.poll_event() {
            if let Event::Incoming { stream, .. } = event {
                pair.server.accept(stream, Bytes::new())?;
                incoming += 1;
            }
        }
        check_count("idle_stream_mem incoming", incoming, batch)?;
        drive(&mut pair)?;
        drain_events(&mut pair.client)?;
        drain_events(&mut pair.server)?;
    }
    for session in [&pair.client, &pair.server] {
        check_count(
            "idle_stream_mem live streams",
            session.stats().active_streams as usize,
            streams,
        )?;
    }
    let Pair { client, server, .. } = pair;
    let before = live_bytes();
    drop(client);
    let after_client = live_bytes();
    drop(server);
    let after_server = live_bytes();
    Ok((before - after_client, after_client - after_server))
}

/// A pair that has exchanged prefaces and SETTINGS, with events drained.
fn connected(config: Config) -> Result<Pair> {
    let mut pair = Pair::new(config.clone(), config, Instant::now())?;
    drive(&mut pair)?;
    drain_events(&mut pair.client)?;
    drain_events(&mut pair.server)?;
    Ok(pair)
}

/// Opens an anonymous stream from the client and accepts it on the server.
fn open_accepted(pair: &mut Pair) -> Result<StreamId> {
    let stream = pair.client.open(OpenOptions::default())?;
    drive(pair)?;
    match pair.server.poll_event() {
        Some(Event::Incoming { stream: s, .. }) if s == stream => {}
        other => return Err(format!("expected Incoming on {stream}, got {other:?}").into()),
    }
    pair.server.accept(stream, Bytes::new())?;
    drive(pair)?;
    drain_events(&mut pair.client)?;
    drain_events(&mut pair.server)?;
    Ok(stream)
}

fn drive(pair: &mut Pair) -> Result<()> {
    if pair.drive() {
        Ok(())
    } else {
        Err("the pair never settled".into())
    }
}

/// Drops pending events; a closed connection is an error.
fn drain_events(session: &mut Session) -> Result<()> {
    while let Some(event) = session.poll_event() {
        if let Event::Closed { reason } = event {
            return Err(format!("{:?} closed: {reason:?}", session.role()).into());
        }
    }
    Ok(())
}

fn read_eof(session: &mut Session, stream: StreamId) -> Result<()> {
    match session.read(stream, &mut [0u8; 16])? {
        None => Ok(()),
        Some(n) => Err(format!("read {n} bytes on {stream}, expected end-of-stream").into()),
    }
}

fn check_count(what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: {got}, expected {want}").into())
    }
}

fn gb_per_s(bytes: f64, elapsed: Duration) -> f64 {
    bytes / elapsed.as_secs_f64() / 1e9
}
