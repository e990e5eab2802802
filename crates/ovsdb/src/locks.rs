//! Named locks (RFC 7047 §4.1.8–4.1.10): lock, steal, unlock.
//!
//! Pure bookkeeping: methods return which session must be notified so the
//! caller can send "locked"/"stolen" without this module knowing about sockets.

use std::collections::{HashMap, VecDeque};

/// Identifies one client connection or in-process session.
pub type SessionId = u64;

/// Owners and waiters of every lock. The front of each queue owns the lock.
#[derive(Debug, Default)]
pub struct LockManager {
    locks: HashMap<String, VecDeque<SessionId>>,
}

impl LockManager {
    /// Does `s` own `name`?
    pub fn owns(&self, name: &str, s: SessionId) -> bool {
        self.locks.get(name).and_then(|q| q.front()) == Some(&s)
    }

    /// Is `s` owning or waiting for `name`?
    pub fn involved(&self, name: &str, s: SessionId) -> bool {
        self.locks.get(name).is_some_and(|q| q.contains(&s))
    }

    /// Requests the lock; returns true when granted immediately.
    pub fn lock(&mut self, name: &str, s: SessionId) -> bool {
        let q = self.locks.entry(name.to_string()).or_default();
        if !q.contains(&s) {
            q.push_back(s);
        }
        q.front() == Some(&s)
    }

    /// Takes the lock; returns the previous owner, who loses it.
    pub fn steal(&mut self, name: &str, s: SessionId) -> Option<SessionId> {
        let q = self.locks.entry(name.to_string()).or_default();
        q.retain(|x| *x != s);
        let prev = q.pop_front();
        q.push_front(s);
        prev
    }

    /// Releases or stops waiting; returns the new owner to notify, if any.
    pub fn unlock(&mut self, name: &str, s: SessionId) -> Option<SessionId> {
        let q = self.locks.get_mut(name)?;
        let was_owner = q.front() == Some(&s);
        q.retain(|x| *x != s);
        let next = if was_owner { q.front().copied() } else { None };
        if q.is_empty() {
            self.locks.remove(name);
        }
        next
    }

    /// Drops everything `s` holds or waits for; returns (lock, new owner) pairs.
    pub fn release_all(&mut self, s: SessionId) -> Vec<(String, SessionId)> {
        let names: Vec<String> =
            self.locks.iter().filter(|(_, q)| q.contains(&s)).map(|(n, _)| n.clone()).collect();
        names.into_iter().filter_map(|n| self.unlock(&n, s).map(|o| (n, o))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_and_steal() {
        let mut m = LockManager::default();
        assert!(m.lock("a", 1));
        assert!(!m.lock("a", 2));
        assert!(m.owns("a", 1));
        assert_eq!(m.unlock("a", 1), Some(2));
        assert!(m.owns("a", 2));
        assert_eq!(m.steal("a", 3), Some(2));
        assert!(m.owns("a", 3) && !m.involved("a", 2));
        assert_eq!(m.release_all(3), vec![]);
        assert!(!m.owns("a", 3));
    }
}
