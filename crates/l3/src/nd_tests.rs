//! The literals in testdata/nd-*.bin were built and checksummed outside this code base (a
//! Python script over RFC 4861's layouts): gateway 02:00:00:00:00:01 with 2001:db8:50::1 and
//! fe80::ff:fe00:1, VM 52:54:00:00:00:02 with 2001:db8:50::2, zone 2001:db8:50::/64.
//! nd-ra-rdnss-from-gw.bin is that RA with RFC 8106's RDNSS option appended (2001:db8:60::53
//! and ::54, lifetime 1800), its length and checksum recomputed by the same script.

use super::*;

const NS_FROM_VM: &[u8] = include_bytes!("../testdata/nd-ns-from-vm.bin");
const NA_FROM_GW: &[u8] = include_bytes!("../testdata/nd-na-from-gw.bin");
const RA_FROM_GW: &[u8] = include_bytes!("../testdata/nd-ra-from-gw.bin");
const RA_RDNSS_FROM_GW: &[u8] = include_bytes!("../testdata/nd-ra-rdnss-from-gw.bin");
const RS_FROM_VM: &[u8] = include_bytes!("../testdata/nd-rs-from-vm.bin");
const GW_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn reads_solicitations() {
    let ns = Nd::NeighborSolicit { src: a("2001:db8:50::2"), target: a("2001:db8:50::1") };
    assert_eq!(parse(NS_FROM_VM), Some(Ok(ns)));
    assert_eq!(parse(RS_FROM_VM), Some(Ok(Nd::RouterSolicit { src: a("fe80::5054:ff:fe00:2") })));
    assert_eq!(parse(RA_FROM_GW), Some(Ok(Nd::RouterOnly)), "a VM's RA is not for us to take");
    assert_eq!(parse(NA_FROM_GW), Some(Ok(Nd::NeighborAdvert { target: a("2001:db8:50::1") })));
}

#[test]
fn refuses_what_rfc_4861_says_to_discard() {
    let mut routed = NS_FROM_VM.to_vec();
    routed[7] = 64;
    assert_eq!(parse(&routed), Some(Err(NdInvalid("hop limit is not 255"))));
    let mut bad_sum = NS_FROM_VM.to_vec();
    bad_sum[43] ^= 1;
    assert_eq!(parse(&bad_sum), Some(Err(NdInvalid("bad ICMPv6 checksum"))));
    let mut echo = NS_FROM_VM.to_vec();
    echo[40] = icmpv6::ECHO_REQUEST;
    assert_eq!(parse(&echo), None, "not ND");
    assert_eq!(parse(&NS_FROM_VM[..30]), None, "not even IPv6");
    for n in 41..NS_FROM_VM.len() {
        assert!(!matches!(parse(&NS_FROM_VM[..n]), Some(Ok(_))), "cut at {n}");
    }
}

#[test]
fn builds_the_gateways_messages_byte_for_byte() {
    assert_eq!(neighbor_advert(a("2001:db8:50::1"), a("2001:db8:50::2"), GW_MAC), NA_FROM_GW);
    let advert = Advert {
        mac: GW_MAC,
        mtu: 1420,
        prefix: a("2001:db8:50::77"),
        prefix_len: 64,
        router_lifetime: 1800,
        dns: &[],
        dns_lifetime: 1800,
    };
    assert_eq!(router_advert(a("fe80::ff:fe00:1"), ALL_NODES, &advert), RA_FROM_GW, "host bits cleared");
    let dns = [a("2001:db8:60::53"), a("2001:db8:60::54")];
    let with_dns = Advert { dns: &dns, ..advert };
    assert_eq!(router_advert(a("fe80::ff:fe00:1"), ALL_NODES, &with_dns), RA_RDNSS_FROM_GW);
    let vm = MacAddr([0x52, 0x54, 0, 0, 0, 2]);
    assert_eq!(neighbor_solicit(a("2001:db8:50::2"), a("2001:db8:50::1"), vm), NS_FROM_VM);
}

#[test]
fn multicast_addresses() {
    assert_eq!(solicited_node(a("2001:db8:50::12:3456")), a("ff02::1:ff12:3456"));
    assert_eq!(multicast_mac(a("ff02::1:ff12:3456")), MacAddr([0x33, 0x33, 0xff, 0x12, 0x34, 0x56]));
    let na = neighbor_advert(a("2001:db8:50::1"), ALL_NODES, GW_MAC);
    assert_eq!(na[44] & 0x40, 0, "an answer to DAD is not solicited");
    let short = Advert {
        mac: GW_MAC,
        mtu: 1280,
        prefix: a("2001:db8::"),
        prefix_len: 56,
        router_lifetime: 0,
        dns: &[],
        dns_lifetime: 0,
    };
    assert_eq!(router_advert(a("fe80::1"), ALL_NODES, &short)[40 + 35], 0x80, "no SLAAC on a /56");
}

/// RFC 8106 §5.1: one option, length 1 + 2 per address in 8-octet units; never more than
/// [`MAX_RDNSS`] addresses, so the RA stays bounded whatever the caller hands in.
#[test]
fn rdnss_option_is_bounded_and_framed_as_rfc_8106_says() {
    let many: Vec<Ipv6Addr> =
        (1..=20u16).map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0x60, 0, 0, 0, 0, i)).collect();
    let advert = Advert {
        mac: GW_MAC,
        mtu: 1420,
        prefix: a("2001:db8:50::"),
        prefix_len: 64,
        router_lifetime: 1800,
        dns: &many,
        dns_lifetime: 0x0102_0304,
    };
    let ra = router_advert(a("fe80::1"), ALL_NODES, &advert);
    let opt = &ra[RA_FROM_GW.len()..];
    assert_eq!(ra.len(), RA_FROM_GW.len() + 8 + 16 * MAX_RDNSS, "bounded to {MAX_RDNSS} servers");
    assert_eq!(&opt[..8], &[25, 1 + 2 * MAX_RDNSS as u8, 0, 0, 1, 2, 3, 4]);
    assert_eq!(&opt[8..24], &many[0].octets());
    assert_eq!(&opt[opt.len() - 16..], &many[MAX_RDNSS - 1].octets());
    let sum = checksum::pseudo_v6(a("fe80::1"), ALL_NODES, ipv6::NEXT_ICMPV6, ra.len() - 40);
    assert_eq!(checksum::finish(sum + checksum::sum(&ra[40..])), 0, "checksum covers the option");
    assert_eq!(parse(&ra), Some(Ok(Nd::RouterOnly)), "still a valid RA");
}

#[test]
fn dns_servers_must_be_global_unicast() {
    assert_eq!(dns_server_problem(a("2001:db8:60::53")), None);
    assert_eq!(dns_server_problem(a("fd00::53")), None, "unique local is fine");
    for bad in ["::", "ff02::1", "::1", "fe80::53", "::ffff:198.18.0.53"] {
        assert!(dns_server_problem(a(bad)).is_some(), "{bad}");
    }
}
