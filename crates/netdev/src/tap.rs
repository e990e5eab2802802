//! Tap ports that rvswitchd creates itself through /dev/net/tun. The device exists exactly as long
//! as the descriptor (not persistent), so a crashed daemon leaves no stale devices behind.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::adopt;
use crate::batch::RxBatch;
use crate::error::NetdevError;
use crate::info::{ifindex_on, set_admin_up_on};
use crate::name::IfName;
use crate::sys;
use crate::vnet::VNET_HDR_LEN;
use crate::{Netdev, TxFrame};

/// Most slices one frame may have (header included) on a tap write; the datapath uses ≤ 3.
const MAX_PARTS: usize = 8;

/// A tap device owned by this process; frames written to it enter the host as if received on the
/// device, frames the host sends out of it are read here.
pub struct TapPort {
    fd: OwnedFd,
    name: String,
    ifindex: u32,
}

impl TapPort {
    /// Creates tap `name` in the calling thread's network namespace and brings it admin-up.
    pub fn create(name: &str) -> Result<TapPort, NetdevError> {
        let ifname = IfName::new(name)?;
        let path = c"/dev/net/tun";
        // SAFETY: `path` is NUL-terminated; on success we own the descriptor.
        let raw = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
        let raw = sys::cvt(raw).map_err(|e| NetdevError::io("open /dev/net/tun", name, e))?;
        // SAFETY: fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        let mut req = sys::ifreq(&ifname);
        // IFF_VNET_HDR: frames carry a virtio-net header both ways, so super-frames pass whole.
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI | sys::IFF_VNET_HDR) as libc::c_short;
        sys::ioctl_ifreq(fd.as_raw_fd(), libc::TUNSETIFF as libc::c_ulong, &mut req)
            .map_err(|e| NetdevError::io("TUNSETIFF", name, e))?;
        // Tell the kernel we take partial checksums and TCP super-frames, so it need not
        // segment or checksum what the host sends into this tap.
        let offloads = sys::TUN_F_CSUM | sys::TUN_F_TSO4 | sys::TUN_F_TSO6 | sys::TUN_F_TSO_ECN;
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), sys::TUNSETOFFLOAD as _, offloads as libc::c_ulong) };
        sys::cvt(rc).map_err(|e| NetdevError::io("TUNSETOFFLOAD", name, e))?;
        // The kernel may have expanded a pattern such as "tap%d"; use the name it chose.
        // SAFETY: the kernel NUL-terminates ifr_name within IFNAMSIZ.
        let actual = unsafe { CStr::from_ptr(req.ifr_name.as_ptr()) }.to_string_lossy().into_owned();
        let actual_name = IfName::new(&actual)?;

        let sock = sys::ioctl_socket().map_err(|e| NetdevError::io("socket", name, e))?;
        let ifindex = ifindex_on(sock.as_raw_fd(), &actual_name, &actual)?;
        set_admin_up_on(sock.as_raw_fd(), &actual_name, &actual)?;
        Ok(TapPort { fd, name: actual, ifindex })
    }

    /// Creates the bridge's internal port: the host stack's leg into the bridge. Same mechanics as
    /// [`TapPort::create`]; a separate constructor so the daemon's intent reads clearly.
    pub fn create_internal(name: &str) -> Result<TapPort, NetdevError> {
        TapPort::create(name)
    }

    /// Kernel interface index of the tap device.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The tap's descriptor, labelled, for a descriptor store: while a copy is held the device
    /// exists, so it survives a restart of rvswitchd (see [`TapPort::adopt`]).
    pub fn descriptors(&self) -> Vec<adopt::Labelled<'_>> {
        vec![adopt::labelled(adopt::TAP, &self.fd)]
    }

    /// Rebuilds tap port `name` from the descriptor a previous process created it with; its
    /// settings (virtio-net header, offloads) live on with the descriptor.
    pub fn adopt(name: &str, fds: Vec<(String, OwnedFd)>) -> Result<TapPort, NetdevError> {
        let fd = adopt::sort_tap(name, fds)?;
        let attached = adopt::tap_name(&fd, name)?;
        if attached != name {
            return Err(NetdevError::StaleDescriptors {
                dev: name.to_owned(),
                reason: format!("the descriptor belongs to tap {attached}"),
            });
        }
        let ifname = IfName::new(name)?;
        let sock = sys::ioctl_socket().map_err(|e| NetdevError::io("socket", name, e))?;
        let ifindex = ifindex_on(sock.as_raw_fd(), &ifname, name)?;
        Ok(TapPort { fd, name: name.to_owned(), ifindex })
    }

    fn gone_or_io(&self, op: &'static str, e: io::Error) -> NetdevError {
        match sys::errno(&e) {
            // The tun driver answers EBADFD once the device was deleted under the descriptor.
            libc::EBADFD | libc::ENODEV | libc::ENXIO => NetdevError::DeviceGone(self.name.clone()),
            _ => NetdevError::io(op, &self.name, e),
        }
    }
}

impl Netdev for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn recv_batch(&mut self, batch: &mut RxBatch) -> Result<usize, NetdevError> {
        batch.clear();
        let mut n = 0;
        // Bounded by the batch capacity; one read returns one frame.
        while n < batch.capacity() {
            let Some(area) = batch.rx_area(n) else { break };
            // SAFETY: `area` is a writable buffer of `area.len()` bytes.
            let r = unsafe { libc::read(self.fd.as_raw_fd(), area.as_mut_ptr().cast(), area.len()) };
            if r < 0 {
                let e = io::Error::last_os_error();
                match sys::errno(&e) {
                    libc::EAGAIN | libc::EINTR => break,
                    _ if n > 0 => break, // report the frames we have; the error recurs next call
                    _ => return Err(self.gone_or_io("read", e)),
                }
            }
            if batch.set_frame(n, n, r as usize, None) {
                n += 1;
            }
        }
        batch.set_len(n);
        Ok(n)
    }

    fn transmit(&mut self, frames: &[TxFrame<'_>]) -> Result<usize, NetdevError> {
        let mut sent = 0;
        for frame in frames {
            if frame.parts.len() + 1 > MAX_PARTS {
                continue; // never built by the datapath; dropped like a malformed frame
            }
            let hdr = frame.vnet.to_bytes();
            let mut iov = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX_PARTS];
            iov[0] = libc::iovec { iov_base: hdr.as_ptr().cast_mut().cast(), iov_len: VNET_HDR_LEN };
            for (slot, p) in iov[1..].iter_mut().zip(frame.parts) {
                *slot = libc::iovec { iov_base: p.as_ptr().cast_mut().cast(), iov_len: p.len() };
            }
            let iovcnt = (frame.parts.len() + 1) as libc::c_int;
            // SAFETY: the first `iovcnt` iovecs describe live buffers (our header copy and the
            // caller's slices); the kernel only reads them.
            let r = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), iovcnt) };
            if r >= 0 {
                sent += 1;
                continue;
            }
            let e = io::Error::last_os_error();
            match sys::errno(&e) {
                libc::EAGAIN => break,
                // EIO: device down / no carrier; EINVAL: runt or too many slices;
                // EMSGSIZE: oversized. Only this frame is lost.
                libc::EIO | libc::EINVAL | libc::EMSGSIZE | libc::EINTR => {}
                _ => return Err(self.gone_or_io("writev", e)),
            }
        }
        Ok(sent)
    }
}
