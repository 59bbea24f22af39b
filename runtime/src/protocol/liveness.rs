//! Keep-alive and the peer timeout of one connection, for either side: when it must ping
//! (nothing sent for the keep-alive interval) and when it has heard nothing from its peer
//! for too long. Sans-IO: every instant is passed in.
//!
//! The server arms the timeout once the client has pinged (old clients never ping); the
//! client arms it from the start.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{HubMessage, Protocol};

/// What is due at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due {
    /// Nothing was sent for the keep-alive interval: a ping is due.
    pub ping: bool,
    /// Nothing was received for the timeout, while it was armed.
    pub timed_out: bool,
}

/// The times a connection last sent and received, and what they make due.
#[derive(Debug, Clone)]
pub(crate) struct Liveness {
    /// Ping after this long without sending; `None` for no pings.
    keep_alive_interval: Option<Duration>,
    /// Give up after this long without receiving, once armed.
    timeout: Duration,
    /// Whether the timeout runs.
    armed: bool,
    last_sent: Instant,
    last_received: Instant,
    /// A ping due at this instant, before the interval is up, unless something is sent first.
    ping_early: Option<Instant>,
}

impl Liveness {
    /// Bookkeeping that starts at `now`, as if something had just been sent and received.
    pub fn new(now: Instant, keep_alive_interval: Option<Duration>, timeout: Duration, armed: bool) -> Self {
        Self {
            keep_alive_interval,
            timeout,
            armed,
            last_sent: now,
            last_received: now,
            ping_early: None,
        }
    }

    /// Changes the interval and the timeout; the instants stay.
    pub fn configure(&mut self, keep_alive_interval: Option<Duration>, timeout: Duration) {
        self.keep_alive_interval = keep_alive_interval;
        self.timeout = timeout;
    }

    /// Starts the timeout (the server's, when the client first pings).
    pub fn arm(&mut self) {
        self.armed = true;
    }

    /// The peer was heard from at `now` (an instant before the latest one known changes
    /// nothing).
    pub fn received(&mut self, now: Instant) {
        self.last_received = self.last_received.max(now);
    }

    /// Something was sent to the peer at `now` (which also does for an early ping; an
    /// instant before the latest send known changes nothing).
    pub fn sent(&mut self, now: Instant) {
        if now >= self.last_sent {
            self.last_sent = now;
            self.ping_early = None;
        }
    }

    /// Makes a ping due at `at` (the client's first, at once), unless something is sent
    /// before.
    pub fn ping_at(&mut self, at: Instant) {
        self.ping_early = Some(at);
    }

    /// What is due at `now`.
    pub fn due(&self, now: Instant) -> Due {
        Due {
            ping: self.ping_early.is_some_and(|at| now >= at)
                || self
                    .keep_alive_interval
                    .is_some_and(|interval| now.saturating_duration_since(self.last_sent) >= interval),
            timed_out: self.armed && now.saturating_duration_since(self.last_received) >= self.timeout,
        }
    }

    /// The earliest instant something becomes due, if anything can.
    pub fn next_due(&self) -> Option<Instant> {
        let ping = self.keep_alive_interval.map(|interval| self.last_sent + interval);
        let timeout = self.armed.then(|| self.last_received + self.timeout);
        [self.ping_early, ping, timeout].into_iter().flatten().min()
    }
}

/// The keep-alive ping of `protocol`, framed.
pub(crate) fn ping(protocol: Protocol) -> Bytes {
    let mut out = Vec::new();
    // A Ping always encodes.
    let _ = protocol.write_message(&mut out, &HubMessage::Ping);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn pings_after_the_interval_without_sends() {
        let t0 = Instant::now();
        let mut liveness = Liveness::new(t0, Some(15 * SEC), 30 * SEC, false);
        assert_eq!(liveness.next_due(), Some(t0 + 15 * SEC));
        assert!(!liveness.due(t0 + 14 * SEC).ping);
        assert!(liveness.due(t0 + 15 * SEC).ping);
        liveness.sent(t0 + 10 * SEC);
        assert!(!liveness.due(t0 + 15 * SEC).ping, "a send puts the ping off");
        assert_eq!(liveness.next_due(), Some(t0 + 25 * SEC));
        liveness.configure(None, 30 * SEC);
        assert_eq!(liveness.next_due(), None, "no interval, no pings");
        assert!(!liveness.due(t0 + 100 * SEC).ping);
    }

    #[test]
    fn an_early_ping_unless_something_is_sent_first() {
        let t0 = Instant::now();
        let mut liveness = Liveness::new(t0, Some(15 * SEC), 30 * SEC, true);
        liveness.ping_at(t0 + SEC);
        assert_eq!(liveness.next_due(), Some(t0 + SEC));
        assert!(!liveness.due(t0).ping);
        assert!(liveness.due(t0 + SEC).ping);
        liveness.sent(t0 + SEC);
        assert_eq!(liveness.next_due(), Some(t0 + 16 * SEC), "then the interval");
        assert!(!liveness.due(t0 + 2 * SEC).ping);
        liveness.ping_at(t0 + 20 * SEC);
        liveness.sent(t0 + 19 * SEC);
        assert!(!liveness.due(t0 + 20 * SEC).ping, "a send does for it");
    }

    #[test]
    fn times_out_once_armed_without_receives() {
        let t0 = Instant::now();
        let mut liveness = Liveness::new(t0, None, 30 * SEC, false);
        assert!(!liveness.due(t0 + 60 * SEC).timed_out, "not armed");
        liveness.arm();
        assert_eq!(liveness.next_due(), Some(t0 + 30 * SEC));
        liveness.received(t0 + 20 * SEC);
        assert!(!liveness.due(t0 + 49 * SEC).timed_out);
        assert!(liveness.due(t0 + 50 * SEC).timed_out);
        // An instant before the last receive (a clock read earlier) never underflows.
        assert!(!liveness.due(t0).timed_out);
    }

    #[test]
    fn ping_is_framed_in_the_protocol() {
        assert_eq!(ping(Protocol::Json), Bytes::from_static(b"{\"type\":6}\x1e"));
        assert_eq!(ping(Protocol::MessagePack), Bytes::from_static(&[2, 0x91, 6]));
    }
}
