//! What the kernel's flow map should hold, kept as a pure shadow of it: the map mirrors the
//! pipeline's MAC table for ports whose device carries the program, and only this code decides
//! which entries go in or out (the shell applies the [`Op`]s). No syscalls here.

use std::collections::HashMap;

use packet::{EthernetHeader, MacAddr};
use switch::PortVlan;

use crate::maps::{flow_val, FlowKey, FlowVal};

/// A change to make to the kernel's flow map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Set(FlowKey, FlowVal),
    Remove(FlowKey),
}

/// A port with a fast-path device, as the mirror needs it.
#[derive(Clone, Copy, Debug)]
pub struct KernelPort<'a> {
    pub bridge: u32,
    pub ifindex: u32,
    pub vlan: &'a PortVlan,
}

/// The shadow of the flow map: key → entry as last written, plus the last-seen stamp as last
/// read back (to tell which sources the kernel forwarded since).
#[derive(Debug, Default)]
pub struct Mirror {
    flows: HashMap<FlowKey, Entry>,
}

/// One entry, packed: 24 bytes with its key instead of 40 (100k MACs: 3.3 MB of table, not
/// 5.4). The stamp is only compared for change, so a 32-bit fold of it is enough.
#[derive(Clone, Copy, Debug)]
struct Entry {
    ifindex: u32,
    vid: u16,
    seen: u32,
}

impl Entry {
    fn new(v: &FlowVal, seen_ns: u64) -> Entry {
        Entry { ifindex: v.ifindex, vid: v.vid, seen: fold(seen_ns) }
    }

    fn val(&self) -> FlowVal {
        FlowVal { ifindex: self.ifindex, vid: self.vid, pad: 0, seen_ns: 0 }
    }
}

/// A stamp folded to 32 bits; 0 stays 0 ("never forwarded by the kernel").
fn fold(ns: u64) -> u32 {
    (ns ^ (ns >> 32)) as u32
}

impl Mirror {
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// After the pipeline handled `frame` from `port`: when `learned_here(vlan, src)` (the
    /// pipeline's MAC table now has the source on this very port), the entry that lets the
    /// kernel forward to and from that source. `None` when the map already says so, or the
    /// frame is nothing the pipeline learns from.
    pub fn observe(
        &mut self,
        port: KernelPort<'_>,
        frame: &[u8],
        learned_here: impl FnOnce(u16, MacAddr) -> bool,
    ) -> Option<Op> {
        let eth = EthernetHeader::parse(frame).ok()?;
        if eth.src.is_multicast() {
            return None;
        }
        let vlan = port.vlan.ingress_vlan(eth.vlan.map(|t| t.vid))?;
        let key = FlowKey::new(port.bridge, vlan, eth.src);
        let val = flow_val(port.vlan, vlan, port.ifindex)?;
        if self.flows.get(&key).is_some_and(|e| same(&e.val(), &val)) || !learned_here(vlan, eth.src) {
            return None;
        }
        self.flows.insert(key, Entry::new(&val, 0));
        Some(Op::Set(key, val))
    }

    /// After the pipeline handled `frame` from a port *without* a fast-path device (a tap) of
    /// bridge `bridge` with VLAN rules `vlan`: a source the map places elsewhere has moved here,
    /// so its entry goes at once (the next frames to it need the slow path, which knows).
    pub fn moved_off(&mut self, bridge: u32, vlan: &PortVlan, frame: &[u8]) -> Option<Op> {
        let eth = EthernetHeader::parse(frame).ok()?;
        let v = vlan.ingress_vlan(eth.vlan.map(|t| t.vid))?;
        let key = FlowKey::new(bridge, v, eth.src);
        self.flows.remove(&key).map(|_| Op::Remove(key))
    }

    pub fn contains(&self, key: &FlowKey) -> bool {
        self.flows.contains_key(key)
    }

    /// Takes on an entry the kernel's map already has (a previous daemon wrote it and the
    /// pipeline now backs it), with its last-seen stamp as read: no write needed.
    pub fn adopt(&mut self, key: FlowKey, val: FlowVal) {
        self.flows.insert(key, Entry::new(&val, val.seen_ns));
    }

    /// Removes every entry `keep` rejects (aged, evicted, moved, port gone or reconfigured).
    pub fn retain(&mut self, mut keep: impl FnMut(&FlowKey, &FlowVal) -> bool) -> Vec<Op> {
        let mut ops = Vec::new();
        self.flows.retain(|k, e| {
            let ok = keep(k, &e.val());
            if !ok {
                ops.push(Op::Remove(*k));
            }
            ok
        });
        ops
    }

    /// Feeds back the kernel's last-seen stamps (`read(key)`, a syscall each) for slice
    /// `slice.0` of `slice.1` of the entries; returns those whose source the kernel forwarded
    /// since they were last read, for the pipeline to refresh. Reading a slice per tick bounds
    /// the syscalls: 100k MACs in 100 slices cost 1000 reads a second, and each entry is still
    /// read every 100 ticks, well within an aging time of 300 s.
    pub fn seen_since(
        &mut self,
        slice: (u64, u64),
        mut read: impl FnMut(&FlowKey) -> Option<u64>,
    ) -> Vec<(FlowKey, FlowVal)> {
        let (part, parts) = (slice.0, slice.1.max(1));
        let mut fresh = Vec::new();
        for (k, e) in self.flows.iter_mut() {
            if bucket(k) % parts != part % parts {
                continue;
            }
            if let Some(now) = read(k).map(fold) {
                if now != e.seen {
                    e.seen = now;
                    fresh.push((*k, e.val()));
                }
            }
        }
        fresh
    }
}

/// A stable spread of keys over slices (FNV-1a over the key's fields).
fn bucket(k: &FlowKey) -> u64 {
    let bytes = k.bridge.to_le_bytes().into_iter().chain(k.vlan.to_le_bytes()).chain(k.mac);
    bytes.fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Same entry apart from the stamp the kernel keeps.
fn same(a: &FlowVal, b: &FlowVal) -> bool {
    a.ifindex == b.ifindex && a.vid == b.vid
}

#[cfg(test)]
mod tests {
    use packet::{ethernet_frame, FrameSpec, VlanTag};

    use super::*;

    fn frame(src: u8, vid: Option<u16>) -> Vec<u8> {
        let mut buf = vec![0u8; 64];
        let spec = FrameSpec {
            dst: MacAddr([2, 0, 0, 0, 0, 0xff]),
            src: MacAddr([2, 0, 0, 0, 0, src]),
            vlan: vid.map(|v| VlanTag::vid(v).unwrap()),
            ethertype: 0x88b5,
        };
        let n = ethernet_frame(&mut buf, &spec, &[0; 46]).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn entry_written_once_and_only_when_learned_here() {
        let vlan = PortVlan::access(10);
        let port = KernelPort { bridge: 1, ifindex: 7, vlan: &vlan };
        let mut m = Mirror::default();
        assert_eq!(m.observe(port, &frame(1, None), |_, _| false), None, "not in the MAC table");
        let op = m.observe(port, &frame(1, None), |v, _| v == 10);
        let key = FlowKey::new(1, 10, MacAddr([2, 0, 0, 0, 0, 1]));
        assert!(matches!(op, Some(Op::Set(k, v)) if k == key && v.ifindex == 7 && v.vid == 0));
        assert_eq!(m.observe(port, &frame(1, None), |_, _| true), None, "already mirrored");
        assert_eq!(m.observe(port, &frame(1, Some(10)), |_, _| true), None, "access port drops tagged");
        // The MAC moves to another port: the entry is rewritten there.
        let moved = KernelPort { ifindex: 8, ..port };
        assert!(
            matches!(m.observe(moved, &frame(1, None), |_, _| true), Some(Op::Set(_, v)) if v.ifindex == 8)
        );
        assert_eq!(m.retain(|_, v| v.ifindex != 8), vec![Op::Remove(key)]);
        assert!(m.is_empty());
    }

    #[test]
    fn a_source_seen_on_a_tap_loses_its_entry() {
        let vlan = PortVlan::access(10);
        let mut m = Mirror::default();
        m.observe(KernelPort { bridge: 1, ifindex: 7, vlan: &vlan }, &frame(1, None), |_, _| true).unwrap();
        assert_eq!(m.moved_off(2, &vlan, &frame(1, None)), None, "another bridge");
        assert!(matches!(m.moved_off(1, &vlan, &frame(1, None)), Some(Op::Remove(_))));
        assert!(m.is_empty());
        assert_eq!(m.moved_off(1, &vlan, &frame(1, None)), None);
    }

    #[test]
    fn stamps_report_each_change_once() {
        let vlan = PortVlan::access(10);
        let port = KernelPort { bridge: 1, ifindex: 7, vlan: &vlan };
        let mut m = Mirror::default();
        m.observe(port, &frame(1, None), |_, _| true).unwrap();
        assert!(m.seen_since((0, 1), |_| Some(0)).is_empty(), "never forwarded by the kernel");
        assert_eq!(m.seen_since((0, 1), |_| Some(5)).len(), 1);
        assert!(m.seen_since((0, 1), |_| Some(5)).is_empty());
    }

    #[test]
    fn slices_read_every_entry_once_per_round() {
        let vlan = PortVlan::access(10);
        let port = KernelPort { bridge: 1, ifindex: 7, vlan: &vlan };
        let mut m = Mirror::default();
        for src in 0..40 {
            m.observe(port, &frame(src, None), |_, _| true).unwrap();
        }
        let mut reads = 0;
        let fresh: usize = (0..8)
            .map(|part| {
                m.seen_since((part, 8), |_| {
                    reads += 1;
                    Some(1)
                })
                .len()
            })
            .sum();
        assert_eq!((reads, fresh), (40, 40), "each entry read once over the 8 slices");
    }
}
