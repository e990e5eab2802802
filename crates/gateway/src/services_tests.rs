//! The l3 services as the gateway applies them: MSS clamping both ways, ICMP errors and
//! fragments for the tunnel MTU, the DHCP server answering the zone, NAT round trips.

use std::net::Ipv4Addr;

use l3::dhcp::{DhcpConfig, DhcpServer};
use l3::nat::{Nat, NatConfig};
use packet::{checksum, dhcp, ipv4, tcp, MacAddr};

use super::tests::gw;
use crate::{DropReason, FromTunnel, FromZone, Gateway, Now};

const GW_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const VM_MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x10, 0, 1]);
const NOW: Now = Now { ms: 1_000, unix: 1_764_590_000 };
const VM: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const OFFICE: Ipv4Addr = Ipv4Addr::new(198, 18, 9, 10);

/// An IPv4 datagram with valid checksums (TCP/UDP over the pseudo-header).
fn ip4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, df: bool, mut l4: Vec<u8>) -> Vec<u8> {
    let at = match proto {
        ipv4::PROTO_TCP => 16,
        ipv4::PROTO_UDP => 6,
        _ => 2,
    };
    let pseudo = if proto == ipv4::PROTO_ICMP { 0 } else { checksum::pseudo_v4(src, dst, proto, l4.len()) };
    let c = checksum::finish(pseudo + checksum::sum(&l4));
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    let mut b = vec![0u8; 20];
    let h = ipv4::Header {
        src,
        dst,
        protocol: proto,
        ttl: 64,
        ident: 7,
        dont_fragment: df,
        payload_len: l4.len(),
    };
    ipv4::write_header(&mut b, &h).unwrap();
    b.extend(l4);
    b
}

/// A TCP segment with MSS option `mss` and `data` bytes.
fn tcp_seg(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: u8, mss: u16, data: usize) -> Vec<u8> {
    let mut l4 = vec![0u8; 24];
    l4[0..2].copy_from_slice(&src.1.to_be_bytes());
    l4[2..4].copy_from_slice(&dst.1.to_be_bytes());
    l4[12] = 6 << 4;
    l4[13] = flags;
    l4[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    l4[20..24].copy_from_slice(&[2, 4, (mss >> 8) as u8, mss as u8]);
    l4.resize(24 + data, 0xab);
    ip4(src.0, dst.0, ipv4::PROTO_TCP, true, l4)
}

fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), df: bool, data: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; 8];
    l4[0..2].copy_from_slice(&src.1.to_be_bytes());
    l4[2..4].copy_from_slice(&dst.1.to_be_bytes());
    l4[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    l4.extend_from_slice(data);
    ip4(src.0, dst.0, ipv4::PROTO_UDP, df, l4)
}

fn to_gw(dst: MacAddr, ip: &[u8]) -> Vec<u8> {
    let mut f = [dst.0, VM_MAC.0].concat();
    f.extend([0x08, 0x00]);
    f.extend_from_slice(ip);
    f
}

fn l4_ok(ip: &[u8]) -> bool {
    let p = ipv4::Frame::new_checked(ip).unwrap();
    let pseudo = checksum::pseudo_v4(p.src(), p.dst(), p.protocol(), p.payload().len());
    checksum::internet(&ip[..20]) == 0 && checksum::finish(pseudo + checksum::sum(p.payload())) == 0
}

fn mss_of(ip: &[u8]) -> u16 {
    u16::from_be_bytes([ip[20 + 22], ip[20 + 23]])
}

#[test]
fn syns_and_syn_acks_are_clamped_to_the_tunnel() {
    let mut g = gw();
    let mut out = vec![0u8; 2048];
    let mut f = to_gw(GW_MAC, &tcp_seg((VM, 40000), (OFFICE, 5201), tcp::SYN, 1460, 0));
    let FromZone::Tunnel(ip) = g.zone_frame(&mut f, true, NOW, &mut out) else { panic!("not routed") };
    assert_eq!(mss_of(ip), 1380, "1420 - 40");
    assert!(l4_ok(ip), "checksum follows the MSS");
    let mut back = tcp_seg((OFFICE, 5201), (VM, 40000), tcp::SYN | tcp::ACK, 1460, 0);
    assert_eq!(g.tunnel_packet(&mut back, NOW, &mut out), FromTunnel::Frame(14 + 44));
    assert_eq!(mss_of(&out[14..58]), 1380, "the SYN-ACK too");
    assert!(l4_ok(&out[14..58]));
}

#[test]
fn oversize_df_gets_frag_needed_from_the_gateway() {
    let mut g = gw();
    let mut out = vec![0u8; 2048];
    let seg = tcp_seg((VM, 40000), (OFFICE, 5201), tcp::ACK, 1460, 1436);
    assert_eq!(seg.len(), 1480);
    let mut f = to_gw(GW_MAC, &seg);
    let FromZone::Reply(n) = g.zone_frame(&mut f, true, NOW, &mut out) else { panic!("no error") };
    assert_eq!((&out[..6], &out[6..12], &out[12..14]), (&VM_MAC.0[..], &GW_MAC.0[..], &[8u8, 0][..]));
    let err = &out[14..n];
    let p = ipv4::Frame::new_checked(err).unwrap();
    assert_eq!((p.src(), p.dst(), p.protocol()), (Ipv4Addr::new(198, 18, 0, 1), VM, ipv4::PROTO_ICMP));
    assert_eq!(&err[20..22], &[3, 4], "destination unreachable, fragmentation needed");
    assert_eq!(u16::from_be_bytes([err[26], err[27]]), 1420, "next-hop MTU");
    assert_eq!(&err[28..48], &seg[..20], "quotes the packet as the VM sent it");
    assert_eq!(g.drops().get(DropReason::TooBig), 1);
    assert_eq!(g.icmp_errors().sent, 1);
    // The same packet while the tunnel is down: the kill switch comes first, no error.
    let mut f = to_gw(GW_MAC, &seg);
    assert_eq!(g.zone_frame(&mut f, false, NOW, &mut out), FromZone::Drop(DropReason::VpnDown));
}

#[test]
fn oversize_without_df_is_fragmented() {
    let mut g = gw();
    let mut out = vec![0u8; 2048];
    let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let mut f = to_gw(GW_MAC, &udp((VM, 1000), (OFFICE, 2000), false, &data));
    let FromZone::Fragments(pieces) = g.zone_frame(&mut f, true, NOW, &mut out) else { panic!("whole") };
    assert_eq!(pieces.iter().map(Vec::len).collect::<Vec<_>>(), [1420, 1420, 228]);
    assert!(pieces.iter().all(|p| p[8] == 63 && checksum::internet(&p[..20]) == 0), "one hop less, valid");
    let payload: usize = pieces.iter().map(|p| p.len() - 20).sum();
    assert_eq!(payload, 8 + 3000);
}

/// busybox udhcpc's DISCOVER (the capture l3's DHCP tests use) from VM_MAC, IPv4 and UDP headers included.
const UDHCPC_DISCOVER: &[u8] = include_bytes!("../../l3/testdata/udhcpc-discover.bin");

fn discover() -> Vec<u8> {
    UDHCPC_DISCOVER.to_vec()
}

/// The DISCOVER made a REQUEST for `ip` from server 198.18.0.1: type 3, options 50 and 54
/// written over the end option and its padding (lengths unchanged), UDP checksum off.
fn request(ip: Ipv4Addr) -> Vec<u8> {
    let mut p = discover();
    let opts = 28 + dhcp::field::OPTIONS;
    p[opts + 2] = dhcp::REQUEST;
    let end = p.iter().rposition(|b| *b == dhcp::OPT_END).unwrap();
    let extra = [&[50u8, 4][..], &ip.octets(), &[54, 4, 198, 18, 0, 1, 255]].concat();
    p[end..end + extra.len()].copy_from_slice(&extra);
    p[26..28].fill(0);
    p
}

fn dhcp_gw() -> Gateway {
    let cfg = DhcpConfig {
        server: Ipv4Addr::new(198, 18, 0, 1),
        prefix_len: 24,
        range: (Ipv4Addr::new(198, 18, 0, 100), Ipv4Addr::new(198, 18, 0, 110)),
        dns: vec![Ipv4Addr::new(198, 18, 9, 53)],
        mtu: Some(1420),
        lease_secs: 3600,
        statics: vec![],
    };
    gw().with_dhcp(DhcpServer::new(cfg).unwrap())
}

/// The DHCP message type and yiaddr of a reply frame from the gateway.
fn reply_of(frame: &[u8]) -> (u8, Ipv4Addr) {
    assert_eq!(&frame[6..12], &GW_MAC.0);
    let m = dhcp::Frame::new_checked(&frame[14 + 28..]).unwrap();
    (m.message_type().unwrap(), m.yiaddr())
}

#[test]
fn the_zone_dhcp_server_answers_even_while_down_and_teaches_neighbours() {
    let mut g = dhcp_gw();
    let mut out = vec![0u8; 2048];
    let mut f = to_gw(MacAddr::BROADCAST, &discover());
    let FromZone::Reply(n) = g.zone_frame(&mut f, false, NOW, &mut out) else { panic!("no offer") };
    let (kind, offered) = reply_of(&out[..n]);
    assert_eq!((kind, offered), (dhcp::OFFER, Ipv4Addr::new(198, 18, 0, 100)));
    assert!(!g.take_leases_changed(), "an offer binds nothing");
    let mut f = to_gw(MacAddr::BROADCAST, &request(offered));
    let FromZone::Reply(n) = g.zone_frame(&mut f, true, NOW, &mut out) else { panic!("no ack") };
    assert_eq!(reply_of(&out[..n]), (dhcp::ACK, offered));
    assert!(g.take_leases_changed() && !g.take_leases_changed(), "once per change");
    assert_eq!(g.neighbours().get(offered), Some(VM_MAC), "the lease is a neighbour at once");
    assert_eq!(g.dhcp().unwrap().bindings(NOW.unix).len(), 1);
    let mut junk = to_gw(MacAddr::BROADCAST, &udp((VM, 68), (Ipv4Addr::BROADCAST, 67), false, &[1, 2, 3]));
    assert_eq!(g.zone_frame(&mut junk, true, NOW, &mut out), FromZone::Drop(DropReason::DhcpNoReply));
    let counted =
        [("dhcp-offered", 1), ("dhcp-acked", 1), ("dhcp-nak", 0), ("dhcp-declined", 0), ("dhcp-released", 0)];
    assert_eq!(g.service_counters(), counted, "no NAT counters: the zone runs no NAT");
}

#[test]
fn without_a_server_dhcp_is_not_answered() {
    let mut g = gw();
    let mut out = vec![0u8; 2048];
    let mut f = to_gw(MacAddr::BROADCAST, &discover());
    assert_eq!(g.zone_frame(&mut f, true, NOW, &mut out), FromZone::Drop(DropReason::NotForGateway));
}

#[test]
fn nat_mode_translates_both_ways() {
    let public = Ipv4Addr::new(198, 19, 5, 5);
    let mut g = gw().with_nat(Nat::new(NatConfig::new(public)));
    let mut out = vec![0u8; 2048];
    let mut f = to_gw(GW_MAC, &udp((VM, 5000), (OFFICE, 53), true, b"query"));
    let FromZone::Tunnel(ip) = g.zone_frame(&mut f, true, NOW, &mut out) else { panic!("not routed") };
    let p = ipv4::Frame::new_checked(ip).unwrap();
    assert_eq!(p.src(), public, "the VM leaves as the tunnel address");
    assert!(l4_ok(ip));
    let port = u16::from_be_bytes([ip[20], ip[21]]);
    let mut back = udp((OFFICE, 53), (public, port), true, b"answer");
    assert_eq!(g.tunnel_packet(&mut back, NOW, &mut out), FromTunnel::Frame(14 + 34));
    assert_eq!(&out[..6], &VM_MAC.0, "delivered to the VM");
    assert_eq!(
        (&out[14 + 16..14 + 20], u16::from_be_bytes([out[14 + 22], out[14 + 23]])),
        (&VM.octets()[..], 5000)
    );
    assert!(l4_ok(&out[14..48]));
    let mut stray = udp((OFFICE, 53), (public, 9), true, b"?");
    assert_eq!(g.tunnel_packet(&mut stray, NOW, &mut out), FromTunnel::Drop(DropReason::Nat));
    assert_eq!(
        g.service_counters(),
        [("nat-active", 1), ("nat-created", 1), ("nat-refused", 1), ("nat-readdressed", 0)]
    );
    assert_eq!(gw().service_counters(), [], "no services, no counters");
}

/// A tun's VPN client changed the device's MTU: fragmentation-needed, the MSS clamp both ways
/// and the DHCP server's option 26 follow from the next packet on.
#[test]
fn a_changed_tunnel_mtu_moves_frag_needed_the_mss_clamp_and_dhcp() {
    let mut g = dhcp_gw();
    let mut out = vec![0u8; 2048];
    assert!(g.set_mtu(1300));
    assert!(!g.set_mtu(1300), "the same MTU is no change");
    let seg = tcp_seg((VM, 40000), (OFFICE, 5201), tcp::ACK, 1460, 1356);
    assert_eq!(seg.len(), 1400, "fit the old 1420, not the new 1300");
    let mut f = to_gw(GW_MAC, &seg);
    let FromZone::Reply(n) = g.zone_frame(&mut f, true, NOW, &mut out) else { panic!("no error") };
    assert_eq!(u16::from_be_bytes([out[14 + 26], out[14 + 27]]), 1300, "next-hop MTU: the new one");
    assert!(n > 14 + 28);
    let mut f = to_gw(GW_MAC, &tcp_seg((VM, 40001), (OFFICE, 5201), tcp::SYN, 1460, 0));
    let FromZone::Tunnel(ip) = g.zone_frame(&mut f, true, NOW, &mut out) else { panic!("not routed") };
    assert_eq!(mss_of(ip), 1260, "1300 - 40");
    assert!(l4_ok(ip));
    let mut back = tcp_seg((OFFICE, 5201), (VM, 40001), tcp::SYN | tcp::ACK, 1460, 0);
    assert_eq!(g.tunnel_packet(&mut back, NOW, &mut out), FromTunnel::Frame(14 + 44));
    assert_eq!(mss_of(&out[14..58]), 1260, "the SYN-ACK too");
    assert_eq!(g.dhcp().unwrap().config().mtu, Some(1300), "new leases announce it");
    assert!(g.set_mtu(20) && g.spec().mtu == crate::MIN_MTU, "never below IPv4's 68");
}

/// A NAT zone's tun got a new address: new flows leave as it, the old one's mappings are
/// dropped and counted; without an address nothing leaves (`nat-no-address`).
#[test]
fn a_new_tunnel_address_is_used_by_new_flows() {
    let (old, new) = (Ipv4Addr::new(198, 19, 5, 5), Ipv4Addr::new(198, 19, 5, 9));
    let mut g = gw().with_nat(Nat::new(NatConfig::new(old)));
    let mut out = vec![0u8; 2048];
    let mut send = |g: &mut Gateway, port: u16| {
        let mut f = to_gw(GW_MAC, &udp((VM, port), (OFFICE, 53), true, b"query"));
        match g.zone_frame(&mut f, true, NOW, &mut out) {
            FromZone::Tunnel(ip) => Ok(ipv4::Frame::new_checked(ip).unwrap().src()),
            FromZone::Drop(r) => Err(r),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(send(&mut g, 5000), Ok(old));
    assert_eq!(g.set_nat_address(Some(old)), None, "the same address is no change");
    assert_eq!(g.set_nat_address(Some(new)), Some(1), "the one mapping of the old address goes");
    assert_eq!(send(&mut g, 5000), Ok(new), "the same flow again is a new one, on the new address");
    let mut late = udp((OFFICE, 53), (old, 5000), true, b"late");
    let mut out2 = vec![0u8; 2048];
    assert_eq!(g.tunnel_packet(&mut late, NOW, &mut out2), FromTunnel::Drop(DropReason::NotInSubnet));
    let counted: Vec<_> = g.service_counters().into_iter().filter(|(k, _)| k.starts_with("nat-")).collect();
    assert_eq!(counted, [("nat-active", 1), ("nat-created", 2), ("nat-refused", 0), ("nat-readdressed", 1)]);
    assert_eq!(g.set_nat_address(None), Some(1), "the address went away");
    assert_eq!(send(&mut g, 5001), Err(DropReason::NatNoAddress));
    assert_eq!(g.set_nat_address(None), None);
    assert_eq!(g.set_nat_address(Some(old)), Some(0));
    assert_eq!(send(&mut g, 5001), Ok(old), "and back");
    assert_eq!(gw().set_nat_address(Some(new)), None, "a routed zone has no NAT address");
}
