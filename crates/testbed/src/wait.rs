//! Polling for conditions that become true asynchronously (links coming up, addresses leaving
//! the tentative state) without sleeping a fixed, flaky amount.

use std::time::{Duration, Instant};

/// Polls `f` every ~20 ms until it returns true (→ true) or `timeout` passes (→ false).
/// `f` is always called at least once.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    // Bounded by time, and by count in case the clock misbehaves.
    let max_polls = timeout.as_millis() / 20 + 2;
    for _ in 0..max_polls {
        if f() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
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
