//! The VPN port's UDP socket calls, batched: `sendmmsg` with a `UDP_SEGMENT` control message
//! per run of equal-sized datagrams (see [`super::outbox`]), and `recvmmsg` into preallocated
//! buffers. The header arrays are grown once and reused, so neither allocates per call.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use super::outbox::{Run, Wire};

/// `CMSG_SPACE(sizeof(u16))` on 64-bit Linux: a 16-byte `cmsghdr` and the value, padded to 8.
const CMSG_U16_SPACE: usize = 24;

/// A socket address in the form the kernel takes and gives.
#[derive(Clone, Copy)]
struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    fn empty() -> RawAddr {
        // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
        RawAddr { storage: unsafe { std::mem::zeroed() }, len: 0 }
    }

    fn from(a: SocketAddr) -> RawAddr {
        let mut r = RawAddr::empty();
        let p = (&mut r.storage as *mut libc::sockaddr_storage).cast::<u8>();
        match a {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
                unsafe { p.cast::<libc::sockaddr_in>().write(sin) };
                r.len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than sockaddr_in6 and suitably aligned.
                unsafe { p.cast::<libc::sockaddr_in6>().write(sin6) };
                r.len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        r
    }

    fn socket_addr(&self) -> Option<SocketAddr> {
        let p = (&self.storage as *const libc::sockaddr_storage).cast::<u8>();
        match i32::from(self.storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in (family AF_INET); storage is aligned.
                let s = unsafe { p.cast::<libc::sockaddr_in>().read() };
                let ip = std::net::Ipv4Addr::from(s.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddrV4::new(ip, u16::from_be(s.sin_port)).into())
            }
            libc::AF_INET6 => {
                // SAFETY: the kernel wrote a sockaddr_in6 (family AF_INET6); storage is aligned.
                let s = unsafe { p.cast::<libc::sockaddr_in6>().read() };
                let ip = std::net::Ipv6Addr::from(s.sin6_addr.s6_addr);
                let port = u16::from_be(s.sin6_port);
                Some(SocketAddrV6::new(ip, port, s.sin6_flowinfo, s.sin6_scope_id).into())
            }
            _ => None,
        }
    }
}

/// `sendmmsg` on a UDP socket, a `UDP_SEGMENT` control message on each multi-datagram run.
pub struct UdpSender {
    fd: RawFd,
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    /// One control-message buffer per message, u64s for `cmsghdr`'s alignment.
    cmsgs: Vec<[u64; CMSG_U16_SPACE / 8]>,
}

// SAFETY: the raw pointers in `msgs`/`iovs` are scratch, rewritten before every call and never
// dereferenced outside it; the fd is the port's socket, which moves with it.
unsafe impl Send for UdpSender {}

impl UdpSender {
    /// Sends on `fd`, which the caller keeps open for as long as this lives.
    pub fn new(fd: RawFd) -> UdpSender {
        UdpSender { fd, msgs: Vec::new(), iovs: Vec::new(), cmsgs: Vec::new() }
    }

    /// Fills the headers for `runs` (at most `UIO_MAXIOV` of them).
    fn prepare(&mut self, buf: &[u8], runs: &[Run], to: &mut RawAddr) {
        let n = runs.len();
        // SAFETY (both resizes): mmsghdr and iovec are plain old data; all-zero is valid.
        self.msgs.resize(n, unsafe { std::mem::zeroed() });
        self.iovs.resize(n, libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 });
        self.cmsgs.resize(n, [0; CMSG_U16_SPACE / 8]);
        for (i, r) in runs.iter().enumerate() {
            let data = &buf[r.start..r.start + r.len];
            self.iovs[i] = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
            let h = &mut self.msgs[i].msg_hdr;
            h.msg_name = (&mut to.storage as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = to.len;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            if r.count > 1 {
                let c = &mut self.cmsgs[i];
                // SAFETY: `c` is CMSG_SPACE(2) bytes, aligned for cmsghdr; the header and the
                // u16 after it lie within it.
                unsafe {
                    let cm = c.as_mut_ptr().cast::<libc::cmsghdr>();
                    (*cm).cmsg_level = libc::SOL_UDP;
                    (*cm).cmsg_type = libc::UDP_SEGMENT;
                    (*cm).cmsg_len = libc::CMSG_LEN(2) as _;
                    libc::CMSG_DATA(cm).cast::<u16>().write_unaligned(r.segment as u16);
                }
                h.msg_control = c.as_mut_ptr().cast();
                h.msg_controllen = CMSG_U16_SPACE as _;
            }
        }
    }
}

impl Wire for UdpSender {
    fn send(&mut self, buf: &[u8], runs: &[Run], to: SocketAddr) -> io::Result<usize> {
        let runs = &runs[..runs.len().min(1024)];
        let mut addr = RawAddr::from(to);
        self.prepare(buf, runs, &mut addr);
        // SAFETY: `msgs` holds `runs.len()` headers whose buffers (`buf`, `iovs`, `cmsgs`,
        // `addr`) all outlive the call; the kernel only reads them.
        let r = unsafe {
            libc::sendmmsg(self.fd, self.msgs.as_mut_ptr(), runs.len() as libc::c_uint, libc::MSG_DONTWAIT)
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r as usize)
    }
}

/// `recvmmsg` into `slots` preallocated buffers of `size` bytes each.
pub struct UdpReceiver {
    buf: Vec<u8>,
    size: usize,
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<RawAddr>,
    /// (length, truncated) of each datagram of the last call.
    got: Vec<(usize, bool)>,
}

// SAFETY: as for UdpSender: the pointers are scratch rewritten before every call.
unsafe impl Send for UdpReceiver {}

impl UdpReceiver {
    /// `slots` buffers of `size` bytes: zeroed, so pages a small datagram never reaches stay
    /// unmapped.
    pub fn new(slots: usize, size: usize) -> UdpReceiver {
        UdpReceiver {
            buf: vec![0; slots * size],
            size,
            // SAFETY: mmsghdr is plain old data; all-zero is valid.
            msgs: vec![unsafe { std::mem::zeroed() }; slots],
            iovs: vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; slots],
            addrs: vec![RawAddr::empty(); slots],
            got: Vec::with_capacity(slots),
        }
    }

    /// Receives up to `max` datagrams from `fd` without blocking; 0 when none wait.
    pub fn recv(&mut self, fd: RawFd, max: usize) -> io::Result<usize> {
        let n = max.min(self.msgs.len());
        self.got.clear();
        if n == 0 {
            return Ok(0);
        }
        for i in 0..n {
            let slot = &mut self.buf[i * self.size..(i + 1) * self.size];
            self.iovs[i] = libc::iovec { iov_base: slot.as_mut_ptr().cast(), iov_len: slot.len() };
            self.addrs[i] = RawAddr::empty();
            let h = &mut self.msgs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i].storage as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        // SAFETY: the first `n` headers point at live slots of `buf`, `iovs` and `addrs`, which
        // outlive the call; no timeout is passed.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock { Ok(0) } else { Err(e) };
        }
        for i in 0..r as usize {
            let m = &self.msgs[i];
            self.addrs[i].len = m.msg_hdr.msg_namelen;
            let len = (m.msg_len as usize).min(self.size);
            self.got.push((len, m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0));
        }
        Ok(self.got.len())
    }

    /// Datagram `i` of the last call: its bytes, its sender, and whether it was cut short (it
    /// did not fit a slot: no WireGuard message this port accepts is that long).
    pub fn datagram(&mut self, i: usize) -> (&mut [u8], Option<SocketAddr>, bool) {
        let (len, truncated) = self.got[i];
        let from = self.addrs[i].socket_addr();
        (&mut self.buf[i * self.size..i * self.size + len], from, truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    /// Over loopback: one GSO run arrives as its datagrams, one by one, and the receiver takes
    /// them in one call with their sender.
    #[test]
    fn gso_runs_arrive_as_datagrams() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let buf: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let runs = [Run { start: 0, len: 2500, segment: 1000, count: 3 }];
        let mut s = UdpSender::new(tx.as_raw_fd());
        assert_eq!(s.send(&buf, &runs, rx.local_addr().unwrap()).unwrap(), 1);
        let mut r = UdpReceiver::new(8, 2048);
        let mut got = Vec::new();
        for _ in 0..200 {
            let n = r.recv(rx.as_raw_fd(), 8).unwrap();
            for i in 0..n {
                let (d, from, cut) = r.datagram(i);
                assert_eq!((from, cut), (Some(tx.local_addr().unwrap()), false));
                got.push(d.to_vec());
            }
            if got.len() >= 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(got, [buf[..1000].to_vec(), buf[1000..2000].to_vec(), buf[2000..].to_vec()]);
    }

    #[test]
    fn a_datagram_longer_than_a_slot_is_marked_cut() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(&[7u8; 300], rx.local_addr().unwrap()).unwrap();
        let mut r = UdpReceiver::new(2, 100);
        let mut n = 0;
        for _ in 0..200 {
            n = r.recv(rx.as_raw_fd(), 2).unwrap();
            if n > 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(n, 1);
        let (d, _, cut) = r.datagram(0);
        assert_eq!((d.len(), cut), (100, true));
    }
}
