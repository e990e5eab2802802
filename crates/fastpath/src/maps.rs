//! The map layouts shared with `bpf/fastpath.bpf.c` (keep both in step), and the pure
//! translation of the pipeline's port config into them.

use std::net::IpAddr;

use packet::MacAddr;
use switch::{IpPrefix, PortSecurity, PortVlan, SecurityMode, VlanMode};

/// `struct port_conf`: how the program decides a frame's VLAN on one ingress port.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortConf {
    pub bridge: u32,
    pub tag: u16,
    pub mode: u8,
    pub flags: u8,
    pub trunks: [u64; 64],
    /// The one source MAC a secured port may use (`sec` not [`SEC_OFF`]).
    pub mac: [u8; 6],
    pub sec: u8,
    pub pad: u8,
}

/// `port_conf.sec`: no port security.
pub const SEC_OFF: u8 = 0;
/// Source MAC must be `mac`; no hidden tag (port-security `mac`).
pub const SEC_MAC: u8 = 1;
/// [`SEC_MAC`], and only IPv4 from a source in the port's bindings, DHCP excepted (`on`).
pub const SEC_IP: u8 = 2;

/// `struct bind_key`'s data after its prefix length: the port, then the address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BindData {
    pub ifindex: u32,
    pub ip: [u8; 4],
}

/// `struct bind_val`: when the binding stops holding (`bpf_ktime_get_ns`; `u64::MAX`: never).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindVal {
    pub until_ns: u64,
}

/// One entry of the bindings map: `ip/len` on `ifindex`, until `until_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Binding {
    pub data: BindData,
    /// Prefix length of the address (the key's is 32 more, for the ifindex).
    pub len: u8,
}

impl Binding {
    /// The entry for a pipeline binding of port `ifindex`; `None` for an IPv6 prefix.
    pub fn new(ifindex: u32, prefix: &IpPrefix) -> Option<Binding> {
        let IpAddr::V4(a) = prefix.addr() else { return None };
        let len = prefix.prefix_len().min(32);
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
        let ip = (u32::from(a) & mask).to_be_bytes();
        Some(Binding { data: BindData { ifindex, ip }, len })
    }

    pub fn key_prefix_len(&self) -> u32 {
        32 + u32::from(self.len)
    }
}

/// How the program can mirror a port's security settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// `sec` and `mac` for [`PortConf`].
    Mirrored { sec: u8, mac: MacAddr },
    /// Not at all: every frame of the port takes the slow path ([`PORT_SLOW`]).
    Slow,
}

/// The program checks what the pipeline's `check::admit` checks only for a port with exactly
/// one allowed MAC on an access port: then a source the flow map places on the port is that
/// MAC, learned on the port's one VLAN, and the MAC limit (at least 1) cannot be reached.
/// Anything else (several MACs, trunks, a limit of 0) stays in userspace.
pub fn guard(sec: &PortSecurity, vlan: &PortVlan) -> Guard {
    let level = match sec.mode {
        SecurityMode::Off => return Guard::Mirrored { sec: SEC_OFF, mac: MacAddr([0; 6]) },
        SecurityMode::Mac => SEC_MAC,
        SecurityMode::On => SEC_IP,
    };
    match sec.macs.as_slice() {
        [mac] if vlan.mode() == VlanMode::Access && sec.mac_limit != Some(0) => {
            Guard::Mirrored { sec: level, mac: *mac }
        }
        _ => Guard::Slow,
    }
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
// SAFETY: as above (4 + 4 bytes).
unsafe impl aya::Pod for BindData {}
// SAFETY: as above.
unsafe impl aya::Pod for BindVal {}
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
        PortConf {
            bridge,
            tag: vlan.tag().unwrap_or(0),
            mode,
            flags,
            trunks,
            mac: [0; 6],
            sec: SEC_OFF,
            pad: 0,
        }
    }

    /// [`PortConf::new`] for a port with security settings `sec`.
    pub fn secured(bridge: u32, vlan: &PortVlan, flags: u8, sec: &PortSecurity) -> PortConf {
        match guard(sec, vlan) {
            Guard::Mirrored { sec, mac } => {
                PortConf { mac: mac.0, sec, ..PortConf::new(bridge, vlan, flags) }
            }
            Guard::Slow => PortConf::new(bridge, vlan, flags | PORT_SLOW),
        }
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
        assert_eq!(std::mem::size_of::<PortConf>(), 8 + 512 + 8);
        assert_eq!(std::mem::size_of::<BindData>(), 8);
        assert_eq!(std::mem::size_of::<FlowKey>(), 12);
        assert_eq!(std::mem::size_of::<FlowVal>(), 16);
        assert_eq!(std::mem::size_of::<Counters>(), 32);
        assert_eq!(std::mem::size_of::<Decision>(), 16);
    }

    #[test]
    fn port_conf_carries_mode_tag_and_trunks() {
        let p = PortVlan::new(Some(VlanMode::NativeUntagged), Some(42), &[43, 4094, 4095]).unwrap();
        let c = PortConf::new(7, &p, 0);
        assert_eq!((c.bridge, c.tag, c.mode), (7, 42, 3));
        assert_eq!(c.trunks[0], (1 << 42) | (1 << 43), "native VLAN added to the trunks");
        assert!(c.trunks[1..63].iter().all(|w| *w == 0));
        assert_eq!(c.trunks[63], 1 << 62, "4094 carried; the host-only 4095 never is");
        let access = PortConf::new(1, &PortVlan::access(10), 0);
        assert_eq!((access.mode, access.tag), (0, 10));
        assert!(access.trunks.iter().all(|w| *w == 0));
    }

    #[test]
    fn guard_mirrors_one_mac_on_an_access_port_only() {
        let mac = MacAddr([2, 0, 0, 0, 0, 9]);
        let access = PortVlan::access(10);
        assert_eq!(
            guard(&PortSecurity::off(), &access),
            Guard::Mirrored { sec: SEC_OFF, mac: MacAddr([0; 6]) }
        );
        assert_eq!(guard(&PortSecurity::vm(mac), &access), Guard::Mirrored { sec: SEC_IP, mac });
        let l2 = PortSecurity { mode: SecurityMode::Mac, ..PortSecurity::vm(mac) };
        assert_eq!(guard(&l2, &access), Guard::Mirrored { sec: SEC_MAC, mac });
        let two = PortSecurity { macs: vec![mac, MacAddr([2, 0, 0, 0, 0, 8])], ..PortSecurity::vm(mac) };
        assert_eq!(guard(&two, &access), Guard::Slow);
        let trunk = PortVlan::new(Some(VlanMode::Trunk), None, &[10]).unwrap();
        assert_eq!(guard(&PortSecurity::vm(mac), &trunk), Guard::Slow);
        let c = PortConf::secured(1, &trunk, 0, &PortSecurity::vm(mac));
        assert_eq!(c.flags & PORT_SLOW, PORT_SLOW);
    }

    #[test]
    fn bindings_are_masked_v4_prefixes() {
        let p: IpPrefix = "198.18.1.77/24".parse().unwrap();
        let b = Binding::new(5, &p).unwrap();
        assert_eq!((b.data.ip, b.len, b.key_prefix_len()), ([198, 18, 1, 0], 24, 56));
        let all: IpPrefix = "0.0.0.0/0".parse().unwrap();
        assert_eq!(Binding::new(5, &all).unwrap().data.ip, [0; 4]);
        assert_eq!(Binding::new(5, &"2001:db8::/64".parse().unwrap()), None);
    }

    #[test]
    fn flow_val_takes_the_egress_vid() {
        let trunk = PortVlan::new(Some(VlanMode::Trunk), None, &[10]).unwrap();
        assert_eq!(flow_val(&trunk, 10, 5).map(|v| v.vid), Some(10));
        assert_eq!(flow_val(&trunk, 11, 5), None);
        assert_eq!(flow_val(&PortVlan::access(10), 10, 5).map(|v| v.vid), Some(0));
    }
}
