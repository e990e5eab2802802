//! The gateway's IPv6: ND answers on the literal messages of l3's testdata (built outside this
//! code base), routing both ways, the kill switch, NAT zones and spoofed sources.

use std::net::Ipv4Addr;

use super::*;
use crate::{GatewaySpec, Now};

const GW_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const VM_MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 0x02]);
const NOW: Now = Now { ms: 1_000, unix: 1_764_590_000 };
const NS_FROM_VM: &[u8] = include_bytes!("../../l3/testdata/nd-ns-from-vm.bin");
const NA_FROM_GW: &[u8] = include_bytes!("../../l3/testdata/nd-na-from-gw.bin");
const RA_FROM_GW: &[u8] = include_bytes!("../../l3/testdata/nd-ra-from-gw.bin");
const RA_RDNSS_FROM_GW: &[u8] = include_bytes!("../../l3/testdata/nd-ra-rdnss-from-gw.bin");
const RS_FROM_VM: &[u8] = include_bytes!("../../l3/testdata/nd-rs-from-vm.bin");

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn spec(allowed: &[&str]) -> GatewaySpec {
    GatewaySpec {
        mac: GW_MAC,
        ip: Ipv4Addr::new(198, 18, 0, 1),
        subnet: "198.18.0.0/24".parse().unwrap(),
        allowed: allowed.iter().map(|p| p.parse().unwrap()).collect(),
        mtu: 1420,
        v6: Some(GatewayV6 { ip: a("2001:db8:50::1"), subnet: "2001:db8:50::/64".parse().unwrap() }),
    }
}

fn gw() -> Gateway {
    Gateway::new(spec(&["198.18.9.0/24", "2001:db8:60::/64"]))
}

/// `ip` in an Ethernet frame from the VM to `dst`.
fn from_vm(dst: MacAddr, ip: &[u8]) -> Vec<u8> {
    let mut f = [dst.0, VM_MAC.0].concat();
    f.extend([0x86, 0xdd]);
    f.extend_from_slice(ip);
    f
}

/// An IPv6 packet `src` → `dst`, hop limit 64, carrying `next` with `payload`.
fn packet6(src: &str, dst: &str, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    ipv6::write_header(&mut p, (a(src), a(dst)), next, 64, payload.len()).unwrap();
    p.extend_from_slice(payload);
    p
}

/// An ICMPv6 echo request (its checksum is the ends' business, not the router's).
fn echo(src: &str, dst: &str) -> Vec<u8> {
    packet6(src, dst, 58, &[128, 0, 0x12, 0x34, 0, 1, 0, 1])
}

#[test]
fn answers_neighbor_solicitations_for_its_addresses_even_while_down() {
    let mut g = gw();
    let mut out = [0u8; 256];
    for up in [true, false] {
        let mut f = from_vm(MacAddr([0x33, 0x33, 0xff, 0, 0, 1]), NS_FROM_VM);
        assert_eq!(g.zone_frame(&mut f, up, NOW, &mut out), FromZone::Reply(14 + NA_FROM_GW.len()));
        assert_eq!(out[..12], [VM_MAC.0, GW_MAC.0].concat()[..]);
        assert_eq!(&out[14..14 + NA_FROM_GW.len()], NA_FROM_GW);
    }
    assert_eq!(g.neighbours().get(a("2001:db8:50::2")), Some(VM_MAC), "learnt from the NS");
    let ll = g.link_local();
    assert_eq!(ll, a("fe80::ff:fe00:1"));
    let ns = l3::nd::neighbor_solicit(a("2001:db8:50::2"), ll, VM_MAC);
    let mut f = from_vm(MacAddr([0x33, 0x33, 0xff, 0, 0, 1]), &ns);
    assert!(matches!(g.zone_frame(&mut f, true, NOW, &mut out), FromZone::Reply(_)));
    assert_eq!(out[14 + 48..14 + 64], ll.octets(), "the link-local one too");
    let other = l3::nd::neighbor_solicit(a("2001:db8:50::2"), a("2001:db8:50::7"), VM_MAC);
    let mut f = from_vm(MacAddr([0x33, 0x33, 0xff, 0, 0, 7]), &other);
    assert_eq!(g.zone_frame(&mut f, true, NOW, &mut out), FromZone::Drop(DropReason::NotForGateway));
    let mut routed = NS_FROM_VM.to_vec();
    routed[7] = 64;
    let mut f = from_vm(MacAddr([0x33, 0x33, 0xff, 0, 0, 1]), &routed);
    assert_eq!(g.zone_frame(&mut f, true, NOW, &mut out), FromZone::Drop(DropReason::Malformed));
}

#[test]
fn router_advertisements_on_solicitation_and_periodically() {
    let mut g = gw();
    let mut out = [0u8; 256];
    let mut f = from_vm(MacAddr([0x33, 0x33, 0, 0, 0, 2]), RS_FROM_VM);
    let FromZone::Reply(n) = g.zone_frame(&mut f, false, NOW, &mut out) else { panic!("no RA") };
    assert_eq!((n, &out[..6]), (14 + RA_FROM_GW.len(), &VM_MAC.0[..]));
    assert_eq!(out[14 + 24..14 + 40], a("fe80::5054:ff:fe00:2").octets(), "to the soliciting VM");
    assert_eq!(out[14 + 40], 134);
    assert_eq!(out[14 + 48..n], RA_FROM_GW[48..], "the same body as the periodic one");
    assert_eq!(g.advertise(0, &mut out), Some(14 + RA_FROM_GW.len()));
    assert_eq!(out[..6], [0x33, 0x33, 0, 0, 0, 1]);
    assert_eq!(&out[14..n], RA_FROM_GW);
    assert_eq!(g.advertise(ADVERT_INTERVAL_MS - 1, &mut out), None);
    assert!(g.advertise(ADVERT_INTERVAL_MS, &mut out).is_some());
    assert_eq!(Gateway::new(GatewaySpec { v6: None, ..spec(&[]) }).advertise(0, &mut out), None);
}

/// The zone's IPv6 DNS servers ride in every RA (RDNSS, lifetime [`DNS_LIFETIME_SECS`]), on
/// solicitation and periodically; what no VM could use (the gateway itself, link-local, a
/// repeat, more than the limit) is left out.
#[test]
fn router_advertisements_name_the_zones_dns_servers() {
    let dns = [
        a("2001:db8:60::53"),
        a("fe80::53"),
        a("2001:db8:50::1"),
        a("2001:db8:60::54"),
        a("2001:db8:60::53"),
    ];
    let mut g = gw().with_dns6(&dns);
    assert_eq!(g.dns6(), [a("2001:db8:60::53"), a("2001:db8:60::54")]);
    let mut out = [0u8; 512];
    assert_eq!(g.advertise(0, &mut out), Some(14 + RA_RDNSS_FROM_GW.len()));
    assert_eq!(&out[14..14 + RA_RDNSS_FROM_GW.len()], RA_RDNSS_FROM_GW);
    let mut f = from_vm(MacAddr([0x33, 0x33, 0, 0, 0, 2]), RS_FROM_VM);
    let FromZone::Reply(n) = g.zone_frame(&mut f, true, NOW, &mut out) else { panic!("no RA") };
    assert_eq!(out[14 + 104..n], RA_RDNSS_FROM_GW[104..], "the solicited RA names them too");
    let many: Vec<Ipv6Addr> =
        (1..=20u16).map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0x60, 0, 0, 0, 0, i)).collect();
    assert_eq!(gw().with_dns6(&many).dns6(), &many[..l3::nd::MAX_RDNSS]);
}

#[test]
fn routes_ipv6_both_ways_and_finds_the_vm_by_neighbor_solicitation() {
    let mut g = gw();
    let mut out = [0u8; 256];
    let mut back = echo("2001:db8:60::10", "2001:db8:50::2");
    let FromTunnel::Resolve(n) = g.tunnel_packet(&mut back, NOW, &mut out) else { panic!("VM unknown yet") };
    assert_eq!(out[..6], [0x33, 0x33, 0xff, 0, 0, 2]);
    assert_eq!(out[14..n], l3::nd::neighbor_solicit(g.link_local(), a("2001:db8:50::2"), GW_MAC)[..]);

    let mut f = from_vm(GW_MAC, &echo("2001:db8:50::2", "2001:db8:60::10"));
    f.extend([0xee; 4]); // Ethernet padding
    let FromZone::Tunnel(ip) = g.zone_frame(&mut f, true, NOW, &mut out) else { panic!("not routed") };
    assert_eq!((ip.len(), ip[7]), (48, 63), "padding left behind, one hop less");
    let mut back = echo("2001:db8:60::10", "2001:db8:50::2");
    assert_eq!(g.tunnel_packet(&mut back, NOW, &mut out), FromTunnel::Frame(14 + 48));
    assert_eq!(out[..14], [&VM_MAC.0[..], &GW_MAC.0, &[0x86, 0xdd]].concat()[..]);
    assert_eq!(out[14 + 7], 63);
    assert_eq!(g.drops().get(DropReason::NoNeighbour), 1);
}

#[test]
fn the_kill_switch_and_nat_zones_hold_ipv6_back() {
    let mut g = gw();
    let mut out = [0u8; 256];
    let mut f = from_vm(GW_MAC, &echo("2001:db8:50::2", "2001:db8:60::10"));
    assert_eq!(g.zone_frame(&mut f, false, NOW, &mut out), FromZone::Drop(DropReason::VpnDown));
    let mut nat = gw().with_nat(l3::nat::Nat::new(l3::nat::NatConfig::new(Ipv4Addr::new(198, 18, 51, 2))));
    let mut ns = from_vm(MacAddr([0x33, 0x33, 0xff, 0, 0, 1]), NS_FROM_VM);
    for frame in [&mut f, &mut ns] {
        assert_eq!(nat.zone_frame(frame, true, NOW, &mut out), FromZone::Drop(DropReason::NatIpv6));
    }
    let mut back = echo("2001:db8:60::10", "2001:db8:50::2");
    assert_eq!(nat.tunnel_packet(&mut back, NOW, &mut out), FromTunnel::Drop(DropReason::NatIpv6));
    assert_eq!(nat.drops().get(DropReason::NatIpv6), 3);
}

#[test]
fn sources_and_destinations_that_may_not_pass() {
    let mut g = Gateway::new(spec(&["::/0"]));
    let mut out = [0u8; 256];
    let mut verdict = |src: &str, dst: &str| {
        let mut f = from_vm(GW_MAC, &echo(src, dst));
        match g.zone_frame(&mut f, true, NOW, &mut out) {
            FromZone::Drop(r) => Some(r),
            _ => None,
        }
    };
    assert_eq!(verdict("fe80::5054:ff:fe00:2", "2001:db8:60::10"), Some(DropReason::BadSource));
    assert_eq!(verdict("2001:db8:99::2", "2001:db8:60::10"), Some(DropReason::BadSource));
    assert_eq!(verdict("2001:db8:50::1", "2001:db8:60::10"), Some(DropReason::BadSource), "the gateway's");
    assert_eq!(verdict("2001:db8:50::2", "fe80::1"), Some(DropReason::NoRoute), "even with ::/0");
    assert_eq!(verdict("2001:db8:50::2", "ff0e::1"), Some(DropReason::NoRoute));
    assert_eq!(verdict("2001:db8:50::2", "2001:db8:50::1"), Some(DropReason::ToGateway));
    assert_eq!(verdict("2001:db8:50::2", "2001:db8:61::1"), None, "::/0 carries the rest");
    let mut g = gw();
    let mut tunnel = |src: &str, dst: &str| match g.tunnel_packet(&mut echo(src, dst), NOW, &mut out) {
        FromTunnel::Drop(r) => Some(r),
        _ => None,
    };
    assert_eq!(tunnel("2001:db8:99::1", "2001:db8:50::2"), Some(DropReason::NotAllowedSource));
    assert_eq!(tunnel("2001:db8:60::10", "2001:db8:51::2"), Some(DropReason::NotInSubnet));
    assert_eq!(tunnel("2001:db8:60::10", "2001:db8:50::1"), Some(DropReason::NotInSubnet));
    let mut cut = echo("2001:db8:60::10", "2001:db8:50::2");
    cut[5] = 200;
    assert_eq!(g.tunnel_packet(&mut cut, NOW, &mut out), FromTunnel::Drop(DropReason::Malformed));
}

#[test]
fn oversize_gets_packet_too_big_and_syns_are_clamped() {
    let mut g = gw();
    let mut out = [0u8; 1500];
    let big = packet6("2001:db8:50::2", "2001:db8:60::10", 59, &[0; 1460]);
    let mut f = from_vm(GW_MAC, &big);
    let FromZone::Reply(n) = g.zone_frame(&mut f, true, NOW, &mut out) else { panic!("no error") };
    assert_eq!((n, &out[..6]), (14 + 1280, &VM_MAC.0[..]));
    assert_eq!(
        (out[14 + 40], &out[14 + 44..14 + 48]),
        (2, &1420u32.to_be_bytes()[..]),
        "packet too big, 1420"
    );
    assert_eq!(g.drops().get(DropReason::TooBig), 1);
    // A SYN with MSS 1440 and no checksum worth keeping: the clamp fixes it incrementally.
    let tcp = [
        0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff, 0, 0, 0, 0, 2, 4, 0x05, 0xa0,
    ];
    let mut f = from_vm(GW_MAC, &packet6("2001:db8:50::2", "2001:db8:60::10", 6, &tcp));
    let FromZone::Tunnel(ip) = g.zone_frame(&mut f, true, NOW, &mut out) else { panic!("not routed") };
    assert_eq!(ip[40 + 22..40 + 24], 1360u16.to_be_bytes(), "1420 - 60");
}
