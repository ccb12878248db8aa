//! One session fed hostile input.
//!
//! A [`Session`] of either role is given a valid preface and SETTINGS, then
//! the fuzzer's bytes in fuzzer-chosen chunks, interleaved with clock moves,
//! `handle_timeout` and `handle_eof`. A small application answers its events.
//! After every step the outputs are drained, as the `Session` docs prescribe,
//! and checked against what the API promises:
//!
//! - input never panics;
//! - what it transmits is valid plex: the preface, SETTINGS first, then whole
//!   frames that decode with a MAX_FRAME_SIZE of 2^24 - 1;
//! - `stats()` counts exactly the bytes and frames it handed out;
//! - `Closed` is the last event, and `is_closed()` agrees with it;
//! - after `handle_timeout(now)`, no deadline at or before `now` is left;
//! - `read` and `read_chunk` deliver the same bytes: the input drives two
//!   sessions, one application reading each way, and what they read must
//!   match after every step.
//!
//! Input: `[flags] [ops…]`. Flags: bit 0 the role (client, server); bits
//! 1..=2 the answer to `Incoming` ([`OnIncoming`]); bit 3 read readable
//! streams; bit 4 open a stream of our own and keep writing to it. Each op is
//! one byte:
//!
//! | op             | step                                                  |
//! |----------------|-------------------------------------------------------|
//! | `0x00..=0xBF`  | `handle_input` with the next `op + 1` bytes            |
//! | `0xC0..=0xDF`  | move the clock 2^(op & 31) ms on, then `handle_timeout` |
//! | `0xE0..=0xEF`  | move the clock to the next deadline, `handle_timeout`  |
//! | `0xF0..=0xFE`  | `handle_timeout` with an instant before the latest one |
//! | `0xFF`         | `handle_eof`                                           |

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use plex_proto::{
    Config, Decoder, Event, Frame, OpenOptions, Role, Session, SettingsFrame, StreamId,
    MAX_MAX_FRAME_SIZE, PREFACE,
};

/// How the application answers [`Event::Incoming`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnIncoming {
    /// Leave the stream pending.
    Ignore,
    /// Accept it.
    Accept,
    /// Refuse it.
    Refuse,
    /// Accept it and finish our side at once.
    AcceptAndFinish,
}

/// The application's behaviour, from the first input byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    /// Which side the session is.
    pub role: Role,
    /// The answer to incoming streams.
    pub on_incoming: OnIncoming,
    /// Read streams when they become readable.
    pub read: bool,
    /// Open a stream of our own after the peer's preface and write to it.
    pub open: bool,
}

/// One step of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    /// Bytes from the peer; longer inputs are split over several ops.
    Input(&'a [u8]),
    /// Move the clock 2^n ms on (n < 32), then run timers.
    Sleep(u8),
    /// Move the clock to the next deadline, then run timers.
    UntilDeadline,
    /// Run timers with an instant earlier than the latest one.
    Stale,
    /// The transport ended.
    Eof,
}

/// Builds an input in the format [`run`] parses.
pub fn input(flags: Flags, ops: &[Op<'_>]) -> Vec<u8> {
    let on_incoming = match flags.on_incoming {
        OnIncoming::Ignore => 0,
        OnIncoming::Accept => 1,
        OnIncoming::Refuse => 2,
        OnIncoming::AcceptAndFinish => 3,
    };
    let mut out = vec![
        u8::from(flags.role == Role::Server)
            | on_incoming << 1
            | u8::from(flags.read) << 3
            | u8::from(flags.open) << 4,
    ];
    for op in ops {
        match *op {
            Op::Input(bytes) => {
                for chunk in bytes.chunks(MAX_INPUT_OP) {
                    // A chunk is 1..=MAX_INPUT_OP bytes long.
                    out.push((chunk.len() - 1) as u8);
                    out.extend_from_slice(chunk);
                }
            }
            Op::Sleep(log2_ms) => out.push(0xc0 | (log2_ms & 0x1f)),
            Op::UntilDeadline => out.push(0xe0),
            Op::Stale => out.push(0xf0),
            Op::Eof => out.push(0xff),
        }
    }
    out
}

/// Runs one input; panics if a check fails.
pub fn run(data: &[u8]) {
    let Some((&flags, mut ops)) = data.split_first() else {
        return;
    };
    let flags = Flags::from_byte(flags);
    let mut apps = [
        App::new(flags, Reader::Copy),
        App::new(flags, Reader::Chunk),
    ];
    for app in &mut apps {
        app.input(peer_preface());
        if flags.open {
            app.open();
        }
    }
    while let Some((op, rest)) = Op::parse(ops) {
        ops = rest;
        for app in &mut apps {
            app.apply(op);
        }
        let [copied, chunked] = &apps;
        assert_eq!(
            copied.received, chunked.received,
            "read and read_chunk got different bytes"
        );
    }
}

/// The longest input one op carries.
const MAX_INPUT_OP: usize = 0xc0;
/// Bytes our own stream writes in all.
const LOCAL_DATA: usize = 256 * 1024;

/// The clock's origin, read once: the session only ever sees instants
/// derived from it.
static BASE: LazyLock<Instant> = LazyLock::new(Instant::now);

impl Flags {
    fn from_byte(b: u8) -> Flags {
        Flags {
            role: if b & 1 == 0 {
                Role::Client
            } else {
                Role::Server
            },
            on_incoming: match (b >> 1) & 0b11 {
                0 => OnIncoming::Ignore,
                1 => OnIncoming::Accept,
                2 => OnIncoming::Refuse,
                _ => OnIncoming::AcceptAndFinish,
            },
            read: b & (1 << 3) != 0,
            open: b & (1 << 4) != 0,
        }
    }
}

impl<'a> Op<'a> {
    /// Splits the next op off `data`.
    fn parse(data: &'a [u8]) -> Option<(Op<'a>, &'a [u8])> {
        let (&op, rest) = data.split_first()?;
        Some(match op {
            0x00..=0xbf => {
                let (bytes, rest) = rest.split_at((usize::from(op) + 1).min(rest.len()));
                (Op::Input(bytes), rest)
            }
            0xc0..=0xdf => (Op::Sleep(op & 0x1f), rest),
            0xe0..=0xef => (Op::UntilDeadline, rest),
            0xf0..=0xfe => (Op::Stale, rest),
            0xff => (Op::Eof, rest),
        })
    }
}

/// A valid peer preface: the magic and version, then empty SETTINGS.
fn peer_preface() -> Bytes {
    let mut wire = BytesMut::from(&PREFACE[..]);
    Frame::Settings(SettingsFrame::default()).encode(&mut wire);
    wire.freeze()
}

/// How the application reads.
#[derive(Debug, Clone, Copy)]
enum Reader {
    /// `read` into a buffer.
    Copy,
    /// `read_chunk` of everything buffered.
    Chunk,
}

/// The session, the application around it, and what was seen of its output.
struct App {
    session: Session,
    flags: Flags,
    reader: Reader,
    /// Everything read, by stream.
    received: HashMap<StreamId, Vec<u8>>,
    /// The latest instant given to the session.
    now: Instant,
    /// Decodes everything the session transmits.
    wire: Decoder,
    bytes_out: u64,
    frames_out: u64,
    closed: bool,
    /// Our own stream and how much is left to write on it.
    local: Option<(StreamId, usize)>,
}

impl App {
    fn new(flags: Flags, reader: Reader) -> App {
        let now = *BASE;
        let session =
            Session::new(flags.role, Config::default(), now).expect("the default config is valid");
        App {
            session,
            flags,
            reader,
            received: HashMap::new(),
            now,
            wire: Decoder::with_preface(MAX_MAX_FRAME_SIZE),
            bytes_out: 0,
            frames_out: 0,
            closed: false,
            local: None,
        }
    }

    fn apply(&mut self, op: Op<'_>) {
        match op {
            Op::Input(bytes) => self.input(Bytes::copy_from_slice(bytes)),
            Op::Sleep(log2_ms) => self.timeout(self.now + Duration::from_millis(1 << log2_ms)),
            Op::UntilDeadline => {
                let at = self.session.poll_timeout().unwrap_or(self.now);
                self.timeout(at);
            }
            Op::Stale => self.timeout(*BASE),
            Op::Eof => {
                self.session.handle_eof(self.now);
                self.settle();
            }
        }
    }

    fn input(&mut self, bytes: Bytes) {
        self.session.handle_input(self.now, bytes);
        self.settle();
    }

    /// Runs timers at `at`; an instant before the latest counts as the latest.
    fn timeout(&mut self, at: Instant) {
        self.now = self.now.max(at);
        self.session.handle_timeout(at);
        self.settle();
        if let Some(deadline) = self.session.poll_timeout() {
            assert!(
                deadline > self.now,
                "deadline {:?} still due after handle_timeout",
                deadline - *BASE
            );
        }
    }

    fn open(&mut self) {
        let options = OpenOptions::new("fuzz", "local").handshake("hello");
        // Opening fails only on a closed or draining session.
        if let Ok(stream) = self.session.open(options) {
            self.local = Some((stream, LOCAL_DATA));
            self.write_local();
        }
        self.settle();
    }

    /// Drains transmits and events, letting the application react, until
    /// both are empty; checks every output on the way.
    fn settle(&mut self) {
        loop {
            while let Some(transmit) = self.session.poll_transmit(self.now) {
                self.bytes_out += transmit.len() as u64;
                self.check_output(transmit.head);
                self.check_output(transmit.payload);
            }
            assert_eq!(self.wire.buffered(), 0, "output stopped inside a frame");
            let mut reacted = false;
            while let Some(event) = self.session.poll_event() {
                assert!(!self.closed, "{event:?} after Closed");
                reacted |= self.react(event);
            }
            assert_eq!(
                self.session.is_closed(),
                self.closed,
                "is_closed disagrees with Closed"
            );
            if !reacted {
                break;
            }
        }
        let stats = self.session.stats();
        assert_eq!(stats.bytes_sent, self.bytes_out, "stats.bytes_sent");
        assert_eq!(stats.frames_sent, self.frames_out, "stats.frames_sent");
    }

    fn check_output(&mut self, mut bytes: Bytes) {
        loop {
            match self.wire.decode(&mut bytes) {
                Ok(Some(frame)) => {
                    if self.frames_out == 0 {
                        assert!(
                            matches!(frame, Frame::Settings(_)),
                            "first frame is {frame:?}, not SETTINGS"
                        );
                    }
                    self.frames_out += 1;
                }
                Ok(None) => return,
                Err(e) => panic!("session sent invalid plex: {e}"),
            }
        }
    }

    /// Answers one event; returns whether that may have produced output.
    fn react(&mut self, event: Event) -> bool {
        match event {
            Event::Incoming { stream, .. } => self.on_incoming(stream),
            Event::Readable { stream } | Event::Finished { stream } if self.flags.read => {
                self.read_all(stream);
                true
            }
            Event::Writable { stream } if self.local.is_some_and(|(s, _)| s == stream) => {
                self.write_local();
                true
            }
            Event::Closed { .. } => {
                self.closed = true;
                false
            }
            _ => false,
        }
    }

    fn on_incoming(&mut self, stream: StreamId) -> bool {
        // These calls fail with a LocalError when a later frame of the same
        // input already ended the stream or the connection; nothing to check.
        match self.flags.on_incoming {
            OnIncoming::Ignore => return false,
            OnIncoming::Accept => {
                let _ = self.session.accept(stream, "welcome");
            }
            OnIncoming::Refuse => {
                let _ = self.session.refuse(stream);
            }
            OnIncoming::AcceptAndFinish => {
                if self.session.accept(stream, "bye").is_ok() {
                    let _ = self.session.finish(stream);
                }
            }
        }
        true
    }

    fn read_all(&mut self, stream: StreamId) {
        let mut buf = [0u8; 4096];
        let received = self.received.entry(stream).or_default();
        loop {
            // Otherwise: end of stream, nothing buffered, or a stream that
            // is gone.
            match self.reader {
                Reader::Copy => match self.session.read(stream, &mut buf) {
                    Ok(Some(n)) if n > 0 => received.extend_from_slice(&buf[..n]),
                    _ => return,
                },
                Reader::Chunk => match self.session.read_chunk(stream, usize::MAX) {
                    Ok(Some(chunk)) if !chunk.is_empty() => received.extend_from_slice(&chunk),
                    _ => return,
                },
            }
        }
    }

    /// Writes to our own stream until the window is full, then finishes it
    /// once everything was taken.
    fn write_local(&mut self) {
        static DATA: [u8; 4096] = [0x5a; 4096];
        let Some((stream, left)) = &mut self.local else {
            return;
        };
        while *left > 0 {
            match self.session.write(*stream, &DATA[..DATA.len().min(*left)]) {
                Ok(n) => *left -= n,
                // A full window (Writable follows), or a stream that is gone.
                Err(_) => return,
            }
        }
        // Fails only if the stream is gone; then there is nothing to finish.
        let _ = self.session.finish(*stream);
        self.local = None;
    }
}
