//! An uplink on an existing L3 device (a tun that OpenVPN or wireguard-go holds, an xfrm or
//! other point-to-point interface): IP packets in and out through one AF_PACKET `SOCK_DGRAM`
//! socket, so a zone gateway can use a VPN client it did not write as its tunnel.
//!
//! Directions, on a tun device (the VPN client holds the `/dev/net/tun` descriptor):
//! * what the VPN client **writes** into its tun fd (traffic it decrypted, coming from the
//!   remote network) is *received* by the host on the device; AF_PACKET sees it as an incoming
//!   packet, and [`L3Uplink::recv_ip`] returns it;
//! * what [`L3Uplink::send_ip`] sends is *transmitted* on the device (`dev_queue_xmit`), i.e.
//!   queued to the VPN client's fd, which reads, encrypts and sends it to the remote network.
//!   It never passes the host's routing, netfilter or neighbour code.
//! * what the **host stack** itself routes out of the device (its own traffic into the tunnel)
//!   also shows up on the socket, as `PACKET_OUTGOING`. Those are not the zone's packets and not
//!   from the remote side, so the uplink ignores them (`PACKET_IGNORE_OUTGOING`, and a check of
//!   each packet's type in case the kernel predates the option).
//!
//! The host stack does not see what the VPN client writes either: the uplink drops every packet
//! at the device's ingress hook once its own socket has its copy (see `l3tun_shield`). The
//! device is the zone's from then on: the host can still send into it, but receives nothing
//! through it, so it can neither forward the remote side's packets nor answer them.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::error::NetdevError;
use crate::info::{ifindex_on, ipv4_on, mtu_on};
use crate::l3tun_shield;
use crate::name::IfName;
use crate::sys;

/// Most packets one [`L3Uplink::recv_ip`] call takes (one `recvmmsg`).
pub const L3_MAX_BATCH: usize = 64;

/// `ARPHRD_ETHER` and `ARPHRD_LOOPBACK` (<linux/if_arp.h>): link types that are not L3 uplinks.
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;
/// <linux/if_ether.h>
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

/// What the device's link says, for the gateway's kill switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Admin-up and running (for a tun: a process holds its descriptor).
    Up,
    /// The device exists but is not `IFF_UP` and `IFF_RUNNING` (set down, or a persistent tun
    /// whose VPN client closed it).
    Down,
    /// The device was deleted (or its ifindex now names another device): this uplink can never
    /// work again; open the device afresh once it is back.
    Gone,
}

/// Packets the uplink refused or skipped, by reason (cumulative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct L3Drops {
    /// Received packets larger than the caller's buffer (cut by the kernel; dropped whole).
    pub rx_truncated: u64,
    /// Received packets that are neither IPv4 nor IPv6.
    pub rx_not_ip: u64,
    /// Packets the host itself routed out of the device (seen only on kernels without
    /// `PACKET_IGNORE_OUTGOING`).
    pub rx_outgoing: u64,
    /// Packets given to [`L3Uplink::send_ip`] that are not IPv4 or IPv6.
    pub tx_not_ip: u64,
    /// Packets the kernel did not take (queue full, device down, bigger than its MTU).
    pub tx_dropped: u64,
}

/// What a VPN client may change on its device while the uplink is open (OpenVPN sets the
/// MTU and, on a reconnect, a new address): read on demand, see [`L3Uplink::facts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceFacts {
    /// The device's MTU: the largest IP packet it carries. None: not readable now.
    pub mtu: Option<u32>,
    /// Its (first) IPv4 address, as `SIOCGIFADDR` reports it; None: it has none.
    pub ipv4: Option<std::net::Ipv4Addr>,
}

/// An AF_PACKET `SOCK_DGRAM` socket bound to one existing L3 device; non-blocking.
pub struct L3Uplink {
    fd: OwnedFd,
    name: String,
    ifindex: u32,
    /// Set once the device is known to be unregistered (the kernel says so only once).
    gone: bool,
    /// The ingress drop that hides the device's arrivals from the host stack; detached when
    /// the uplink is dropped.
    _shield: OwnedFd,
    drops: L3Drops,
}

impl L3Uplink {
    /// Opens existing device `name` in the calling thread's network namespace (the socket stays
    /// there) and hides what arrives on it from the host stack for as long as the uplink lives.
    /// The device is otherwise left as it is (not brought up): it belongs to the VPN client.
    /// Fails with [`NetdevError::NoSuchDevice`] if it does not exist and
    /// [`NetdevError::NotL3Device`] for an Ethernet or loopback device.
    pub fn open(name: &str) -> Result<L3Uplink, NetdevError> {
        let ifname = IfName::new(name)?;
        let fd = sys::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0)
            .map_err(|e| NetdevError::io("socket(AF_PACKET)", name, e))?;
        let ifindex = ifindex_on(fd.as_raw_fd(), &ifname, name)?;
        check_l3(fd.as_raw_fd(), &ifname, name)?;
        // Not fatal on old kernels: `recv_ip` also checks each packet's type.
        let _ = sys::setsockopt_int(&fd, sys::SOL_PACKET, sys::PACKET_IGNORE_OUTGOING, 1);
        bind_all(&fd, ifindex).map_err(|e| match sys::errno(&e) {
            libc::ENODEV | libc::ENXIO => NetdevError::NoSuchDevice(name.to_owned()),
            _ => NetdevError::io("bind", name, e),
        })?;
        let shield = l3tun_shield::drop_ingress(ifindex)
            .map_err(|e| NetdevError::io("attach ingress drop (BPF TCX)", name, e))?;
        Ok(L3Uplink {
            fd,
            name: name.to_owned(),
            ifindex,
            gone: false,
            _shield: shield,
            drops: L3Drops::default(),
        })
    }

    /// Device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Kernel interface index of the device (in the namespace it was opened in).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Descriptor that becomes readable (EPOLLIN) when packets are waiting.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Drop counters so far.
    pub fn drops(&self) -> L3Drops {
        self.drops
    }

    /// The device's link state now: [`LinkState::Gone`] once the device was deleted (seen by a
    /// send or receive, or its ifindex no longer resolving to its name), else up or down by
    /// `IFF_UP` and `IFF_RUNNING`.
    pub fn state(&mut self) -> LinkState {
        if self.gone {
            return LinkState::Gone;
        }
        match name_of(&self.fd, self.ifindex) {
            NameLookup::Name(n) if n == self.name => {}
            NameLookup::Unknown => return LinkState::Down,
            NameLookup::Name(_) | NameLookup::Missing => {
                self.gone = true;
                return LinkState::Gone;
            }
        }
        let Ok(ifname) = IfName::new(&self.name) else { return LinkState::Down };
        let mut req = sys::ifreq(&ifname);
        if sys::ioctl_ifreq(self.fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req).is_err() {
            return LinkState::Down;
        }
        // SAFETY: SIOCGIFFLAGS filled the flags member.
        let flags = i32::from(unsafe { req.ifr_ifru.ifru_flags }) & 0xffff;
        let up = libc::IFF_UP | libc::IFF_RUNNING;
        if flags & up == up {
            LinkState::Up
        } else {
            LinkState::Down
        }
    }

    /// The device's MTU and IPv4 address now: two ioctls on the uplink's own socket (so in its
    /// namespace), for a caller that polls them now and then, not per packet. What cannot be
    /// read (the device is going away) is None.
    pub fn facts(&self) -> DeviceFacts {
        let Ok(ifname) = IfName::new(&self.name) else { return DeviceFacts::default() };
        let fd = self.fd.as_raw_fd();
        DeviceFacts {
            mtu: mtu_on(fd, &ifname, &self.name).ok().flatten(),
            ipv4: ipv4_on(fd, &ifname, &self.name).ok().flatten(),
        }
    }

    /// Sends one IP packet out of the device (to the VPN client); the protocol (IPv4 or IPv6)
    /// comes from the version nibble. `Ok(true)` if the kernel took it; `Ok(false)` if it was
    /// dropped and counted (not IP, queue full, device down); [`NetdevError::DeviceGone`] once
    /// the device was deleted.
    pub fn send_ip(&mut self, pkt: &[u8]) -> Result<bool, NetdevError> {
        if self.gone {
            return Err(NetdevError::DeviceGone(self.name.clone()));
        }
        let Some(proto) = ip_protocol(pkt) else {
            self.drops.tx_not_ip += 1;
            return Ok(false);
        };
        let sll = link_addr(self.ifindex, proto);
        // SAFETY: `pkt` and `sll` are valid for the lengths passed.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                pkt.as_ptr().cast(),
                pkt.len(),
                libc::MSG_DONTWAIT,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc >= 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match sys::errno(&e) {
            errno if self.vanished(errno) => Err(NetdevError::DeviceGone(self.name.clone())),
            // EMSGSIZE: bigger than the device's MTU, which its VPN client lowered since the
            // caller last read it (`facts`).
            libc::EAGAIN | libc::ENOBUFS | libc::ENETDOWN | libc::EINTR | libc::EMSGSIZE => {
                self.drops.tx_dropped += 1;
                Ok(false)
            }
            _ => Err(NetdevError::io("sendto", &self.name, e)),
        }
    }

    /// Receives up to `min(bufs.len(), lens.len(), L3_MAX_BATCH)` IP packets without blocking:
    /// packet `i` is `bufs[i][..lens[i]]`. Returns how many (0 when none are waiting or the device
    /// is down). Only packets that arrived on the device (from the VPN client) are returned;
    /// oversize and non-IP packets are dropped and counted. Buffers may be reordered (swapped)
    /// to keep the returned packets first.
    pub fn recv_ip<B: AsMut<[u8]>>(
        &mut self,
        bufs: &mut [B],
        lens: &mut [usize],
    ) -> Result<usize, NetdevError> {
        if self.gone {
            return Err(NetdevError::DeviceGone(self.name.clone()));
        }
        let want = bufs.len().min(lens.len()).min(L3_MAX_BATCH);
        if want == 0 {
            return Ok(0);
        }
        let got = match recv_many(&self.fd, &mut bufs[..want]) {
            Ok(got) => got,
            Err(e) => return self.rx_error(e),
        };
        Ok(self.keep_ip(bufs, lens, &got))
    }

    /// Moves the packets worth returning to the front of `bufs` and counts the rest.
    fn keep_ip<B: AsMut<[u8]>>(&mut self, bufs: &mut [B], lens: &mut [usize], got: &[Received]) -> usize {
        let mut kept = 0;
        for (i, r) in got.iter().enumerate() {
            let cap = bufs[i].as_mut().len();
            if r.pkttype == sys::PACKET_OUTGOING {
                self.drops.rx_outgoing += 1;
            } else if r.truncated || r.len > cap {
                self.drops.rx_truncated += 1;
            } else if ip_protocol(&bufs[i].as_mut()[..r.len]).is_none() {
                self.drops.rx_not_ip += 1;
            } else {
                bufs.swap(kept, i);
                lens[kept] = r.len;
                kept += 1;
            }
        }
        kept
    }

    fn rx_error(&mut self, e: std::io::Error) -> Result<usize, NetdevError> {
        match sys::errno(&e) {
            libc::EAGAIN | libc::EINTR | libc::ENOBUFS => Ok(0),
            errno if self.vanished(errno) => Err(NetdevError::DeviceGone(self.name.clone())),
            libc::ENETDOWN => Ok(0),
            _ => Err(NetdevError::io("recvmmsg", &self.name, e)),
        }
    }

    /// Whether an error means the device was unregistered; ENETDOWN alone also means "down".
    fn vanished(&mut self, errno: i32) -> bool {
        let gone = match errno {
            libc::ENODEV | libc::ENXIO => true,
            libc::ENETDOWN => !sys::ifindex_exists(&self.fd, self.ifindex),
            _ => false,
        };
        self.gone |= gone;
        gone
    }
}

/// Refuses devices with an Ethernet or loopback link, and any that neither is point-to-point
/// nor does without ARP: on those a `SOCK_DGRAM` send would need a link-layer destination.
fn check_l3(fd: RawFd, ifname: &IfName, name: &str) -> Result<(), NetdevError> {
    let mut hw = sys::ifreq(ifname);
    sys::ioctl_ifreq(fd, libc::SIOCGIFHWADDR, &mut hw)
        .map_err(|e| NetdevError::io("SIOCGIFHWADDR", name, e))?;
    let mut fl = sys::ifreq(ifname);
    sys::ioctl_ifreq(fd, libc::SIOCGIFFLAGS, &mut fl)
        .map_err(|e| NetdevError::io("SIOCGIFFLAGS", name, e))?;
    // SAFETY: each union member read is the one its ioctl filled in.
    let (link_type, flags) = unsafe { (hw.ifr_ifru.ifru_hwaddr.sa_family, fl.ifr_ifru.ifru_flags) };
    let flags = i32::from(flags) & 0xffff;
    let l3_flags = flags & (libc::IFF_POINTOPOINT | libc::IFF_NOARP) != 0;
    if link_type == ARPHRD_ETHER || link_type == ARPHRD_LOOPBACK || !l3_flags {
        return Err(NetdevError::NotL3Device { dev: name.to_owned(), link_type });
    }
    Ok(())
}

/// Binds `fd` to `ifindex` for every protocol: an ETH_P_ALL socket is a tap the kernel serves
/// before the device's ingress hooks, so it sees what arrives even if a filter drops it later.
fn bind_all(fd: &OwnedFd, ifindex: u32) -> std::io::Result<()> {
    let sll = link_addr(ifindex, libc::ETH_P_ALL as u16);
    // SAFETY: `sll` is a valid sockaddr_ll for the length passed.
    sys::cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// A link-layer address on `ifindex` with `proto` (host order); no hardware address (L3).
fn link_addr(ifindex: u32, proto: u16) -> libc::sockaddr_ll {
    // SAFETY: `sockaddr_ll` is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_protocol = proto.to_be();
    sll.sll_ifindex = ifindex as libc::c_int;
    sll
}

/// The EtherType for `pkt` by its version nibble; `None` if it is not IPv4 or IPv6.
fn ip_protocol(pkt: &[u8]) -> Option<u16> {
    match pkt.first()? >> 4 {
        4 if pkt.len() >= 20 => Some(ETH_P_IP),
        6 if pkt.len() >= 40 => Some(ETH_P_IPV6),
        _ => None,
    }
}

enum NameLookup {
    Name(String),
    /// No device has that ifindex.
    Missing,
    /// The lookup failed otherwise (no verdict).
    Unknown,
}

fn name_of(fd: &OwnedFd, ifindex: u32) -> NameLookup {
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_ifru.ifru_ifindex = ifindex as libc::c_int;
    match sys::ioctl_ifreq(fd.as_raw_fd(), libc::SIOCGIFNAME, &mut req) {
        Ok(()) => {
            // SAFETY: the kernel NUL-terminates ifr_name within IFNAMSIZ.
            let n = unsafe { std::ffi::CStr::from_ptr(req.ifr_name.as_ptr()) };
            NameLookup::Name(n.to_string_lossy().into_owned())
        }
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => NameLookup::Missing,
        Err(_) => NameLookup::Unknown,
    }
}

/// One packet as `recvmmsg` reported it.
struct Received {
    len: usize,
    truncated: bool,
    pkttype: u8,
}

/// One `recvmmsg` into `bufs` (at most [`L3_MAX_BATCH`]); the packets' lengths, cut flags and
/// packet types.
fn recv_many<B: AsMut<[u8]>>(fd: &OwnedFd, bufs: &mut [B]) -> std::io::Result<Vec<Received>> {
    let n = bufs.len().min(L3_MAX_BATCH);
    let mut iov: Vec<libc::iovec> = bufs[..n]
        .iter_mut()
        .map(|b| {
            let b = b.as_mut();
            libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() }
        })
        .collect();
    // SAFETY: `sockaddr_ll` is plain old data; all-zero is a valid value.
    let mut names: Vec<libc::sockaddr_ll> = vec![unsafe { std::mem::zeroed() }; n];
    // SAFETY: `mmsghdr` is plain old data; all-zero is a valid value.
    let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; n];
    for ((m, v), a) in msgs.iter_mut().zip(iov.iter_mut()).zip(names.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
        m.msg_hdr.msg_name = (a as *mut libc::sockaddr_ll).cast();
        m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    }
    // SAFETY: every header points at live iovecs/buffers and name slots of the sizes given;
    // MSG_TRUNC makes msg_len the packet's real length so cut packets can be told apart.
    let got = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            std::ptr::null_mut(),
        )
    };
    let got = sys::cvt(got)? as usize;
    Ok(msgs[..got]
        .iter()
        .zip(&names)
        .map(|(m, a)| Received {
            len: m.msg_len as usize,
            truncated: m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            pkttype: a.sll_pkttype,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_from_version_nibble() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        assert_eq!(ip_protocol(&v4), Some(ETH_P_IP));
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        assert_eq!(ip_protocol(&v6), Some(ETH_P_IPV6));
        assert_eq!(ip_protocol(&v6[..39]), None, "short IPv6 header");
        assert_eq!(ip_protocol(&v4[..19]), None, "short IPv4 header");
        assert_eq!(ip_protocol(&[]), None);
        assert_eq!(ip_protocol(&[0x55; 40]), None, "version 5");
    }

    #[test]
    fn loopback_is_not_an_l3_uplink() {
        // Opening needs CAP_NET_RAW; without it the socket call fails first.
        match L3Uplink::open("lo") {
            Err(NetdevError::NotL3Device { link_type, .. }) => assert_eq!(link_type, ARPHRD_LOOPBACK),
            Err(NetdevError::Io { op, .. }) => assert_eq!(op, "socket(AF_PACKET)"),
            other => panic!("unexpected: {:?}", other.map(|u| u.name().to_owned())),
        }
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(matches!(L3Uplink::open("a/b"), Err(NetdevError::InvalidName { .. })));
    }
}
