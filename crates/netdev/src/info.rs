//! Interface facts (ifindex, MAC, MTU, link state) read with the classic `SIOCGIF*` ioctls. The
//! daemon reports them back to the database (`ofport`, `mac_in_use`, `mtu`, `link_state`), and
//! the backends need the ifindex to bind. Calls act in the calling thread's network namespace.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use crate::name::IfName;
use crate::sys;
use crate::NetdevError;

/// What the kernel says about one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// Kernel interface index (never 0 for an existing device).
    pub ifindex: u32,
    /// Hardware address; all zeroes for devices without one (e.g. tun).
    pub mac: [u8; 6],
    /// MTU in bytes.
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub admin_up: bool,
    /// Link has carrier (`IFF_RUNNING` or `IFF_LOWER_UP`).
    pub carrier: bool,
}

/// Reads the facts about `name`; `Ok(None)` when no such device exists.
pub fn interface_info(name: &str) -> Result<Option<InterfaceInfo>, NetdevError> {
    let ifname = IfName::new(name)?;
    let sock = sys::ioctl_socket().map_err(|e| NetdevError::io("socket", name, e))?;
    let fd = sock.as_raw_fd();
    let get = |request, op| -> Result<Option<libc::ifreq>, NetdevError> {
        let mut req = sys::ifreq(&ifname);
        match sys::ioctl_ifreq(fd, request, &mut req) {
            Ok(()) => Ok(Some(req)),
            Err(e) if is_no_device(&e) => Ok(None),
            Err(e) => Err(NetdevError::io(op, name, e)),
        }
    };
    let Some(idx) = get(libc::SIOCGIFINDEX, "SIOCGIFINDEX")? else {
        return Ok(None);
    };
    let Some(flags) = get(libc::SIOCGIFFLAGS, "SIOCGIFFLAGS")? else {
        return Ok(None);
    };
    let Some(hw) = get(libc::SIOCGIFHWADDR, "SIOCGIFHWADDR")? else {
        return Ok(None);
    };
    let Some(mtu) = get(libc::SIOCGIFMTU, "SIOCGIFMTU")? else {
        return Ok(None);
    };
    // SAFETY: each union field read is the one the corresponding ioctl filled in.
    let (ifindex, flags, hwaddr, mtu) = unsafe {
        (idx.ifr_ifru.ifru_ifindex, flags.ifr_ifru.ifru_flags, hw.ifr_ifru.ifru_hwaddr, mtu.ifr_ifru.ifru_mtu)
    };
    // ifru_flags is a C short holding only the low 16 flag bits; IFF_LOWER_UP (bit 16) is not
    // visible through this ioctl, so IFF_RUNNING is what reports carrier here.
    let flags = i32::from(flags) & 0xffff;
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(hwaddr.sa_data.iter()) {
        *dst = *src as u8;
    }
    Ok(Some(InterfaceInfo {
        ifindex: ifindex as u32,
        mac,
        mtu: mtu.max(0) as u32,
        admin_up: flags & libc::IFF_UP != 0,
        carrier: flags & (libc::IFF_RUNNING | libc::IFF_LOWER_UP) != 0,
    }))
}

/// Brings `name` administratively up (adds `IFF_UP`), as Open vSwitch does for every port it adds:
/// a port that stays down would silently drop all traffic.
pub fn set_admin_up(name: &str) -> Result<(), NetdevError> {
    let ifname = IfName::new(name)?;
    let sock = sys::ioctl_socket().map_err(|e| NetdevError::io("socket", name, e))?;
    set_admin_up_on(sock.as_raw_fd(), &ifname, name)
}

/// [`set_admin_up`] on an already open socket (whose namespace decides which device is meant).
pub(crate) fn set_admin_up_on(fd: RawFd, ifname: &IfName, name: &str) -> Result<(), NetdevError> {
    let map = |op, e: io::Error| {
        if is_no_device(&e) {
            NetdevError::NoSuchDevice(name.to_owned())
        } else {
            NetdevError::io(op, name, e)
        }
    };
    let mut req = sys::ifreq(ifname);
    sys::ioctl_ifreq(fd, libc::SIOCGIFFLAGS, &mut req).map_err(|e| map("SIOCGIFFLAGS", e))?;
    // SAFETY: SIOCGIFFLAGS filled the flags member.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    if i32::from(flags) & libc::IFF_UP != 0 {
        return Ok(());
    }
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    sys::ioctl_ifreq(fd, libc::SIOCSIFFLAGS, &mut req).map_err(|e| map("SIOCSIFFLAGS", e))
}

/// The (first) IPv4 address of `name`, as `SIOCGIFADDR` reports it: what a VPN client gave
/// its tun device, which a NAT gateway translates to. `Ok(None)` when the device does not
/// exist or has no IPv4 address.
pub fn ipv4_address(name: &str) -> Result<Option<std::net::Ipv4Addr>, NetdevError> {
    let ifname = IfName::new(name)?;
    let sock = sys::ioctl_socket().map_err(|e| NetdevError::io("socket", name, e))?;
    ipv4_on(sock.as_raw_fd(), &ifname, name)
}

/// [`ipv4_address`] on an already open socket: an `AF_INET` one, or an `AF_PACKET` one (the
/// kernel hands `SIOCGIFADDR` on to IPv4), whose namespace decides which device is meant.
pub(crate) fn ipv4_on(
    fd: RawFd,
    ifname: &IfName,
    name: &str,
) -> Result<Option<std::net::Ipv4Addr>, NetdevError> {
    let mut req = sys::ifreq(ifname);
    match sys::ioctl_ifreq(fd, libc::SIOCGIFADDR, &mut req) {
        Ok(()) => {}
        Err(e) if is_no_device(&e) || sys::errno(&e) == libc::EADDRNOTAVAIL => return Ok(None),
        Err(e) => return Err(NetdevError::io("SIOCGIFADDR", name, e)),
    }
    // SAFETY: SIOCGIFADDR filled the address member with a sockaddr_in.
    let sa = unsafe { req.ifr_ifru.ifru_addr };
    if i32::from(sa.sa_family) != libc::AF_INET {
        return Ok(None);
    }
    // sockaddr_in: family (2 bytes), port (2), then the address in network order.
    let b = sa.sa_data;
    Ok(Some(std::net::Ipv4Addr::new(b[2] as u8, b[3] as u8, b[4] as u8, b[5] as u8)))
}

/// The MTU of `ifname` read on socket `fd`; `Ok(None)` when the device does not exist.
pub(crate) fn mtu_on(fd: RawFd, ifname: &IfName, name: &str) -> Result<Option<u32>, NetdevError> {
    let mut req = sys::ifreq(ifname);
    match sys::ioctl_ifreq(fd, libc::SIOCGIFMTU, &mut req) {
        // SAFETY: SIOCGIFMTU filled the mtu member.
        Ok(()) => Ok(Some(unsafe { req.ifr_ifru.ifru_mtu }.max(0) as u32)),
        Err(e) if is_no_device(&e) => Ok(None),
        Err(e) => Err(NetdevError::io("SIOCGIFMTU", name, e)),
    }
}

/// Reads the ifindex of `ifname` on socket `fd`; `NoSuchDevice` when it does not exist.
pub(crate) fn ifindex_on(fd: RawFd, ifname: &IfName, name: &str) -> Result<u32, NetdevError> {
    let mut req = sys::ifreq(ifname);
    match sys::ioctl_ifreq(fd, libc::SIOCGIFINDEX, &mut req) {
        // SAFETY: SIOCGIFINDEX filled the ifindex member.
        Ok(()) => Ok(unsafe { req.ifr_ifru.ifru_ifindex } as u32),
        Err(e) if is_no_device(&e) => Err(NetdevError::NoSuchDevice(name.to_owned())),
        Err(e) => Err(NetdevError::io("SIOCGIFINDEX", name, e)),
    }
}

fn is_no_device(e: &io::Error) -> bool {
    matches!(sys::errno(e), libc::ENODEV | libc::ENXIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_visible() {
        // `lo` exists in every network namespace and needs no privilege to query.
        let lo = interface_info("lo").unwrap().expect("lo exists");
        assert!(lo.ifindex > 0);
        assert_eq!(lo.mac, [0; 6]);
        assert!(lo.mtu > 0);
        // lo has 127.0.0.1 unless a test namespace removed it.
        assert!(ipv4_address("lo").unwrap().is_none_or(|a| a.is_loopback()));
    }

    #[test]
    fn missing_device_is_none() {
        assert_eq!(interface_info("rvsw-nonexist").unwrap(), None);
        assert_eq!(ipv4_address("rvsw-nonexist").unwrap(), None);
    }

    #[test]
    fn bad_names_are_errors() {
        assert!(interface_info("").is_err());
        assert!(interface_info("a/b").is_err());
        assert!(set_admin_up("much-too-long-name").is_err());
    }
}
