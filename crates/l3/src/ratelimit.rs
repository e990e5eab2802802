//! A token bucket: `burst` tokens, refilled at `per_sec`. Time is the caller's [`Millis`];
//! tokens are kept in thousandths so that slow rates refill smoothly without floats.

use crate::Millis;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    /// In thousandths of a token.
    tokens: u64,
    cap: u64,
    per_sec: u64,
    last: Millis,
}

impl TokenBucket {
    /// A full bucket at time `now`.
    pub fn new(burst: u32, per_sec: u32, now: Millis) -> TokenBucket {
        let cap = u64::from(burst) * 1000;
        TokenBucket { tokens: cap, cap, per_sec: u64::from(per_sec), last: now }
    }

    /// Takes one token if there is one. A clock that steps back refills nothing.
    pub fn take(&mut self, now: Millis) -> bool {
        let elapsed = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        // 1 ms at `per_sec` tokens/s is `per_sec` thousandths.
        self.tokens = self.tokens.saturating_add(elapsed.saturating_mul(self.per_sec)).min(self.cap);
        if self.tokens < 1000 {
            return false;
        }
        self.tokens -= 1000;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_the_rate() {
        let mut b = TokenBucket::new(3, 10, 1_000);
        assert_eq!((0..5).filter(|_| b.take(1_000)).count(), 3, "the burst");
        assert!(!b.take(1_099), "99 ms at 10/s is not a token yet");
        assert!(b.take(1_100));
        assert!(!b.take(1_100));
        assert_eq!((0..10).filter(|_| b.take(60_000)).count(), 3, "refill stops at the burst");
        assert!(!b.take(10), "a clock that steps back");
        let mut none = TokenBucket::new(0, 0, 0);
        assert!(!none.take(u64::MAX), "no overflow, no tokens");
    }
}
