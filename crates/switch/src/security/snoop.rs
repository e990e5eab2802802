//! The DHCP messages snooping learns from, read out of a frame: a server's DHCPACK/NAK (IPv4)
//! or REPLY (IPv6) seen on a trusted port, and a client's own RELEASE/DECLINE (IPv6).

use std::net::Ipv4Addr;

use packet::{dhcp, dhcpv6, ipv4, ipv6, udp, EthernetHeader, MacAddr, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

/// A DHCPACK or DHCPNAK to a client.
pub(super) struct Reply4 {
    pub mac: MacAddr,
    pub kind: u8,
    pub ip: Ipv4Addr,
    pub secs: u32,
}

/// (client MAC, message type, yiaddr, lease seconds) of a DHCPACK/NAK in `frame`.
pub(super) fn dhcp_reply(eth: &EthernetHeader, frame: &[u8]) -> Option<Reply4> {
    if eth.ethertype != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = ipv4::Frame::new_checked(frame.get(eth.payload_offset..)?).ok()?;
    if ip.protocol() != ipv4::PROTO_UDP || ip.is_later_fragment() {
        return None;
    }
    let u = udp::Frame::new_checked(ip.payload()).ok()?;
    if (u.src_port(), u.dst_port()) != (udp::PORT_DHCP_SERVER, udp::PORT_DHCP_CLIENT) {
        return None;
    }
    let d = dhcp::Frame::new_checked(u.payload()).ok()?;
    let kind = d.message_type().filter(|t| matches!(*t, dhcp::ACK | dhcp::NAK))?;
    if d.op() != dhcp::OP_REPLY {
        return None;
    }
    // An ACK without a lease time (a reply to INFORM) binds nothing.
    let secs = if kind == dhcp::ACK { d.lease_secs()? } else { 0 };
    Some(Reply4 { mac: d.client_mac(), kind, ip: d.yiaddr(), secs })
}

/// A server's DHCPv6 REPLY in `frame` (to a REQUEST, RENEW, REBIND, or a rapid-commit
/// SOLICIT: all carry the leased IA_NA addresses).
pub(super) fn dhcpv6_reply<'a>(eth: &EthernetHeader, frame: &'a [u8]) -> Option<dhcpv6::Frame<&'a [u8]>> {
    let ports = (udp::PORT_DHCPV6_SERVER, udp::PORT_DHCPV6_CLIENT);
    dhcpv6_message(eth, frame, ports).filter(|m| m.msg_type() == dhcpv6::REPLY)
}

/// A client's DHCPv6 RELEASE or DECLINE in `frame`: addresses it gives back.
pub(super) fn dhcpv6_release<'a>(eth: &EthernetHeader, frame: &'a [u8]) -> Option<dhcpv6::Frame<&'a [u8]>> {
    let ports = (udp::PORT_DHCPV6_CLIENT, udp::PORT_DHCPV6_SERVER);
    dhcpv6_message(eth, frame, ports).filter(|m| matches!(m.msg_type(), dhcpv6::RELEASE | dhcpv6::DECLINE))
}

/// The DHCPv6 message of an IPv6/UDP datagram between `ports` (source, destination).
fn dhcpv6_message<'a>(
    eth: &EthernetHeader,
    frame: &'a [u8],
    ports: (u16, u16),
) -> Option<dhcpv6::Frame<&'a [u8]>> {
    if eth.ethertype != ETHERTYPE_IPV6 {
        return None;
    }
    let ip = ipv6::Frame::new_checked(frame.get(eth.payload_offset..)?).ok()?;
    let ipv6::Upper::Protocol(ipv6::NEXT_UDP, bytes) = ip.into_upper_layer().ok()? else { return None };
    let u = udp::Frame::new_checked(bytes).ok()?;
    if (u.src_port(), u.dst_port()) != ports {
        return None;
    }
    dhcpv6::Frame::new_checked(u.into_payload()).ok()
}
