//! The hasher of the MAC table: foldhash (a multiply-fold hash, ~10 instructions for one `u64`
//! against ~150 for std's SipHash-1-3 over a `(u16, MacAddr)` tuple) keyed per table with secret
//! seeds drawn from std's `RandomState`, whose keys come from the operating system's entropy.
//!
//! The keys are attacker-chosen: any host on an uplink picks its source MACs (a VM port learns
//! at most its allowed MACs). Foldhash's own `RandomState` seeds itself from ASLR and the clock;
//! seeding it from OS entropy instead leaves an attacker who cannot read our memory no way to
//! aim collisions at one bucket. Even a table filled with colliding keys stays bounded by
//! `mac-table-size` (8192 by default), so the worst case is slower learning, not unbounded work.

use std::hash::{BuildHasher, RandomState};

use foldhash::fast::FoldHasher;
use foldhash::SharedSeed;

/// A `BuildHasher` whose every hasher uses the same two secret seeds, fixed at construction.
#[derive(Clone, Debug)]
pub(crate) struct KeyedState {
    per_hasher: u64,
    shared: SharedSeed,
}

impl KeyedState {
    /// Fresh secret seeds (each call draws new ones).
    pub fn new() -> KeyedState {
        let entropy = RandomState::new();
        KeyedState { per_hasher: entropy.hash_one(0u8), shared: SharedSeed::from_u64(entropy.hash_one(1u8)) }
    }
}

impl BuildHasher for KeyedState {
    type Hasher = FoldHasher;

    #[inline]
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher::with_seed(self.per_hasher, &self.shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_per_table_and_stable_within_one() {
        let (a, b) = (KeyedState::new(), KeyedState::new());
        assert_eq!(a.hash_one(0x000a_5254_0000_0001_u64), a.hash_one(0x000a_5254_0000_0001_u64));
        // 64 keys hashing the same under two independent seeds would be a 2^-4096 accident.
        let same = (0..64u64).filter(|k| a.hash_one(k) == b.hash_one(k)).count();
        assert!(same < 64, "the seeds differ between tables");
        let c = a.clone();
        assert_eq!(a.hash_one(7u64), c.hash_one(7u64), "a clone (trace's copy) finds the same entries");
    }
}
