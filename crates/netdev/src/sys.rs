//! Thin libc wrappers shared by the backends: Linux ABI constants that the `libc` crate does not
//! export on every target, an `ifreq` ioctl helper and a socket-option setter. Keeping the
//! `unsafe` here lets the backend modules read as plain I/O logic.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::name::IfName;

// <linux/if_packet.h>. Defined here because `libc` only exports them on some targets; they are
// fixed kernel ABI.
pub(crate) const SOL_PACKET: libc::c_int = 263;
pub(crate) const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
pub(crate) const PACKET_AUXDATA: libc::c_int = 8;
pub(crate) const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
pub(crate) const PACKET_VNET_HDR: libc::c_int = 15;
pub(crate) const PACKET_RX_RING: libc::c_int = 5;
pub(crate) const PACKET_COPY_THRESH: libc::c_int = 7;
pub(crate) const PACKET_VERSION: libc::c_int = 10;
pub(crate) const PACKET_FANOUT: libc::c_int = 18;
pub(crate) const PACKET_FANOUT_CPU: libc::c_int = 2;
pub(crate) const PACKET_FANOUT_FLAG_UNIQUEID: libc::c_int = 0x2000;
pub(crate) const PACKET_FANOUT_FLAG_IGNORE_OUTGOING: libc::c_int = 0x4000;
pub(crate) const TPACKET_V2: libc::c_int = 1;
pub(crate) const TP_STATUS_KERNEL: u32 = 0;
pub(crate) const TP_STATUS_USER: u32 = 1;
pub(crate) const TP_STATUS_COPY: u32 = 1 << 1;
// <linux/if_tun.h>
pub(crate) const IFF_VNET_HDR: libc::c_int = 0x4000;
pub(crate) const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
/// `_IOR('T', 210, unsigned int)`: the name (and flags) of the device a tun fd is attached to.
pub(crate) const TUNGETIFF: libc::c_ulong = 0x8004_54d2;
pub(crate) const TUN_F_CSUM: libc::c_uint = 0x01;
pub(crate) const TUN_F_TSO4: libc::c_uint = 0x02;
pub(crate) const TUN_F_TSO6: libc::c_uint = 0x04;
pub(crate) const TUN_F_TSO_ECN: libc::c_uint = 0x08;
pub(crate) const PACKET_MR_PROMISC: libc::c_ushort = 1;
pub(crate) const PACKET_OUTGOING: u8 = 4;
pub(crate) const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
pub(crate) const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
// <asm-generic/socket.h> (x86, arm, aarch64, riscv, powerpc share these values).
pub(crate) const SO_SNDBUFFORCE: libc::c_int = 32;
pub(crate) const SO_RCVBUFFORCE: libc::c_int = 33;

/// `struct packet_mreq` from <linux/if_packet.h>.
#[repr(C)]
pub(crate) struct PacketMreq {
    pub mr_ifindex: libc::c_int,
    pub mr_type: libc::c_ushort,
    pub mr_alen: libc::c_ushort,
    pub mr_address: [u8; 8],
}

/// `struct tpacket_auxdata` from <linux/if_packet.h>: the metadata (notably the VLAN tag the
/// kernel stripped) that comes with each frame as a `PACKET_AUXDATA` control message.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct TpacketAuxdata {
    pub tp_status: u32,
    pub tp_len: u32,
    pub tp_snaplen: u32,
    pub tp_mac: u16,
    pub tp_net: u16,
    pub tp_vlan_tci: u16,
    pub tp_vlan_tpid: u16,
}

/// `struct tpacket_req` from <linux/if_packet.h>: the geometry of an mmap'd packet ring.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct TpacketReq {
    pub tp_block_size: u32,
    pub tp_block_nr: u32,
    pub tp_frame_size: u32,
    pub tp_frame_nr: u32,
}

/// Converts a `-1` return into the thread's errno.
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Opens a socket with CLOEXEC so it never leaks into children the daemon spawns.
pub(crate) fn socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; on success we own the returned descriptor.
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A throwaway datagram socket for interface ioctls. AF_INET needs no privilege; AF_UNIX is the
/// fallback for kernels built without IPv4 (interface ioctls work on any socket family).
pub(crate) fn ioctl_socket() -> io::Result<OwnedFd> {
    socket(libc::AF_INET, libc::SOCK_DGRAM, 0).or_else(|_| socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0))
}

/// An `ifreq` with the name filled in and the union zeroed.
pub(crate) fn ifreq(name: &IfName) -> libc::ifreq {
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    req
}

/// Runs one interface ioctl (`SIOCGIF*`, `SIOCSIF*`, `TUNSETIFF`) on `fd`.
pub(crate) fn ioctl_ifreq(fd: RawFd, request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: every request we pass reads/writes at most one `ifreq`, which `req` points to.
    // The request parameter type differs between libc flavours, hence the inferred cast.
    cvt(unsafe { libc::ioctl(fd, request as _, req as *mut libc::ifreq) }).map(drop)
}

/// Whether `ifindex` still names a device in the network namespace of socket `fd`. Used to tell a
/// vanished device from one that is merely down: both report ENETDOWN on an AF_PACKET socket.
pub(crate) fn ifindex_exists(fd: &OwnedFd, ifindex: u32) -> bool {
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_ifru.ifru_ifindex = ifindex as libc::c_int;
    match ioctl_ifreq(fd.as_raw_fd(), libc::SIOCGIFNAME, &mut req) {
        Ok(()) => true,
        // Only a definite "no such device" counts as gone; any other failure keeps the port.
        Err(e) => e.raw_os_error() != Some(libc::ENODEV),
    }
}

/// `PACKET_STATISTICS` (<linux/if_packet.h>): reading it returns and resets the counters.
pub(crate) const PACKET_STATISTICS: libc::c_int = 6;

/// `struct tpacket_stats`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct TpacketStats {
    pub tp_packets: u32,
    pub tp_drops: u32,
}

/// Frames the socket dropped since the last call (the kernel resets the counter on read).
pub(crate) fn packet_drops(fd: &OwnedFd) -> io::Result<u64> {
    let mut st = TpacketStats::default();
    let mut len = std::mem::size_of::<TpacketStats>() as libc::socklen_t;
    // SAFETY: `st` is valid for `len` bytes; the kernel writes at most that much.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_PACKET,
            PACKET_STATISTICS,
            (&mut st as *mut TpacketStats).cast(),
            &mut len,
        )
    })?;
    Ok(u64::from(st.tp_drops))
}

/// Sets an integer socket option.
pub(crate) fn setsockopt_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    setsockopt(fd, level, name, &value)
}

/// Sets a socket option whose value is the plain struct `value`.
pub(crate) fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is valid for `size_of::<T>()` bytes for the duration of the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Reads an integer socket option.
pub(crate) fn getsockopt_int(fd: &OwnedFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v`/`len` are valid for the call and describe an int-sized buffer.
    cvt(unsafe {
        libc::getsockopt(fd.as_raw_fd(), level, name, (&mut v as *mut libc::c_int).cast(), &mut len)
    })?;
    Ok(v)
}

/// Reads and clears a pending socket error (`SO_ERROR`); None if there is none.
pub(crate) fn take_socket_error(fd: &OwnedFd) -> Option<io::Error> {
    match getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR) {
        Err(e) => Some(e),
        Ok(0) => None,
        Ok(v) => Some(io::Error::from_raw_os_error(v)),
    }
}

/// Errno of an `io::Error`, 0 when it carries none.
pub(crate) fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}
