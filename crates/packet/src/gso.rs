//! Software TCP and UDP segmentation (what a NIC's TSO and USO do): a super-frame that a VM or
//! the kernel handed over whole (virtio-net `GSO_TCPV4`/`GSO_TCPV6`/`GSO_UDP_L4`) becomes
//! segments with their own IP length (and IPv4 ID and header checksum), transport length or
//! sequence number, and checksum, for an egress that cannot pass super-frames on (a tunnel,
//! whose underlay sees only a UDP payload; a VPN, which encrypts each segment on its own).

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

/// virtio-net's `VIRTIO_NET_HDR_GSO_UDP_L4`: a UDP super-frame (a sender's `UDP_SEGMENT`), cut
/// into datagrams of `gso_size` payload bytes — not IP fragments, unlike the old UFO type 3.
pub const GSO_UDP_L4: u8 = 5;

const PROTO_UDP: u8 = 17;
const UDP_HEADER_LEN: usize = 8;

/// Where the headers of a TCP or UDP frame are.
struct Layout {
    l3: usize,
    l4: usize,
    payload: usize,
    v4: bool,
    proto: u8,
}

/// The IP header's end (the transport header's start) of `frame` carrying `proto`, and
/// whether it is IPv4.
fn ip_layout(frame: &[u8], proto: u8) -> Result<(usize, usize, bool), PacketError> {
    let eth = EthernetHeader::parse(frame)?;
    let l3 = eth.payload_offset;
    match eth.ethertype {
        ETHERTYPE_IPV4 => {
            let ip = ipv4::Frame::new_checked(&frame[l3..])?;
            if ip.protocol() != proto {
                return Err(PacketError::Malformed("super-frame of another protocol than its GSO type"));
            }
            Ok((l3, l3 + ip.header_len(), true))
        }
        ETHERTYPE_IPV6 => {
            // Extension headers in a GSO frame are vanishingly rare; refuse rather than guess.
            if frame.get(l3 + 6) != Some(&proto) {
                return Err(PacketError::Malformed("IPv6 super-frame without its transport right after"));
            }
            Ok((l3, l3 + crate::ipv6::HEADER_LEN, false))
        }
        _ => Err(PacketError::Malformed("super-frame is not IP")),
    }
}

fn tcp_layout(frame: &[u8]) -> Result<Layout, PacketError> {
    let (l3, l4, v4) = ip_layout(frame, PROTO_TCP)?;
    let off = frame.get(l4 + 12).ok_or(PacketError::Truncated { len: frame.len(), need: l4 + 20 })?;
    let payload = l4 + usize::from(off >> 4) * 4;
    if payload > frame.len() || payload < l4 + 20 {
        return Err(PacketError::Malformed("TCP header length"));
    }
    Ok(Layout { l3, l4, payload, v4, proto: PROTO_TCP })
}

fn udp_layout(frame: &[u8]) -> Result<Layout, PacketError> {
    let (l3, l4, v4) = ip_layout(frame, PROTO_UDP)?;
    let payload = l4 + UDP_HEADER_LEN;
    if payload > frame.len() {
        return Err(PacketError::Truncated { len: frame.len(), need: payload });
    }
    Ok(Layout { l3, l4, payload, v4, proto: PROTO_UDP })
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
    emit: impl FnMut(&mut [u8]),
) -> Result<usize, PacketError> {
    let t = tcp_layout(frame)?;
    let seq0 = u32::from_be_bytes([frame[t.l4 + 4], frame[t.l4 + 5], frame[t.l4 + 6], frame[t.l4 + 7]]);
    segment(frame, &t, mss, scratch, emit, |seg, i, last| fix_tcp(seg, &t, i, last, seq0, mss))
}

/// Cuts the UDP super-frame `frame` (Ethernet, IPv4 or IPv6, UDP; virtio-net `GSO_UDP_L4`)
/// into datagrams of `size` payload bytes (the last may be shorter), each with its own IP
/// length (and IPv4 ID and header checksum), UDP length and full UDP checksum — what the
/// sender's kernel would have put on the wire. Returns the number of datagrams.
pub fn segment_udp(
    frame: &[u8],
    size: usize,
    scratch: &mut [u8],
    emit: impl FnMut(&mut [u8]),
) -> Result<usize, PacketError> {
    let t = udp_layout(frame)?;
    segment(frame, &t, size, scratch, emit, |seg, _, _| fix_udp(seg, &t))
}

/// The loop both share: headers copied before each piece of payload into `scratch`, the IP
/// header fixed, `fix` for the transport header, then `emit`.
fn segment(
    frame: &[u8],
    t: &Layout,
    size: usize,
    scratch: &mut [u8],
    mut emit: impl FnMut(&mut [u8]),
    fix: impl Fn(&mut [u8], usize, bool),
) -> Result<usize, PacketError> {
    if size == 0 {
        return Err(PacketError::Malformed("segment size 0"));
    }
    let data = &frame[t.payload..];
    let n = data.len().div_ceil(size).max(1);
    let need = t.payload + size.min(data.len());
    if scratch.len() < need {
        return Err(PacketError::BufferTooSmall { have: scratch.len(), need });
    }
    for (i, chunk) in data.chunks(size).enumerate().chain(data.is_empty().then_some((0, data))) {
        let len = t.payload + chunk.len();
        let seg = &mut scratch[..len];
        seg[..t.payload].copy_from_slice(&frame[..t.payload]);
        seg[t.payload..].copy_from_slice(chunk);
        fix_ip(seg, t, i);
        fix(seg, i, i + 1 == n);
        emit(seg);
    }
    Ok(n)
}

/// The IP header of segment `i`: its length, and for IPv4 its ID (one more per segment, as
/// the sender's TSO would count) and header checksum.
fn fix_ip(seg: &mut [u8], t: &Layout, i: usize) {
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
}

fn fix_tcp(seg: &mut [u8], t: &Layout, i: usize, last: bool, seq0: u32, mss: usize) {
    let tcp = t.l4;
    let seq = seq0.wrapping_add((i * mss) as u32);
    seg[tcp + TCP_SEQ.start..tcp + TCP_SEQ.end].copy_from_slice(&seq.to_be_bytes());
    if !last {
        seg[tcp + TCP_FLAGS] &= !(TCP_FIN | TCP_PSH);
    }
    if i > 0 {
        seg[tcp + TCP_FLAGS] &= !TCP_CWR;
    }
    write_l4_csum(seg, t, tcp + TCP_CSUM.start);
}

fn fix_udp(seg: &mut [u8], t: &Layout) {
    let udp = t.l4;
    let len = (seg.len() - udp) as u16;
    seg[udp + 4..udp + 6].copy_from_slice(&len.to_be_bytes());
    write_l4_csum(seg, t, udp + 6);
}

/// The transport checksum at `at`, over the pseudo-header and the whole segment. A UDP sum
/// of 0 is sent as 0xffff (0 means "none" in IPv4 and is invalid in IPv6).
fn write_l4_csum(seg: &mut [u8], t: &Layout, at: usize) {
    let l4_len = seg.len() - t.l4;
    seg[at..at + 2].copy_from_slice(&[0, 0]);
    let mut c = checksum::finish(pseudo_header(seg, t, l4_len) + checksum::sum(&seg[t.l4..]));
    if c == 0 && t.proto == PROTO_UDP {
        c = 0xffff;
    }
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

fn pseudo_header(seg: &[u8], t: &Layout, l4_len: usize) -> u32 {
    if t.v4 {
        let a = |at: usize| Ipv4Addr::from(<[u8; 4]>::try_from(&seg[at..at + 4]).unwrap_or_default());
        checksum::pseudo_v4(a(t.l3 + 12), a(t.l3 + 16), t.proto, l4_len)
    } else {
        let a = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&seg[at..at + 16]).unwrap_or_default());
        checksum::pseudo_v6(a(t.l3 + 8), a(t.l3 + 24), t.proto, l4_len)
    }
}

#[cfg(test)]
mod tests;
