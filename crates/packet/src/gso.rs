//! Software TCP segmentation (what a NIC's TSO does): a TCP super-frame that a VM or the kernel
//! handed over whole (virtio-net `GSO_TCPV4`/`GSO_TCPV6`) becomes MSS-sized frames with their
//! own IP length (and IPv4 ID and header checksum), TCP sequence number and checksum, for an
//! egress that cannot pass super-frames on (a tunnel, whose underlay sees only a UDP payload;
//! a VPN, which encrypts each segment on its own).

use crate::{checksum, ipv4, EthernetHeader, PacketError, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use std::net::{Ipv4Addr, Ipv6Addr};

/// virtio-net's `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// virtio-net's `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;

const PROTO_TCP: u8 = 6;
const TCP_SEQ: std::ops::Range<usize> = 4..8;
const TCP_FLAGS: usize = 13;
const TCP_CSUM: std::ops::Range<usize> = 16..18;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Where the headers of a TCP frame are.
struct TcpLayout {
    l3: usize,
    l4: usize,
    payload: usize,
    v4: bool,
}

fn tcp_layout(frame: &[u8]) -> Result<TcpLayout, PacketError> {
    let eth = EthernetHeader::parse(frame)?;
    let l3 = eth.payload_offset;
    let (l4, v4) = match eth.ethertype {
        ETHERTYPE_IPV4 => {
            let ip = ipv4::Frame::new_checked(&frame[l3..])?;
            if ip.protocol() != PROTO_TCP {
                return Err(PacketError::Malformed("super-frame is not TCP"));
            }
            (l3 + ip.header_len(), true)
        }
        ETHERTYPE_IPV6 => {
            // Extension headers in a TSO frame are vanishingly rare; refuse rather than guess.
            if frame.get(l3 + 6) != Some(&PROTO_TCP) {
                return Err(PacketError::Malformed("IPv6 super-frame without TCP right after"));
            }
            (l3 + crate::ipv6::HEADER_LEN, false)
        }
        _ => return Err(PacketError::Malformed("super-frame is not IP")),
    };
    let off = frame.get(l4 + 12).ok_or(PacketError::Truncated { len: frame.len(), need: l4 + 20 })?;
    let payload = l4 + usize::from(off >> 4) * 4;
    if payload > frame.len() || payload < l4 + 20 {
        return Err(PacketError::Malformed("TCP header length"));
    }
    Ok(TcpLayout { l3, l4, payload, v4 })
}

/// Cuts the TCP super-frame `frame` (Ethernet, IPv4 or IPv6, TCP) into segments of at most
/// `mss` payload bytes, each a complete frame with its own IP length (and IPv4 ID and header
/// checksum), sequence number, flags (FIN/PSH on the last only, CWR on the first only) and
/// full TCP checksum. Each segment is built in `scratch` and handed to `emit` (mutable, so a
/// gateway can rewrite it in place). Returns the number of segments.
pub fn segment_tcp(
    frame: &[u8],
    mss: usize,
    scratch: &mut [u8],
    mut emit: impl FnMut(&mut [u8]),
) -> Result<usize, PacketError> {
    let t = tcp_layout(frame)?;
    if mss == 0 {
        return Err(PacketError::Malformed("segment size 0"));
    }
    let data = &frame[t.payload..];
    let n = data.len().div_ceil(mss).max(1);
    let need = t.payload + mss.min(data.len());
    if scratch.len() < need {
        return Err(PacketError::BufferTooSmall { have: scratch.len(), need });
    }
    let seq0 = u32::from_be_bytes([frame[t.l4 + 4], frame[t.l4 + 5], frame[t.l4 + 6], frame[t.l4 + 7]]);
    for (i, chunk) in data.chunks(mss).enumerate().chain(data.is_empty().then_some((0, data))) {
        let len = t.payload + chunk.len();
        let seg = &mut scratch[..len];
        seg[..t.payload].copy_from_slice(&frame[..t.payload]);
        seg[t.payload..].copy_from_slice(chunk);
        fix_segment(seg, &t, i, i + 1 == n, seq0.wrapping_add((i * mss) as u32));
        emit(seg);
    }
    Ok(n)
}

fn fix_segment(seg: &mut [u8], t: &TcpLayout, i: usize, last: bool, seq: u32) {
    let l4_len = seg.len() - t.l4;
    if t.v4 {
        let ip = &mut seg[t.l3..t.l4];
        ip[2..4].copy_from_slice(&((t.l4 - t.l3 + l4_len) as u16).to_be_bytes());
        let id = u16::from_be_bytes([ip[4], ip[5]]).wrapping_add(i as u16);
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        ip[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::internet(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
    } else {
        seg[t.l3 + 4..t.l3 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
    }
    let tcp = t.l4;
    seg[tcp + TCP_SEQ.start..tcp + TCP_SEQ.end].copy_from_slice(&seq.to_be_bytes());
    if !last {
        seg[tcp + TCP_FLAGS] &= !(TCP_FIN | TCP_PSH);
    }
    if i > 0 {
        seg[tcp + TCP_FLAGS] &= !TCP_CWR;
    }
    seg[tcp + TCP_CSUM.start..tcp + TCP_CSUM.end].copy_from_slice(&[0, 0]);
    let c = checksum::finish(pseudo_header(seg, t, l4_len) + checksum::sum(&seg[tcp..]));
    seg[tcp + TCP_CSUM.start..tcp + TCP_CSUM.end].copy_from_slice(&c.to_be_bytes());
}

fn pseudo_header(seg: &[u8], t: &TcpLayout, l4_len: usize) -> u32 {
    if t.v4 {
        let a = |at: usize| Ipv4Addr::from(<[u8; 4]>::try_from(&seg[at..at + 4]).unwrap_or_default());
        checksum::pseudo_v4(a(t.l3 + 12), a(t.l3 + 16), PROTO_TCP, l4_len)
    } else {
        let a = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&seg[at..at + 16]).unwrap_or_default());
        checksum::pseudo_v6(a(t.l3 + 8), a(t.l3 + 24), PROTO_TCP, l4_len)
    }
}

#[cfg(test)]
mod tests;
