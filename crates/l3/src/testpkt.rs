//! Test-only: IPv4 packets with valid checksums, and a checker that recomputes every checksum
//! from scratch (so tests of incremental updates do not trust the code under test).

use std::net::Ipv4Addr;

use packet::{checksum, ipv4};

/// An IPv4 datagram of `proto` carrying `l4` (whose checksum field is filled in here).
pub(crate) fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 20 + l4.len()];
    let h = ipv4::Header {
        src,
        dst,
        protocol: proto,
        ttl: 64,
        ident: 1,
        dont_fragment: true,
        payload_len: l4.len(),
    };
    ipv4::write_header(&mut b, &h).unwrap();
    b[20..].copy_from_slice(l4);
    if let Some(at) = l4_checksum_at(proto) {
        b[20 + at..22 + at].fill(0);
        let c = l4_sum(&b, proto);
        b[20 + at..22 + at].copy_from_slice(&c.to_be_bytes());
    }
    b
}

pub(crate) fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), data: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; 8];
    l4[0..2].copy_from_slice(&src.1.to_be_bytes());
    l4[2..4].copy_from_slice(&dst.1.to_be_bytes());
    l4[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    l4.extend_from_slice(data);
    ipv4(src.0, dst.0, ipv4::PROTO_UDP, &l4)
}

/// A TCP segment with `flags` and `options` (a multiple of 4 bytes).
pub(crate) fn tcp(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    flags: u8,
    options: &[u8],
    data: &[u8],
) -> Vec<u8> {
    let mut l4 = vec![0u8; 20];
    l4[0..2].copy_from_slice(&src.1.to_be_bytes());
    l4[2..4].copy_from_slice(&dst.1.to_be_bytes());
    l4[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    l4[12] = (((20 + options.len()) / 4) << 4) as u8;
    l4[13] = flags;
    l4[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    l4.extend_from_slice(options);
    l4.extend_from_slice(data);
    ipv4(src.0, dst.0, ipv4::PROTO_TCP, &l4)
}

pub(crate) fn icmp(src: Ipv4Addr, dst: Ipv4Addr, typ: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut l4 = vec![typ, code, 0, 0];
    l4.extend_from_slice(&rest);
    l4.extend_from_slice(body);
    ipv4(src, dst, ipv4::PROTO_ICMP, &l4)
}

fn l4_checksum_at(proto: u8) -> Option<usize> {
    match proto {
        ipv4::PROTO_TCP => Some(16),
        ipv4::PROTO_UDP => Some(6),
        ipv4::PROTO_ICMP => Some(2),
        _ => None,
    }
}

fn l4_sum(b: &[u8], proto: u8) -> u16 {
    let ip = ipv4::Frame::new_checked(b).unwrap();
    let l4 = ip.payload();
    let pseudo =
        if proto == ipv4::PROTO_ICMP { 0 } else { checksum::pseudo_v4(ip.src(), ip.dst(), proto, l4.len()) };
    checksum::finish(pseudo + checksum::sum(l4))
}

/// True when the IPv4 header checksum and the TCP/UDP/ICMP checksum verify from scratch.
pub(crate) fn checksums_ok(b: &[u8]) -> bool {
    let ip = ipv4::Frame::new_checked(b).unwrap();
    let header_ok = checksum::internet(&b[..ip.header_len()]) == 0;
    let l4 = ip.payload();
    let l4_ok = match ip.protocol() {
        ipv4::PROTO_UDP if l4[6..8] == [0, 0] => true,
        p => l4_sum(b, p) == 0,
    };
    header_ok && l4_ok
}

pub(crate) fn addr(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
