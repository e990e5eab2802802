//! The underlay side of a tunnel port: which source address and path MTU the route to the
//! remote gives, and the raw IPv4 socket that sends the datagrams we build (so every frame gets
//! its own UDP source port, and the outer header its ToS, TTL and DF).

use std::io::{self, IoSlice};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};

use crate::sys;

/// `IP_MTU` (<linux/in.h>): the path MTU of a connected socket.
const IP_MTU: libc::c_int = 14;

/// What the route to the remote says: our source address on it and its MTU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Path {
    pub src: Ipv4Addr,
    pub mtu: u32,
}

/// Asks the kernel's routing table (a connected UDP socket sends nothing).
pub fn probe(remote: Ipv4Addr, port: u16, local: Option<Ipv4Addr>) -> io::Result<Path> {
    let s = UdpSocket::bind((local.unwrap_or(Ipv4Addr::UNSPECIFIED), 0))?;
    s.connect((remote, port))?;
    let SocketAddr::V4(me) = s.local_addr()? else {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "IPv6 underlay"));
    };
    let fd = OwnedFd::from(s);
    let mtu = sys::getsockopt_int(&fd, libc::IPPROTO_IP, IP_MTU)?;
    Ok(Path { src: *me.ip(), mtu: mtu.max(0) as u32 })
}

/// An `IPPROTO_RAW` socket: we write the whole IPv4 header (the kernel fills only the ID when
/// it is zero), the kernel routes it and resolves the next hop.
#[derive(Debug)]
pub struct RawSender {
    fd: OwnedFd,
}

impl RawSender {
    pub fn open() -> io::Result<RawSender> {
        let fd = sys::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, libc::IPPROTO_RAW)?;
        Ok(RawSender { fd })
    }

    /// Sends one IPv4 datagram, given in pieces, to `dst`.
    pub fn send(&self, dst: Ipv4Addr, parts: &[IoSlice<'_>]) -> io::Result<()> {
        // SAFETY: sockaddr_in is plain old data; all-zero is valid.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from(dst).to_be();
        // SAFETY: msghdr is plain old data; all-zero is valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut sa as *mut libc::sockaddr_in).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // IoSlice is ABI-compatible with iovec (documented in std).
        msg.msg_iov = parts.as_ptr().cast_mut().cast();
        msg.msg_iovlen = parts.len() as _;
        // SAFETY: msg points to `sa` and to the caller's live slices; the kernel only reads them.
        let r = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, 0) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
