//! What the kernel's bindings map should hold: the IPv4 sources each served port may use, as
//! the pipeline's binding table has them (configured allowed-ips and DHCP-snooped leases), kept
//! as a pure shadow so only changes reach the map. No syscalls here.

use std::collections::HashMap;

use crate::maps::Binding;

/// A change to make to the bindings map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindOp {
    Set(Binding, u64),
    Remove(Binding),
}

/// How long before the pipeline's end of a lease the kernel stops honouring it: the two clocks
/// are read a moment apart, and the kernel must never be the one still forwarding.
pub const EXPIRY_MARGIN_NS: u64 = 1_000_000_000;

/// The kernel time (`bpf_ktime_get_ns`, `kernel_now_ns` now) at which a binding the pipeline
/// holds until `until_ms` (its clock reads `now_ms` now) stops holding, minus the margin.
/// `u64::MAX` (configured addresses) never ends.
pub fn until_ns(until_ms: u64, now_ms: u64, kernel_now_ns: u64) -> u64 {
    if until_ms == u64::MAX {
        return u64::MAX;
    }
    let left_ns = until_ms.saturating_sub(now_ms).saturating_mul(1_000_000);
    kernel_now_ns.saturating_add(left_ns).saturating_sub(EXPIRY_MARGIN_NS)
}

/// The bindings as last written.
#[derive(Debug, Default)]
pub struct BindMirror {
    written: HashMap<Binding, u64>,
}

impl BindMirror {
    pub fn len(&self) -> usize {
        self.written.len()
    }

    pub fn is_empty(&self) -> bool {
        self.written.is_empty()
    }

    /// The map is to hold exactly `want` from now on: removals first (an address a port lost
    /// must stop being forwarded before anything else changes), then new or changed entries.
    pub fn update(&mut self, want: HashMap<Binding, u64>) -> Vec<BindOp> {
        let mut ops: Vec<BindOp> =
            self.written.keys().filter(|b| !want.contains_key(b)).map(|b| BindOp::Remove(*b)).collect();
        for (b, until) in &want {
            if self.written.get(b) != Some(until) {
                ops.push(BindOp::Set(*b, *until));
            }
        }
        self.written = want;
        ops
    }

    /// Removes every binding of the devices in `gone` (released: their ifindex may come back
    /// for another port, which must not inherit them).
    pub fn forget(&mut self, gone: impl Fn(u32) -> bool) -> Vec<BindOp> {
        let mut ops = Vec::new();
        self.written.retain(|b, _| {
            let keep = !gone(b.data.ifindex);
            if !keep {
                ops.push(BindOp::Remove(*b));
            }
            keep
        });
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::BindData;

    fn b(ifindex: u32, last: u8) -> Binding {
        Binding { data: BindData { ifindex, ip: [198, 18, 0, last] }, len: 32 }
    }

    #[test]
    fn only_changes_are_written_and_removals_come_first() {
        let mut m = BindMirror::default();
        let ops = m.update(HashMap::from([(b(1, 1), 10), (b(1, 2), u64::MAX)]));
        assert_eq!(ops.len(), 2);
        assert!(m.update(HashMap::from([(b(1, 1), 10), (b(1, 2), u64::MAX)])).is_empty());
        let ops = m.update(HashMap::from([(b(1, 1), 20), (b(2, 3), 5)]));
        assert_eq!(ops[0], BindOp::Remove(b(1, 2)));
        assert_eq!(ops.len(), 3);
        assert_eq!(m.len(), 2);
        assert_eq!(m.forget(|i| i == 2), vec![BindOp::Remove(b(2, 3))]);
        assert_eq!(m.update(HashMap::new()).len(), 1);
        assert!(m.is_empty());
    }

    #[test]
    fn kernel_deadline_ends_before_the_lease() {
        assert_eq!(until_ns(u64::MAX, 5, 100), u64::MAX);
        // 10 s left at kernel time 50 s: the kernel stops at 59 s.
        assert_eq!(until_ns(20_000, 10_000, 50_000_000_000), 59_000_000_000);
        // Already over (or within the margin): in the past for the kernel.
        assert!(until_ns(10_000, 10_000, 50_000_000_000) < 50_000_000_000);
        assert_eq!(until_ns(0, 10_000, 0), 0);
    }
}
