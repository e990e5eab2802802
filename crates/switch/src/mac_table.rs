//! The MAC learning table of one bridge: (VLAN, MAC) → port, with aging and a size limit.
//!
//! Entries live in a slab threaded on an intrusive LRU list, so learning (touch), lookup, aging
//! (pop from the old end) and eviction of the oldest are all O(1) and allocation-free once the
//! slab reached its size.

use std::collections::HashMap;

use packet::MacAddr;
use serde::{Deserialize, Serialize};

use crate::keyed_hash::KeyedState;
use crate::Millis;

const NIL: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Slot {
    vlan: u16,
    mac: MacAddr,
    port: u32,
    last_seen: Millis,
    prev: u32,
    next: u32,
}

/// One learned address, as `rvsctl fdb show` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdbEntry {
    pub port: String,
    pub vlan: u16,
    pub mac: String,
    /// Seconds since the address was last seen.
    pub age: u64,
}

/// Lifetime counts of what the table did, for `fdb/stats-show` and metrics (OvS's
/// `total_learned`, `total_expired`, `total_evicted`, `total_moved`). They only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacStats {
    /// Entries now in the table.
    pub entries: usize,
    /// The table's size limit.
    pub limit: usize,
    pub learned: u64,
    pub expired: u64,
    pub evicted: u64,
    /// Addresses seen again on another port than the one they were learned on.
    pub moved: u64,
}

/// MAC table. `port` values are opaque to the table (the bridge uses port slots). `Clone` makes
/// the scratch copy `trace` runs the pipeline on.
#[derive(Clone, Debug)]
pub struct MacTable {
    /// [`key`] → slab index. Keyed hashing: the MACs are chosen by whoever sends frames.
    index: HashMap<u64, u32, KeyedState>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Least recently seen.
    head: u32,
    /// Most recently seen.
    tail: u32,
    limit: usize,
    aging_ms: Millis,
    evictions: u64,
    learned: u64,
    expired: u64,
    moved: u64,
    /// Entries per port, for per-port MAC limits.
    per_port: HashMap<u32, usize>,
}

impl MacTable {
    pub fn new(limit: usize, aging_ms: Millis) -> MacTable {
        MacTable {
            index: HashMap::with_capacity_and_hasher(limit.min(1 << 16), KeyedState::new()),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            limit: limit.max(1),
            aging_ms,
            evictions: 0,
            learned: 0,
            expired: 0,
            moved: 0,
            per_port: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    pub fn stats(&self) -> MacStats {
        MacStats {
            entries: self.len(),
            limit: self.limit,
            learned: self.learned,
            expired: self.expired,
            evicted: self.evictions,
            moved: self.moved,
        }
    }

    /// Changes the limit and aging time; shrinking evicts the oldest entries at once.
    pub fn set_limits(&mut self, limit: usize, aging_ms: Millis) {
        self.limit = limit.max(1);
        self.aging_ms = aging_ms;
        while self.index.len() > self.limit {
            self.evict_oldest();
        }
    }

    /// Records that `mac` on `vlan` was seen on `port` at `now`. Returns the port it was
    /// learned on before when it moved (for the move event).
    pub fn learn(&mut self, vlan: u16, mac: MacAddr, port: u32, now: Millis) -> Option<u32> {
        if let Some(&i) = self.index.get(&key(vlan, mac)) {
            let s = &mut self.slots[i as usize];
            let old = std::mem::replace(&mut s.port, port);
            if old != port {
                self.moved += 1;
            }
            s.last_seen = now;
            if old != port {
                self.uncount(old);
                *self.per_port.entry(port).or_default() += 1;
            }
            if self.tail != i {
                self.unlink(i);
                self.push_tail(i);
            }
            return (old != port).then_some(old);
        }
        if self.index.len() >= self.limit {
            self.evict_oldest();
        }
        let slot = Slot { vlan, mac, port, last_seen: now, prev: NIL, next: NIL };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(key(vlan, mac), i);
        *self.per_port.entry(port).or_default() += 1;
        self.push_tail(i);
        self.learned += 1;
        None
    }

    /// How many entries (live or not yet expired by [`MacTable::expire`]) `port` has.
    pub fn port_count(&self, port: u32) -> usize {
        self.per_port.get(&port).copied().unwrap_or(0)
    }

    fn uncount(&mut self, port: u32) {
        if let Some(n) = self.per_port.get_mut(&port) {
            *n -= 1;
            if *n == 0 {
                self.per_port.remove(&port);
            }
        }
    }

    /// The port `mac` was learned on in `vlan`, unless unknown or expired at `now`.
    pub fn lookup(&self, vlan: u16, mac: MacAddr, now: Millis) -> Option<u32> {
        let i = *self.index.get(&key(vlan, mac))?;
        let s = &self.slots[i as usize];
        (now.saturating_sub(s.last_seen) < self.aging_ms).then_some(s.port)
    }

    /// Drops entries not seen for the aging time. Returns how many expired.
    pub fn expire(&mut self, now: Millis) -> usize {
        let mut n = 0;
        while self.head != NIL {
            let s = &self.slots[self.head as usize];
            if now.saturating_sub(s.last_seen) < self.aging_ms {
                break;
            }
            self.remove_slot(self.head);
            n += 1;
        }
        self.expired += n as u64;
        n
    }

    /// Forgets every address learned on `port` (port removed or reconfigured).
    pub fn flush_port(&mut self, port: u32) {
        self.retain_ports(|p| p != port);
    }

    /// Keeps only entries whose port satisfies `keep`.
    pub fn retain_ports(&mut self, mut keep: impl FnMut(u32) -> bool) {
        let doomed: Vec<u32> =
            self.index.values().copied().filter(|i| !keep(self.slots[*i as usize].port)).collect();
        for i in doomed {
            self.remove_slot(i);
        }
    }

    /// Rewrites port numbers (used when the bridge renumbers its port slots).
    pub fn remap_ports(&mut self, mut map: impl FnMut(u32) -> u32) {
        self.per_port.clear();
        for i in self.index.values() {
            let s = &mut self.slots[*i as usize];
            s.port = map(s.port);
            *self.per_port.entry(s.port).or_default() += 1;
        }
    }

    pub fn clear(&mut self) {
        self.index.clear();
        self.per_port.clear();
        self.slots.clear();
        self.free.clear();
        self.head = NIL;
        self.tail = NIL;
    }

    /// Live entries, oldest first.
    pub fn entries(&self, now: Millis) -> Vec<(u16, MacAddr, u32, Millis)> {
        let mut out = Vec::with_capacity(self.index.len());
        let mut i = self.head;
        while i != NIL {
            let s = &self.slots[i as usize];
            let age = now.saturating_sub(s.last_seen);
            if age < self.aging_ms {
                out.push((s.vlan, s.mac, s.port, age));
            }
            i = s.next;
        }
        out
    }

    fn evict_oldest(&mut self) {
        if self.head != NIL {
            self.remove_slot(self.head);
            self.evictions += 1;
        }
    }

    fn remove_slot(&mut self, i: u32) {
        self.unlink(i);
        let s = &self.slots[i as usize];
        let (k, port) = (key(s.vlan, s.mac), s.port);
        self.index.remove(&k);
        self.uncount(port);
        self.free.push(i);
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
        let s = &mut self.slots[i as usize];
        s.prev = NIL;
        s.next = NIL;
    }

    fn push_tail(&mut self, i: u32) {
        let old_tail = self.tail;
        {
            let s = &mut self.slots[i as usize];
            s.prev = old_tail;
            s.next = NIL;
        }
        if old_tail == NIL {
            self.head = i;
        } else {
            self.slots[old_tail as usize].next = i;
        }
        self.tail = i;
    }
}

/// One `u64` per (VLAN, MAC): the 12-bit VLAN above the 48-bit MAC, so a lookup hashes a
/// single word instead of a tuple and a byte array.
#[inline]
fn key(vlan: u16, mac: MacAddr) -> u64 {
    u64::from(vlan) << 48 | mac.key()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u32) -> MacAddr {
        let b = n.to_be_bytes();
        MacAddr([0x52, 0x54, b[0], b[1], b[2], b[3]])
    }

    #[test]
    fn learn_lookup_move() {
        let mut t = MacTable::new(10, 300_000);
        t.learn(10, mac(1), 1, 0);
        assert_eq!(t.lookup(10, mac(1), 5), Some(1));
        assert_eq!(t.lookup(20, mac(1), 5), None, "keyed by VLAN too");
        t.learn(10, mac(1), 2, 10);
        assert_eq!(t.lookup(10, mac(1), 11), Some(2), "station moved");
        assert_eq!(t.len(), 1);
        t.learn(10, mac(1), 2, 12); // seen again on the same port: a refresh, not a move
        let st = t.stats();
        assert_eq!((st.learned, st.moved, st.entries, st.limit), (1, 1, 1, 10));
    }

    #[test]
    fn keys_keep_vlan_and_mac_apart() {
        assert_ne!(key(1, MacAddr([0; 6])), key(0, MacAddr::BROADCAST));
        assert_eq!(key(0xffff, MacAddr::BROADCAST), u64::MAX);
        assert_eq!(key(10, mac(1)), 0x000a_0100_0000_5452);
    }

    #[test]
    fn aging_with_injected_time() {
        let mut t = MacTable::new(10, 300_000);
        t.learn(1, mac(1), 1, 0);
        t.learn(1, mac(2), 1, 100_000);
        assert_eq!(t.lookup(1, mac(1), 299_999), Some(1));
        assert_eq!(t.lookup(1, mac(1), 300_000), None, "expired exactly at the aging time");
        assert_eq!(t.expire(300_000), 1);
        assert_eq!(t.len(), 1);
        t.learn(1, mac(2), 1, 350_000); // refresh
        assert_eq!(t.expire(450_000), 0);
        assert_eq!(t.expire(650_000), 1);
        assert!(t.is_empty());
        assert_eq!(t.stats().expired, 2);
    }

    #[test]
    fn limit_evicts_least_recently_seen() {
        let mut t = MacTable::new(3, 1_000_000);
        for n in 1..=3 {
            t.learn(1, mac(n), n, u64::from(n));
        }
        t.learn(1, mac(1), 1, 10); // mac 1 now newest, mac 2 oldest
        t.learn(1, mac(4), 4, 11);
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup(1, mac(2), 12), None);
        assert_eq!(t.lookup(1, mac(1), 12), Some(1));
        assert_eq!(t.lookup(1, mac(4), 12), Some(4));
        assert_eq!(t.evictions(), 1);
        t.set_limits(1, 1_000_000);
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(1, mac(4), 12), Some(4));
    }

    #[test]
    fn flush_and_remap() {
        let mut t = MacTable::new(10, 1000);
        t.learn(1, mac(1), 1, 0);
        t.learn(1, mac(2), 2, 0);
        t.flush_port(1);
        assert_eq!(t.lookup(1, mac(1), 1), None);
        t.remap_ports(|p| p + 10);
        assert_eq!(t.lookup(1, mac(2), 1), Some(12));
        let e = t.entries(1);
        assert_eq!(e.len(), 1);
    }

    proptest::proptest! {
        /// The table never exceeds its limit, and the LRU list and the index always agree.
        #[test]
        fn bounded_and_consistent(ops in proptest::collection::vec((0u32..50, 0u16..3, 0u32..4, 0u64..5000), 1..300)) {
            let mut t = MacTable::new(16, 1000);
            let mut now = 0;
            for (m, vlan, port, dt) in ops {
                now += dt / 10;
                if m % 7 == 0 { t.expire(now); }
                t.learn(vlan, mac(m), port, now);
                proptest::prop_assert!(t.len() <= 16);
                proptest::prop_assert_eq!(t.lookup(vlan, mac(m), now), Some(port));
                let mut walked = 0;
                let mut i = t.head;
                while i != NIL { walked += 1; i = t.slots[i as usize].next; }
                proptest::prop_assert_eq!(walked, t.len());
                let counted: usize = (0..4).map(|p| t.port_count(p)).sum();
                proptest::prop_assert_eq!(counted, t.len());
            }
        }
    }
}
