//! Frame builders for tests, `rvsctl trace` and tools. They write into a caller's buffer and
//! return the length, so a caller in a loop allocates nothing.

use crate::{MacAddr, PacketError, VlanTag, ETHERTYPE_ARP, ETHERTYPE_IPV4};

/// What goes into an Ethernet header.
#[derive(Clone, Copy, Debug)]
pub struct FrameSpec {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub vlan: Option<VlanTag>,
    pub ethertype: u16,
}

/// Writes header + payload into `buf`; returns the frame length.
pub fn ethernet_frame(buf: &mut [u8], spec: &FrameSpec, payload: &[u8]) -> Result<usize, PacketError> {
    let hdr = if spec.vlan.is_some() { 18 } else { 14 };
    let need = hdr + payload.len();
    if buf.len() < need {
        return Err(PacketError::BufferTooSmall { have: buf.len(), need });
    }
    buf[0..6].copy_from_slice(&spec.dst.0);
    buf[6..12].copy_from_slice(&spec.src.0);
    if let Some(tag) = spec.vlan {
        if tag.vid > 4095 {
            return Err(PacketError::BadVid(tag.vid));
        }
        buf[12..16].copy_from_slice(&tag.to_bytes());
    }
    buf[hdr - 2..hdr].copy_from_slice(&spec.ethertype.to_be_bytes());
    buf[hdr..need].copy_from_slice(payload);
    Ok(need)
}

/// A broadcast ARP who-has `target_ip` from (`src`, `src_ip`).
pub fn arp_request(
    buf: &mut [u8],
    src: MacAddr,
    vlan: Option<VlanTag>,
    src_ip: [u8; 4],
    target_ip: [u8; 4],
) -> Result<usize, PacketError> {
    let a = crate::ArpSpec {
        operation: crate::arp::OP_REQUEST,
        sender_mac: src,
        sender_ip: src_ip.into(),
        target_mac: MacAddr::default(),
        target_ip: target_ip.into(),
    };
    let spec = FrameSpec { dst: MacAddr::BROADCAST, src, vlan, ethertype: ETHERTYPE_ARP };
    crate::arp_frame(buf, &spec, &a)
}

/// An IPv4/UDP datagram (valid IP header checksum, UDP checksum 0 = none).
pub fn ipv4_udp(
    buf: &mut [u8],
    spec: &FrameSpec,
    src_ip: [u8; 4],
    dst_ip: [u8; 4],
    ports: (u16, u16),
    data: &[u8],
) -> Result<usize, PacketError> {
    const IP_LEN: usize = 20;
    const UDP_LEN: usize = 8;
    let total = IP_LEN + UDP_LEN + data.len();
    let hdr = if spec.vlan.is_some() { 18 } else { 14 };
    if buf.len() < hdr + total || total > usize::from(u16::MAX) {
        return Err(PacketError::BufferTooSmall { have: buf.len(), need: hdr + total });
    }
    let mut ip = [0u8; IP_LEN];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src_ip);
    ip[16..20].copy_from_slice(&dst_ip);
    let csum = crate::checksum::internet(&ip);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    let spec = FrameSpec { ethertype: ETHERTYPE_IPV4, ..*spec };
    // Header first with an empty payload, then the L3/L4 bytes in place: no temporary buffer.
    let off = ethernet_frame(buf, &spec, &[])?;
    buf[off..off + IP_LEN].copy_from_slice(&ip);
    let udp = off + IP_LEN;
    buf[udp..udp + 2].copy_from_slice(&ports.0.to_be_bytes());
    buf[udp + 2..udp + 4].copy_from_slice(&ports.1.to_be_bytes());
    buf[udp + 4..udp + 6].copy_from_slice(&((UDP_LEN + data.len()) as u16).to_be_bytes());
    buf[udp + 6..udp + 8].copy_from_slice(&[0, 0]);
    buf[udp + UDP_LEN..udp + UDP_LEN + data.len()].copy_from_slice(data);
    Ok(off + total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EthernetHeader;

    #[test]
    fn arp_is_broadcast_and_parses_back() {
        let mut buf = [0u8; 64];
        let src: MacAddr = "52:54:00:00:00:01".parse().unwrap();
        let n = arp_request(&mut buf, src, Some(VlanTag::vid(20).unwrap()), [198, 18, 0, 1], [198, 18, 0, 2])
            .unwrap();
        assert_eq!(n, 18 + 28);
        let h = EthernetHeader::parse(&buf[..n]).unwrap();
        assert!(h.dst.is_broadcast());
        assert_eq!(h.vlan.unwrap().vid, 20);
        assert_eq!(h.ethertype, ETHERTYPE_ARP);
    }

    #[test]
    fn udp_has_valid_ip_checksum() {
        let mut buf = [0u8; 128];
        let spec = FrameSpec { dst: MacAddr([2; 6]), src: MacAddr([4; 6]), vlan: None, ethertype: 0 };
        let n = ipv4_udp(&mut buf, &spec, [198, 18, 0, 1], [198, 18, 0, 2], (1, 2), b"hi").unwrap();
        assert_eq!(n, 14 + 20 + 8 + 2);
        assert_eq!(crate::checksum::internet(&buf[14..34]), 0);
    }

    #[test]
    fn small_buffer_is_an_error() {
        let mut buf = [0u8; 10];
        let spec = FrameSpec { dst: MacAddr([2; 6]), src: MacAddr([4; 6]), vlan: None, ethertype: 0x88b5 };
        assert!(ethernet_frame(&mut buf, &spec, &[]).is_err());
    }
}
