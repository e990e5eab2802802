//! Whether a client is still worth its socket: Open vSwitch's inactivity probe plus a bound on
//! how long a message may stay half-sent. A pure state machine (time is an argument), so the
//! rules are tested without sockets or sleeps.
//!
//! The probe follows OvS's `reconnect.c`: after `probe_interval` with nothing received, send an
//! `echo` request; if still nothing arrives within another interval, disconnect. Any byte counts
//! as activity, which is why the half-sent bound exists too: a client that trickles one byte at a
//! time never trips the probe, but its message never completes.

use std::time::{Duration, Instant};

/// What the event loop must do for one connection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing.
    Fine,
    /// Send the inactivity probe (`echo`).
    Probe,
    /// Disconnect, for this reason (logged).
    Drop(&'static str),
}

/// The timeouts a connection is judged by (from [`super::Limits`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// None disables the probe (OvS: `inactivity_probe=0`).
    pub probe: Option<Duration>,
    /// Longest a message may stay incomplete.
    pub stall: Duration,
}

/// Receive-side timestamps of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Liveness {
    last_rx: Instant,
    probed_at: Option<Instant>,
    partial_since: Option<Instant>,
}

impl Liveness {
    /// A connection accepted at `now`.
    pub fn new(now: Instant) -> Self {
        Liveness { last_rx: now, probed_at: None, partial_since: None }
    }

    /// Bytes arrived at `now`. `completed` says whether they ended at least one message,
    /// `partial` whether a message is still incomplete afterwards.
    pub fn received(&mut self, now: Instant, completed: bool, partial: bool) {
        self.last_rx = now;
        self.probed_at = None;
        self.partial_since = match (partial, completed, self.partial_since) {
            (false, _, _) => None,
            (true, false, Some(since)) => Some(since),
            (true, _, _) => Some(now),
        };
    }

    /// When the client last sent anything (eviction picks the oldest).
    pub fn last_rx(&self) -> Instant {
        self.last_rx
    }

    /// Judges the connection at `now`; a `Probe` verdict counts as sent.
    pub fn check(&mut self, now: Instant, t: &Timeouts) -> Verdict {
        if self.partial_since.is_some_and(|s| now.saturating_duration_since(s) >= t.stall) {
            return Verdict::Drop("message left half-sent");
        }
        let Some(probe) = t.probe else { return Verdict::Fine };
        match self.probed_at {
            Some(at) if now.saturating_duration_since(at) >= probe => {
                Verdict::Drop("no reply to the inactivity probe")
            }
            Some(_) => Verdict::Fine,
            None if now.saturating_duration_since(self.last_rx) >= probe => {
                self.probed_at = Some(now);
                Verdict::Probe
            }
            None => Verdict::Fine,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts { probe: Some(Duration::from_secs(5)), stall: Duration::from_secs(3) };

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn silent_client_is_probed_then_dropped() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        assert_eq!(l.check(at(t0, 4_999), &T), Verdict::Fine);
        assert_eq!(l.check(at(t0, 5_000), &T), Verdict::Probe);
        assert_eq!(l.check(at(t0, 9_999), &T), Verdict::Fine);
        assert!(matches!(l.check(at(t0, 10_000), &T), Verdict::Drop(_)));
    }

    #[test]
    fn answering_the_probe_keeps_the_client() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        for round in 0..10u64 {
            let base = round * 6_000;
            assert_eq!(l.check(at(t0, base + 5_000), &T), Verdict::Probe, "round {round}");
            l.received(at(t0, base + 5_100), true, false);
            assert_eq!(l.check(at(t0, base + 6_000), &T), Verdict::Fine);
        }
    }

    #[test]
    fn trickling_client_is_dropped_by_the_stall_bound() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        l.received(t0, false, true);
        for ms in (100..3_000).step_by(100) {
            l.received(at(t0, ms), false, true);
            assert_eq!(l.check(at(t0, ms), &T), Verdict::Fine);
        }
        assert!(matches!(l.check(at(t0, 3_000), &T), Verdict::Drop(_)));
    }

    #[test]
    fn a_new_partial_message_restarts_the_stall_clock() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        l.received(t0, false, true);
        // One message completes and the next one begins in the same read.
        l.received(at(t0, 2_000), true, true);
        assert_eq!(l.check(at(t0, 4_000), &T), Verdict::Fine);
        assert!(matches!(l.check(at(t0, 5_000), &T), Verdict::Drop(_)));
        // A whole message clears it.
        let mut l = Liveness::new(t0);
        l.received(t0, false, true);
        l.received(at(t0, 1_000), true, false);
        assert_eq!(l.check(at(t0, 4_000), &T), Verdict::Fine);
    }

    #[test]
    fn probe_can_be_disabled() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        let off = Timeouts { probe: None, ..T };
        assert_eq!(l.check(at(t0, 3_600_000), &off), Verdict::Fine);
    }
}
