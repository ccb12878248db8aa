//! Receive-window accounting and auto-tuning, shared by streams and the
//! connection.
//!
//! Invariant: `credit + unread + consumed == window`, where `unread` is what
//! the application has not yet read. Credit goes back to the peer once half
//! the window has been consumed. If that happened within two round trips of
//! the previous update, the window was the bottleneck, so it doubles, up to a
//! ceiling: windows grow towards the bandwidth-delay product without a
//! bandwidth estimate.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct RecvWindow {
    window: u32,
    credit: u32,
    consumed: u32,
    epoch: Instant,
}

impl RecvWindow {
    pub(crate) fn new(window: u32, credit: u32, now: Instant) -> RecvWindow {
        RecvWindow {
            window,
            credit,
            consumed: window - credit,
            epoch: now,
        }
    }

    /// The current target window.
    pub(crate) fn window(&self) -> u32 {
        self.window
    }

    /// Bytes the peer may still send.
    #[cfg(test)]
    pub(crate) fn credit(&self) -> u32 {
        self.credit
    }

    /// Accounts for `len` bytes from the peer; false if that exceeds its credit.
    pub(crate) fn receive(&mut self, len: u32) -> bool {
        match self.credit.checked_sub(len) {
            Some(credit) => {
                self.credit = credit;
                true
            }
            None => false,
        }
    }

    /// Accounts for `n` bytes read (or discarded); true when an update is due.
    pub(crate) fn consume(&mut self, n: u32) -> bool {
        self.consumed += n;
        self.update_due()
    }

    pub(crate) fn update_due(&self) -> bool {
        self.consumed > 0 && self.consumed >= self.window / 2
    }

    /// Returns the increment to advertise, growing the window if it limited
    /// throughput over the last epoch.
    pub(crate) fn take_update(&mut self, now: Instant, rtt: Option<Duration>, max: u32) -> u32 {
        let mut increment = self.consumed;
        if let Some(rtt) = rtt {
            let elapsed = now.saturating_duration_since(self.epoch);
            if elapsed < rtt * 2 && self.window < max {
                let growth = self.window.min(max - self.window);
                self.window += growth;
                increment += growth;
            }
        }
        self.epoch = now;
        self.consumed = 0;
        self.credit += increment;
        increment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_returns_at_half_window_and_grows_when_fast() {
        let t0 = crate::sim::origin();
        let rtt = Duration::from_millis(100);
        let mut w = RecvWindow::new(1000, 1000, t0);
        assert!(w.receive(1000));
        assert!(!w.receive(1), "over credit");
        assert!(!w.consume(499));
        assert!(w.consume(1));
        // Half the window in 50 ms with a 100 ms RTT: the window was the limit.
        let inc = w.take_update(t0 + Duration::from_millis(50), Some(rtt), 1500);
        assert_eq!(inc, 500 + 500);
        assert_eq!((w.window(), w.credit()), (1500, 1000));
        // Slow consumption: no growth, and the ceiling holds anyway.
        assert!(w.receive(1000));
        w.consume(750);
        let inc = w.take_update(t0 + Duration::from_secs(5), Some(rtt), 1500);
        assert_eq!(inc, 750);
        assert_eq!((w.window(), w.credit()), (1500, 750));
    }
}
