//! Builders for the layer-3 frames port security judges (ARP with any sender, IPv6 with any
//! next header, DHCP messages), for tests, the leak hunt and `rvsctl trace`. Like
//! [`crate::ethernet_frame`], they write into a caller's buffer and return the length.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::{ethernet_frame, FrameSpec, MacAddr, PacketError, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

/// The addresses of an ARP packet.
#[derive(Clone, Copy, Debug)]
pub struct ArpSpec {
    pub operation: u16,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

/// An Ethernet/IPv4 ARP packet in a frame described by `eth` (its EtherType is set to ARP).
pub fn arp_frame(buf: &mut [u8], eth: &FrameSpec, a: &ArpSpec) -> Result<usize, PacketError> {
    let mut p = [0u8; crate::arp::LEN];
    p[0..2].copy_from_slice(&1u16.to_be_bytes());
    p[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&a.operation.to_be_bytes());
    p[8..14].copy_from_slice(&a.sender_mac.0);
    p[14..18].copy_from_slice(&a.sender_ip.octets());
    p[18..24].copy_from_slice(&a.target_mac.0);
    p[24..28].copy_from_slice(&a.target_ip.octets());
    ethernet_frame(buf, &FrameSpec { ethertype: ETHERTYPE_ARP, ..*eth }, &p)
}

/// An IPv6 packet (hop limit 255, as ND requires) carrying `payload` under `next_header`.
/// Transport checksums are the caller's: the switch does not read them.
pub fn ipv6_frame(
    buf: &mut [u8],
    eth: &FrameSpec,
    (src, dst): (Ipv6Addr, Ipv6Addr),
    next_header: u8,
    payload: &[u8],
) -> Result<usize, PacketError> {
    let off = ethernet_frame(buf, &FrameSpec { ethertype: ETHERTYPE_IPV6, ..*eth }, &[])?;
    let need = off + crate::ipv6::HEADER_LEN + payload.len();
    let out = buf.get_mut(off..need).ok_or(PacketError::BufferTooSmall { have: off, need })?;
    crate::ipv6::write_header(out, (src, dst), next_header, 255, payload.len())?;
    out[crate::ipv6::HEADER_LEN..].copy_from_slice(payload);
    Ok(need)
}

/// What goes into a DHCP message.
#[derive(Clone, Copy, Debug)]
pub struct DhcpSpec {
    pub op: u8,
    pub message_type: u8,
    pub client_mac: MacAddr,
    pub yiaddr: Ipv4Addr,
    pub lease_secs: Option<u32>,
}

/// Bytes [`dhcp_message`] writes at most.
pub const DHCP_MESSAGE_MAX: usize = 240 + 10;

/// A DHCP message (the UDP payload): fixed fields, message type, optional lease time, end.
pub fn dhcp_message(buf: &mut [u8], d: &DhcpSpec) -> Result<usize, PacketError> {
    let need = if d.lease_secs.is_some() { DHCP_MESSAGE_MAX } else { DHCP_MESSAGE_MAX - 6 };
    let have = buf.len();
    let out = buf.get_mut(..need).ok_or(PacketError::BufferTooSmall { have, need })?;
    out.fill(0);
    out[0] = d.op;
    out[1] = 1;
    out[2] = 6;
    out[16..20].copy_from_slice(&d.yiaddr.octets());
    out[28..34].copy_from_slice(&d.client_mac.0);
    out[236..243].copy_from_slice(&[0x63, 0x82, 0x53, 0x63, 53, 1, d.message_type]);
    if let Some(secs) = d.lease_secs {
        out[243..245].copy_from_slice(&[51, 4]);
        out[245..249].copy_from_slice(&secs.to_be_bytes());
    }
    out[need - 1] = 255;
    Ok(need)
}

/// Bytes [`dhcpv6_message`] writes for `n` IA_NA addresses: the fixed part, then one IA_NA
/// per address (its header, its IA Address option).
pub const fn dhcpv6_message_len(n: usize) -> usize {
    crate::dhcpv6::field::OPTIONS + n * (4 + crate::dhcpv6::ia_na::OPTIONS + 4 + 24)
}

/// A DHCPv6 client/server message (the UDP payload): type, transaction id, then for each of
/// `addrs` an IA_NA (IAID its index + 1, T1/T2 0) holding one address with preferred and valid
/// lifetime both the given seconds. What a server's REPLY or a client's RELEASE carries.
pub fn dhcpv6_message(
    buf: &mut [u8],
    msg_type: u8,
    xid: u32,
    addrs: &[(Ipv6Addr, u32)],
) -> Result<usize, PacketError> {
    use crate::dhcpv6::{ia_addr, ia_na, option, OPT_IAADDR, OPT_IA_NA};
    let need = dhcpv6_message_len(addrs.len());
    let have = buf.len();
    let out = buf.get_mut(..need).ok_or(PacketError::BufferTooSmall { have, need })?;
    out.fill(0);
    out[crate::dhcpv6::field::MSG_TYPE] = msg_type;
    out[crate::dhcpv6::field::TRANSACTION_ID].copy_from_slice(&xid.to_be_bytes()[1..]);
    let ia_len = ia_na::OPTIONS + option::BODY + ia_addr::VALID_LIFETIME.end;
    for (i, (chunk, (addr, secs))) in out[4..].chunks_exact_mut(option::BODY + ia_len).zip(addrs).enumerate()
    {
        chunk[option::CODE].copy_from_slice(&OPT_IA_NA.to_be_bytes());
        chunk[option::LEN].copy_from_slice(&(ia_len as u16).to_be_bytes());
        let body = &mut chunk[option::BODY..];
        body[ia_na::IAID].copy_from_slice(&(i as u32 + 1).to_be_bytes());
        let sub = &mut body[ia_na::OPTIONS..];
        sub[option::CODE].copy_from_slice(&OPT_IAADDR.to_be_bytes());
        sub[option::LEN].copy_from_slice(&(ia_addr::VALID_LIFETIME.end as u16).to_be_bytes());
        let a = &mut sub[option::BODY..];
        a[ia_addr::ADDRESS].copy_from_slice(&addr.octets());
        a[ia_addr::PREFERRED_LIFETIME].copy_from_slice(&secs.to_be_bytes());
        a[ia_addr::VALID_LIFETIME].copy_from_slice(&secs.to_be_bytes());
    }
    Ok(need)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{arp, dhcp, ipv6, EthernetHeader};

    const A: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);

    fn spec() -> FrameSpec {
        FrameSpec { dst: MacAddr::BROADCAST, src: A, vlan: None, ethertype: 0 }
    }

    #[test]
    fn arp_parses_back() {
        let mut buf = [0u8; 64];
        let ip = Ipv4Addr::new(198, 18, 0, 3);
        let a = ArpSpec { operation: 2, sender_mac: A, sender_ip: ip, target_mac: A, target_ip: ip };
        let n = arp_frame(&mut buf, &spec(), &a).unwrap();
        let h = EthernetHeader::parse(&buf[..n]).unwrap();
        assert_eq!(h.ethertype, ETHERTYPE_ARP);
        let p = arp::Frame::new_checked(&buf[h.payload_offset..n]).unwrap();
        assert_eq!((p.operation(), p.sender_mac(), p.sender_ip()), (2, A, ip));
    }

    #[test]
    fn ipv6_and_dhcp_parse_back() {
        let mut buf = [0u8; 128];
        let (s, d) = ("fe80::1".parse().unwrap(), "ff02::1".parse().unwrap());
        let n = ipv6_frame(&mut buf, &spec(), (s, d), 58, &[134, 0, 0, 0]).unwrap();
        let ip = ipv6::Frame::new_checked(&buf[14..n]).unwrap();
        assert_eq!((ip.src(), ip.dst()), (s, d));
        assert_eq!(ip.upper_layer(), Ok(ipv6::Upper::Protocol(58, &[134, 0, 0, 0][..])));
        assert!(ipv6_frame(&mut buf[..60], &spec(), (s, d), 58, &[0; 40]).is_err());

        let mut m = [0u8; DHCP_MESSAGE_MAX];
        let yi = Ipv4Addr::new(198, 18, 0, 10);
        let spec =
            DhcpSpec { op: 2, message_type: dhcp::ACK, client_mac: A, yiaddr: yi, lease_secs: Some(60) };
        let n = dhcp_message(&mut m, &spec).unwrap();
        let f = dhcp::Frame::new_checked(&m[..n]).unwrap();
        assert_eq!(
            (f.message_type(), f.lease_secs(), f.yiaddr(), f.client_mac()),
            (Some(dhcp::ACK), Some(60), yi, A)
        );
        let n = dhcp_message(&mut m, &DhcpSpec { lease_secs: None, ..spec }).unwrap();
        assert_eq!(dhcp::Frame::new_checked(&m[..n]).unwrap().lease_secs(), None);
    }

    #[test]
    fn dhcpv6_parses_back() {
        let addrs = [("2001:db8::10".parse().unwrap(), 7200), ("2001:db8::11".parse().unwrap(), 0)];
        let mut m = [0u8; dhcpv6_message_len(2)];
        let n = dhcpv6_message(&mut m, crate::dhcpv6::REPLY, 0xab_cdef, &addrs).unwrap();
        assert_eq!(n, 4 + 2 * 44);
        let f = crate::dhcpv6::Frame::new_checked(&m[..n]).unwrap();
        assert_eq!((f.msg_type(), f.transaction_id()), (crate::dhcpv6::REPLY, 0xab_cdef));
        assert_eq!(f.ia_na_addresses().collect::<Vec<_>>(), addrs.to_vec());
        assert!(dhcpv6_message(&mut m[..40], crate::dhcpv6::REPLY, 1, &addrs).is_err());
    }
}
