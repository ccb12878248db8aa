//! The session's timers: a small table indexed by an enum; the next
//! deadline is the minimum of the table.

use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// Our SETTINGS must be acknowledged by then.
    SettingsAck = 0,
    /// Send a keep-alive PING if nothing arrived by then.
    KeepAlive = 1,
    /// Close the connection if nothing arrived by then.
    Idle = 2,
    /// The frame (or preface) that has started must be complete by then.
    FrameProgress = 3,
    /// Refuse the streams no listener claimed within the claim grace.
    Unclaimed = 4,
}

impl Timer {
    pub(super) const ALL: [Timer; 5] = [
        Timer::SettingsAck,
        Timer::KeepAlive,
        Timer::Idle,
        Timer::FrameProgress,
        Timer::Unclaimed,
    ];
}

#[derive(Debug, Default)]
pub(super) struct Timers([Option<Instant>; 5]);

impl Timers {
    pub(super) fn set(&mut self, timer: Timer, at: Instant) {
        self.0[timer as usize] = Some(at);
    }

    pub(super) fn stop(&mut self, timer: Timer) {
        self.0[timer as usize] = None;
    }

    /// Clears and reports a timer whose deadline is at or before `now`.
    pub(super) fn expire(&mut self, timer: Timer, now: Instant) -> bool {
        let slot = &mut self.0[timer as usize];
        if slot.is_some_and(|at| at <= now) {
            *slot = None;
            return true;
        }
        false
    }

    pub(super) fn is_set(&self, timer: Timer) -> bool {
        self.0[timer as usize].is_some()
    }

    pub(super) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}
