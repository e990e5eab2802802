//! The map layouts shared with `bpf/fastpath.bpf.c` (keep both in step), and the pure
//! translation of the pipeline's port config into them.

use packet::MacAddr;
use switch::{PortVlan, VlanMode};

/// `struct port_conf`: how the program decides a frame's VLAN on one ingress port.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortConf {
    pub bridge: u32,
    pub tag: u16,
    pub mode: u8,
    pub flags: u8,
    pub trunks: [u64; 64],
}

/// Decide in the tc hook when no socket filter did (tests without slow-path sockets).
pub const PORT_STANDALONE: u8 = 1;
/// Send every frame of this port to the slow path (checks the program does not mirror).
pub const PORT_SLOW: u8 = 2;

/// `struct flow_key`: a MAC within one bridge's VLAN.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub bridge: u32,
    pub vlan: u16,
    pub mac: [u8; 6],
}

/// `struct flow_val`: where that MAC was learned and the VID frames to it leave with.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowVal {
    pub ifindex: u32,
    /// 0 = untagged.
    pub vid: u16,
    pub pad: u16,
    /// `bpf_ktime_get_ns` of the last frame from this MAC the kernel forwarded (0: none yet).
    pub seen_ns: u64,
}

/// `struct counters`, per CPU and ifindex: what the kernel forwarded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
    }

    /// What grew since `before` (counters only grow; a reset map reads as all new).
    pub fn since(&self, before: &Counters) -> Counters {
        let d = |a: u64, b: u64| a.checked_sub(b).unwrap_or(a);
        Counters {
            rx_packets: d(self.rx_packets, before.rx_packets),
            rx_bytes: d(self.rx_bytes, before.rx_bytes),
            tx_packets: d(self.tx_packets, before.tx_packets),
            tx_bytes: d(self.tx_bytes, before.tx_bytes),
        }
    }
}

/// `struct decision`: one frame's fast-path verdict (the per-CPU hand-over slot, and in
/// standalone mode the record of the last one executed, which tests read back).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// 0 = empty.
    pub in_ifindex: u32,
    pub len: u32,
    pub out_ifindex: u32,
    /// The TCI pushed on egress when `out_tagged`.
    pub out_tci: u16,
    pub tagged: u8,
    pub out_tagged: u8,
}

// SAFETY: plain `repr(C)` integers with no padding the kernel could leave uninitialised
// (every field is written explicitly; sizes checked in the tests below).
unsafe impl aya::Pod for PortConf {}
// SAFETY: as above (4 + 2 + 6 bytes, no padding).
unsafe impl aya::Pod for FlowKey {}
// SAFETY: as above (explicit `pad`).
unsafe impl aya::Pod for FlowVal {}
// SAFETY: as above.
unsafe impl aya::Pod for Counters {}
// SAFETY: as above (4 + 4 + 4 + 2 + 1 + 1 bytes).
unsafe impl aya::Pod for Decision {}

impl PortConf {
    /// The program's view of a port of bridge `bridge` with the pipeline's VLAN rules.
    pub fn new(bridge: u32, vlan: &PortVlan, flags: u8) -> PortConf {
        let mode = match vlan.mode() {
            VlanMode::Access => 0,
            VlanMode::Trunk => 1,
            VlanMode::NativeTagged => 2,
            VlanMode::NativeUntagged => 3,
        };
        let mut trunks = [0u64; 64];
        for v in vlan.trunks().iter() {
            trunks[usize::from(v / 64)] |= 1 << (v % 64);
        }
        PortConf { bridge, tag: vlan.tag().unwrap_or(0), mode, flags, trunks }
    }
}

impl FlowKey {
    pub fn new(bridge: u32, vlan: u16, mac: MacAddr) -> FlowKey {
        FlowKey { bridge, vlan, mac: mac.0 }
    }
}

/// The entry for a MAC learned in `vlan` on a port with VLAN rules `port` and device `ifindex`;
/// `None` when that port does not carry `vlan` (nothing may be sent there).
pub fn flow_val(port: &PortVlan, vlan: u16, ifindex: u32) -> Option<FlowVal> {
    let vid = port.egress_vid(vlan)?;
    Some(FlowVal { ifindex, vid, pad: 0, seen_ns: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_c_structs() {
        assert_eq!(std::mem::size_of::<PortConf>(), 8 + 512);
        assert_eq!(std::mem::size_of::<FlowKey>(), 12);
        assert_eq!(std::mem::size_of::<FlowVal>(), 16);
        assert_eq!(std::mem::size_of::<Counters>(), 32);
        assert_eq!(std::mem::size_of::<Decision>(), 16);
    }

    #[test]
    fn port_conf_carries_mode_tag_and_trunks() {
        let p = PortVlan::new(Some(VlanMode::NativeUntagged), Some(42), &[43, 4095]).unwrap();
        let c = PortConf::new(7, &p, 0);
        assert_eq!((c.bridge, c.tag, c.mode), (7, 42, 3));
        assert_eq!(c.trunks[0], (1 << 42) | (1 << 43), "native VLAN added to the trunks");
        assert!(c.trunks[1..63].iter().all(|w| *w == 0));
        assert_eq!(c.trunks[63] >> 63, 1);
        let access = PortConf::new(1, &PortVlan::access(10), 0);
        assert_eq!((access.mode, access.tag), (0, 10));
        assert!(access.trunks.iter().all(|w| *w == 0));
    }

    #[test]
    fn flow_val_takes_the_egress_vid() {
        let trunk = PortVlan::new(Some(VlanMode::Trunk), None, &[10]).unwrap();
        assert_eq!(flow_val(&trunk, 10, 5).map(|v| v.vid), Some(10));
        assert_eq!(flow_val(&trunk, 11, 5), None);
        assert_eq!(flow_val(&PortVlan::access(10), 10, 5).map(|v| v.vid), Some(0));
    }
}
