//! Unix SOCK_SEQPACKET sockets by path (std has only stream and datagram sockets).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn address(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: `sockaddr_un` is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "socket path too long or contains NUL"));
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

/// Takes ownership of what socket(2) or accept4(2) returned, or the error it stands for.
fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor the call just made; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// connect(2) or bind(2): the calls that give a socket an address.
type AddressCall = unsafe extern "C" fn(libc::c_int, *const libc::sockaddr, libc::socklen_t) -> libc::c_int;

/// A new seqpacket socket (close-on-exec) on which `call` was made with `path`'s address.
fn seqpacket_at(path: &Path, call: AddressCall) -> io::Result<OwnedFd> {
    let (addr, len) = address(path)?;
    // SAFETY: plain socket(2); `owned` takes the descriptor.
    let fd = owned(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes; connect and bind only read it.
    if unsafe { call(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Connects to the seqpacket socket at `path`.
pub fn connect(path: &Path) -> io::Result<OwnedFd> {
    seqpacket_at(path, libc::connect)
}

/// Binds and listens on `path` (which must not exist).
pub fn listen(path: &Path) -> io::Result<OwnedFd> {
    let fd = seqpacket_at(path, libc::bind)?;
    // SAFETY: plain listen(2) on our socket.
    if unsafe { libc::listen(fd.as_raw_fd(), 16) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Accepts one connection (close-on-exec).
pub fn accept(listener: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: accept4 with null address pointers; `owned` takes the new descriptor.
    owned(unsafe {
        libc::accept4(listener.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC)
    })
}

/// The user ID of the process at the other end of `sock`.
pub fn peer_uid(sock: &OwnedFd) -> io::Result<u32> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED writes a `ucred` into our buffer of that size.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// `SO_DETACH_BPF` (the same option as `SO_DETACH_FILTER`).
const SO_DETACH_BPF: libc::c_int = 27;

/// Detaches the socket filter (classic or eBPF) from `fd`, if it is a socket that has one.
/// Whether it did: descriptors that are not sockets, or sockets without a filter, fail.
pub fn detach_filter(fd: &OwnedFd) -> bool {
    let zero: libc::c_int = 0;
    // SAFETY: SO_DETACH_BPF reads (and ignores) one int from our stack; a descriptor that is
    // not a socket or has no filter only fails.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_DETACH_BPF,
            (&zero as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}
