//! Counters a metrics exporter reads: transactions answered and how long they took, as a
//! histogram of fixed buckets. Plain atomics (the Firecracker pattern): the server bumps them,
//! any thread reads a [`StatsSnapshot`]; ovsdb knows nothing about Prometheus.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds (a last bucket holds the rest).
/// From 50 µs (a small transaction in memory) to 5 s (a huge one behind a slow disk).
pub const LATENCY_BOUNDS_US: [u64; 14] =
    [50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000];

/// The live counters.
#[derive(Debug, Default)]
pub struct ServerStats {
    transactions: AtomicU64,
    sum_us: AtomicU64,
    /// Per bucket (not cumulative); the last is above every bound.
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// `transact` requests answered (committed, failed or refused).
    pub transactions: u64,
    /// Their latencies summed, in microseconds.
    pub latency_sum_us: u64,
    /// Cumulative counts per bound of [`LATENCY_BOUNDS_US`], as Prometheus histograms want;
    /// the count above the last bound is `transactions` minus the last entry.
    pub latency_le: Vec<(u64, u64)>,
}

impl ServerStats {
    /// One transaction answered `took` after it arrived.
    pub fn transaction(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BOUNDS_US.iter().position(|b| us <= *b).unwrap_or(LATENCY_BOUNDS_US.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.transactions.fetch_add(1, Relaxed);
    }

    /// The counters now, with the buckets made cumulative.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut acc = 0;
        let latency_le = LATENCY_BOUNDS_US
            .iter()
            .zip(&self.buckets)
            .map(|(bound, n)| {
                acc += n.load(Relaxed);
                (*bound, acc)
            })
            .collect();
        // Read last: a transaction counted in a bucket is counted here too.
        let transactions = self.transactions.load(Relaxed).max(acc);
        StatsSnapshot { transactions, latency_sum_us: self.sum_us.load(Relaxed), latency_le }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let s = ServerStats::default();
        for us in [10, 50, 51, 3_000, 9_000_000] {
            s.transaction(Duration::from_micros(us));
        }
        let snap = s.snapshot();
        assert_eq!(snap.transactions, 5);
        assert_eq!(snap.latency_sum_us, 10 + 50 + 51 + 3_000 + 9_000_000);
        let le = |b| snap.latency_le.iter().find(|(x, _)| *x == b).map(|(_, n)| *n);
        assert_eq!(
            (le(50), le(100), le(2_500), le(5_000), le(5_000_000)),
            (Some(2), Some(3), Some(3), Some(4), Some(4))
        );
    }
}
