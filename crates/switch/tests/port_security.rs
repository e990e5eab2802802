//! Port security in the pipeline, one rule at a time: VM A and C on VLAN 10 (C with configured
//! addresses), B on VLAN 20, a trunk T (not a VM port: unchecked, trusted).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use packet::{arp, dhcp, icmpv6, ipv6::eui64_link_local, MacAddr, ETHERTYPE_QINQ};
use switch::{
    parse_allowed_ips, Bridge, BridgeSettings, DropReason, PortSecurity, PortSpec, PortVlan, SecurityMode,
    Verdict, VlanMode,
};
use testbed::frames::*;

const A: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
const B: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 2]);
const C: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 3]);
const BCAST: MacAddr = MacAddr::BROADCAST;
const SA: usize = 0;
const SC: usize = 1;
const ST: usize = 3;

fn v4(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, last)
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn port(name: &str, vlan: PortVlan, security: PortSecurity) -> PortSpec {
    PortSpec { security, ..PortSpec::new(name, vlan) }
}

fn with_ips(mut s: PortSecurity, ips: &str) -> PortSecurity {
    s.ips = parse_allowed_ips(ips).unwrap();
    s
}

/// Slots: 0 A (VM, VLAN 10), 1 C (VM, VLAN 10, bound to 198.18.0.3 and 2001:db8::3),
/// 2 B (VM, VLAN 20), 3 T (trunk 10, 20).
fn bridge(a: PortSecurity) -> Bridge {
    Bridge::new(
        BridgeSettings::default(),
        vec![
            port("a", PortVlan::access(10), a),
            port("c", PortVlan::access(10), with_ips(PortSecurity::vm(C), "198.18.0.3,2001:db8::3")),
            port("b", PortVlan::access(20), PortSecurity::vm(B)),
            port("t", PortVlan::new(Some(VlanMode::Trunk), None, &[10, 20]).unwrap(), PortSecurity::off()),
        ],
    )
}

fn run(br: &mut Bridge, slot: usize, f: &[u8], now: u64) -> Result<usize, DropReason> {
    let mut out = Vec::new();
    match br.process(slot, f, now, &mut out) {
        Verdict::Drop(r) | Verdict::Mirrored { reason: r, .. } => Err(r),
        Verdict::Forward { .. } => Ok(out.len()),
    }
}

fn from_a(br: &mut Bridge, f: &[u8]) -> Result<usize, DropReason> {
    run(br, SA, f, 1)
}

#[test]
fn own_traffic_passes_and_reaches_the_zone() {
    let mut br = bridge(PortSecurity::vm(A));
    assert_eq!(from_a(&mut br, &raw(eth(BCAST, A, None), 0x88b5, &[0; 46])), Ok(2), "to C and T, not B");
    assert_eq!(from_a(&mut br, &arp(eth(BCAST, A, None), arp::OP_REQUEST, (A, v4(1)), v4(3))), Ok(2));
    assert_eq!(
        from_a(&mut br, &arp(eth(BCAST, A, None), arp::OP_REQUEST, (A, Ipv4Addr::UNSPECIFIED), v4(1))),
        Ok(2),
        "probe"
    );
    assert_eq!(
        from_a(&mut br, &udp4(eth(C, A, None), v4(1), v4(3), (1000, 2000), b"x")),
        Ok(2),
        "C not learned yet"
    );
    let discover = dhcp(dhcp::OP_REQUEST, dhcp::DISCOVER, A, Ipv4Addr::UNSPECIFIED, None);
    let f = udp4(eth(BCAST, A, None), Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, (68, 67), &discover);
    assert_eq!(from_a(&mut br, &f), Ok(2));
    let lla = eui64_link_local(A);
    assert_eq!(
        from_a(&mut br, &icmp6(eth(BCAST, A, None), lla, v6("ff02::1"), icmpv6::NEIGHBOR_ADVERT, Some(lla))),
        Ok(2)
    );
    let dad = icmp6(
        eth(BCAST, A, None),
        Ipv6Addr::UNSPECIFIED,
        v6("ff02::1:ff00:1"),
        icmpv6::NEIGHBOR_SOLICIT,
        Some(lla),
    );
    assert_eq!(from_a(&mut br, &dad), Ok(2));
    let stable = v6("fe80::1234:5678:9abc:def0");
    assert_eq!(
        from_a(&mut br, &icmp6(eth(BCAST, A, None), stable, v6("ff02::2"), icmpv6::ROUTER_SOLICIT, None)),
        Ok(2),
        "any fe80:: while unbound"
    );
}

#[test]
fn layer_two_abuse() {
    let mut br = bridge(PortSecurity::vm(A));
    assert_eq!(from_a(&mut br, &raw(eth(BCAST, B, None), 0x88b5, &[0; 46])), Err(DropReason::SpoofedMac));
    assert_eq!(
        from_a(&mut br, &raw(eth(BCAST, MacAddr([0; 6]), None), 0x88b5, &[0; 46])),
        Err(DropReason::SpoofedMac)
    );
    assert_eq!(
        from_a(&mut br, &raw(eth(BCAST, MacAddr([3, 0, 0, 0, 0, 1]), None), 0x88b5, &[0; 46])),
        Err(DropReason::MulticastSource)
    );
    let hidden = raw(eth(BCAST, A, Some(0)), 0x8100, &[0, 20, 0x88, 0xb5, 0, 0]);
    assert_eq!(from_a(&mut br, &hidden), Err(DropReason::HiddenTag));
    let s_tag = raw(eth(BCAST, A, None), ETHERTYPE_QINQ, &[0, 20, 0x81, 0, 0, 20, 0x88, 0xb5]);
    assert_eq!(from_a(&mut br, &s_tag), Err(DropReason::HiddenTag));
    assert_eq!(
        from_a(&mut br, &raw(eth(BCAST, A, Some(0)), 0x88b5, &[0; 46])),
        Ok(2),
        "a plain priority tag is fine"
    );
    let c = &br.ports()[SA].counters;
    assert_eq!((c.drops(DropReason::SpoofedMac), c.drops(DropReason::HiddenTag)), (2, 2));
    let snap = c.snapshot();
    assert_eq!(snap.drops.get("spoofed-mac"), Some(&2));
    assert_eq!(snap.drops.get("hidden-tag"), Some(&2));
}

#[test]
fn arp_and_ip_claims_on_a_neighbour() {
    let mut br = bridge(PortSecurity::vm(A));
    let garp = arp(eth(BCAST, A, None), arp::OP_REQUEST, (A, v4(3)), v4(3));
    assert_eq!(from_a(&mut br, &garp), Err(DropReason::SpoofedArp), "C's IP is bound to C");
    let reply = arp(eth(C, A, None), arp::OP_REPLY, (A, v4(3)), v4(1));
    assert_eq!(from_a(&mut br, &reply), Err(DropReason::SpoofedArp));
    let sha = arp(eth(BCAST, A, None), arp::OP_REPLY, (C, v4(9)), v4(1));
    assert_eq!(from_a(&mut br, &sha), Err(DropReason::SpoofedArp), "sender MAC must be A's");
    assert_eq!(
        from_a(&mut br, &udp4(eth(BCAST, A, None), v4(3), v4(255), (1, 2), b"")),
        Err(DropReason::SpoofedIp)
    );
    assert_eq!(
        from_a(&mut br, &udp4(eth(BCAST, A, None), Ipv4Addr::UNSPECIFIED, v4(255), (1, 2), b"")),
        Err(DropReason::SpoofedIp),
        "0.0.0.0 outside DHCP"
    );
    let offer = dhcp(dhcp::OP_REPLY, dhcp::OFFER, B, v4(50), Some(60));
    assert_eq!(
        from_a(&mut br, &udp4(eth(BCAST, A, None), v4(1), v4(255), (67, 68), &offer)),
        Err(DropReason::RogueDhcp)
    );
    assert_eq!(
        from_a(&mut br, &udp4(eth(BCAST, A, None), Ipv4Addr::new(224, 0, 0, 1), v4(255), (1, 2), b"")),
        Err(DropReason::SpoofedIp)
    );
    let (lla, llc) = (eui64_link_local(A), eui64_link_local(C));
    let na = icmp6(eth(BCAST, A, None), lla, v6("ff02::1"), icmpv6::NEIGHBOR_ADVERT, Some(v6("2001:db8::3")));
    assert_eq!(from_a(&mut br, &na), Err(DropReason::SpoofedNd));
    let na_ll = icmp6(eth(BCAST, A, None), lla, v6("ff02::1"), icmpv6::NEIGHBOR_ADVERT, Some(llc));
    assert_eq!(from_a(&mut br, &na_ll), Err(DropReason::SpoofedNd), "C's EUI-64 link-local is C's");
    let ra = icmp6(eth(BCAST, A, None), lla, v6("ff02::1"), icmpv6::ROUTER_ADVERT, None);
    assert_eq!(from_a(&mut br, &ra), Err(DropReason::RogueRa));
    assert_eq!(
        from_a(&mut br, &udp6(eth(BCAST, A, None), lla, v6("ff02::1:2"), (547, 546))),
        Err(DropReason::RogueDhcp)
    );
    assert_eq!(
        from_a(&mut br, &udp6(eth(BCAST, A, None), llc, v6("ff02::1"), (1, 2))),
        Err(DropReason::SpoofedIp)
    );
    assert_eq!(
        from_a(&mut br, &udp6(eth(BCAST, A, None), Ipv6Addr::UNSPECIFIED, v6("ff02::1"), (1, 2))),
        Err(DropReason::SpoofedIp)
    );
    assert_eq!(
        from_a(&mut br, &udp6(eth(BCAST, A, None), v6("2001:db8::3"), v6("ff02::1"), (1, 2))),
        Err(DropReason::SpoofedIp)
    );
}

#[test]
fn a_bound_port_may_use_only_its_addresses() {
    let mut br = bridge(with_ips(PortSecurity::vm(A), "198.18.0.1, 198.18.0.100, 2001:db8::1"));
    assert_eq!(from_a(&mut br, &udp4(eth(BCAST, A, None), v4(1), v4(255), (1, 2), b"")), Ok(2));
    assert_eq!(
        from_a(&mut br, &udp4(eth(BCAST, A, None), v4(9), v4(255), (1, 2), b"")),
        Err(DropReason::SpoofedIp)
    );
    assert_eq!(from_a(&mut br, &arp(eth(BCAST, A, None), 1, (A, v4(9)), v4(9))), Err(DropReason::SpoofedArp));
    assert_eq!(
        from_a(&mut br, &arp(eth(BCAST, A, None), 1, (A, v4(100)), v4(100))),
        Ok(2),
        "a VIP it may hold"
    );
    assert_eq!(
        from_a(&mut br, &udp6(eth(BCAST, A, None), v6("2001:db8::9"), v6("ff02::1"), (1, 2))),
        Err(DropReason::SpoofedIp)
    );
    assert_eq!(
        from_a(&mut br, &udp6(eth(BCAST, A, None), v6("fe80::99"), v6("ff02::1"), (1, 2))),
        Err(DropReason::SpoofedIp),
        "bound: only its EUI-64 link-local"
    );
    assert_eq!(
        from_a(&mut br, &udp6(eth(BCAST, A, None), eui64_link_local(A), v6("ff02::1"), (1, 2))),
        Ok(2)
    );
}

#[test]
fn a_shared_vip_moves_between_its_holders() {
    let mut br = bridge(with_ips(PortSecurity::vm(A), "198.18.0.100"));
    let mut ports = br.ports().to_vec();
    ports[SC].security = with_ips(PortSecurity::vm(C), "198.18.0.3, 198.18.0.100");
    br.reconfigure(BridgeSettings::default(), ports);
    assert_eq!(from_a(&mut br, &arp(eth(BCAST, A, None), 1, (A, v4(100)), v4(100))), Ok(2));
    assert_eq!(run(&mut br, SC, &arp(eth(BCAST, C, None), 1, (C, v4(100)), v4(100)), 2), Ok(2));
}

#[test]
fn dhcp_snooping_binds_until_the_lease_ends() {
    let mut br = bridge(PortSecurity::vm(A));
    let ack = dhcp(dhcp::OP_REPLY, dhcp::ACK, A, v4(10), Some(60));
    let from_server = udp4(eth(A, MacAddr([2, 0, 0, 0, 0, 0x67]), Some(10)), v4(254), v4(10), (67, 68), &ack);
    // An ACK from A itself is a rogue server and binds nothing.
    assert_eq!(
        run(&mut br, SA, &udp4(eth(BCAST, A, None), v4(1), v4(10), (67, 68), &ack), 1),
        Err(DropReason::RogueDhcp)
    );
    assert!(br.leases(1).is_empty());
    // From the server on the wrong VLAN: ignored.
    let wrong_vlan = udp4(eth(A, MacAddr([2, 0, 0, 0, 0, 0x67]), Some(20)), v4(254), v4(10), (67, 68), &ack);
    run(&mut br, ST, &wrong_vlan, 1).unwrap();
    assert!(br.leases(1).is_empty());
    run(&mut br, ST, &from_server, 1_000).unwrap();
    let leases = br.leases(1_000);
    assert_eq!(
        (leases.len(), leases[0].mac, leases[0].ip, leases[0].remaining_ms),
        (1, A, IpAddr::V4(v4(10)), 60_000)
    );
    let src = |ip| udp4(eth(BCAST, A, None), ip, v4(255), (1, 2), b"");
    assert_eq!(run(&mut br, SA, &src(v4(10)), 2_000), Ok(2));
    assert_eq!(run(&mut br, SA, &src(v4(1)), 2_000), Err(DropReason::SpoofedIp), "bound now");
    assert_eq!(
        run(&mut br, SC, &udp4(eth(BCAST, C, None), v4(10), v4(255), (1, 2), b""), 2_000),
        Err(DropReason::SpoofedIp),
        "A's lease protects A"
    );
    assert_eq!(run(&mut br, SA, &src(v4(1)), 61_000), Ok(2), "lease ended: unbound again");
    br.expire(61_000);
    assert!(br.leases(61_000).is_empty());
    // A NAK removes a lease at once.
    run(&mut br, ST, &from_server, 70_000).unwrap();
    let nak = dhcp(dhcp::OP_REPLY, dhcp::NAK, A, Ipv4Addr::UNSPECIFIED, None);
    run(
        &mut br,
        ST,
        &udp4(eth(A, MacAddr([2, 0, 0, 0, 0, 0x67]), Some(10)), v4(254), v4(10), (67, 68), &nak),
        70_001,
    )
    .unwrap();
    assert!(br.leases(70_002).is_empty());
}

#[test]
fn trusted_vm_may_serve_dhcp_and_ra() {
    let mut sec = PortSecurity::vm(A);
    sec.trusted = true;
    let mut br = bridge(sec);
    let offer = dhcp(dhcp::OP_REPLY, dhcp::OFFER, C, v4(50), Some(60));
    assert_eq!(from_a(&mut br, &udp4(eth(BCAST, A, None), v4(1), v4(255), (67, 68), &offer)), Ok(2));
    let lla = eui64_link_local(A);
    assert_eq!(
        from_a(&mut br, &icmp6(eth(BCAST, A, None), lla, v6("ff02::1"), icmpv6::ROUTER_ADVERT, None)),
        Ok(2)
    );
}

#[test]
fn mac_limit_and_modes() {
    let mut sec = PortSecurity::vm(A);
    sec.macs.push(MacAddr([0x52, 0x54, 0, 0, 0, 0x11]));
    let mut br = bridge(sec);
    assert_eq!(from_a(&mut br, &raw(eth(BCAST, A, None), 0x88b5, &[0; 46])), Ok(2));
    assert_eq!(
        from_a(&mut br, &raw(eth(BCAST, MacAddr([0x52, 0x54, 0, 0, 0, 0x11]), None), 0x88b5, &[0; 46])),
        Err(DropReason::PortMacLimit)
    );
    assert_eq!(
        from_a(&mut br, &raw(eth(BCAST, A, None), 0x88b5, &[0; 46])),
        Ok(2),
        "the learned one still passes"
    );

    let mac_only = PortSecurity { mode: SecurityMode::Mac, ..PortSecurity::vm(A) };
    let mut br = bridge(mac_only);
    assert_eq!(
        from_a(&mut br, &arp(eth(BCAST, A, None), 1, (A, v4(3)), v4(3))),
        Ok(2),
        "mode mac: no ARP check"
    );
    assert_eq!(from_a(&mut br, &raw(eth(BCAST, B, None), 0x88b5, &[0; 46])), Err(DropReason::SpoofedMac));
    let mut br = bridge(PortSecurity::off());
    assert_eq!(from_a(&mut br, &raw(eth(BCAST, B, None), 0x88b5, &[0; 46])), Ok(2), "off: OvS behaviour");
}

#[test]
fn malformed_layer_three_is_dropped_not_forwarded() {
    let mut br = bridge(PortSecurity::vm(A));
    assert_eq!(from_a(&mut br, &raw(eth(BCAST, A, None), 0x0806, &[0; 10])), Err(DropReason::SpoofedArp));
    assert_eq!(from_a(&mut br, &raw(eth(BCAST, A, None), 0x0800, &[0x45; 10])), Err(DropReason::SpoofedIp));
    assert_eq!(from_a(&mut br, &raw(eth(BCAST, A, None), 0x86dd, &[0x60; 20])), Err(DropReason::SpoofedIp));
    // Hop-by-hop header claiming more than the packet holds, in front of an RA.
    let lla = eui64_link_local(A);
    let hidden_ra = ip6(eth(BCAST, A, None), lla, v6("ff02::1"), 0, &[58, 4, 0, 0, 0, 0, 0, 0, 134, 0, 0, 0]);
    assert_eq!(from_a(&mut br, &hidden_ra), Err(DropReason::SpoofedIp));
    let ra_behind_hbh =
        ip6(eth(BCAST, A, None), lla, v6("ff02::1"), 0, &[58, 0, 0, 0, 0, 0, 0, 0, 134, 0, 0, 0]);
    assert_eq!(from_a(&mut br, &ra_behind_hbh), Err(DropReason::RogueRa));
}

#[test]
fn turning_security_on_forgets_what_the_port_learned() {
    let mut br = bridge(PortSecurity::off());
    assert_eq!(
        from_a(&mut br, &raw(eth(BCAST, B, None), 0x88b5, &[0; 46])),
        Ok(2),
        "B's MAC spoofed while off"
    );
    assert_eq!(br.lookup(10, B, 2).map(|p| p.name.as_str()), Some("a"));
    let mut ports = br.ports().to_vec();
    ports[SA].security = PortSecurity::vm(A);
    br.reconfigure(BridgeSettings::default(), ports);
    assert!(br.lookup(10, B, 2).is_none(), "the spoofed entry must not keep drawing B's traffic to A");
}

/// The pipeline reports what an operator wants to hear: a spoofed source (with the IP it
/// claimed, rate-limited per port) and a station that moved between ports.
#[test]
fn spoofs_and_moves_become_events() {
    use switch::SwitchEvent;
    let mut br = bridge(PortSecurity::vm(A));
    let spoof = udp4(eth(BCAST, A, None), v4(3), v4(1), (1000, 2000), b"x");
    assert_eq!(run(&mut br, SA, &spoof, 1000), Err(DropReason::SpoofedIp));
    assert_eq!(run(&mut br, SA, &spoof, 1100), Err(DropReason::SpoofedIp), "folded into the next event");
    assert_eq!(run(&mut br, SA, &spoof, 2100), Err(DropReason::SpoofedIp));
    // Stations move between trusted ports (on a VM port another MAC would be a spoof).
    let x = MacAddr([0x52, 0x54, 0, 0, 0, 9]);
    let t = PortVlan::new(Some(VlanMode::Trunk), None, &[10, 20]).unwrap();
    let mut two = Bridge::new(
        BridgeSettings::default(),
        vec![port("t1", t.clone(), PortSecurity::off()), port("t2", t, PortSecurity::off())],
    );
    let tagged = raw(eth(BCAST, x, Some(10)), 0x88b5, &[0; 46]);
    run(&mut two, 0, &tagged, 1).unwrap();
    run(&mut two, 1, &tagged, 2).unwrap();
    let mut moves = Vec::new();
    assert_eq!(two.drain_events(|e| moves.push(e)), 0);
    assert_eq!(moves, vec![SwitchEvent::MacMoved { vlan: 10, mac: x, from: 0, to: 1 }]);

    let mut got = Vec::new();
    br.drain_events(|e| got.push(e));
    let ip = Some(v4(3).into());
    let ev = |suppressed| SwitchEvent::SecurityDrop {
        slot: SA,
        reason: DropReason::SpoofedIp,
        mac: A,
        ip,
        suppressed,
    };
    assert_eq!(got, vec![ev(0), ev(1)]);
}
