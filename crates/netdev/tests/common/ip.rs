//! IPv4 packets for the L3 uplink tests: UDP carrying a marker, ICMP echo, and a tun device the
//! test holds itself (as a VPN client would).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use packet::checksum::internet;

/// An IPv4 header (no options, TTL 64) for `payload_len` bytes of protocol `proto`.
fn ipv4_header(src: [u8; 4], dst: [u8; 4], proto: u8, payload_len: usize) -> Vec<u8> {
    let total = (20 + payload_len) as u16;
    let mut h = vec![0x45, 0];
    h.extend(total.to_be_bytes());
    h.extend([0, 1, 0x40, 0, 64, proto, 0, 0]);
    h.extend(src);
    h.extend(dst);
    let sum = internet(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

/// A UDP datagram (checksum 0: none) from `src` to `dst` port 9 carrying `marker`.
pub fn udp_packet(src: [u8; 4], dst: [u8; 4], marker: &[u8]) -> Vec<u8> {
    let len = (8 + marker.len()) as u16;
    let mut udp = vec![0x30, 0x39, 0, 9];
    udp.extend(len.to_be_bytes());
    udp.extend([0, 0]);
    udp.extend(marker);
    let mut p = ipv4_header(src, dst, 17, udp.len());
    p.extend(udp);
    p
}

/// An ICMP echo request with identifier `id`, sequence `seq` and `payload`.
pub fn echo_request(src: [u8; 4], dst: [u8; 4], id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0];
    icmp.extend(id.to_be_bytes());
    icmp.extend(seq.to_be_bytes());
    icmp.extend(payload);
    let sum = internet(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut p = ipv4_header(src, dst, 1, icmp.len());
    p.extend(icmp);
    p
}

/// True if `p` is an ICMP echo reply from `from` with identifier `id` and `payload`.
pub fn is_echo_reply(p: &[u8], from: [u8; 4], id: u16, payload: &[u8]) -> bool {
    let ihl = usize::from(p.first().map_or(0, |b| b & 0x0f)) * 4;
    p.len() >= ihl + 8
        && ihl >= 20
        && p[9] == 1
        && p[12..16] == from
        && p[ihl] == 0
        && p[ihl + 4..ihl + 6] == id.to_be_bytes()
        && p[ihl + 8..] == *payload
}

/// A tun device (IFF_TUN, no packet info) held by this test, like a VPN client holds its own.
/// Non-persistent: closing the descriptor deletes the device.
pub fn open_tun(name: &str) -> std::io::Result<OwnedFd> {
    open_tun_with(name, libc::IFF_NO_PI)
}

/// Like [`open_tun`], but every packet on the fd starts with the 4-byte packet information
/// header (flags, EtherType), which tells which protocol the kernel gave a packet.
pub fn open_tun_pi(name: &str) -> std::io::Result<OwnedFd> {
    open_tun_with(name, 0)
}

/// An IPv6 packet (no next header) from 2001:db8::2 to 2001:db8::1 carrying `marker`.
pub fn ipv6_packet(marker: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend((marker.len() as u16).to_be_bytes());
    p.extend([59, 64]);
    p.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    p.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend(marker);
    p
}

fn open_tun_with(name: &str, extra_flags: libc::c_int) -> std::io::Result<OwnedFd> {
    // SAFETY: the path is NUL-terminated; on success we own the descriptor.
    let raw =
        unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: `ifreq` is plain old data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TUN | extra_flags) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one `ifreq`.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF as _, &mut req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// Writes one packet into the tun fd (the host receives it on the device).
pub fn tun_write(fd: &OwnedFd, pkt: &[u8]) -> std::io::Result<()> {
    // SAFETY: `pkt` is valid for its length.
    let n = unsafe { libc::write(fd.as_raw_fd(), pkt.as_ptr().cast(), pkt.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Reads packets from the tun fd until one satisfies `want` or `timeout` passes.
pub fn tun_read_until(
    fd: &OwnedFd,
    timeout: Duration,
    mut want: impl FnMut(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    let mut found = None;
    testbed::wait_until(timeout, || {
        // Bounded: at most 64 packets per poll.
        for _ in 0..64 {
            // SAFETY: `buf` is writable for its length.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return false;
            }
            if want(&buf[..n as usize]) {
                found = Some(buf[..n as usize].to_vec());
                return true;
            }
        }
        false
    });
    found
}

/// Receives from `up` until a packet satisfies `want` or `timeout` passes.
pub fn uplink_recv_until(
    up: &mut netdev::L3Uplink,
    timeout: Duration,
    want: impl Fn(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    let mut bufs = vec![vec![0u8; 2048]; 8];
    let mut lens = [0usize; 8];
    let mut found = None;
    testbed::wait_until(timeout, || {
        let n = up.recv_ip(&mut bufs, &mut lens).expect("recv_ip");
        found = bufs[..n].iter().zip(&lens).map(|(b, &l)| &b[..l]).find(|p| want(p)).map(<[u8]>::to_vec);
        found.is_some()
    });
    found
}

/// Receives from `up` (8 buffers a call) until `n` packets arrived or `timeout` passes.
pub fn uplink_recv_n(up: &mut netdev::L3Uplink, timeout: Duration, n: usize) -> Vec<Vec<u8>> {
    let mut bufs = vec![vec![0u8; 2048]; 8];
    let mut lens = [0usize; 8];
    let mut got = Vec::new();
    testbed::wait_until(timeout, || {
        let k = up.recv_ip(&mut bufs, &mut lens).expect("recv_ip");
        got.extend(bufs[..k].iter().zip(&lens).map(|(b, &l)| b[..l].to_vec()));
        got.len() >= n
    });
    got
}
