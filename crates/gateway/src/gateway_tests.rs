use super::*;

const GW_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const VM_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x02];
const NOW: Now = Now { ms: 1_000, unix: 1_764_590_000 };

pub(super) fn gw() -> Gateway {
    Gateway::new(GatewaySpec {
        mac: GW_MAC,
        ip: Ipv4Addr::new(198, 18, 0, 1),
        subnet: "198.18.0.0/24".parse().unwrap(),
        allowed: vec!["198.18.9.0/24".parse().unwrap()],
        mtu: 1420,
        v6: None,
    })
}

/// VM 198.18.0.2 asks who has 198.18.0.1.
const ARP_WHO_HAS_GW: [u8; 42] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, 0x02, 0x08, 0x06, // Ethernet
    0, 1, 0x08, 0, 6, 4, 0, 1, // Ethernet/IPv4 request
    0x52, 0x54, 0, 0, 0, 0x02, 198, 18, 0, 2, // sender
    0, 0, 0, 0, 0, 0, 198, 18, 0, 1, // target
];

/// The reply the gateway must send.
const ARP_REPLY: [u8; 42] = [
    0x52, 0x54, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06, //
    0, 1, 0x08, 0, 6, 4, 0, 2, //
    0x02, 0, 0, 0, 0, 0x01, 198, 18, 0, 1, //
    0x52, 0x54, 0, 0, 0, 0x02, 198, 18, 0, 2,
];

/// ICMP echo 198.18.0.2 → 198.18.9.10 to the gateway MAC, TTL 64, then 4 bytes of padding.
fn echo_to_office() -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x52, 0x54, 0, 0, 0, 0x02, 0x08, 0x00];
    f.extend([0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 1, 0xa5, 0xaf, 198, 18, 0, 2, 198, 18, 9, 10]);
    f.extend([8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
    f.extend([0xee; 4]);
    f
}

/// The office host's reply 198.18.9.10 → 198.18.0.2 as the tunnel hands it over (TTL 63).
fn reply_from_office() -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 28, 0, 2, 0, 0, 63, 1, 0xe6, 0xae, 198, 18, 9, 10, 198, 18, 0, 2];
    p.extend([0, 0, 0xff, 0xff, 0, 0, 0, 0]);
    p
}

#[test]
fn announces_itself_with_a_gratuitous_arp() {
    let mut out = [0u8; 64];
    let n = gw().announce(&mut out).expect("room for an ARP frame");
    let want: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x08,
        0x06, // broadcast, from the gateway
        0, 1, 0x08, 0, 6, 4, 0, 1, // Ethernet/IPv4 request
        0x02, 0, 0, 0, 0, 0x01, 198, 18, 0, 1, // sender: the gateway
        0, 0, 0, 0, 0, 0, 198, 18, 0, 1, // target: its own address (gratuitous)
    ];
    assert_eq!(&out[..n], &want[..]);
    assert_eq!(gw().announce(&mut out[..20]), None, "no room: nothing, no panic");
}

#[test]
fn answers_arp_for_the_gateway_even_while_down() {
    let mut g = gw();
    let mut out = [0u8; 64];
    for up in [true, false] {
        let mut f = ARP_WHO_HAS_GW;
        assert_eq!(g.zone_frame(&mut f, up, NOW, &mut out), FromZone::Reply(42));
        assert_eq!(out[..42], ARP_REPLY);
    }
    assert_eq!(g.neighbours().get(Ipv4Addr::new(198, 18, 0, 2)), Some(MacAddr(VM_MAC)));
    let mut other = ARP_WHO_HAS_GW;
    other[41] = 7; // who has 198.18.0.7: another VM answers that, not us
    assert_eq!(g.zone_frame(&mut other, true, NOW, &mut out), FromZone::Drop(DropReason::NotForGateway));
}

#[test]
fn routes_zone_ip_into_the_tunnel_without_padding_and_one_ttl_less() {
    let mut g = gw();
    let mut f = echo_to_office();
    let mut out = [0u8; 64];
    let FromZone::Tunnel(ip) = g.zone_frame(&mut f, true, NOW, &mut out) else { panic!("not routed") };
    assert_eq!(ip.len(), 28, "Ethernet padding stays behind");
    assert_eq!(ip[8], 63);
    assert_eq!(ip[10..12], [0xa6, 0xaf], "checksum follows the TTL");
    assert_eq!(g.drops().total(), 0);
}

#[test]
fn the_kill_switch_routes_nothing() {
    let mut g = gw();
    let mut out = [0u8; 64];
    for _ in 0..3 {
        let mut f = echo_to_office();
        assert_eq!(g.zone_frame(&mut f, false, NOW, &mut out), FromZone::Drop(DropReason::VpnDown));
    }
    let mut v6 = vec![0x02, 0, 0, 0, 0, 0x01, 0x52, 0x54, 0, 0, 0, 0x02, 0x86, 0xdd];
    v6.extend([0x60, 0, 0, 0, 0, 0, 59, 64]);
    v6.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    v6.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    let no_v6 = FromZone::Drop(DropReason::Ipv6Unsupported);
    assert_eq!(g.zone_frame(&mut v6, true, NOW, &mut out), no_v6, "a zone without subnet6 routes no IPv6");
    assert_eq!(g.drops().get(DropReason::VpnDown), 3);
}

#[test]
fn zone_frames_that_may_not_leave() {
    let mut g = gw();
    let mut out = [0u8; 64];
    let mut outside = echo_to_office();
    outside[30..34].copy_from_slice(&[192, 0, 2, 1]); // not in AllowedIPs
    assert_eq!(g.zone_frame(&mut outside, true, NOW, &mut out), FromZone::Drop(DropReason::NoRoute));
    let mut spoofed = echo_to_office();
    spoofed[26..30].copy_from_slice(&[198, 19, 0, 2]); // source outside the zone subnet
    assert_eq!(g.zone_frame(&mut spoofed, true, NOW, &mut out), FromZone::Drop(DropReason::BadSource));
    let mut flooded = echo_to_office();
    flooded[..6].copy_from_slice(&VM_MAC);
    assert_eq!(g.zone_frame(&mut flooded, true, NOW, &mut out), FromZone::Drop(DropReason::NotForGateway));
    let mut lldp = echo_to_office();
    lldp[12..14].copy_from_slice(&[0x88, 0xcc]);
    assert_eq!(g.zone_frame(&mut lldp, true, NOW, &mut out), FromZone::Drop(DropReason::NotIp));
    let mut ttl1 = echo_to_office();
    ttl1[22] = 1;
    assert_eq!(g.zone_frame(&mut ttl1, true, NOW, &mut out), FromZone::Drop(DropReason::TtlExpired));
    let mut lying = echo_to_office();
    lying[17] = 200; // total length beyond the frame
    assert_eq!(g.zone_frame(&mut lying, true, NOW, &mut out), FromZone::Drop(DropReason::Malformed));
    for n in 0..42 {
        // 42: the whole packet without its padding, which is valid
        let mut cut = echo_to_office()[..n].to_vec();
        assert!(matches!(g.zone_frame(&mut cut, true, NOW, &mut out), FromZone::Drop(_)), "cut at {n}");
    }
}

#[test]
fn tunnel_packets_reach_the_learned_vm() {
    let mut g = gw();
    let mut out = [0u8; 128];
    let mut p = reply_from_office();
    let FromTunnel::Resolve(n) = g.tunnel_packet(&mut p, NOW, &mut out) else { panic!("unknown VM") };
    assert_eq!(n, 42);
    assert_eq!(out[..6], [0xff; 6]);
    assert_eq!(out[38..42], [198, 18, 0, 2], "asks for the destination");
    assert_eq!(g.drops().get(DropReason::NoNeighbour), 1);

    let mut f = echo_to_office();
    assert!(matches!(g.zone_frame(&mut f, true, NOW, &mut out), FromZone::Tunnel(_)));
    let mut p = reply_from_office();
    assert_eq!(g.tunnel_packet(&mut p, NOW, &mut out), FromTunnel::Frame(42));
    assert_eq!(out[..14], [0x52, 0x54, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
    assert_eq!(out[14 + 8], 62);
}

#[test]
fn tunnel_packets_that_may_not_enter() {
    let mut g = gw();
    let mut out = [0u8; 128];
    let mut from_outside = reply_from_office();
    from_outside[12..16].copy_from_slice(&[192, 0, 2, 1]); // source outside AllowedIPs
    assert_eq!(
        g.tunnel_packet(&mut from_outside, NOW, &mut out),
        FromTunnel::Drop(DropReason::NotAllowedSource)
    );
    let mut elsewhere = reply_from_office();
    elsewhere[16..20].copy_from_slice(&[198, 18, 1, 2]);
    assert_eq!(g.tunnel_packet(&mut elsewhere, NOW, &mut out), FromTunnel::Drop(DropReason::NotInSubnet));
    let mut v6 = [0x60u8; 40];
    assert_eq!(g.tunnel_packet(&mut v6, NOW, &mut out), FromTunnel::Drop(DropReason::Ipv6Unsupported));
    for n in 0..reply_from_office().len() {
        let mut cut = reply_from_office()[..n].to_vec();
        assert!(matches!(g.tunnel_packet(&mut cut, NOW, &mut out), FromTunnel::Drop(_)), "cut at {n}");
    }
    let mut garbage = [0xa5u8; 60];
    assert_eq!(g.tunnel_packet(&mut garbage, NOW, &mut out), FromTunnel::Drop(DropReason::Malformed));
}
