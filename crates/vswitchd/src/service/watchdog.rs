//! systemd's watchdog (`WatchdogSec=`): keep-alives that prove the daemon *works*, not merely
//! that some thread of it runs. Each thread that matters (forwarding, database sync) bumps a
//! [`Heartbeat`] about once a second from its own loop; the watchdog thread sends `WATCHDOG=1`
//! only when every heartbeat advanced since the previous keep-alive. A forwarding thread stuck in
//! a syscall or a control thread dead-locked on the daemon's lock stops the keep-alives, and
//! systemd restarts the service (`Restart=on-failure`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{debug, warn};

use super::notify::Notifier;

/// A counter one thread bumps from its loop and the watchdog reads. Relaxed ordering: only
/// "did it change" matters, not what else the thread did.
#[derive(Debug, Default)]
pub struct Heartbeat(AtomicU64);

impl Heartbeat {
    pub fn new() -> Arc<Heartbeat> {
        Arc::new(Heartbeat::default())
    }

    pub fn beat(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The pure decision: were all heartbeats seen to advance since the last keep-alive?
#[derive(Debug)]
pub struct Liveness {
    at_last_ping: Vec<u64>,
}

impl Liveness {
    /// Starts from the counts now, so the first keep-alive needs one beat of every thread.
    pub fn new(counts: Vec<u64>) -> Liveness {
        Liveness { at_last_ping: counts }
    }

    /// True (and the new counts become the reference) iff every count moved since the last
    /// `true`; a thread that beat while another did not is remembered until the other catches up.
    pub fn all_advanced(&mut self, counts: &[u64]) -> bool {
        let advanced = counts.len() == self.at_last_ping.len()
            && counts.iter().zip(&self.at_last_ping).all(|(now, then)| now != then);
        if advanced {
            self.at_last_ping = counts.to_vec();
        }
        advanced
    }
}

/// The keep-alive interval systemd asks for: `$WATCHDOG_USEC`, if `$WATCHDOG_PID` (when set)
/// names this process. `None`: no watchdog configured, or the values are unusable.
pub fn interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if pid.is_some_and(|p| p.trim().parse::<u32>().ok() != Some(own_pid)) {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// How often the watchdog thread looks at the heartbeats: a quarter of the interval, so a
/// keep-alive goes out well before the deadline even though threads beat only once a second.
fn poll_period(interval: Duration) -> Duration {
    (interval / 4).max(Duration::from_millis(10))
}

/// The running watchdog thread; [`Watchdog::stop`] (or drop) ends it promptly.
pub struct Watchdog {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts sending `WATCHDOG=1` every time all `beats` advanced, checking every quarter of
    /// `interval`. Heartbeats come once a second, so `interval` should be at least 3 s.
    pub fn spawn(
        notifier: Notifier,
        interval: Duration,
        beats: Vec<Arc<Heartbeat>>,
    ) -> std::io::Result<Watchdog> {
        if interval < Duration::from_secs(3) {
            warn!(?interval, "watchdog interval below 3 s: the daemon's threads beat once a second");
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let period = poll_period(interval);
        let thread = std::thread::Builder::new().name("watchdog".into()).spawn(move || {
            let counts = || beats.iter().map(|b| b.count()).collect::<Vec<_>>();
            let mut liveness = Liveness::new(counts());
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                if liveness.all_advanced(&counts()) {
                    if let Err(e) = notifier.send("WATCHDOG=1") {
                        debug!("watchdog keep-alive not delivered: {e}");
                    }
                }
            }
        })?;
        Ok(Watchdog { stop: Some(stop), thread: Some(thread) })
    }

    pub fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_needs_every_thread() {
        let mut l = Liveness::new(vec![0, 0]);
        assert!(!l.all_advanced(&[0, 0]), "nothing moved");
        assert!(!l.all_advanced(&[3, 0]), "control thread stuck");
        assert!(!l.all_advanced(&[5, 0]), "still stuck, however fast the other beats");
        assert!(l.all_advanced(&[5, 1]), "both moved since the start");
        assert!(!l.all_advanced(&[5, 1]), "reference reset at the keep-alive");
        assert!(!l.all_advanced(&[5, 2]), "forwarding thread stuck");
        assert!(l.all_advanced(&[6, 2]));
        assert!(!l.all_advanced(&[7]), "a missing heartbeat never counts as alive");
    }

    #[test]
    fn interval_follows_systemd_variables() {
        assert_eq!(interval(Some("3000000"), None, 7), Some(Duration::from_secs(3)));
        assert_eq!(interval(Some("3000000"), Some("7"), 7), Some(Duration::from_secs(3)));
        assert_eq!(interval(Some("3000000"), Some("8"), 7), None, "meant for another process");
        assert_eq!(interval(Some("0"), None, 7), None);
        assert_eq!(interval(Some("soon"), None, 7), None);
        assert_eq!(interval(None, Some("7"), 7), None);
    }

    #[test]
    fn poll_period_is_a_quarter_with_a_floor() {
        assert_eq!(poll_period(Duration::from_secs(20)), Duration::from_secs(5));
        assert_eq!(poll_period(Duration::from_millis(8)), Duration::from_millis(10));
    }
}
