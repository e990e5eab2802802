//! Crafted frames (ARP with any sender, IPv4/UDP, DHCP, ICMPv6 ND/RA, DHCPv6) for the
//! port-security tests, built with the packet crate's builders. They panic on misuse: the
//! arguments are a test's constants.

use std::net::{Ipv4Addr, Ipv6Addr};

use packet::{
    arp_frame, dhcp_message, dhcpv6_message, dhcpv6_message_len, ethernet_frame, ipv4_udp, ipv6_frame,
    ArpSpec, DhcpSpec, FrameSpec, MacAddr, VlanTag, DHCP_MESSAGE_MAX,
};

pub fn eth(dst: MacAddr, src: MacAddr, vid: Option<u16>) -> FrameSpec {
    FrameSpec { dst, src, vlan: vid.map(|v| VlanTag::vid(v).unwrap()), ethertype: 0 }
}

fn done(mut buf: Vec<u8>, n: usize) -> Vec<u8> {
    buf.truncate(n);
    buf
}

pub fn raw(spec: FrameSpec, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 1600];
    let n = ethernet_frame(&mut buf, &FrameSpec { ethertype, ..spec }, payload).unwrap();
    done(buf, n)
}

pub fn arp(spec: FrameSpec, operation: u16, sender: (MacAddr, Ipv4Addr), target_ip: Ipv4Addr) -> Vec<u8> {
    let mut buf = vec![0u8; 128];
    let a = ArpSpec {
        operation,
        sender_mac: sender.0,
        sender_ip: sender.1,
        target_mac: MacAddr::default(),
        target_ip,
    };
    let n = arp_frame(&mut buf, &spec, &a).unwrap();
    done(buf, n)
}

pub fn udp4(spec: FrameSpec, src: Ipv4Addr, dst: Ipv4Addr, ports: (u16, u16), data: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 1600];
    let n = ipv4_udp(&mut buf, &spec, src.octets(), dst.octets(), ports, data).unwrap();
    done(buf, n)
}

pub fn dhcp(
    op: u8,
    message_type: u8,
    client_mac: MacAddr,
    yiaddr: Ipv4Addr,
    lease_secs: Option<u32>,
) -> Vec<u8> {
    let mut m = vec![0u8; DHCP_MESSAGE_MAX];
    let n = dhcp_message(&mut m, &DhcpSpec { op, message_type, client_mac, yiaddr, lease_secs }).unwrap();
    done(m, n)
}

pub fn icmp6(spec: FrameSpec, src: Ipv6Addr, dst: Ipv6Addr, kind: u8, target: Option<Ipv6Addr>) -> Vec<u8> {
    let mut msg = vec![kind, 0, 0, 0, 0, 0, 0, 0];
    if let Some(t) = target {
        msg.extend_from_slice(&t.octets());
    }
    ip6(spec, src, dst, 58, &msg)
}

pub fn udp6(spec: FrameSpec, src: Ipv6Addr, dst: Ipv6Addr, ports: (u16, u16)) -> Vec<u8> {
    udp6_data(spec, src, dst, ports, &[])
}

/// An IPv6/UDP datagram carrying `data` (checksum 0: the switch does not read it).
pub fn udp6_data(spec: FrameSpec, src: Ipv6Addr, dst: Ipv6Addr, ports: (u16, u16), data: &[u8]) -> Vec<u8> {
    let mut msg = Vec::new();
    msg.extend_from_slice(&ports.0.to_be_bytes());
    msg.extend_from_slice(&ports.1.to_be_bytes());
    msg.extend_from_slice(&u16::try_from(8 + data.len()).unwrap().to_be_bytes());
    msg.extend_from_slice(&[0, 0]);
    msg.extend_from_slice(data);
    ip6(spec, src, dst, 17, &msg)
}

/// A DHCPv6 message of `msg_type` with one IA_NA per (address, valid lifetime in seconds).
pub fn dhcpv6(msg_type: u8, addrs: &[(Ipv6Addr, u32)]) -> Vec<u8> {
    let mut m = vec![0u8; dhcpv6_message_len(addrs.len())];
    let n = dhcpv6_message(&mut m, msg_type, 0x00c0_ffee, addrs).unwrap();
    done(m, n)
}

pub fn ip6(spec: FrameSpec, src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 1600];
    let n = ipv6_frame(&mut buf, &spec, (src, dst), next, payload).unwrap();
    done(buf, n)
}
