//! Finishing what a sender left to "the hardware": a partial checksum (virtio-net
//! NEEDS_CSUM), and TCP segmentation of a super-frame (GSO/TSO). An egress that cannot pass
//! offloads on — a tunnel, whose underlay sees only a UDP payload — does it in software here.

use crate::{checksum, ipv4, EthernetHeader, PacketError, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

const PROTO_TCP: u8 = 6;
const TCP_SEQ: std::ops::Range<usize> = 4..8;
const TCP_FLAGS: usize = 13;
const TCP_CSUM: std::ops::Range<usize> = 16..18;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Completes a partial checksum: the 16-bit field at `start + offset` holds the pseudo-header
/// sum; the ones' complement sum from `start` to the end replaces it.
pub fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> Result<(), PacketError> {
    let at = start.checked_add(offset).filter(|&a| a + 2 <= frame.len() && start <= frame.len());
    let Some(at) = at else {
        return Err(PacketError::Malformed("checksum offsets outside the frame"));
    };
    let c = checksum::finish(checksum::add(0, &frame[start..]));
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

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

/// Cuts the TCP super-frame `frame` into segments of at most `mss` payload bytes, each a
/// complete frame with its own IP length (and IPv4 ID and header checksum), sequence number,
/// flags (FIN/PSH on the last only, CWR on the first only) and full TCP checksum. Each segment
/// is built in `scratch` and handed to `emit`. Returns the number of segments.
pub fn segment_tcp(
    frame: &[u8],
    mss: usize,
    scratch: &mut [u8],
    mut emit: impl FnMut(&[u8]),
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
    for (i, chunk) in data.chunks(mss.max(1)).enumerate().chain(data.is_empty().then_some((0, data))) {
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
        let c = checksum::of(ip);
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
    let pseudo = if t.v4 {
        let a = |r: std::ops::Range<usize>| -> [u8; 4] { seg[r].try_into().unwrap_or_default() };
        checksum::pseudo_v4(a(t.l3 + 12..t.l3 + 16), a(t.l3 + 16..t.l3 + 20), PROTO_TCP, l4_len)
    } else {
        let s = checksum::add(0, &seg[t.l3 + 8..t.l3 + 40]);
        checksum::add(s, &[0, PROTO_TCP]) + l4_len as u32
    };
    let c = checksum::finish(checksum::add(pseudo, &seg[tcp..]));
    seg[tcp + TCP_CSUM.start..tcp + TCP_CSUM.end].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4/TCP 198.18.1.1:1000 → 198.18.1.2:5201, seq 1, flags PSH|ACK|FIN, 5 payload bytes.
    fn super_frame() -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.extend_from_slice(&[
            0x45, 0, 0, 45, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 198, 18, 1, 1, 198, 18, 1, 2,
        ]);
        f.extend_from_slice(&[
            0x03, 0xe8, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x19, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        f.extend_from_slice(b"hello");
        f
    }

    fn tcp_ok(seg: &[u8]) -> bool {
        let l4 = &seg[34..];
        let pseudo = checksum::pseudo_v4([198, 18, 1, 1], [198, 18, 1, 2], PROTO_TCP, l4.len());
        checksum::finish(checksum::add(pseudo, l4)) == 0 && checksum::of(&seg[14..34]) == 0
    }

    #[test]
    fn segments_carry_their_own_lengths_sequence_and_flags() {
        let f = super_frame();
        let mut scratch = [0u8; 128];
        let mut segs = Vec::new();
        let n = segment_tcp(&f, 2, &mut scratch, |s| segs.push(s.to_vec())).unwrap();
        assert_eq!(n, 3);
        assert_eq!(segs.iter().map(|s| &s[54..]).collect::<Vec<_>>(), [&b"he"[..], b"ll", b"o"]);
        assert_eq!(segs.iter().map(|s| s[17]).collect::<Vec<_>>(), [42, 42, 41], "IPv4 total length");
        assert_eq!(segs.iter().map(|s| s[19]).collect::<Vec<_>>(), [0x34, 0x35, 0x36], "IPv4 ID");
        assert_eq!(segs.iter().map(|s| s[41]).collect::<Vec<_>>(), [1, 3, 5], "sequence numbers");
        assert_eq!(segs.iter().map(|s| s[47]).collect::<Vec<_>>(), [0x10, 0x10, 0x19], "FIN/PSH last");
        assert!(segs.iter().all(|s| tcp_ok(s)));
    }

    #[test]
    fn refuses_what_is_not_tcp() {
        let mut udp = super_frame();
        udp[23] = 17;
        assert!(segment_tcp(&udp, 2, &mut [0u8; 128], |_| {}).is_err());
        assert!(segment_tcp(&super_frame()[..40], 2, &mut [0u8; 128], |_| {}).is_err());
        assert!(segment_tcp(&super_frame(), 2, &mut [0u8; 20], |_| {}).is_err(), "scratch too small");
    }

    #[test]
    fn completes_a_partial_checksum() {
        let mut f = super_frame();
        let l4_len = f.len() - 34;
        let pseudo = checksum::pseudo_v4([198, 18, 1, 1], [198, 18, 1, 2], PROTO_TCP, l4_len);
        let mut p = pseudo;
        while p > 0xffff {
            p = (p & 0xffff) + (p >> 16);
        }
        f[50..52].copy_from_slice(&(p as u16).to_be_bytes());
        complete_checksum(&mut f, 34, 16).unwrap();
        let ip_csum = checksum::of(&f[14..34]);
        f[14 + 10..14 + 12].copy_from_slice(&ip_csum.to_be_bytes());
        assert!(tcp_ok(&f));
        assert!(complete_checksum(&mut f, 34, 100).is_err());
    }
}
