//! A port's security settings compiled, at configuration time, into what the per-frame check
//! reads first: flags, the one allowed MAC, and up to [`INLINE_V4`] IPv4 networks as
//! (address, mask) pairs. The common frame of a VM — IPv4 from its own address, not a DHCP
//! server message — is admitted by [`Policy::admits_fast`] with a few compares and no hashing;
//! everything else (and every frame the fast test is unsure about) takes the full checks in
//! check.rs, so the fast path can only say "pass" where the full checks would.

use std::net::IpAddr;

use packet::{ipv4, udp, MacAddr};

use super::config::PortSecurity;
use crate::{PortVlan, VlanMode};

/// IPv4 networks held inline; a port with more configured takes the full checks.
const INLINE_V4: usize = 4;

/// What the pipeline needs per frame about a port's security, precomputed per slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Layer-2 checks apply (mode `mac` or `on`).
    pub l2: bool,
    /// Layer-3 checks apply (mode `on`).
    pub l3: bool,
    /// May speak for DHCP servers and routers; its DHCPACKs are snooped.
    pub trusted: bool,
    /// The port could exceed its MAC limit. An access port learns only its allowed MACs on its
    /// one VLAN, so with no more allowed MACs than the limit the limit cannot be hit, and the
    /// per-frame table lookups are skipped (about a third of the full check's cost).
    pub limit_reachable: bool,
    /// The allowed source MAC when there is exactly one (the VM case).
    mac: Option<MacAddr>,
    /// Configured IPv4 networks as (network, mask), first `v4_len` valid; `v4_len` is
    /// `u8::MAX` when they did not fit (the fast path then matches none of them and only uses
    /// the lease; the full checks see the rest).
    v4: [(u32, u32); INLINE_V4],
    v4_len: u8,
}

impl Policy {
    pub fn compile(sec: &PortSecurity, vlan: &PortVlan) -> Policy {
        let nets: Vec<(u32, u32)> = sec
            .ips
            .iter()
            .filter_map(|p| match p.addr() {
                IpAddr::V4(a) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(p.prefix_len())).unwrap_or(0);
                    Some((a.to_bits() & mask, mask))
                }
                IpAddr::V6(_) => None,
            })
            .collect();
        let mut v4 = [(0, 0); INLINE_V4];
        let v4_len = if nets.len() <= INLINE_V4 {
            v4[..nets.len()].copy_from_slice(&nets);
            nets.len() as u8
        } else {
            u8::MAX
        };
        let bounded =
            vlan.mode() == VlanMode::Access && sec.macs.len() <= sec.mac_limit.unwrap_or(usize::MAX);
        Policy {
            l2: sec.checks_l2(),
            l3: sec.checks_l3(),
            trusted: sec.trusted,
            limit_reachable: sec.mac_limit.is_some() && !bounded,
            mac: (sec.macs.len() == 1).then(|| sec.macs[0]),
            v4,
            v4_len,
        }
    }

    fn v4_configured(&self, ip: u32) -> bool {
        let nets = self.v4.get(..usize::from(self.v4_len)).unwrap_or_default();
        nets.iter().any(|&(net, mask)| ip & mask == net)
    }

    /// True only if the full checks would admit this frame too: an untagged IPv4 frame from
    /// the port's one MAC, with a readable header, a unicast source the port owns (configured,
    /// or `leased()`), and not a DHCP server message. `false` means "ask the full checks".
    #[inline]
    pub fn admits_fast(
        &self,
        src: MacAddr,
        ethertype: u16,
        l3: &[u8],
        leased: impl FnOnce() -> Option<u32>,
    ) -> bool {
        if ethertype != packet::ETHERTYPE_IPV4 || self.mac != Some(src) || self.limit_reachable {
            return false;
        }
        if !self.l3 {
            return true;
        }
        let Ok(ip) = ipv4::Frame::new_checked(l3) else { return false };
        let s = ip.src();
        if s.is_unspecified() || s.is_multicast() || s.is_broadcast() {
            return false;
        }
        let bits = s.to_bits();
        if !(self.v4_configured(bits) || leased() == Some(bits)) {
            return false;
        }
        if ip.protocol() != ipv4::PROTO_UDP || ip.is_later_fragment() || self.trusted {
            return true;
        }
        udp::Frame::new_checked(ip.payload()).is_ok_and(|u| u.src_port() != udp::PORT_DHCP_SERVER)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::security::{check, parse_allowed_ips, Bindings};
    use crate::{MacTable, PortSpec};

    const A: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);

    /// An IPv4/UDP frame from `src` with raw byte tweaks (`poke`: offset into the IP header,
    /// value) so headers that are odd in every field reach both checks.
    fn frame(src: MacAddr, ip: [u8; 4], ports: (u16, u16), poke: &[(usize, u8)]) -> Vec<u8> {
        let mut buf = vec![0u8; 128];
        let spec = packet::FrameSpec { dst: MacAddr([2, 0, 0, 0, 0, 2]), src, vlan: None, ethertype: 0 };
        let n = packet::ipv4_udp(&mut buf, &spec, ip, [198, 18, 0, 2], ports, &[0; 8]).unwrap();
        buf.truncate(n);
        let ip_at = packet::EthernetHeader::parse(&buf).unwrap().payload_offset;
        for &(at, v) in poke {
            if let Some(b) = buf.get_mut(ip_at + at % 28) {
                *b = v;
            }
        }
        buf
    }

    /// Networks that do not fit inline match nothing in the fast path (an empty inline table
    /// must not read as "every address").
    #[test]
    fn too_many_networks_match_nothing_inline() {
        let mut sec = PortSecurity::vm(A);
        sec.ips = parse_allowed_ips("198.18.1.1,198.18.1.2,198.18.1.3,198.18.1.4,198.18.1.5").unwrap();
        let p = Policy::compile(&sec, &crate::PortVlan::access(10));
        assert!(!p.v4_configured(u32::from_be_bytes([198, 18, 0, 9])));
        assert!(!p.v4_configured(u32::from_be_bytes([198, 18, 1, 1])), "left to the full checks");
        sec.ips.truncate(4);
        let p = Policy::compile(&sec, &crate::PortVlan::access(10));
        assert!(p.v4_configured(u32::from_be_bytes([198, 18, 1, 4])));
        assert!(!p.v4_configured(u32::from_be_bytes([198, 18, 1, 5])));
    }

    proptest! {
        /// Whenever the fast path admits, the full checks admit too: it may only shortcut.
        #[test]
        fn fast_implies_full(
            src in prop_oneof![Just(A), Just(MacAddr([0x52, 0x54, 0, 0, 0, 3]))],
            last in prop_oneof![Just(0u8), Just(1), Just(3), Just(10), Just(255)],
            ports in (prop_oneof![Just(67u16), Just(68), Just(5201)], prop_oneof![Just(67u16), Just(68)]),
            poke in proptest::collection::vec((0usize..28, any::<u8>()), 0..3),
            ips in prop_oneof![
                Just(""),
                Just("198.18.0.1"),
                Just("198.18.0.0/24"),
                Just("0.0.0.0/0,2001:db8::1"),
                Just("198.18.1.1,198.18.1.2,198.18.1.3,198.18.1.4,198.18.1.5"), // more than inline
            ],
            mode in prop_oneof![Just(crate::SecurityMode::On), Just(crate::SecurityMode::Mac)],
        ) {
            let mut sec = PortSecurity::vm(A);
            sec.mode = mode;
            sec.ips = parse_allowed_ips(ips).unwrap();
            let ports_ = vec![PortSpec { security: sec.clone(), ..PortSpec::new("a", crate::PortVlan::access(10)) }];
            let mut bindings = Bindings::default();
            bindings.rebuild(&ports_);
            let policy = Policy::compile(&sec, &ports_[0].vlan);
            let f = frame(src, [198, 18, 0, last], ports, &poke);
            let eth = packet::EthernetHeader::parse(&f).unwrap();
            // Leases reach the fast path through `Bindings::slot_lease`; tests/port_security.rs
            // covers snooped addresses end to end.
            if policy.admits_fast(eth.src, eth.ethertype, &f[eth.payload_offset..], || None) {
                let macs = MacTable::new(16, 300_000);
                let cx = check::Ctx { slot: 0, sec: &sec, bindings: &bindings, macs: &macs, vlan: 10, now: 1, limit_reachable: policy.limit_reachable };
                prop_assert_eq!(check::admit(&cx, &eth, &f), Ok(()));
            }
        }
    }
}
