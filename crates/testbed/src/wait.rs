//! Polling for conditions that become true asynchronously (links coming up, addresses leaving
//! the tentative state) without sleeping a fixed, flaky amount.

use std::time::{Duration, Instant};

/// Polls `f` every ~20 ms until it returns true (→ true) or `timeout` passes (→ false).
/// `f` is always called at least once.
pub fn wait_until(timeout: Duration, f: impl FnMut() -> bool) -> bool {
    wait_until_every(timeout, Duration::from_millis(20), f)
}

/// Like [`wait_until`], polling every `interval` (at least 1 ms): for a wait that paces a
/// sender many times over, where 20 ms a round would add up.
pub fn wait_until_every(timeout: Duration, interval: Duration, mut f: impl FnMut() -> bool) -> bool {
    let interval = interval.max(Duration::from_millis(1));
    let deadline = Instant::now() + timeout;
    // Bounded by time, and by count in case the clock misbehaves.
    let max_polls = timeout.as_millis() / interval.as_millis() + 2;
    for _ in 0..max_polls {
        if f() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep((deadline - now).min(interval));
    }
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_true_when_condition_holds() {
        let mut n = 0;
        assert!(wait_until(Duration::from_secs(2), || {
            n += 1;
            n >= 3
        }));
        assert_eq!(n, 3);
    }

    #[test]
    fn times_out() {
        let t = Instant::now();
        assert!(!wait_until(Duration::from_millis(100), || false));
        assert!(t.elapsed() >= Duration::from_millis(100));
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
