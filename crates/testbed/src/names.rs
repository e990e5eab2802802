//! Unique names for namespaces and links, so parallel test threads and processes never collide.

use std::sync::atomic::{AtomicU32, Ordering};

/// Longest Linux interface name (IFNAMSIZ - 1).
const MAX_LEN: usize = 15;
/// Width of the base-36 PID and counter fields; fixed so different (pid, counter) pairs can never
/// print the same.
const FIELD: usize = 5;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `prefix` (first 5 name-safe characters) + PID + per-process counter, at most 15 bytes.
///
/// The PID field is exact (pid_max is at most 2^22 < 36^5), so names from concurrent processes
/// differ; the counter makes names within a process differ (wraps after 36^5 calls).
pub fn unique(prefix: &str) -> String {
    let mut name: String = prefix
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(MAX_LEN - 2 * FIELD)
        .collect();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    push_base36(&mut name, std::process::id());
    push_base36(&mut name, n);
    name
}

fn push_base36(out: &mut String, mut v: u32) {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut buf = [b'0'; FIELD];
    for d in buf.iter_mut().rev() {
        *d = DIGITS[(v % 36) as usize];
        v /= 36;
    }
    out.extend(buf.iter().map(|&b| char::from(b)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_short_and_distinct() {
        let mut seen = HashSet::new();
        for p in ["", "ns", "veth-long-prefix", "a b/c", "ééé"] {
            for _ in 0..100 {
                let n = unique(p);
                assert!(!n.is_empty() && n.len() <= MAX_LEN, "{n}");
                assert!(n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                assert!(seen.insert(n));
            }
        }
        assert!(unique("vethx").starts_with("vethx"));
        assert!(unique("verylong").starts_with("veryl"));
    }
}
