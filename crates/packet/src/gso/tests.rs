use super::*;

/// Ethernet + IPv4 (id 7) + TCP (seq 1000, PSH|ACK|FIN, CWR if `cwr`) + `n` payload bytes 0, 1, 2...
fn super_frame(n: usize) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = (20 + 20 + n) as u16;
    f.extend([0x45, 0, (total >> 8) as u8, total as u8, 0, 7, 0x40, 0, 64, 6, 0, 0]);
    f.extend([198, 18, 0, 2, 198, 18, 9, 10]);
    f.extend([0x1f, 0x90, 0x14, 0x51, 0, 0, 0x03, 0xe8, 0, 0, 0, 1, 0x50, 0x99, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend((0..n).map(|i| i as u8));
    f
}

/// The same TCP segment over IPv6 (198.18.0.0/15 mapped, ::ffff:c612:2 → ::ffff:c612:90a).
fn super_frame_v6(n: usize) -> Vec<u8> {
    let v4 = super_frame(n);
    let mut f = v4[..12].to_vec();
    f.extend([0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend(((20 + n) as u16).to_be_bytes());
    f.extend([PROTO_TCP, 64]);
    f.extend(Ipv4Addr::new(198, 18, 0, 2).to_ipv6_mapped().octets());
    f.extend(Ipv4Addr::new(198, 18, 9, 10).to_ipv6_mapped().octets());
    f.extend_from_slice(&v4[34..]);
    f
}

fn valid_v4(seg: &[u8]) -> bool {
    let ip = ipv4::Frame::new_checked(&seg[14..]).unwrap();
    let l4 = &seg[34..];
    let pseudo = checksum::pseudo_v4(ip.src(), ip.dst(), PROTO_TCP, l4.len());
    checksum::finish(pseudo + checksum::sum(l4)) == 0 && checksum::internet(&seg[14..34]) == 0
}

fn valid_v6(seg: &[u8]) -> bool {
    let a = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&seg[at..at + 16]).unwrap());
    let l4 = &seg[54..];
    checksum::finish(checksum::pseudo_v6(a(22), a(38), PROTO_TCP, l4.len()) + checksum::sum(l4)) == 0
}

fn split(f: &[u8], mss: usize) -> Vec<Vec<u8>> {
    let mut segs = Vec::new();
    let n = segment_tcp(f, mss, &mut [0u8; 2048], |s| segs.push(s.to_vec())).unwrap();
    assert_eq!(n, segs.len());
    segs
}

#[test]
fn segments_carry_their_own_lengths_sequence_and_flags() {
    let segs = split(&super_frame(5), 2);
    assert_eq!(segs.iter().map(|s| &s[54..]).collect::<Vec<_>>(), [&[0u8, 1][..], &[2, 3], &[4]]);
    assert_eq!(segs.iter().map(|s| s[17]).collect::<Vec<_>>(), [42, 42, 41], "IPv4 total length");
    assert_eq!(segs.iter().map(|s| s[19]).collect::<Vec<_>>(), [7, 8, 9], "IPv4 ID");
    assert_eq!(segs.iter().map(|s| s[41]).collect::<Vec<_>>(), [0xe8, 0xea, 0xec], "sequence numbers");
    assert_eq!(segs.iter().map(|s| s[47]).collect::<Vec<_>>(), [0x90, 0x10, 0x19], "CWR first, FIN/PSH last");
    assert!(segs.iter().all(|s| valid_v4(s)));
}

#[test]
fn splits_at_the_mss_with_valid_headers() {
    let segs = split(&super_frame(3000), 1400);
    let lens: Vec<usize> = segs.iter().map(|s| s.len() - 54).collect();
    assert_eq!(lens, [1400, 1400, 200]);
    for (i, s) in segs.iter().enumerate() {
        assert!(valid_v4(s), "segment {i} checksums");
        assert_eq!(u16::from_be_bytes([s[16], s[17]]) as usize, s.len() - 14);
        assert_eq!(u32::from_be_bytes([s[38], s[39], s[40], s[41]]), 1000 + 1400 * i as u32);
        assert_eq!(s[54], (1400 * i) as u8, "payload continues where the last left off");
    }
}

#[test]
fn segments_ipv6() {
    let segs = split(&super_frame_v6(3000), 1400);
    let lens: Vec<usize> = segs.iter().map(|s| s.len() - 74).collect();
    assert_eq!(lens, [1400, 1400, 200]);
    for (i, s) in segs.iter().enumerate() {
        assert!(valid_v6(s), "segment {i} checksums");
        assert_eq!(u16::from_be_bytes([s[18], s[19]]) as usize, s.len() - 54, "payload length");
        assert_eq!(u32::from_be_bytes([s[58], s[59], s[60], s[61]]), 1000 + 1400 * i as u32);
    }
}

#[test]
fn bad_frames_are_refused() {
    let mut scratch = [0u8; 2048];
    assert!(segment_tcp(&super_frame(10), 0, &mut scratch, |_| {}).is_err(), "segment size 0");
    assert!(segment_tcp(&super_frame(10)[..40], 100, &mut scratch, |_| {}).is_err(), "truncated");
    let mut udp = super_frame(10);
    udp[23] = 17;
    assert!(segment_tcp(&udp, 100, &mut scratch, |_| {}).is_err(), "not TCP");
    assert!(segment_tcp(&[], 100, &mut scratch, |_| {}).is_err(), "empty");
    assert!(segment_tcp(&super_frame(10), 2, &mut [0u8; 20], |_| {}).is_err(), "scratch too small");
    assert_eq!(segment_tcp(&super_frame(0), 100, &mut scratch, |_| {}).ok(), Some(1), "a bare header passes");
}

/// Ethernet + IPv4 (id 7) + UDP 4000 → 9 with a partial checksum in place + `n` payload bytes.
fn udp_super_frame(n: usize) -> Vec<u8> {
    let mut f = super_frame(0)[..34].to_vec();
    f[23] = PROTO_UDP;
    let total = (20 + 8 + n) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f.extend([0x0f, 0xa0, 0, 9, 0, 0, 0x12, 0x34]);
    f.extend((0..n).map(|i| i as u8));
    f
}

fn valid_udp(seg: &[u8], l3: usize, l4: usize) -> bool {
    let udp = &seg[l4..];
    let pseudo = if l3 == l4 - 20 {
        let ip = ipv4::Frame::new_checked(&seg[l3..]).unwrap();
        checksum::pseudo_v4(ip.src(), ip.dst(), PROTO_UDP, udp.len())
    } else {
        let a = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&seg[at..at + 16]).unwrap());
        checksum::pseudo_v6(a(l3 + 8), a(l3 + 24), PROTO_UDP, udp.len())
    };
    checksum::finish(pseudo + checksum::sum(udp)) == 0
        && usize::from(u16::from_be_bytes([udp[4], udp[5]])) == udp.len()
}

#[test]
fn udp_super_frames_become_datagrams() {
    let mut segs = Vec::new();
    let n = segment_udp(&udp_super_frame(2500), 1000, &mut [0u8; 2048], |s| segs.push(s.to_vec())).unwrap();
    assert_eq!(n, 3);
    let lens: Vec<usize> = segs.iter().map(|s| s.len() - 42).collect();
    assert_eq!(lens, [1000, 1000, 500]);
    for (i, s) in segs.iter().enumerate() {
        assert!(valid_udp(s, 14, 34), "datagram {i}: UDP length and checksum");
        assert_eq!(checksum::internet(&s[14..34]), 0, "datagram {i}: IPv4 header checksum");
        assert_eq!(usize::from(u16::from_be_bytes([s[16], s[17]])), s.len() - 14);
        assert_eq!(s[19], 7 + i as u8, "IPv4 ID counts up");
        assert_eq!(s[34..38], [0x0f, 0xa0, 0, 9], "ports kept");
        assert_eq!(s[42], (1000 * i) as u8, "payload continues where the last left off");
    }
}

#[test]
fn udp_super_frames_over_ipv6() {
    let v4 = udp_super_frame(1500);
    let mut f = v4[..12].to_vec();
    f.extend([0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend(((8 + 1500) as u16).to_be_bytes());
    f.extend([PROTO_UDP, 64]);
    f.extend(Ipv4Addr::new(198, 18, 0, 2).to_ipv6_mapped().octets());
    f.extend(Ipv4Addr::new(198, 18, 9, 10).to_ipv6_mapped().octets());
    f.extend_from_slice(&v4[34..]);
    let mut segs = Vec::new();
    assert_eq!(segment_udp(&f, 1000, &mut [0u8; 2048], |s| segs.push(s.to_vec())).ok(), Some(2));
    for s in &segs {
        assert!(valid_udp(s, 14, 54));
        assert_eq!(usize::from(u16::from_be_bytes([s[18], s[19]])), s.len() - 54, "payload length");
    }
}

#[test]
fn bad_udp_super_frames_are_refused() {
    let mut scratch = [0u8; 2048];
    assert!(segment_udp(&super_frame(100), 10, &mut scratch, |_| {}).is_err(), "TCP is not UDP");
    assert!(segment_udp(&udp_super_frame(10)[..40], 10, &mut scratch, |_| {}).is_err(), "truncated");
    assert!(segment_udp(&udp_super_frame(10), 0, &mut scratch, |_| {}).is_err(), "size 0");
}
