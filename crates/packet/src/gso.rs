//! Software TCP segmentation (what a NIC's TSO does): a TCP/IPv4 super-frame that a VM or the
//! kernel handed over whole (virtio-net `GSO_TCPV4`) becomes MSS-sized frames with their own
//! IP length, ID and checksum and TCP sequence number and checksum, for an egress that cannot
//! take super-frames (a tunnel: each segment is encrypted on its own).

use crate::csum::fold;

/// virtio-net's `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;

/// Why a super-frame cannot be segmented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GsoError {
    #[error("not a TCP/IPv4 frame with complete headers")]
    Malformed,
    #[error("segment size 0")]
    ZeroSize,
}

/// Splits the TCP/IPv4 frame `frame` (Ethernet header of `l2` bytes) into segments of at most
/// `mss` payload bytes, calling `emit` with each complete frame (written into `scratch`).
/// FIN and PSH stay on the last segment only. Returns how many segments were emitted.
pub fn segment_tcpv4(
    frame: &[u8],
    l2: usize,
    mss: usize,
    scratch: &mut Vec<u8>,
    mut emit: impl FnMut(&mut [u8]),
) -> Result<usize, GsoError> {
    if mss == 0 {
        return Err(GsoError::ZeroSize);
    }
    let ip = frame.get(l2..).ok_or(GsoError::Malformed)?;
    if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 6 {
        return Err(GsoError::Malformed);
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let thl = ip.get(ihl + 12).map(|b| usize::from(b >> 4) * 4).ok_or(GsoError::Malformed)?;
    let hdrs = l2 + ihl + thl;
    if ihl < 20 || thl < 20 || frame.len() < hdrs {
        return Err(GsoError::Malformed);
    }
    let payload = &frame[hdrs..];
    let id = u16::from_be_bytes([ip[4], ip[5]]);
    let seq = u32::from_be_bytes([ip[ihl + 4], ip[ihl + 5], ip[ihl + 6], ip[ihl + 7]]);
    let chunks = payload.len().div_ceil(mss).max(1);
    for (i, chunk) in payload.chunks(mss).chain(payload.is_empty().then_some(&[][..])).enumerate() {
        scratch.clear();
        scratch.extend_from_slice(&frame[..hdrs]);
        scratch.extend_from_slice(chunk);
        let last = i + 1 == chunks;
        fix_segment(
            &mut scratch[l2..],
            ihl,
            id.wrapping_add(i as u16),
            seq.wrapping_add((i * mss) as u32),
            last,
        );
        emit(scratch);
    }
    Ok(chunks)
}

/// Rewrites one segment's headers (`seg` starts at the IP header).
fn fix_segment(seg: &mut [u8], ihl: usize, id: u16, seq: u32, last: bool) {
    let total = seg.len() as u16;
    seg[2..4].copy_from_slice(&total.to_be_bytes());
    seg[4..6].copy_from_slice(&id.to_be_bytes());
    seg[10..12].fill(0);
    let c = !fold(0, &seg[..ihl]) as u16;
    seg[10..12].copy_from_slice(&c.to_be_bytes());
    let tcp = ihl;
    seg[tcp + 4..tcp + 8].copy_from_slice(&seq.to_be_bytes());
    if !last {
        seg[tcp + 13] &= !(0x01 | 0x08); // FIN, PSH
    }
    seg[tcp + 16..tcp + 18].fill(0);
    let tcp_len = (seg.len() - tcp) as u16;
    let mut pseudo = [0u8; 12];
    pseudo[..8].copy_from_slice(&seg[12..20]);
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&tcp_len.to_be_bytes());
    let c = !fold(fold(0, &pseudo), &seg[tcp..]) as u16;
    seg[tcp + 16..tcp + 18].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv4 (id 7) + TCP (seq 1000, PSH|ACK|FIN) + `n` payload bytes 0, 1, 2...
    fn super_frame(n: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let total = (20 + 20 + n) as u16;
        f.extend([0x45, 0, (total >> 8) as u8, total as u8, 0, 7, 0x40, 0, 64, 6, 0, 0]);
        f.extend([198, 18, 0, 2, 198, 18, 9, 10]);
        f.extend([0x1f, 0x90, 0x14, 0x51, 0, 0, 0x03, 0xe8, 0, 0, 0, 1, 0x50, 0x19, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend((0..n).map(|i| i as u8));
        f
    }

    fn valid(seg: &[u8]) -> bool {
        let ip = &seg[14..];
        let mut pseudo = [0u8; 12];
        pseudo[..8].copy_from_slice(&ip[12..20]);
        pseudo[9] = 6;
        pseudo[10..12].copy_from_slice(&((ip.len() - 20) as u16).to_be_bytes());
        fold(0, &ip[..20]) == 0xffff && fold(fold(0, &pseudo), &ip[20..]) == 0xffff
    }

    #[test]
    fn splits_at_the_mss_with_valid_headers() {
        let f = super_frame(3000);
        let mut segs = Vec::new();
        let n = segment_tcpv4(&f, 14, 1400, &mut Vec::new(), |s| segs.push(s.to_vec())).unwrap();
        assert_eq!(n, 3);
        let lens: Vec<usize> = segs.iter().map(|s| s.len() - 54).collect();
        assert_eq!(lens, [1400, 1400, 200]);
        for (i, s) in segs.iter().enumerate() {
            assert!(valid(s), "segment {i} checksums");
            assert_eq!(u16::from_be_bytes([s[16], s[17]]) as usize, s.len() - 14);
            assert_eq!(u16::from_be_bytes([s[18], s[19]]), 7 + i as u16);
            assert_eq!(u32::from_be_bytes([s[38], s[39], s[40], s[41]]), 1000 + 1400 * i as u32);
            assert_eq!(s[47] & 0x09 != 0, i == 2, "FIN/PSH on the last only");
            assert_eq!(s[54], (1400 * i) as u8, "payload continues where the last left off");
        }
    }

    #[test]
    fn bad_frames_are_refused() {
        let mut scratch = Vec::new();
        assert_eq!(segment_tcpv4(&super_frame(10), 14, 0, &mut scratch, |_| {}), Err(GsoError::ZeroSize));
        assert_eq!(
            segment_tcpv4(&super_frame(10)[..40], 14, 100, &mut scratch, |_| {}),
            Err(GsoError::Malformed)
        );
        let mut udp = super_frame(10);
        udp[23] = 17;
        assert_eq!(segment_tcpv4(&udp, 14, 100, &mut scratch, |_| {}), Err(GsoError::Malformed));
        assert_eq!(segment_tcpv4(&[], 14, 100, &mut scratch, |_| {}), Err(GsoError::Malformed));
        assert_eq!(
            segment_tcpv4(&super_frame(0), 14, 100, &mut scratch, |_| {}),
            Ok(1),
            "a bare header passes"
        );
    }
}
