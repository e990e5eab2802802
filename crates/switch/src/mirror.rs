//! Port mirroring (SPAN) with Open vSwitch's meaning of the Mirror table: which frames a mirror
//! selects, and which ports get a copy. Pure: the pipeline asks [`Mirrors::select`] once per
//! forwarded frame and sends one copy per distinct output port [`Mirrors::outputs`] names.
//!
//! A frame is selected by a mirror when it arrives on one of the mirror's source ports, or the
//! pipeline sends it to one of its destination ports (or the mirror selects all), and its VLAN at
//! the bridge is one of the mirror's VLANs (none listed: every VLAN). Like OvS, an output port is
//! reserved for mirroring: the pipeline drops what arrives on it and never floods or forwards to
//! it, so it sees only copies.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// At most this many mirrors per bridge (OvS's own limit: its selections are 32-bit masks).
pub const MAX_MIRRORS: usize = 32;

/// What one mirror sent, for Mirror `statistics` (`tx_packets`, `tx_bytes`).
#[derive(Debug, Default)]
pub struct MirrorCounters {
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
}

impl MirrorCounters {
    pub fn count(&self, bytes: usize) {
        self.tx_packets.fetch_add(1, Relaxed);
        self.tx_bytes.fetch_add(bytes as u64, Relaxed);
    }

    /// `(tx_packets, tx_bytes)` now.
    pub fn read(&self) -> (u64, u64) {
        (self.tx_packets.load(Relaxed), self.tx_bytes.load(Relaxed))
    }
}

/// One mirror with its ports resolved to the bridge's slots.
#[derive(Clone, Debug, Default)]
pub struct MirrorSpec {
    pub name: String,
    pub select_all: bool,
    /// Frames received on these slots are selected.
    pub src: Vec<usize>,
    /// Frames the bridge sends to these slots are selected.
    pub dst: Vec<usize>,
    /// Only frames in these VLANs (the VLAN at the bridge); empty: every VLAN.
    pub vlans: Vec<u16>,
    /// Where the copies go; `None`: the mirror selects but sends nothing.
    pub output: Option<usize>,
    pub counters: Arc<MirrorCounters>,
}

/// The mirrors of one bridge, compiled to per-slot masks (bit `i` = mirror `i`).
#[derive(Clone, Debug, Default)]
pub struct Mirrors {
    specs: Vec<MirrorSpec>,
    all: u32,
    src: Vec<u32>,
    dst: Vec<u32>,
    /// Mirrors that restrict VLANs (the others select every VLAN).
    by_vlan: u32,
    /// Per slot: a mirror sends its copies there.
    output: Vec<bool>,
}

impl Mirrors {
    /// Compiles `specs` for a bridge of `ports` slots. Slots out of range are ignored, and so
    /// are mirrors past [`MAX_MIRRORS`] (the planner refuses those first).
    pub fn new(mut specs: Vec<MirrorSpec>, ports: usize) -> Mirrors {
        specs.truncate(MAX_MIRRORS);
        let mut m = Mirrors {
            all: 0,
            src: vec![0; ports],
            dst: vec![0; ports],
            by_vlan: 0,
            output: vec![false; ports],
            specs: Vec::new(),
        };
        for (i, s) in specs.iter_mut().enumerate() {
            let bit = 1u32 << i;
            s.output = s.output.filter(|&o| o < ports);
            if s.select_all {
                m.all |= bit;
            }
            for &p in s.src.iter().filter(|&&p| p < ports) {
                m.src[p] |= bit;
            }
            for &p in s.dst.iter().filter(|&&p| p < ports) {
                m.dst[p] |= bit;
            }
            if !s.vlans.is_empty() {
                m.by_vlan |= bit;
            }
            if let Some(o) = s.output {
                m.output[o] = true;
            }
        }
        m.specs = specs;
        m
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    pub fn specs(&self) -> &[MirrorSpec] {
        &self.specs
    }

    /// Whether `slot` is a mirror's output port (reserved: nothing but copies go there).
    pub fn is_output(&self, slot: usize) -> bool {
        self.output.get(slot).copied().unwrap_or(false)
    }

    /// Whether any mirror looks at `slot`'s traffic or sends copies there. Such ports stay off
    /// the kernel fast path, which would forward their frames without the pipeline seeing them.
    pub fn involves(&self, slot: usize) -> bool {
        self.all != 0
            || self.is_output(slot)
            || self.src.get(slot).is_some_and(|m| *m != 0)
            || self.dst.get(slot).is_some_and(|m| *m != 0)
    }

    /// The mirrors (as a mask) that select a frame received on `in_slot`, in `vlan` at the
    /// bridge, that the pipeline sends to `outs`.
    pub fn select(&self, in_slot: usize, vlan: u16, outs: impl IntoIterator<Item = usize>) -> u32 {
        if self.specs.is_empty() {
            return 0;
        }
        let mut mask = self.all | self.src.get(in_slot).copied().unwrap_or(0);
        for o in outs {
            mask |= self.dst.get(o).copied().unwrap_or(0);
        }
        let mut restricted = mask & self.by_vlan;
        while restricted != 0 {
            let i = restricted.trailing_zeros() as usize;
            restricted &= restricted - 1;
            if !self.specs[i].vlans.contains(&vlan) {
                mask &= !(1 << i);
            }
        }
        mask
    }

    /// The output slots of the mirrors in `mask`, each once (two mirrors to one port send one
    /// copy), in mirror order.
    pub fn outputs(&self, mask: u32) -> impl Iterator<Item = usize> + '_ {
        let out_of = |i: usize| self.specs[i].output;
        bits(mask).filter_map(move |i| {
            let o = out_of(i)?;
            let earlier = mask & ((1u32 << i) - 1);
            bits(earlier).all(|j| out_of(j) != Some(o)).then_some(o)
        })
    }

    /// Counts a copy for every mirror in `mask` that has an output port, of the size
    /// `bytes(output slot)` it leaves that port with.
    pub fn count(&self, mask: u32, bytes: impl Fn(usize) -> usize) {
        for i in bits(mask) {
            if let Some(o) = self.specs[i].output {
                self.specs[i].counters.count(bytes(o));
            }
        }
    }
}

/// The set bits of `mask`, lowest first.
fn bits(mut mask: u32) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            i
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(src: &[usize], dst: &[usize], vlans: &[u16], output: usize) -> MirrorSpec {
        MirrorSpec {
            name: "m".into(),
            src: src.to_vec(),
            dst: dst.to_vec(),
            vlans: vlans.to_vec(),
            output: Some(output),
            ..MirrorSpec::default()
        }
    }

    #[test]
    fn source_destination_and_all() {
        let m = Mirrors::new(vec![spec(&[0], &[], &[], 3), spec(&[], &[1], &[], 4)], 5);
        assert_eq!(m.select(0, 10, [1]), 0b11, "received on 0 and sent to 1");
        assert_eq!(m.select(1, 10, [0]), 0, "the reverse direction is selected by neither");
        assert_eq!(m.select(2, 10, [1, 0]), 0b10);
        let all =
            Mirrors::new(vec![MirrorSpec { select_all: true, output: Some(2), ..Default::default() }], 3);
        assert_eq!(all.select(1, 0, []), 1, "select_all takes even a frame sent nowhere");
        assert!(all.involves(0) && all.is_output(2) && !all.is_output(0));
        assert!(!m.involves(2) && m.involves(0) && m.involves(1) && m.involves(3));
    }

    #[test]
    fn vlans_filter() {
        let m = Mirrors::new(vec![spec(&[0], &[], &[10, 30], 2)], 3);
        assert_eq!(m.select(0, 10, []), 1);
        assert_eq!(m.select(0, 20, []), 0);
    }

    #[test]
    fn one_copy_per_output_port() {
        let m =
            Mirrors::new(vec![spec(&[0], &[], &[], 2), spec(&[0], &[], &[], 2), spec(&[0], &[], &[], 3)], 4);
        let mask = m.select(0, 1, []);
        assert_eq!(mask, 0b111);
        assert_eq!(m.outputs(mask).collect::<Vec<_>>(), vec![2, 3]);
        m.count(mask, |_| 100);
        assert_eq!(m.specs()[1].counters.read(), (1, 100), "each selecting mirror counts");
    }

    #[test]
    fn bad_slots_and_too_many_mirrors_are_ignored() {
        let m = Mirrors::new(vec![spec(&[9], &[8], &[], 7)], 2);
        assert_eq!(m.select(9, 1, [8]), 0);
        assert_eq!(m.outputs(1).count(), 0);
        let many = Mirrors::new((0..40).map(|_| spec(&[0], &[], &[], 1)).collect(), 2);
        assert_eq!(many.specs().len(), MAX_MIRRORS);
        assert_eq!(many.select(0, 1, []), u32::MAX);
        assert_eq!(many.outputs(u32::MAX).count(), 1);
    }

    fn arb_spec(ports: usize) -> impl Strategy<Value = MirrorSpec> {
        let slots = proptest::collection::vec(0..ports + 1, 0..3);
        let vlans = proptest::collection::vec(0u16..4, 0..3);
        (any::<bool>(), slots.clone(), slots, vlans, proptest::option::of(0..ports + 1)).prop_map(
            |(select_all, src, dst, vlans, output)| MirrorSpec {
                name: "m".into(),
                select_all,
                src,
                dst,
                vlans,
                output,
                counters: Arc::default(),
            },
        )
    }

    proptest! {
        /// The masks agree with a direct reading of the OvS rules, and the outputs are exactly
        /// the distinct output ports of the selecting mirrors.
        #[test]
        fn select_matches_the_rules(
            specs in proptest::collection::vec(arb_spec(4), 0..6),
            in_slot in 0usize..5,
            vlan in 0u16..4,
            outs in proptest::collection::vec(0usize..5, 0..4),
        ) {
            let m = Mirrors::new(specs.clone(), 4);
            let mask = m.select(in_slot, vlan, outs.iter().copied());
            let mut want_outs = Vec::new();
            for (i, s) in specs.iter().enumerate() {
                let valid = |p: &usize| *p < 4;
                let port_hit = s.select_all
                    || s.src.iter().filter(|p| valid(p)).any(|p| *p == in_slot)
                    || s.dst.iter().filter(|p| valid(p)).any(|p| outs.contains(p));
                let hit = port_hit && (s.vlans.is_empty() || s.vlans.contains(&vlan));
                prop_assert_eq!(mask & (1 << i) != 0, hit, "mirror {}", i);
                if let Some(o) = s.output.filter(|o| hit && valid(o)) {
                    if !want_outs.contains(&o) {
                        want_outs.push(o);
                    }
                }
            }
            prop_assert_eq!(m.outputs(mask).collect::<Vec<_>>(), want_outs);
        }
    }
}
