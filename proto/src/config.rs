//! Session configuration and its defaults.

use std::time::Duration;

use crate::error::ConfigError;
use crate::frame::{
    INITIAL_CONNECTION_WINDOW, MAX_MAX_FRAME_SIZE, MAX_WINDOW, MIN_INITIAL_WINDOW,
    MIN_MAX_FRAME_SIZE,
};

/// The shortest frame timeout SPEC §12 lets a receiver apply.
const MIN_FRAME_TIMEOUT_SECS: u64 = 10;

/// Session parameters. Start from [`Config::default`] and change fields.
///
/// Defaults follow the Syndicate v3 mux: 100 streams, 64 KiB initial windows,
/// 16 KiB frames, a 30 s keep-alive.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Streams the peer may have open at once (our MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// Initial receive window of each stream (our INITIAL_WINDOW_SIZE), at
    /// least 65536.
    pub initial_window: u32,
    /// Ceiling for a stream's auto-tuned receive window.
    pub max_stream_window: u32,
    /// Initial receive window of the whole connection.
    pub connection_window: u32,
    /// Ceiling for the auto-tuned connection window. All data buffered for
    /// the application is bounded by it: it is the session's memory budget.
    /// The memory holding that data is at most max(R / 16 KiB, 2) times it,
    /// plus 32 KiB per stream holding data, where R is the size of the
    /// buffers input is read into (SPEC.md §11): small payloads are copied
    /// together, payloads of 16 KiB or more stay zero-copy.
    pub max_connection_window: u32,
    /// Most bytes written on one stream and not yet sent. A write takes at
    /// most the smaller of this and the peer's window; 1 MiB by default,
    /// which keeps the transport busy (frames leave as soon as the window
    /// allows), whatever window a peer grants.
    pub stream_send_buffer: usize,
    /// Most bytes written and not yet sent across all streams; 4 MiB by
    /// default, four streams at their full buffer. Writes past it return
    /// `Blocked` until frames leave.
    pub connection_send_buffer: usize,
    /// Largest frame payload we accept (our MAX_FRAME_SIZE).
    pub max_frame_size: u32,
    /// Send a PING after this long without receiving anything.
    pub ping_interval: Option<Duration>,
    /// Close the connection after this long without receiving anything.
    pub idle_timeout: Option<Duration>,
    /// How long the peer has to acknowledge our SETTINGS.
    pub settings_timeout: Duration,
    /// How long a frame (or the preface) may take to arrive once its first
    /// byte has: a peer that drips an unfinished frame is closed with
    /// ENHANCE_YOUR_CALM (SPEC §12). At least 10 s when set.
    pub frame_timeout: Option<Duration>,
    /// Accept streams whatever their protocol and id; when false only
    /// streams matching [`Session::listen`](crate::Session::listen) are accepted.
    pub accept_any: bool,
    /// Streams the peer opened that the application has not yet accepted.
    /// Further opens are refused with REFUSED_STREAM.
    pub max_pending_accepts: u32,
    /// Priority of new streams; see [`Session::set_priority`](crate::Session::set_priority).
    pub default_priority: u8,
    /// Rate budgets against floods from a hostile peer.
    pub limits: FloodLimits,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_concurrent_streams: 100,
            initial_window: 65_536,
            max_stream_window: 16 << 20,
            connection_window: 1 << 20,
            max_connection_window: 32 << 20,
            stream_send_buffer: 1 << 20,
            connection_send_buffer: 4 << 20,
            max_frame_size: MIN_MAX_FRAME_SIZE,
            ping_interval: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(90)),
            settings_timeout: Duration::from_secs(10),
            frame_timeout: Some(Duration::from_secs(30)),
            accept_any: true,
            max_pending_accepts: 128,
            default_priority: 127,
            limits: FloodLimits::default(),
        }
    }
}

impl Config {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let check = |ok: bool, what: &'static str| if ok { Ok(()) } else { Err(ConfigError(what)) };
        check(
            (MIN_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&self.max_frame_size),
            "max_frame_size must be within 16384..=16777215",
        )?;
        check(
            self.initial_window >= MIN_INITIAL_WINDOW,
            "initial_window must be at least 65536",
        )?;
        check(
            self.initial_window <= self.max_stream_window && self.max_stream_window <= MAX_WINDOW,
            "need initial_window <= max_stream_window <= 2^31-1",
        )?;
        check(
            INITIAL_CONNECTION_WINDOW <= self.connection_window
                && self.connection_window <= self.max_connection_window
                && self.max_connection_window <= MAX_WINDOW,
            "need 65536 <= connection_window <= max_connection_window <= 2^31-1",
        )?;
        check(
            self.stream_send_buffer > 0 && self.connection_send_buffer > 0,
            "send buffers must be positive",
        )?;
        check(
            !self.settings_timeout.is_zero(),
            "settings_timeout must be positive",
        )?;
        check(
            self.ping_interval.is_none_or(|d| !d.is_zero()),
            "ping_interval must be positive",
        )?;
        check(
            self.idle_timeout.is_none_or(|d| !d.is_zero()),
            "idle_timeout must be positive",
        )?;
        check(
            self.frame_timeout
                .is_none_or(|d| d >= Duration::from_secs(MIN_FRAME_TIMEOUT_SECS)),
            "frame_timeout must be at least 10 s (SPEC §12)",
        )?;
        Ok(())
    }
}

/// Budgets for frames that are cheap to send and cost the receiver work.
///
/// Each is a token bucket: `burst` frames at once, refilled at `per_second`.
/// A peer that overdraws one is sent GOAWAY ENHANCE_YOUR_CALM. The control
/// replies they cause are bounded too: at most `max_queued_replies` PING or
/// SETTINGS acknowledgements and RST_STREAMs wait to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FloodLimits {
    /// RST_STREAM frames from the peer (rapid reset, CVE-2023-44487).
    pub resets: Rate,
    /// RST_STREAM frames we send because the peer broke the protocol on a
    /// stream (a stream error: DATA after END_STREAM, a zero or overflowing
    /// WINDOW_UPDATE, DATA past a stream window). Without it a peer could
    /// make us reset streams without limit ("MadeYouReset"). Refusals
    /// (REFUSED_STREAM) are not counted: the reply queue bounds them.
    pub local_resets: Rate,
    /// DATA frames with no payload and no END_STREAM.
    pub empty_data: Rate,
    /// SETTINGS frames (not acknowledgements).
    pub settings: Rate,
    /// PING frames (not acknowledgements).
    pub pings: Rate,
    /// Frames the receiver ignores, which cost work without flow control:
    /// unknown types, PING ACKs matching no PING, STOP_SENDING on closed
    /// streams, and DATA under 1024 bytes on closed streams.
    pub ignored: Rate,
    /// Control frames that may wait in the send queue because of the peer
    /// (PING and SETTINGS acknowledgements, RST_STREAM). RST_STREAM may
    /// exceed it by `max_concurrent_streams`: a peer that bursts opens
    /// within its limit past our accept backlog is refused, not punished.
    pub max_queued_replies: u32,
}

impl Default for FloodLimits {
    fn default() -> FloodLimits {
        FloodLimits {
            resets: Rate::new(256, 256),
            local_resets: Rate::new(256, 256),
            empty_data: Rate::new(64, 64),
            settings: Rate::new(32, 4),
            pings: Rate::new(64, 32),
            ignored: Rate::new(4096, 1024),
            max_queued_replies: 512,
        }
    }
}

/// A token-bucket rate: `burst` events at once, `per_second` sustained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Bucket size.
    pub burst: u32,
    /// Refill rate.
    pub per_second: u32,
}

impl Rate {
    /// A rate of `burst` at once and `per_second` sustained.
    pub const fn new(burst: u32, per_second: u32) -> Rate {
        Rate { burst, per_second }
    }
}
