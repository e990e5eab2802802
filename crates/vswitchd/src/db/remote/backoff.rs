//! Which remote to try next and how long to wait first: every remote in turn, and after a whole
//! round without a usable member a wait that doubles up to a bound (ovs-vswitchd: 1 s to 8 s),
//! so a dead cluster costs a few connection attempts a second at most, and a returning one is
//! found within the bound.

use std::time::Duration;

pub struct Backoff {
    remotes: usize,
    next: usize,
    failures_in_round: usize,
    delay: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(remotes: usize, min: Duration, max: Duration) -> Backoff {
        Backoff { remotes: remotes.max(1), next: 0, failures_in_round: 0, delay: min, min, max }
    }

    /// The index of the remote to try now.
    pub fn current(&self) -> usize {
        self.next
    }

    /// The attempt on the current remote failed (or its session ended): moves to the next
    /// remote and returns how long to wait before trying it.
    pub fn failed(&mut self) -> Duration {
        self.next = (self.next + 1) % self.remotes;
        self.failures_in_round += 1;
        if self.failures_in_round < self.remotes {
            return Duration::ZERO;
        }
        self.failures_in_round = 0;
        let wait = self.delay;
        self.delay = (self.delay * 2).min(self.max);
        wait
    }

    /// A session was established: the next failure starts a fresh round on the next remote.
    pub fn connected(&mut self) {
        self.failures_in_round = 0;
        self.delay = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_over_all_remotes_with_a_bounded_doubling_wait() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(3, ms(100), ms(400));
        let mut seen = Vec::new();
        for _ in 0..9 {
            let at = b.current();
            seen.push((at, b.failed()));
        }
        let waits: Vec<_> = seen.iter().map(|(_, w)| w.as_millis()).collect();
        assert_eq!(waits, [0, 0, 100, 0, 0, 200, 0, 0, 400]);
        let order: Vec<_> = seen.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, [0, 1, 2, 0, 1, 2, 0, 1, 2]);
        assert_eq!(b.failed(), Duration::ZERO);
        // A good session resets the wait; the member that failed is left for the next one.
        b.connected();
        let at = b.current();
        assert_eq!((b.failed(), b.failed(), b.failed()), (ms(0), ms(0), ms(100)));
        assert_eq!(b.current(), at);
    }

    #[test]
    fn a_single_remote_waits_after_every_failure() {
        let mut b = Backoff::new(1, Duration::from_millis(10), Duration::from_millis(20));
        assert_eq!(b.failed().as_millis(), 10);
        assert_eq!(b.failed().as_millis(), 20);
        assert_eq!(b.failed().as_millis(), 20);
        assert_eq!(b.current(), 0);
    }
}
