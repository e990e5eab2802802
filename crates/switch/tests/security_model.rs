//! Property test: the pipeline's port-security decision on arbitrary frames from VM A equals an
//! independent model of issue 9's rules. The model reads the *structured* description a frame
//! was built from; the pipeline parses the bytes. Neighbour C owns 198.18.0.3, 2001:db8::3 and
//! its EUI-64 link-local, and holds a DHCPv6 lease of 2001:db8:5::30; A may or may not have
//! configured addresses and snooped leases (a DHCPACK and a DHCPv6 REPLY).

use std::net::{Ipv4Addr, Ipv6Addr};

use packet::{dhcp, ipv6::eui64_link_local, MacAddr};
use proptest::prelude::*;
use switch::{
    parse_allowed_ips, Bridge, BridgeSettings, DropReason, PortSecurity, PortSpec, PortVlan, Verdict,
    VlanMode,
};
use testbed::frames::*;

const A: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
const C: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 3]);
const SERVER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x67]);
const LEASED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const LEASED6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 0x10);
const C_LEASED6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 0x30);

fn v4_pool() -> [Ipv4Addr; 7] {
    let n = |d| Ipv4Addr::new(198, 18, 0, d);
    [Ipv4Addr::UNSPECIFIED, n(1), n(3), n(9), LEASED, Ipv4Addr::new(224, 0, 0, 251), Ipv4Addr::BROADCAST]
}

fn v6_pool() -> [Ipv6Addr; 10] {
    let p = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    [
        Ipv6Addr::UNSPECIFIED,
        eui64_link_local(A),
        eui64_link_local(C),
        p("fe80::99"),
        p("2001:db8::1"),
        p("2001:db8::3"),
        p("2001:db8::99"),
        p("ff02::1"),
        LEASED6,
        C_LEASED6,
    ]
}

#[derive(Clone, Debug)]
enum L3 {
    Other,
    Tagged(u16),
    Arp { sha_is_a: bool, spa: usize },
    Ipv4 { src: usize, ports: (u16, u16), dhcp_type: Option<u8> },
    Icmp6 { src: usize, kind: u8, target: usize },
    Udp6 { src: usize, sport: u16 },
}

#[derive(Clone, Debug)]
struct Case {
    src: MacAddr,
    priority_tag: bool,
    l3: L3,
    a_configured: bool,
    a_leased: bool,
}

fn l3() -> impl Strategy<Value = L3> {
    let port = prop_oneof![Just(67u16), Just(68), Just(547), Just(546), Just(5353)];
    prop_oneof![
        Just(L3::Other),
        prop_oneof![Just(0x8100u16), Just(0x88a8), Just(0x9100)].prop_map(L3::Tagged),
        (any::<bool>(), 0..7usize).prop_map(|(sha_is_a, spa)| L3::Arp { sha_is_a, spa }),
        (0..7usize, (port.clone(), port.clone()), proptest::option::of(1u8..9))
            .prop_map(|(src, ports, dhcp_type)| L3::Ipv4 { src, ports, dhcp_type }),
        (
            0..10usize,
            prop_oneof![Just(128u8), Just(133), Just(134), Just(135), Just(136), Just(143)],
            0..10usize
        )
            .prop_map(|(src, kind, target)| L3::Icmp6 { src, kind, target }),
        (0..10usize, port).prop_map(|(src, sport)| L3::Udp6 { src, sport }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let src = prop_oneof![4 => Just(A), 1 => Just(C), 1 => Just(MacAddr([0; 6])), 1 => any::<[u8; 6]>().prop_map(|mut m| { m[0] &= 0xfe; MacAddr(m) })];
    (src, any::<bool>(), l3(), any::<bool>(), any::<bool>()).prop_map(
        |(src, priority_tag, l3, a_configured, a_leased)| Case {
            src,
            priority_tag,
            l3,
            a_configured,
            a_leased,
        },
    )
}

fn build(c: &Case) -> Vec<u8> {
    let spec = eth(MacAddr::BROADCAST, c.src, c.priority_tag.then_some(0));
    let (v4, v6) = (v4_pool(), v6_pool());
    let dst6: Ipv6Addr = "ff02::1".parse().unwrap();
    match &c.l3 {
        L3::Other => raw(spec, 0x88b5, &[0; 46]),
        L3::Tagged(tpid) => raw(spec, *tpid, &[0, 20, 0x88, 0xb5, 0, 0, 0, 0]),
        L3::Arp { sha_is_a, spa } => arp(spec, 1, (if *sha_is_a { A } else { C }, v4[*spa]), v4[*spa]),
        L3::Ipv4 { src, ports, dhcp_type } => {
            let data = dhcp_type.map(|t| dhcp(1, t, A, Ipv4Addr::UNSPECIFIED, None)).unwrap_or_default();
            udp4(spec, v4[*src], Ipv4Addr::BROADCAST, *ports, &data)
        }
        L3::Icmp6 { src, kind, target } => {
            let target = matches!(kind, 135 | 136).then_some(v6[*target]);
            icmp6(spec, v6[*src], dst6, *kind, target)
        }
        L3::Udp6 { src, sport } => udp6(spec, v6[*src], dst6, (*sport, 9)),
    }
}

/// The rules, written from the text.
fn model(c: &Case) -> Result<(), DropReason> {
    let (v4, v6) = (v4_pool(), v6_pool());
    let a_has_v4: &[Ipv4Addr] = match (c.a_configured, c.a_leased) {
        (true, true) => &[Ipv4Addr::new(198, 18, 0, 1), LEASED],
        (true, false) => &[Ipv4Addr::new(198, 18, 0, 1)],
        (false, true) => &[LEASED],
        (false, false) => &[],
    };
    let c_v4 = [Ipv4Addr::new(198, 18, 0, 3)];
    let mut a_v6: Vec<Ipv6Addr> = if c.a_configured { vec!["2001:db8::1".parse().unwrap()] } else { vec![] };
    if c.a_leased {
        a_v6.push(LEASED6);
    }
    let c_v6: [Ipv6Addr; 3] = ["2001:db8::3".parse().unwrap(), eui64_link_local(C), C_LEASED6];
    let ok4 = |ip: Ipv4Addr| a_has_v4.contains(&ip) || (a_has_v4.is_empty() && !c_v4.contains(&ip));
    let ok6 = |ip: Ipv6Addr| {
        ip == eui64_link_local(A) || a_v6.contains(&ip) || (a_v6.is_empty() && !c_v6.contains(&ip))
    };
    if c.src.0[0] & 1 == 1 {
        return Err(DropReason::MulticastSource);
    }
    match c.l3 {
        // Without a priority tag in front, an 802.1Q tag is the frame's own: VLAN 20 on an
        // access port.
        L3::Tagged(0x8100) if !c.priority_tag => return Err(DropReason::VlanNotAllowed),
        L3::Tagged(_) => return Err(DropReason::HiddenTag),
        _ => {}
    }
    if c.src != A {
        return Err(DropReason::SpoofedMac);
    }
    let verdict = |ok: bool, why| if ok { Ok(()) } else { Err(why) };
    match c.l3 {
        L3::Other | L3::Tagged(_) => Ok(()),
        L3::Arp { sha_is_a, spa } => {
            verdict(sha_is_a && (v4[spa].is_unspecified() || ok4(v4[spa])), DropReason::SpoofedArp)
        }
        L3::Ipv4 { src, ports, dhcp_type } => {
            if ports.0 == 67 {
                return Err(DropReason::RogueDhcp);
            }
            let s = v4[src];
            let dhcp_query = ports == (68, 67) && matches!(dhcp_type, Some(dhcp::DISCOVER | dhcp::REQUEST));
            let ok = if s.is_unspecified() {
                dhcp_query
            } else {
                !s.is_multicast() && !s.is_broadcast() && ok4(s)
            };
            verdict(ok, DropReason::SpoofedIp)
        }
        L3::Icmp6 { src, kind, target } => {
            if kind == 134 {
                return Err(DropReason::RogueRa);
            }
            if kind == 136 && !ok6(v6[target]) {
                return Err(DropReason::SpoofedNd);
            }
            let s = v6[src];
            let ok = if s.is_unspecified() { matches!(kind, 135 | 143) } else { !s.is_multicast() && ok6(s) };
            verdict(ok, DropReason::SpoofedIp)
        }
        L3::Udp6 { src, sport } => {
            if sport == 547 {
                return Err(DropReason::RogueDhcp);
            }
            let s = v6[src];
            verdict(!s.is_unspecified() && !s.is_multicast() && ok6(s), DropReason::SpoofedIp)
        }
    }
}

fn bridge(c: &Case) -> Bridge {
    let mut a = PortSecurity::vm(A);
    if c.a_configured {
        a.ips = parse_allowed_ips("198.18.0.1,2001:db8::1").unwrap();
    }
    let mut cs = PortSecurity::vm(C);
    cs.ips = parse_allowed_ips("198.18.0.3,2001:db8::3").unwrap();
    let port = |name: &str, vlan, security| PortSpec { security, ..PortSpec::new(name, vlan) };
    let mut br = Bridge::new(
        BridgeSettings::default(),
        vec![
            port("a", PortVlan::access(10), a),
            port("c", PortVlan::access(10), cs),
            port("t", PortVlan::new(Some(VlanMode::Trunk), None, &[10]).unwrap(), PortSecurity::off()),
        ],
    );
    if c.a_leased {
        let ack = dhcp(2, dhcp::ACK, A, LEASED, Some(3600));
        let f = udp4(eth(A, SERVER, Some(10)), Ipv4Addr::new(198, 18, 0, 254), LEASED, (67, 68), &ack);
        br.process(2, &f, 1, &mut Vec::new());
    }
    let mut reply6 = |client: MacAddr, addr: Ipv6Addr| {
        let m = dhcpv6(packet::dhcpv6::REPLY, &[(addr, 3600)]);
        let f = udp6_data(
            eth(client, SERVER, Some(10)),
            "fe80::547".parse().unwrap(),
            eui64_link_local(client),
            (547, 546),
            &m,
        );
        br.process(2, &f, 1, &mut Vec::new());
    };
    reply6(C, C_LEASED6);
    if c.a_leased {
        reply6(A, LEASED6);
    }
    br
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn pipeline_matches_the_model(c in case()) {
        let mut br = bridge(&c);
        let got = match br.process(0, &build(&c), 2, &mut Vec::new()) {
            Verdict::Drop(r) | Verdict::Mirrored { reason: r, .. } => Err(r),
            Verdict::Forward { .. } => Ok(()),
        };
        prop_assert_eq!(got, model(&c), "{:?}", c);
    }
}
