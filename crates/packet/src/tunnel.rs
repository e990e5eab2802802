//! Encapsulation for VXLAN (RFC 7348) and Geneve (RFC 8926) over IPv4: the outer IPv4 + UDP +
//! tunnel header written in front of an inner Ethernet frame, the UDP source port chosen from
//! the inner flow, and the receive side's "which VNI, where is the inner frame".

use std::net::Ipv4Addr;

use crate::{checksum, ethernet, geneve, ipv4, ipv6, vxlan, EthernetHeader, PacketError};

/// Which header follows the outer UDP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TunnelProto {
    Vxlan,
    Geneve,
}

impl TunnelProto {
    pub fn default_port(self) -> u16 {
        match self {
            TunnelProto::Vxlan => vxlan::DEFAULT_PORT,
            TunnelProto::Geneve => geneve::DEFAULT_PORT,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TunnelProto::Vxlan => "vxlan",
            TunnelProto::Geneve => "geneve",
        }
    }
}

const IP_LEN: usize = ipv4::MIN_HEADER_LEN;
const UDP_LEN: usize = crate::udp::HEADER_LEN;
/// Outer IPv4 (no options) + UDP + the 8-byte VXLAN header or option-less Geneve header.
pub const OUTER_LEN: usize = IP_LEN + UDP_LEN + vxlan::HEADER_LEN;
/// What encapsulation costs an inner IP packet: the outer headers and the inner Ethernet header
/// (50 bytes for VXLAN and option-less Geneve; Geneve options would add to it).
pub const OVERHEAD: usize = OUTER_LEN + ethernet::HEADER_LEN;
/// The UDP source port range RFC 7348 §5 recommends (dynamic/private ports).
const SRC_PORT_BASE: u16 = 49152;

/// The outer headers of one encapsulated frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OuterSpec {
    pub proto: TunnelProto,
    pub vni: u32,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub tos: u8,
    pub ttl: u8,
    /// Don't Fragment (OvS's `df_default`, on unless turned off).
    pub df: bool,
    /// Fill in the UDP checksum (OvS `options:csum=true`); otherwise 0 = none (RFC 7348 §5).
    pub udp_csum: bool,
}

/// Writes the outer IPv4, UDP and tunnel headers for `inner` (the inner Ethernet frame, in
/// pieces as a gather list holds it). The IPv4 header checksum is always valid; the UDP
/// checksum covers the pieces when `spec.udp_csum`.
pub fn emit_outer(out: &mut [u8; OUTER_LEN], spec: &OuterSpec, inner: &[&[u8]]) -> Result<(), PacketError> {
    let inner_len: usize = inner.iter().map(|p| p.len()).sum();
    let total = OUTER_LEN + inner_len;
    let Ok(total16) = u16::try_from(total) else {
        return Err(PacketError::BufferTooSmall { have: usize::from(u16::MAX), need: total });
    };
    let (ip, rest) = out.split_at_mut(IP_LEN);
    ip.fill(0);
    ip[0] = 0x45;
    ip[1] = spec.tos;
    ip[8] = spec.ttl;
    ip[9] = ipv4::PROTO_UDP;
    ip[12..16].copy_from_slice(&spec.src.octets());
    ip[16..20].copy_from_slice(&spec.dst.octets());
    ip[2..4].copy_from_slice(&total16.to_be_bytes());
    if spec.df {
        ip[6] = 0x40;
    }
    let ip_csum = checksum::internet(ip);
    ip[10..12].copy_from_slice(&ip_csum.to_be_bytes());
    let udp_len = total - IP_LEN;
    let (udp, tun) = rest.split_at_mut(UDP_LEN);
    udp[0..2].copy_from_slice(&spec.src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&spec.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    let tun: &mut [u8; vxlan::HEADER_LEN] = tun.try_into().map_err(|_| PacketError::Malformed("layout"))?;
    match spec.proto {
        TunnelProto::Vxlan => vxlan::emit(tun, spec.vni),
        TunnelProto::Geneve => geneve::emit(tun, spec.vni),
    }
    if spec.udp_csum {
        let csum = udp_checksum(spec, udp_len, &out[IP_LEN..], inner);
        out[IP_LEN + 6..IP_LEN + 8].copy_from_slice(&csum.to_be_bytes());
    }
    Ok(())
}

/// The UDP checksum over the pseudo-header, UDP + tunnel header and the inner pieces. Pieces
/// of odd length are summed with their byte order kept (a carried odd byte).
fn udp_checksum(spec: &OuterSpec, udp_len: usize, udp_and_tun: &[u8], inner: &[&[u8]]) -> u16 {
    let mut sum = checksum::pseudo_v4(spec.src, spec.dst, ipv4::PROTO_UDP, udp_len);
    sum += checksum::sum(udp_and_tun);
    let mut carry: Option<u8> = None;
    for piece in inner {
        let mut p: &[u8] = piece;
        if let (Some(c), Some((&first, rest))) = (carry, p.split_first()) {
            sum += checksum::sum(&[c, first]);
            carry = None;
            p = rest;
        }
        let even = p.len() & !1;
        sum += checksum::sum(&p[..even]);
        if even < p.len() {
            carry = Some(p[even]);
        }
    }
    if let Some(c) = carry {
        sum += checksum::sum(&[c]);
    }
    match checksum::finish(sum) {
        0 => 0xffff, // RFC 768: a computed zero is sent as all ones
        c => c,
    }
}

/// The UDP source port for a frame: a hash of its flow (addresses, and ports where there are
/// any) mapped into 49152..=65535, so one flow keeps one port and the underlay's ECMP and RSS
/// spread different flows (RFC 7348 §5).
pub fn source_port(inner: &[u8]) -> u16 {
    SRC_PORT_BASE + (flow_hash(inner) % 16384) as u16
}

/// FNV-1a over the frame's MACs, EtherType and, for IPv4/IPv6, the addresses, protocol and
/// the first four transport bytes (the ports of TCP/UDP/SCTP).
pub fn flow_hash(inner: &[u8]) -> u32 {
    let mut h = Fnv::default();
    h.eat(inner.get(..12).unwrap_or(inner));
    let Ok(eth) = EthernetHeader::parse(inner) else { return h.0 };
    h.eat(&eth.ethertype.to_be_bytes());
    let l3 = &inner[eth.payload_offset..];
    match eth.ethertype {
        crate::ETHERTYPE_IPV4 => {
            if let Ok(ip) = ipv4::Frame::new_checked(l3) {
                h.eat(&ip.src().octets());
                h.eat(&ip.dst().octets());
                h.eat(&[ip.protocol()]);
                if !ip.is_later_fragment() {
                    h.eat(ip.payload().get(..4).unwrap_or(&[]));
                }
            }
        }
        crate::ETHERTYPE_IPV6 => {
            if let Ok(ip) = ipv6::Frame::new_checked(l3) {
                h.eat(&ip.src().octets());
                h.eat(&ip.dst().octets());
                if let Ok(ipv6::Upper::Protocol(proto, bytes)) = ip.upper_layer() {
                    h.eat(&[proto]);
                    h.eat(bytes.get(..4).unwrap_or(&[]));
                }
            }
        }
        _ => {}
    }
    h.0
}

struct Fnv(u32);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0x811c_9dc5)
    }
}

impl Fnv {
    fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }
}

/// The inner packet's IPv4 ToS / IPv6 traffic class and TTL / hop limit, for OvS's
/// `tos=inherit` / `ttl=inherit` (None for a frame that is not IP).
pub fn inner_tos_ttl(inner: &[u8]) -> Option<(u8, u8)> {
    let eth = EthernetHeader::parse(inner).ok()?;
    let l3 = &inner[eth.payload_offset..];
    match eth.ethertype {
        crate::ETHERTYPE_IPV4 => ipv4::Frame::new_checked(l3).ok().map(|ip| (ip.tos(), ip.ttl())),
        crate::ETHERTYPE_IPV6 => {
            ipv6::Frame::new_checked(l3).ok().map(|ip| (ip.traffic_class(), ip.hop_limit()))
        }
        _ => None,
    }
}

/// A received tunnel datagram (the UDP payload): its VNI and where the inner frame starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decap {
    pub vni: u32,
    pub inner_offset: usize,
}

/// Reads the tunnel header of a UDP payload. Geneve control (OAM) messages and payloads other
/// than Ethernet are refused: they are not frames to switch.
pub fn decap(proto: TunnelProto, udp_payload: &[u8]) -> Result<Decap, PacketError> {
    match proto {
        TunnelProto::Vxlan => {
            let v = vxlan::Frame::new_checked(udp_payload)?;
            Ok(Decap { vni: v.vni(), inner_offset: vxlan::HEADER_LEN })
        }
        TunnelProto::Geneve => {
            let g = geneve::Frame::new_checked(udp_payload)?;
            if g.is_oam() {
                return Err(PacketError::Malformed("Geneve OAM message"));
            }
            if g.protocol() != geneve::PROTO_ETHERNET {
                return Err(PacketError::Malformed("Geneve payload is not Ethernet"));
            }
            Ok(Decap { vni: g.vni(), inner_offset: g.header_len() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Broadcast ARP header start from 52:54:00:00:00:01: the inner frame.
    const INNER: [u8; 14] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, 1, 0x08, 0x06];

    fn spec() -> OuterSpec {
        OuterSpec {
            proto: TunnelProto::Vxlan,
            vni: 100,
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 0, 2),
            src_port: 49152,
            dst_port: 4789,
            tos: 0,
            ttl: 64,
            df: true,
            udp_csum: false,
        }
    }

    #[test]
    fn vxlan_outer_headers_byte_for_byte() {
        let mut out = [0u8; OUTER_LEN];
        emit_outer(&mut out, &spec(), &[&INNER]).unwrap();
        #[rustfmt::skip]
        let want: [u8; OUTER_LEN] = [
            0x45, 0, 0, 0x32, 0, 0, 0x40, 0, 64, 17, 0xae, 0x93, 198, 18, 0, 1, 198, 18, 0, 2, // IPv4
            0xc0, 0x00, 0x12, 0xb5, 0, 30, 0, 0,                                               // UDP
            0x08, 0, 0, 0, 0, 0, 0x64, 0,                                                      // VXLAN
        ];
        assert_eq!(out, want);
    }

    #[test]
    fn udp_checksum_over_pieces_of_odd_length() {
        let s = OuterSpec { udp_csum: true, ..spec() };
        let mut whole = [0u8; OUTER_LEN];
        emit_outer(&mut whole, &s, &[&INNER]).unwrap();
        assert_eq!(&whole[26..28], &[0xda, 0x78], "checksum computed independently");
        let mut split = [0u8; OUTER_LEN];
        emit_outer(&mut split, &s, &[&INNER[..3], &INNER[3..8], &INNER[8..]]).unwrap();
        assert_eq!(split, whole);
    }

    #[test]
    fn geneve_header_and_too_long_inner() {
        let mut out = [0u8; OUTER_LEN];
        emit_outer(&mut out, &OuterSpec { proto: TunnelProto::Geneve, df: false, ..spec() }, &[&INNER])
            .unwrap();
        assert_eq!(out[6], 0, "DF off");
        assert_eq!(&out[28..], &[0, 0, 0x65, 0x58, 0, 0, 0x64, 0]);
        let big = vec![0u8; 65536];
        assert!(emit_outer(&mut out, &spec(), &[&big]).is_err());
    }

    #[test]
    fn decap_reads_vni_and_inner_offset() {
        let vx = [0x08, 0, 0, 0, 0, 0, 0xc8, 0, 0xff];
        assert_eq!(decap(TunnelProto::Vxlan, &vx), Ok(Decap { vni: 200, inner_offset: 8 }));
        let gnv = [0x01, 0, 0x65, 0x58, 0, 0, 0xc8, 0, 1, 2, 3, 0, 0xff];
        assert_eq!(decap(TunnelProto::Geneve, &gnv), Ok(Decap { vni: 200, inner_offset: 12 }));
        let ipv4_payload = [0, 0, 0x08, 0x00, 0, 0, 0xc8, 0];
        assert!(decap(TunnelProto::Geneve, &ipv4_payload).is_err(), "not Ethernet");
        assert!(decap(TunnelProto::Vxlan, &vx[..7]).is_err());
    }

    /// An IPv4/TCP frame from port `sport` (no payload needed for the hash).
    fn tcp_frame(sport: u16, tos: u8) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.extend_from_slice(&[0x45, tos, 0, 40, 0, 0, 0x40, 0, 63, 6, 0, 0, 198, 18, 1, 1, 198, 18, 1, 2]);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&[0x14, 0x51, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        f
    }

    #[test]
    fn source_port_follows_the_flow() {
        let a = tcp_frame(40000, 0);
        assert_eq!(source_port(&a), source_port(&a.clone()), "one flow, one port");
        let ports: std::collections::HashSet<u16> =
            (40000..40064).map(|p| source_port(&tcp_frame(p, 0))).collect();
        assert!(ports.len() > 32, "flows spread over ports: {}", ports.len());
        assert!(ports.iter().all(|&p| p >= 49152));
        assert!(source_port(&INNER[..5]) >= 49152, "a runt still gets a port");
    }

    #[test]
    fn inherits_tos_and_ttl_from_ip_only() {
        assert_eq!(inner_tos_ttl(&tcp_frame(1, 0xb8)), Some((0xb8, 63)));
        assert_eq!(inner_tos_ttl(&INNER), None);
    }
}
