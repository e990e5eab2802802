//! One message with at most one descriptor over a unix SOCK_SEQPACKET socket (SCM_RIGHTS).
//! Seqpacket keeps message boundaries, so a text command and the descriptor it names always
//! arrive together.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Longest message: a command word and a key (`port/<15-byte name>/<label>`).
pub const MAX_MESSAGE: usize = 256;

/// Room for one descriptor in a control message (CMSG_SPACE of one int, 8-aligned here).
const CMSG_ROOM: usize = 64;

#[repr(C, align(8))]
struct CmsgBuf([u8; CMSG_ROOM]);

/// Sends `msg`, with `fd` attached if given.
pub fn send(sock: BorrowedFd<'_>, msg: &[u8], fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let mut iov = libc::iovec { iov_base: msg.as_ptr().cast_mut().cast(), iov_len: msg.len() };
    let mut cmsg = CmsgBuf([0; CMSG_ROOM]);
    // SAFETY: `msghdr` is plain old data; all-zero is a valid value.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    if let Some(fd) = fd {
        let raw = fd.as_raw_fd();
        // SAFETY: CMSG_SPACE/CMSG_LEN only compute sizes.
        let (space, len) =
            unsafe { (libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32), libc::CMSG_LEN(4)) };
        hdr.msg_control = cmsg.0.as_mut_ptr().cast();
        hdr.msg_controllen = space as usize;
        // SAFETY: the control buffer is aligned and at least CMSG_SPACE(int) long, so the first
        // header and its data fit; we write exactly one int of data.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&hdr);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = len as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>(), raw);
        }
    }
    // SAFETY: every pointer in `hdr` refers to live buffers of the advertised lengths.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &hdr, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one message into `buf`: its length (0 = the peer closed) and the descriptor that
/// came with it. Extra descriptors a peer might attach are closed, never leaked. `dontwait`:
/// fail with `WouldBlock` instead of waiting for a message.
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8], dontwait: bool) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut cmsg = CmsgBuf([0; CMSG_ROOM]);
    // SAFETY: `msghdr` is plain old data; all-zero is a valid value.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = cmsg.0.as_mut_ptr().cast();
    hdr.msg_controllen = CMSG_ROOM;
    let flags = libc::MSG_CMSG_CLOEXEC | if dontwait { libc::MSG_DONTWAIT } else { 0 };
    // SAFETY: `hdr` points at our live, writable buffers of the advertised lengths.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut hdr, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `hdr.msg_control`/`msg_controllen`; the CMSG_* macros walk
    // only within it, and each SCM_RIGHTS payload is an array of ints the kernel installed
    // as new descriptors that we now own.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c);
                let bytes = (*c).cmsg_len as usize - (data as usize - c as usize);
                for i in 0..bytes / std::mem::size_of::<libc::c_int>() {
                    let raw = std::ptr::read_unaligned(data.cast::<libc::c_int>().add(i));
                    fds.push(OwnedFd::from_raw_fd(raw));
                }
            }
            c = libc::CMSG_NXTHDR(&hdr, c);
        }
    }
    let first = if fds.is_empty() { None } else { Some(fds.swap_remove(0)) };
    Ok((n as usize, first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    fn pair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: socketpair writes two new descriptors into `fds`.
        let rc = unsafe {
            libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr())
        };
        assert_eq!(rc, 0);
        // SAFETY: both are fresh descriptors nobody else owns.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    #[test]
    fn a_descriptor_travels_with_its_message() {
        let (a, b) = pair();
        let (mut r, w) = std::os::unix::net::UnixStream::pair().unwrap();
        send(a.as_fd(), b"PUT port/x/tap", Some(w.as_fd())).unwrap();
        send(a.as_fd(), b"END", None).unwrap();
        let mut buf = [0u8; MAX_MESSAGE];
        let (n, fd) = recv(b.as_fd(), &mut buf, false).unwrap();
        assert_eq!(&buf[..n], b"PUT port/x/tap");
        // The received descriptor is the same socket: what we write to it arrives at `r`.
        let mut got = std::os::unix::net::UnixStream::from(fd.expect("a descriptor"));
        got.write_all(b"hi").unwrap();
        let mut two = [0u8; 2];
        r.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"hi");
        let (n, fd) = recv(b.as_fd(), &mut buf, false).unwrap();
        assert_eq!((&buf[..n], fd.is_none()), (&b"END"[..], true));
        drop(a);
        assert_eq!(recv(b.as_fd(), &mut buf, false).unwrap().0, 0, "peer closed");
    }
}
