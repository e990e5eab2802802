//! Sorted-vector sets and maps for column values.
//!
//! Most OVSDB values are scalars or a handful of pairs, and a `BTreeSet` /
//! `BTreeMap` allocates a whole 11-slot node (~300–700 B) for even one element:
//! at 1000 ports that was the bulk of the database's memory (issue 13). A
//! sorted, deduplicated `Vec` keeps the same canonical order, equality and
//! ordering (lexicographic over the elements, as the B-trees' are) and
//! O(log n) lookup, in one exact-size allocation.

use std::fmt;

/// A set kept as a sorted vector without duplicates.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortedSet<T>(Vec<T>);

impl<T> Default for SortedSet<T> {
    fn default() -> Self {
        SortedSet(Vec::new())
    }
}

impl<T: Ord> SortedSet<T> {
    /// An empty set (allocates nothing).
    pub fn new() -> Self {
        SortedSet(Vec::new())
    }

    /// Inserts `x`; false if it was already present.
    pub fn insert(&mut self, x: T) -> bool {
        match self.0.binary_search(&x) {
            Ok(_) => false,
            Err(i) => {
                self.0.insert(i, x);
                true
            }
        }
    }

    /// True if `x` is an element.
    pub fn contains(&self, x: &T) -> bool {
        self.0.binary_search(x).is_ok()
    }

    /// The elements in ascending order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True if every element of `self` is in `other`.
    pub fn is_subset(&self, other: &Self) -> bool {
        self.iter().all(|x| other.contains(x))
    }

    /// True if no element of `self` is in `other`.
    pub fn is_disjoint(&self, other: &Self) -> bool {
        !self.iter().any(|x| other.contains(x))
    }

    /// Elements of `self` and `other`.
    pub fn union<'a>(&'a self, other: &'a Self) -> impl Iterator<Item = &'a T> {
        self.iter().chain(other.iter().filter(|x| !self.contains(x)))
    }

    /// Elements of `self` not in `other`.
    pub fn difference<'a>(&'a self, other: &'a Self) -> impl Iterator<Item = &'a T> {
        self.iter().filter(|x| !other.contains(x))
    }

    /// Elements in exactly one of `self` and `other`.
    pub fn symmetric_difference<'a>(&'a self, other: &'a Self) -> impl Iterator<Item = &'a T> {
        self.difference(other).chain(other.difference(self))
    }
}

impl<T: Ord> FromIterator<T> for SortedSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(it: I) -> Self {
        let mut v: Vec<T> = it.into_iter().collect();
        v.sort();
        v.dedup();
        v.shrink_to_fit();
        SortedSet(v)
    }
}

impl<T: Ord, const N: usize> From<[T; N]> for SortedSet<T> {
    fn from(a: [T; N]) -> Self {
        a.into_iter().collect()
    }
}

impl<'a, T> IntoIterator for &'a SortedSet<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T: fmt::Debug> fmt::Debug for SortedSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.iter()).finish()
    }
}

/// A map kept as a vector of pairs sorted by key, keys unique.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortedMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        SortedMap(Vec::new())
    }
}

impl<K: Ord, V> SortedMap<K, V> {
    /// An empty map (allocates nothing).
    pub fn new() -> Self {
        SortedMap(Vec::new())
    }

    fn find(&self, k: &K) -> Result<usize, usize> {
        self.0.binary_search_by(|(x, _)| x.cmp(k))
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        match self.find(&k) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, v)),
            Err(i) => {
                self.0.insert(i, (k, v));
                None
            }
        }
    }

    /// The value for `k`.
    pub fn get(&self, k: &K) -> Option<&V> {
        self.find(k).ok().map(|i| &self.0[i].1)
    }

    /// True if `k` is a key.
    pub fn contains_key(&self, k: &K) -> bool {
        self.find(k).is_ok()
    }

    /// Removes `k`; returns its value.
    pub fn remove(&mut self, k: &K) -> Option<V> {
        self.find(k).ok().map(|i| self.0.remove(i).1)
    }

    /// Pairs in ascending key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// Keys in ascending order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.iter().map(|(k, _)| k)
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Later pairs win over earlier ones with the same key, as in `BTreeMap`.
impl<K: Ord, V> FromIterator<(K, V)> for SortedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(it: I) -> Self {
        let mut v: Vec<(K, V)> = it.into_iter().collect();
        // Stable sort keeps equal keys in input order; keep the last of each run.
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(K, V)> = Vec::with_capacity(v.len());
        for p in v {
            match out.last_mut() {
                Some(last) if last.0 == p.0 => *last = p,
                _ => out.push(p),
            }
        }
        out.shrink_to_fit();
        SortedMap(out)
    }
}

impl<'a, K, V> IntoIterator for &'a SortedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for SortedMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(k, v)| (k, v))).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    proptest! {
        /// Same contents, order and comparisons as the B-tree types it replaces.
        #[test]
        fn set_matches_btreeset(a in proptest::collection::vec(0u8..16, 0..12), b in proptest::collection::vec(0u8..16, 0..12)) {
            let (ba, bb): (BTreeSet<u8>, BTreeSet<u8>) = (a.iter().copied().collect(), b.iter().copied().collect());
            let (sa, sb): (SortedSet<u8>, SortedSet<u8>) = (a.iter().copied().collect(), b.iter().copied().collect());
            prop_assert!(sa.iter().eq(ba.iter()));
            prop_assert_eq!(sa.cmp(&sb), ba.cmp(&bb));
            prop_assert_eq!(sa.is_subset(&sb), ba.is_subset(&bb));
            prop_assert_eq!(sa.is_disjoint(&sb), ba.is_disjoint(&bb));
            let u: SortedSet<u8> = sa.union(&sb).copied().collect();
            prop_assert!(u.iter().eq(ba.union(&bb)));
            let d: SortedSet<u8> = sa.difference(&sb).copied().collect();
            prop_assert!(d.iter().eq(ba.difference(&bb)));
            let x: SortedSet<u8> = sa.symmetric_difference(&sb).copied().collect();
            prop_assert!(x.iter().eq(ba.symmetric_difference(&bb)));
            let mut i = sa.clone();
            let mut bi = ba.clone();
            for e in &b {
                prop_assert_eq!(i.insert(*e), bi.insert(*e));
            }
            prop_assert!(i.iter().eq(bi.iter()));
        }

        #[test]
        fn map_matches_btreemap(a in proptest::collection::vec((0u8..8, 0u8..4), 0..10), b in proptest::collection::vec((0u8..8, 0u8..4), 0..10)) {
            let (ba, bb): (BTreeMap<u8, u8>, BTreeMap<u8, u8>) = (a.iter().copied().collect(), b.iter().copied().collect());
            let (sa, sb): (SortedMap<u8, u8>, SortedMap<u8, u8>) = (a.iter().copied().collect(), b.iter().copied().collect());
            prop_assert!(sa.iter().eq(ba.iter()));
            prop_assert_eq!(sa.cmp(&sb), ba.cmp(&bb));
            let mut m = sa.clone();
            let mut bm = ba.clone();
            for (k, v) in &b {
                prop_assert_eq!(m.insert(*k, *v), bm.insert(*k, *v));
                prop_assert_eq!(m.get(k), bm.get(k));
            }
            for (k, _) in &a {
                prop_assert_eq!(m.remove(k), bm.remove(k));
                prop_assert_eq!(m.contains_key(k), bm.contains_key(k));
            }
            prop_assert!(m.iter().eq(bm.iter()));
            prop_assert!(m.keys().eq(bm.keys()));
        }
    }
}
