//! Model-based checking: random operations on a [`Pair`], checked against
//! the protocol's invariants.
//!
//! The proptest model test and the `pair_ops` fuzz target both run
//! [`check`]. Invariants:
//! - no window is exceeded: a correct sender never triggers a flow-control
//!   (or any other) violation, and no send window goes negative;
//! - every byte arrives once and in order, or the stream reports a reset,
//!   or its reader stopped reading (and then the writer is told `Stopped`);
//! - every event is consistent with what the other side did (`RemoteOpen`
//!   once per stream per side, `Finished` only after the peer finished);
//! - once both sides have finished and read everything, no stream is left;
//! - `Closed` is the last event;
//! - nothing panics.

use std::time::{Duration, Instant};

use super::Pair;
use crate::error::{CloseReason, LocalError, ReadError, ResetReason, WriteError};
use crate::event::Event;
use crate::frame::MIN_INITIAL_WINDOW;
use crate::id::{ErrorCode, Role, StreamId};
use crate::session::{OpenOptions, Session};
use crate::Config;

/// One operation of a scenario. Streams are picked by index among those
/// live on the acting side, modulo their number.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Op {
    /// Open a stream.
    Open(Role),
    /// Accept a stream the peer opened.
    Accept {
        /// Acting side.
        side: Role,
        /// Which pending stream.
        pick: u8,
    },
    /// Refuse a stream the peer opened.
    Refuse {
        /// Acting side.
        side: Role,
        /// Which pending stream.
        pick: u8,
    },
    /// Write up to `len` bytes.
    Write {
        /// Acting side.
        side: Role,
        /// Which stream.
        pick: u8,
        /// Bytes offered.
        len: u16,
    },
    /// Read up to `max` bytes.
    Read {
        /// Acting side.
        side: Role,
        /// Which stream.
        pick: u8,
        /// Buffer size.
        max: u16,
        /// Through `read_chunk` (zero-copy) rather than `read`.
        chunk: bool,
    },
    /// Finish our side of a stream.
    Finish {
        /// Acting side.
        side: Role,
        /// Which stream.
        pick: u8,
    },
    /// Stop reading a stream (STOP_SENDING with CANCEL).
    Stop {
        /// Acting side.
        side: Role,
        /// Which stream.
        pick: u8,
    },
    /// Reset a stream with CANCEL.
    Reset {
        /// Acting side.
        side: Role,
        /// Which stream.
        pick: u8,
    },
    /// Change a stream's priority.
    Priority {
        /// Acting side.
        side: Role,
        /// Which stream.
        pick: u8,
        /// New priority.
        priority: u8,
    },
    /// Send a graceful GOAWAY.
    GoAway(Role),
    /// One [`Pair::step`].
    Step,
    /// [`Pair::drive`] until quiet.
    Drive,
    /// Advance the clock, running timers.
    Tick {
        /// Milliseconds.
        millis: u16,
    },
}

/// A whole run: the sessions' windows, the network, and the operations.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Scenario {
    /// The client's initial stream window (clamped to 64..=256 KiB).
    pub client_window: u32,
    /// The server's initial stream window (clamped to 64..=256 KiB).
    pub server_window: u32,
    /// One-way latency in milliseconds.
    pub latency_ms: u8,
    /// Largest input chunk; 0 delivers transmits whole.
    pub max_chunk: u16,
    /// Seed of the chunk sizes.
    pub seed: u64,
    /// What happens.
    pub ops: Vec<Op>,
}

/// What a successful run did, to judge a generator's coverage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Streams opened.
    pub streams: u32,
    /// Payload bytes delivered and verified.
    pub bytes: u64,
    /// Streams that ended in a reset.
    pub resets: u32,
}

/// Runs `scenario` from clock `start`, then lets both sides finish and read
/// everything, and checks the invariants. `Err` describes the first broken
/// one.
pub fn check(scenario: &Scenario, start: Instant) -> Result<Summary, String> {
    let config = |window: u32| Config {
        initial_window: window.clamp(MIN_INITIAL_WINDOW, 256 << 10),
        ..Config::default()
    };
    let mut pair = Pair::new(
        config(scenario.client_window),
        config(scenario.server_window),
        start,
    )
    .map_err(|e| e.to_string())?
    .with_latency(Duration::from_millis(u64::from(scenario.latency_ms)));
    if scenario.max_chunk > 0 {
        pair = pair.with_chunking(usize::from(scenario.max_chunk), scenario.seed);
    }
    let mut m = Model {
        pair,
        tracks: Vec::new(),
        closed: [false; 2],
        summary: Summary::default(),
    };
    for op in &scenario.ops {
        m.apply(op)?;
        m.observe()?;
    }
    m.settle()?;
    m.verify()?;
    Ok(m.summary)
}

/// What the model knows of one stream.
#[derive(Debug)]
struct Track {
    id: StreamId,
    /// Per direction, indexed by the sending side.
    dirs: [Dir; 2],
    /// Per side: the side can use the stream (opened it, or accepted it).
    usable: [bool; 2],
    /// Per side: the peer's open is waiting for this side's accept.
    pending: [bool; 2],
    /// Per side: the side reset it, or was told of a reset.
    reset: [bool; 2],
    /// Per side: the side stopped reading it.
    stopped: [bool; 2],
    /// Per side: `RemoteOpen` events seen.
    remote_opens: [u32; 2],
}

#[derive(Debug, Default)]
struct Dir {
    written: u64,
    finished: bool,
    read: u64,
    eof: bool,
}

struct Model {
    pair: Pair,
    tracks: Vec<Track>,
    closed: [bool; 2],
    summary: Summary,
}

fn idx(role: Role) -> usize {
    match role {
        Role::Client => 0,
        Role::Server => 1,
    }
}

/// The byte at `offset` of what `from` sends on `id`: reads are checked
/// against it, so a lost, duplicated or reordered byte shows.
fn pattern(id: StreamId, from: Role, offset: u64) -> u8 {
    (offset.wrapping_mul(7) ^ u64::from(id.value()).wrapping_mul(131) ^ (idx(from) as u64 * 59))
        as u8
}

impl Model {
    fn session(&mut self, side: Role) -> &mut Session {
        match side {
            Role::Client => &mut self.pair.client,
            Role::Server => &mut self.pair.server,
        }
    }

    /// Streams usable on `side`, not reset, and not yet forgotten.
    fn live(&self, side: Role) -> Vec<usize> {
        let s = idx(side);
        (0..self.tracks.len())
            .filter(|&i| {
                let t = &self.tracks[i];
                let forgotten = t.dirs[s].finished && (t.dirs[1 - s].eof || t.stopped[s]);
                t.usable[s] && !t.reset[s] && !forgotten
            })
            .collect()
    }

    fn pick(&self, side: Role, pick: u8) -> Option<usize> {
        let live = self.live(side);
        (!live.is_empty()).then(|| live[usize::from(pick) % live.len()])
    }

    fn pick_pending(&self, side: Role, pick: u8) -> Option<usize> {
        let s = idx(side);
        let pending: Vec<usize> = (0..self.tracks.len())
            .filter(|&i| self.tracks[i].pending[s] && !self.tracks[i].reset[s])
            .collect();
        (!pending.is_empty()).then(|| pending[usize::from(pick) % pending.len()])
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        let actor = match *op {
            Op::Open(side) | Op::GoAway(side) => Some(side),
            Op::Accept { side, .. }
            | Op::Refuse { side, .. }
            | Op::Write { side, .. }
            | Op::Finish { side, .. }
            | Op::Stop { side, .. }
            | Op::Reset { side, .. } => Some(side),
            _ => None,
        };
        if let Some(side) = actor.filter(|side| self.closed[idx(*side)]) {
            // A closed session refuses every mutation with `Closed`.
            return match self.session(side).ping() {
                Err(LocalError::Closed) => Ok(()),
                other => Err(format!("{side:?}: closed session answered {other:?}")),
            };
        }
        match *op {
            Op::Open(side) => self.open(side),
            Op::Accept { side, pick } => {
                if let Some(i) = self.pick_pending(side, pick) {
                    self.accept(side, i)?;
                }
                Ok(())
            }
            Op::Refuse { side, pick } => {
                if let Some(i) = self.pick_pending(side, pick) {
                    let id = self.tracks[i].id;
                    self.session(side)
                        .refuse(id)
                        .map_err(|e| format!("refuse {id}: {e}"))?;
                    let t = &mut self.tracks[i];
                    t.pending[idx(side)] = false;
                    t.reset[idx(side)] = true;
                }
                Ok(())
            }
            Op::Write { side, pick, len } => match self.pick(side, pick) {
                Some(i) => self.write(side, i, usize::from(len)),
                None => Ok(()),
            },
            Op::Read {
                side,
                pick,
                max,
                chunk,
            } => match self.pick(side, pick) {
                Some(i) if !self.tracks[i].stopped[idx(side)] => {
                    self.read(side, i, usize::from(max), chunk).map(|_| ())
                }
                _ => Ok(()),
            },
            Op::Stop { side, pick } => {
                if let Some(i) = self.pick(side, pick) {
                    let id = self.tracks[i].id;
                    self.session(side)
                        .stop(id, ErrorCode::CANCEL)
                        .map_err(|e| format!("stop {id}: {e}"))?;
                    self.tracks[i].stopped[idx(side)] = true;
                }
                Ok(())
            }
            Op::Finish { side, pick } => match self.pick(side, pick) {
                Some(i) => self.finish(side, i),
                None => Ok(()),
            },
            Op::Reset { side, pick } => {
                if let Some(i) = self.pick(side, pick) {
                    let id = self.tracks[i].id;
                    self.session(side)
                        .reset(id, ErrorCode::CANCEL)
                        .map_err(|e| format!("reset {id}: {e}"))?;
                    self.tracks[i].reset[idx(side)] = true;
                }
                Ok(())
            }
            Op::Priority {
                side,
                pick,
                priority,
            } => {
                if let Some(i) = self.pick(side, pick) {
                    let id = self.tracks[i].id;
                    self.session(side)
                        .set_priority(id, priority)
                        .map_err(|e| format!("set_priority {id}: {e}"))?;
                }
                Ok(())
            }
            Op::GoAway(side) => {
                if !self.closed[idx(side)] {
                    self.session(side)
                        .go_away(ErrorCode::NO_ERROR)
                        .map_err(|e| format!("go_away: {e}"))?;
                }
                Ok(())
            }
            Op::Step => {
                self.pair.step();
                Ok(())
            }
            Op::Drive => self.drive(),
            Op::Tick { millis } => {
                if self.pair.advance(Duration::from_millis(u64::from(millis))) {
                    Ok(())
                } else {
                    Err("the pair never settled".into())
                }
            }
        }
    }

    fn drive(&mut self) -> Result<(), String> {
        if self.pair.drive() {
            Ok(())
        } else {
            Err("the pair never settled".into())
        }
    }

    fn open(&mut self, side: Role) -> Result<(), String> {
        match self.session(side).open(OpenOptions::default()) {
            Ok(id) => {
                let mut usable = [false; 2];
                usable[idx(side)] = true;
                self.tracks.push(Track {
                    id,
                    dirs: Default::default(),
                    usable,
                    pending: [false; 2],
                    reset: [false; 2],
                    stopped: [false; 2],
                    remote_opens: [0; 2],
                });
                self.summary.streams += 1;
                Ok(())
            }
            // Legitimate refusals of a well-formed request.
            Err(LocalError::StreamLimit | LocalError::GoingAway | LocalError::Closed) => Ok(()),
            Err(e) => Err(format!("open: {e}")),
        }
    }

    fn accept(&mut self, side: Role, i: usize) -> Result<(), String> {
        let id = self.tracks[i].id;
        self.session(side)
            .accept(id, bytes::Bytes::new())
            .map_err(|e| format!("accept {id}: {e}"))?;
        let t = &mut self.tracks[i];
        t.pending[idx(side)] = false;
        t.usable[idx(side)] = true;
        Ok(())
    }

    fn write(&mut self, side: Role, i: usize, len: usize) -> Result<(), String> {
        let (id, offset, finished) = {
            let d = &self.tracks[i].dirs[idx(side)];
            (self.tracks[i].id, d.written, d.finished)
        };
        let data: Vec<u8> = (0..len as u64)
            .map(|k| pattern(id, side, offset + k))
            .collect();
        match self.session(side).write(id, &data) {
            Ok(n) => {
                if finished {
                    return Err(format!("write on finished stream {id} accepted"));
                }
                self.tracks[i].dirs[idx(side)].written += n as u64;
                Ok(())
            }
            Err(WriteError::Blocked) => Ok(()),
            Err(WriteError::Stopped(_)) if self.tracks[i].stopped[idx(side.peer())] => {
                self.tracks[i].dirs[idx(side)].finished = true;
                Ok(())
            }
            Err(WriteError::Local(LocalError::Finished(_))) if finished => Ok(()),
            Err(WriteError::Local(LocalError::Closed)) if self.closed[idx(side)] => Ok(()),
            Err(e) => Err(format!("write {id}: {e}")),
        }
    }

    fn finish(&mut self, side: Role, i: usize) -> Result<(), String> {
        let id = self.tracks[i].id;
        let finished = self.tracks[i].dirs[idx(side)].finished;
        match self.session(side).finish(id) {
            Ok(()) if !finished => {
                self.tracks[i].dirs[idx(side)].finished = true;
                Ok(())
            }
            Err(LocalError::Finished(_)) if finished => Ok(()),
            // The peer's STOP_SENDING ended our side already.
            Err(LocalError::Finished(_)) if self.tracks[i].stopped[idx(side.peer())] => {
                self.tracks[i].dirs[idx(side)].finished = true;
                Ok(())
            }
            Err(LocalError::Closed) if self.closed[idx(side)] => Ok(()),
            other => Err(format!(
                "finish {id} (finished before: {finished}): {other:?}"
            )),
        }
    }

    /// Reads up to `max` bytes, checking each against the pattern. Returns
    /// whether anything changed.
    fn read(&mut self, side: Role, i: usize, max: usize, chunk: bool) -> Result<bool, String> {
        let id = self.tracks[i].id;
        let from = side.peer();
        let mut buf = vec![0u8; max];
        let result = if chunk {
            self.session(side).read_chunk(id, max).map(|c| {
                c.map(|c| {
                    buf[..c.len()].copy_from_slice(&c);
                    c.len()
                })
            })
        } else {
            self.session(side).read(id, &mut buf)
        };
        let d = &mut self.tracks[i].dirs[idx(from)];
        match result {
            Ok(Some(n)) => {
                for (k, &b) in buf[..n].iter().enumerate() {
                    let offset = d.read + k as u64;
                    if b != pattern(id, from, offset) {
                        return Err(format!("stream {id}: wrong byte at offset {offset}"));
                    }
                }
                d.read += n as u64;
                if d.read > d.written {
                    return Err(format!(
                        "stream {id}: read {} of {} written",
                        d.read, d.written
                    ));
                }
                self.summary.bytes += n as u64;
                Ok(n > 0)
            }
            Ok(None) => {
                if !d.finished || d.read != d.written {
                    return Err(format!(
                        "stream {id}: end-of-stream after {} of {} bytes (peer finished: {})",
                        d.read, d.written, d.finished
                    ));
                }
                let changed = !d.eof;
                d.eof = true;
                Ok(changed)
            }
            Err(ReadError::Blocked) => Ok(false),
            Err(ReadError::Local(LocalError::UnknownStream(_))) if self.closed[idx(side)] => {
                Ok(false)
            }
            Err(e) => Err(format!("read {id}: {e}")),
        }
    }

    /// Drains both sides' events and checks each against the model.
    /// Returns whether there were any.
    fn observe(&mut self) -> Result<bool, String> {
        let mut seen = false;
        for side in [Role::Client, Role::Server] {
            while let Some(event) = self.session(side).poll_event() {
                seen = true;
                self.on_event(side, event)?;
            }
            let s = idx(side);
            if self.closed[s] {
                continue;
            }
            let stats = self.session(side).stats();
            if stats.remote_window < 0 {
                return Err(format!(
                    "{side:?}: connection send window {}",
                    stats.remote_window
                ));
            }
            for i in self.live(side) {
                let id = self.tracks[i].id;
                if let Some(w) = self.session(side).stream_windows(id) {
                    if w.send < 0 {
                        return Err(format!("{side:?}: stream {id} send window {}", w.send));
                    }
                }
            }
        }
        Ok(seen)
    }

    fn on_event(&mut self, side: Role, event: Event) -> Result<(), String> {
        let s = idx(side);
        if self.closed[s] {
            return Err(format!("{side:?}: {event:?} after Closed"));
        }
        let find = |tracks: &[Track], id: StreamId| {
            tracks
                .iter()
                .position(|t| t.id == id)
                .ok_or_else(|| format!("{side:?}: event for unknown stream {id}: {event:?}"))
        };
        match &event {
            Event::Incoming { stream, .. } => {
                let i = find(&self.tracks, *stream)?;
                if stream.initiator() == side {
                    return Err(format!("{side:?}: Incoming for own stream {stream}"));
                }
                self.tracks[i].pending[s] = true;
            }
            Event::RemoteOpen { stream, .. } => {
                let i = find(&self.tracks, *stream)?;
                self.tracks[i].remote_opens[s] += 1;
                if self.tracks[i].remote_opens[s] > 1 {
                    return Err(format!("{side:?}: second RemoteOpen for {stream}"));
                }
            }
            Event::Finished { stream } => {
                let i = find(&self.tracks, *stream)?;
                // After our STOP_SENDING the peer's session ends its side.
                if !self.tracks[i].dirs[1 - s].finished && !self.tracks[i].stopped[s] {
                    return Err(format!(
                        "{side:?}: Finished for {stream} before the peer finished"
                    ));
                }
            }
            Event::Readable { stream } | Event::Writable { stream } => {
                find(&self.tracks, *stream)?;
            }
            Event::Stopped { stream, .. } => {
                let i = find(&self.tracks, *stream)?;
                if !self.tracks[i].stopped[1 - s] {
                    return Err(format!("{side:?}: Stopped for {stream}, never stopped"));
                }
                self.tracks[i].dirs[s].finished = true;
            }
            Event::Reset { stream, reason } => {
                if let ResetReason::Violation(e) = reason {
                    return Err(format!(
                        "{side:?}: correct peer reported violating on {stream}: {e}"
                    ));
                }
                let i = find(&self.tracks, *stream)?;
                let t = &mut self.tracks[i];
                t.reset[s] = true;
                t.pending[s] = false;
                self.summary.resets += 1;
            }
            Event::Closed { reason } => {
                match reason {
                    CloseReason::Drained => {}
                    other => return Err(format!("{side:?}: unexpected close: {other:?}")),
                }
                self.closed[s] = true;
            }
            Event::Pong { .. } | Event::GoAway { .. } => {}
        }
        Ok(())
    }

    /// Both sides accept what is pending, finish, and read until nothing
    /// changes.
    fn settle(&mut self) -> Result<(), String> {
        for _ in 0..10_000 {
            let mut changed = false;
            for side in [Role::Client, Role::Server] {
                while let Some(i) = self.pick_pending(side, 0) {
                    if self.closed[idx(side)] {
                        break;
                    }
                    self.accept(side, i)?;
                    changed = true;
                }
                for i in self.live(side) {
                    if !self.closed[idx(side)] && !self.tracks[i].dirs[idx(side)].finished {
                        self.finish(side, i)?;
                        changed = true;
                    }
                    let from = idx(side.peer());
                    while !self.tracks[i].dirs[from].eof
                        && !self.tracks[i].stopped[idx(side)]
                        && self.read(side, i, 64 << 10, false)?
                    {
                        changed = true;
                    }
                }
            }
            self.drive()?;
            changed |= self.observe()?;
            if !changed && self.pair.in_flight() == 0 {
                return Ok(());
            }
        }
        Err("settling never finished".into())
    }

    fn verify(&mut self) -> Result<(), String> {
        for t in &self.tracks {
            for from in [Role::Client, Role::Server] {
                let to = idx(from.peer());
                let d = &t.dirs[idx(from)];
                let reported = t.reset[to] || self.closed[to] || t.stopped[to];
                let complete = d.eof && d.read == d.written;
                let never_paired = !t.usable[to] && !t.usable[idx(from)];
                if !complete && !reported && !never_paired && t.usable[to] {
                    return Err(format!(
                        "stream {}: {from:?} wrote {} (finished {}), peer read {} (eof {}) and saw no reset",
                        t.id, d.written, d.finished, d.read, d.eof
                    ));
                }
            }
        }
        for side in [Role::Client, Role::Server] {
            if !self.closed[idx(side)] {
                let left = self.session(side).stats().active_streams;
                if left != 0 {
                    return Err(format!("{side:?}: {left} streams left after settling"));
                }
            }
        }
        Ok(())
    }
}
