//! A port's security settings compiled, at configuration time, into what the per-frame check
//! reads first: flags, the one allowed MAC, and up to [`INLINE_V4`] IPv4 networks as
//! (address, mask) pairs. The common frame of a VM — IPv4 from its own address, not a DHCP
//! server message — is admitted by [`Policy::admits_fast`] with a few compares and no hashing;
//! everything else (and every frame the fast test is unsure about) takes the full checks in
//! check.rs, so the fast path can only say "pass" where the full checks would.

use std::net::IpAddr;

use packet::{ipv4, ipv4_ports, udp, MacAddr};

use super::check;
use super::config::{PortSecurity, SecurityMode};
use crate::{PortVlan, VlanMode};

/// IPv4 networks held inline; a port with more configured takes the full checks.
const INLINE_V4: usize = 4;
/// An inline slot that matches no address (`ip & 0 == 1` never holds), so the fast path always
/// tests all [`INLINE_V4`] slots without a length to loop to.
const NO_NET: (u32, u32) = (1, 0);

/// Which per-frame test a port gets; one compare picks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Port security off: nothing is checked.
    Off,
    /// Checked, but only by the full checks (several MACs, or a MAC limit the port can reach).
    Full,
    /// Mode `mac`, one MAC: a frame from it that carries no further tag passes.
    Mac,
    /// Mode `on`, one MAC: IPv4 from an own address passes.
    Ip,
}

/// What the pipeline needs per frame about a port's security, precomputed per slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Policy {
    kind: Kind,
    /// DHCP server messages are refused (layer-3 checks on a port that is not trusted).
    refuse_dhcp_server: bool,
    /// May speak for DHCP servers and routers; its DHCPACKs are snooped.
    pub trusted: bool,
    /// The port could exceed its MAC limit. An access port learns only its allowed MACs on its
    /// one VLAN, so with no more allowed MACs than the limit the limit cannot be hit, and the
    /// per-frame table lookups are skipped (about a third of the full check's cost).
    pub limit_reachable: bool,
    /// The allowed source MAC ([`MacAddr::key`]) when there is exactly one (the VM case; else
    /// unused).
    mac: u64,
    /// Configured IPv4 networks as (network, mask) that hold only unicast addresses, so a match
    /// needs no further test; unused slots are [`NO_NET`], and all are when the networks do not
    /// fit (the fast path then only uses the lease). Networks holding 0.0.0.0, the broadcast
    /// or multicast addresses (`0.0.0.0/0`) are left to the full checks.
    v4: [(u32, u32); INLINE_V4],
}

impl Policy {
    pub fn compile(sec: &PortSecurity, vlan: &PortVlan) -> Policy {
        let bounded =
            vlan.mode() == VlanMode::Access && sec.macs.len() <= sec.mac_limit.unwrap_or(usize::MAX);
        let limit_reachable = sec.mac_limit.is_some() && !bounded;
        let kind = match sec.mode {
            SecurityMode::Off => Kind::Off,
            _ if sec.macs.len() != 1 || limit_reachable => Kind::Full,
            SecurityMode::Mac => Kind::Mac,
            SecurityMode::On => Kind::Ip,
        };
        Policy {
            kind,
            refuse_dhcp_server: sec.checks_l3() && !sec.trusted,
            trusted: sec.trusted,
            limit_reachable,
            mac: sec.macs.first().copied().unwrap_or_default().key(),
            v4: inline_v4(sec),
        }
    }

    /// Layer-2 checks apply (mode `mac` or `on`): a frame needs [`Policy::admits_fast`] or the
    /// full checks.
    #[inline]
    pub fn checks(&self) -> bool {
        self.kind != Kind::Off
    }

    #[inline]
    fn v4_configured(&self, ip: u32) -> bool {
        self.v4.iter().any(|&(net, mask)| ip & mask == net)
    }

    /// True only if the full checks would admit this frame too; `false` means "ask them".
    /// Mode `on`: an IPv4 frame from the port's one MAC with a header without options, a
    /// unicast source the port owns (configured, or `leased()`), not a DHCP server message.
    /// Mode `mac`: any frame from the one MAC without a hidden tag.
    #[inline]
    pub fn admits_fast(
        &self,
        src: MacAddr,
        ethertype: u16,
        l3: &[u8],
        leased: impl FnOnce() -> Option<u32>,
    ) -> bool {
        let own = src.key() == self.mac;
        if self.kind == Kind::Ip {
            own && ethertype == packet::ETHERTYPE_IPV4 && self.ipv4_admits(l3, leased)
        } else {
            self.kind == Kind::Mac && own && !check::is_tag(ethertype)
        }
    }

    /// One length check ([`ipv4_ports`]) covers every byte read; the compares that settle the
    /// common frame come first.
    #[inline]
    fn ipv4_admits(&self, l3: &[u8], leased: impl FnOnce() -> Option<u32>) -> bool {
        let Ok(ip) = ipv4_ports::Frame::new_checked(l3) else { return false };
        let s = ip.src_bits();
        if !(self.v4_configured(s) || (leased() == Some(s) && !is_not_unicast(s))) {
            return false;
        }
        // The full checks refuse a DHCP server message only when they can read its UDP header,
        // so reading the port here without the UDP length can only send more frames to them.
        let dhcp_server = ip.src_port() == udp::PORT_DHCP_SERVER
            && ip.protocol() == ipv4::PROTO_UDP
            && !ip.is_later_fragment();
        !(dhcp_server && self.refuse_dhcp_server)
    }
}

/// The configured IPv4 networks [`Policy::v4`] holds.
fn inline_v4(sec: &PortSecurity) -> [(u32, u32); INLINE_V4] {
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
        .filter(|&(net, mask)| unicast_only(net, mask))
        .collect();
    let mut v4 = [NO_NET; INLINE_V4];
    if nets.len() <= INLINE_V4 {
        v4[..nets.len()].copy_from_slice(&nets);
    }
    v4
}

/// 0.0.0.0, multicast (224/4) or the limited broadcast: never a source the fast path admits.
#[inline]
fn is_not_unicast(ip: u32) -> bool {
    ip == 0 || ip == u32::MAX || ip >> 28 == 0xe
}

/// The network `ip & mask == net` holds none of the addresses [`is_not_unicast`] names: not
/// 0.0.0.0 (`net == 0`), not 255.255.255.255 (`net == mask`), and no address of 224/4 (the
/// bits both masks fix differ from 0xe).
fn unicast_only(net: u32, mask: u32) -> bool {
    net != 0 && net != mask && (net ^ 0xe000_0000) & mask & 0xf000_0000 != 0
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;
    use crate::security::{check, parse_allowed_ips, Bindings, IpPrefix};
    use crate::{MacTable, PortSpec};

    const A: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
    const C: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 3]);
    const SERVER: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 0xfe]);

    /// An IPv4/UDP frame from `src` with raw byte tweaks (`poke`: offset into the IP header,
    /// value) so headers that are odd in every field reach both checks, cut to `len` bytes.
    fn frame(src: MacAddr, ip: [u8; 4], ports: (u16, u16), poke: &[(usize, u8)], len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; 128];
        let spec = packet::FrameSpec { dst: MacAddr([2, 0, 0, 0, 0, 2]), src, vlan: None, ethertype: 0 };
        let n = packet::ipv4_udp(&mut buf, &spec, ip, [198, 18, 0, 2], ports, &[0; 8]).unwrap();
        buf.truncate(n.min(len));
        let ip_at = packet::ETHERNET_HEADER_LEN;
        for &(at, v) in poke {
            if let Some(b) = buf.get_mut(ip_at + at % 28) {
                *b = v;
            }
        }
        buf
    }

    /// Bindings where a trusted port (slot 1) leased `lease` to A's port (slot 0), as DHCP
    /// snooping records a DHCPACK.
    fn leased(ports: &[PortSpec], lease: Option<[u8; 4]>) -> Bindings {
        let mut b = Bindings::default();
        b.rebuild(ports);
        let Some(yiaddr) = lease else { return b };
        let mut dhcp = [0u8; packet::DHCP_MESSAGE_MAX];
        let d = packet::DhcpSpec {
            op: packet::dhcp::OP_REPLY,
            message_type: packet::dhcp::ACK,
            client_mac: A,
            yiaddr: Ipv4Addr::from(yiaddr),
            lease_secs: Some(3600),
        };
        let n = packet::dhcp_message(&mut dhcp, &d).unwrap();
        let mut buf = vec![0u8; 400];
        let spec = packet::FrameSpec { dst: MacAddr::BROADCAST, src: SERVER, vlan: None, ethertype: 0 };
        let len =
            packet::ipv4_udp(&mut buf, &spec, [198, 18, 0, 254], [255; 4], (67, 68), &dhcp[..n]).unwrap();
        let eth = packet::EthernetHeader::parse(&buf[..len]).unwrap();
        b.snoop(ports, &eth, &buf[..len], 10, 0);
        b
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

    #[test]
    fn networks_holding_non_unicast_addresses_stay_out_of_line() {
        let mut sec = PortSecurity::vm(A);
        sec.ips = parse_allowed_ips("0.0.0.0/0,198.18.0.0/15,224.0.0.0/3,198.18.2.255/32").unwrap();
        let p = Policy::compile(&sec, &crate::PortVlan::access(10));
        assert!(p.v4_configured(u32::from_be_bytes([198, 19, 0, 1])));
        assert!(
            p.v4_configured(u32::from_be_bytes([198, 18, 2, 255])),
            "a host address ending in 255 is unicast"
        );
        assert!(!p.v4_configured(u32::from_be_bytes([10, 0, 0, 1])), "only 0.0.0.0/0 holds it");
        assert!(!p.v4_configured(u32::from_be_bytes([192, 0, 2, 1])), "only 224.0.0.0/3 holds it");
    }

    #[test]
    fn a_snooped_lease_reaches_the_fast_path_when_unicast() {
        let sec = PortSecurity::vm(A);
        let vlan = crate::PortVlan::access(10);
        let ports = vec![
            PortSpec { security: sec.clone(), ..PortSpec::new("a", vlan.clone()) },
            PortSpec::new("server", vlan),
        ];
        let p = Policy::compile(&sec, &ports[0].vlan);
        for (lease, admitted) in [([198, 18, 0, 3], true), ([224, 0, 0, 5], false), ([255; 4], false)] {
            let b = leased(&ports, Some(lease));
            assert_eq!(b.slot_lease(0, 1), Some(u32::from_be_bytes(lease)), "{lease:?} bound");
            let f = frame(A, lease, (5201, 5201), &[], usize::MAX);
            let l3 = &f[packet::ETHERNET_HEADER_LEN..];
            assert_eq!(
                p.admits_fast(A, packet::ETHERTYPE_IPV4, l3, || b.slot_lease(0, 1)),
                admitted,
                "{lease:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// `unicast_only` against a reference that asks the prefix itself: does it hold
        /// 0.0.0.0, 255.255.255.255, or (as a network inside 224/4, or around it) 224.0.0.0?
        #[test]
        fn unicast_only_matches_the_prefixes(addr in any::<u32>(), len in 0u8..=32) {
            let p = IpPrefix::new(IpAddr::V4(Ipv4Addr::from(addr)), len).unwrap();
            let mcast = IpPrefix::new(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 0)), 4).unwrap();
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            let net = Ipv4Addr::from(addr & mask);
            let holds = |a: Ipv4Addr| p.contains(IpAddr::V4(a));
            let touches_mcast =
                if len >= 4 { mcast.contains(IpAddr::V4(net)) } else { holds(Ipv4Addr::new(224, 0, 0, 0)) };
            let special = holds(Ipv4Addr::UNSPECIFIED) || holds(Ipv4Addr::BROADCAST) || touches_mcast;
            prop_assert_eq!(unicast_only(addr & mask, mask), !special);
        }

        /// Whenever the fast path admits, the full checks admit too: it may only shortcut.
        #[test]
        fn fast_implies_full(
            src in prop_oneof![4 => Just(A), 1 => Just(C)],
            // Mostly the port's own address or its lease (`None`), so frames the fast path
            // admits are common and each of its conditions gets tried against the full checks.
            ip in prop_oneof![
                4 => Just(Some([198, 18, 0, 1])),
                4 => Just(None),
                1 => (prop_oneof![Just(0u8), Just(3), Just(10), Just(255)]).prop_map(|l| Some([198, 18, 0, l])),
                1 => prop_oneof![Just([0, 0, 0, 0]), Just([255; 4]), Just([224, 0, 0, 5]), Just([239, 1, 2, 3]), Just([10, 0, 0, 1])].prop_map(Some),
            ],
            ports in (prop_oneof![Just(67u16), Just(68), Just(5201)], prop_oneof![Just(67u16), Just(68)]),
            poke in prop_oneof![3 => Just(vec![]), 1 => proptest::collection::vec((0usize..28, any::<u8>()), 1..3)],
            len in prop_oneof![3 => Just(usize::MAX), 1 => 0usize..60],
            ips in prop_oneof![
                Just(""),
                Just("198.18.0.1"),
                Just("198.18.0.0/24"),
                Just("0.0.0.0/0,2001:db8::1"),
                Just("224.0.0.0/3"),
                Just("128.0.0.0/1,0.0.0.0/1"),
                Just("198.18.1.1,198.18.1.2,198.18.1.3,198.18.1.4,198.18.1.5"), // more than inline
            ],
            lease in prop_oneof![Just(None), Just(Some([198, 18, 0, 3])), Just(Some([224, 0, 0, 5])), Just(Some([255; 4]))],
            mode in prop_oneof![Just(SecurityMode::On), Just(SecurityMode::Mac)],
            trusted in any::<bool>(),
            second_mac in any::<bool>(),
            ethertype in prop_oneof![
                4 => Just(None),
                1 => proptest::sample::select(vec![0x0806u16, 0x86dd, 0x8100, 0x88a8, 0x9100, 0x88cc]).prop_map(Some),
            ],
        ) {
            let mut sec = PortSecurity::vm(A);
            // A second allowed MAC, already learned: the MAC limit of 1 is reached.
            if second_mac {
                sec.macs.push(C);
            }
            sec.mode = mode;
            sec.trusted = trusted;
            sec.ips = parse_allowed_ips(ips).unwrap();
            let vlan = crate::PortVlan::access(10);
            let ports_ = vec![
                PortSpec { security: sec.clone(), ..PortSpec::new("a", vlan.clone()) },
                PortSpec::new("server", vlan),
            ];
            let bindings = leased(&ports_, lease);
            let policy = Policy::compile(&sec, &ports_[0].vlan);
            let ip = ip.or(lease).unwrap_or([198, 18, 0, 1]);
            let mut f = frame(src, ip, ports, &poke, len);
            if let (Some(t), Some(at)) = (ethertype, f.get_mut(12..14)) {
                at.copy_from_slice(&t.to_be_bytes());
            }
            let Ok(eth) = packet::EthernetHeader::parse(&f) else { return Ok(()) };
            let now = 1;
            if policy.admits_fast(eth.src, eth.ethertype, &f[eth.payload_offset..], || bindings.slot_lease(0, now)) {
                let mut macs = MacTable::new(16, 300_000);
                if second_mac {
                    macs.learn(10, C, 0, now);
                }
                let cx = check::Ctx { slot: 0, sec: &sec, bindings: &bindings, macs: &macs, vlan: 10, now, limit_reachable: policy.limit_reachable };
                prop_assert_eq!(check::admit(&cx, &eth, &f), Ok(()));
            }
        }
    }
}
