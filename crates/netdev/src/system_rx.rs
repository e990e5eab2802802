//! Batched AF_PACKET receive: one `recvmmsg` fills many [`RxBatch`] slots, and the
//! `PACKET_AUXDATA` control message of each frame tells us which VLAN tag the kernel stripped so
//! it can be put back (the switch must see frames exactly as they were on the wire).

use std::io;
use std::os::fd::RawFd;

use crate::batch::{RxBatch, RX_AREA};
use crate::sys::{self, TpacketAuxdata};

/// Most messages one `recvmmsg` call accepts (`UIO_MAXIOV`).
const MAX_VLEN: usize = 1024;

/// Room for one `PACKET_AUXDATA` control message (CMSG_SPACE(20) = 40 on 64-bit), with slack.
/// Aligned like `cmsghdr` so the kernel's headers land on a proper boundary.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct CmsgBuf([u8; 64]);

/// Per-message headers, addresses and control buffers, grown to the batch capacity once and reused
/// on every call so receiving never allocates.
pub(crate) struct RxScratch {
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_ll>,
    cmsgs: Vec<CmsgBuf>,
}

// SAFETY: the raw pointers inside `msgs`/`iovs` point only into this struct's own vectors and the
// caller's batch, are rewritten at the start of every `recv` and are never dereferenced outside
// it. Moving the struct to another thread therefore cannot create a dangling access.
unsafe impl Send for RxScratch {}

impl RxScratch {
    pub(crate) fn new() -> Self {
        RxScratch { msgs: Vec::new(), iovs: Vec::new(), addrs: Vec::new(), cmsgs: Vec::new() }
    }

    /// Grows the scratch space to `n` messages (only when a larger batch shows up).
    fn ensure(&mut self, n: usize) {
        if self.msgs.len() >= n {
            return;
        }
        // SAFETY: these C structs are plain old data; all-zero is a valid value.
        let (msg, iov, addr) = unsafe { (std::mem::zeroed(), std::mem::zeroed(), std::mem::zeroed()) };
        self.msgs.resize(n, msg);
        self.iovs.resize(n, iov);
        self.addrs.resize(n, addr);
        self.cmsgs.resize(n, CmsgBuf([0; 64]));
    }

    /// Receives up to `batch.capacity()` frames from `fd` without blocking. Truncated frames and
    /// our own outgoing frames are skipped; returns the number of frames now in `batch`.
    pub(crate) fn recv(&mut self, fd: RawFd, batch: &mut RxBatch) -> io::Result<usize> {
        batch.clear();
        let n = batch.capacity().min(MAX_VLEN);
        if n == 0 {
            return Ok(0);
        }
        self.ensure(n);
        for (iov, base) in self.iovs.iter_mut().zip(batch.rx_area_ptrs()).take(n) {
            iov.iov_base = base.cast();
            iov.iov_len = RX_AREA;
        }
        let iovs = self.iovs.as_mut_ptr();
        let addrs = self.addrs.as_mut_ptr();
        let cmsgs = self.cmsgs.as_mut_ptr();
        for (i, m) in self.msgs.iter_mut().take(n).enumerate() {
            // wrapping_add stays inside each vector: i < n <= len.
            m.msg_len = 0;
            m.msg_hdr.msg_name = addrs.wrapping_add(i).cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            m.msg_hdr.msg_iov = iovs.wrapping_add(i);
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_control = cmsgs.wrapping_add(i).cast();
            m.msg_hdr.msg_controllen = std::mem::size_of::<CmsgBuf>() as _;
            m.msg_hdr.msg_flags = 0;
        }
        // SAFETY: the first `n` headers point at live buffers: iovecs into `batch` slots of
        // RX_AREA bytes, address and control buffers of the advertised sizes.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let got = sys::cvt(got)? as usize;
        let mut out = 0;
        for (slot, m) in self.msgs.iter().take(got.min(n)).enumerate() {
            if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                continue;
            }
            if self.addrs[slot].sll_pkttype == sys::PACKET_OUTGOING {
                continue;
            }
            // SAFETY: the header's control pointer/length describe `cmsgs[slot]`, as filled in
            // by the kernel.
            let aux = unsafe { find_auxdata(&m.msg_hdr) };
            let vlan = aux.as_ref().and_then(stripped_vlan);
            if batch.set_frame(out, slot, m.msg_len as usize, vlan) {
                out += 1;
            }
        }
        batch.set_len(out);
        Ok(out)
    }
}

impl RxScratch {
    /// Receives one frame from the socket queue into slot `out` of `batch` (for ring slots
    /// marked `TP_STATUS_COPY`). Ok(false): nothing usable (truncated, our echo). Does not
    /// change the batch length.
    pub(crate) fn recv_one(&mut self, fd: RawFd, batch: &mut RxBatch, out: usize) -> io::Result<bool> {
        self.ensure(1);
        let Some(area) = batch.rx_area(out) else { return Ok(false) };
        self.iovs[0] = libc::iovec { iov_base: area.as_mut_ptr().cast(), iov_len: area.len() };
        let m = &mut self.msgs[0].msg_hdr;
        m.msg_name = (&mut self.addrs[0] as *mut libc::sockaddr_ll).cast();
        m.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        m.msg_iov = self.iovs.as_mut_ptr();
        m.msg_iovlen = 1;
        m.msg_control = self.cmsgs.as_mut_ptr().cast();
        m.msg_controllen = std::mem::size_of::<CmsgBuf>() as _;
        m.msg_flags = 0;
        // SAFETY: the header points at live buffers of the advertised sizes: one iovec into
        // slot `out` of the batch, our address and control buffers.
        let r = unsafe { libc::recvmsg(fd, m, libc::MSG_DONTWAIT) };
        let len = sys::cvt(r as libc::c_int)? as usize;
        let m = &self.msgs[0].msg_hdr;
        if m.msg_flags & libc::MSG_TRUNC != 0 || self.addrs[0].sll_pkttype == sys::PACKET_OUTGOING {
            return Ok(false);
        }
        // SAFETY: the control pointer/length describe `cmsgs[0]`, as filled in by the kernel.
        let vlan = unsafe { find_auxdata(m) }.as_ref().and_then(stripped_vlan);
        Ok(batch.set_frame(out, out, len, vlan))
    }
}

/// Finds the `PACKET_AUXDATA` control message of a received message.
///
/// # Safety
/// `hdr.msg_control`/`msg_controllen` must describe a readable control buffer written by the
/// kernel (or be empty).
unsafe fn find_auxdata(hdr: &libc::msghdr) -> Option<TpacketAuxdata> {
    let want = libc::CMSG_LEN(std::mem::size_of::<TpacketAuxdata>() as u32) as usize;
    let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
    // Bounded: a 64-byte control buffer holds at most a few headers; cap anyway.
    for _ in 0..8 {
        if cmsg.is_null() {
            return None;
        }
        let c = &*cmsg;
        if c.cmsg_level == sys::SOL_PACKET
            && c.cmsg_type == sys::PACKET_AUXDATA
            && c.cmsg_len as usize >= want
        {
            return Some(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<TpacketAuxdata>()));
        }
        cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
    }
    None
}

/// The `(TPID, TCI)` of a tag the kernel stripped, if any. `TP_STATUS_VLAN_VALID` is what counts:
/// a TCI of 0 is a valid priority tag. Old kernels do not report the TPID; 802.1Q is the only tag
/// they stripped.
pub(crate) fn stripped_vlan(aux: &TpacketAuxdata) -> Option<(u16, u16)> {
    if aux.tp_status & sys::TP_STATUS_VLAN_VALID == 0 {
        return None;
    }
    let tpid = if aux.tp_status & sys::TP_STATUS_VLAN_TPID_VALID != 0 { aux.tp_vlan_tpid } else { 0x8100 };
    Some((tpid, aux.tp_vlan_tci))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_vlan_without_valid_flag() {
        let aux = TpacketAuxdata { tp_vlan_tci: 10, tp_vlan_tpid: 0x8100, ..Default::default() };
        assert_eq!(stripped_vlan(&aux), None);
    }

    #[test]
    fn zero_tci_is_a_valid_tag() {
        let aux = TpacketAuxdata { tp_status: sys::TP_STATUS_VLAN_VALID, ..Default::default() };
        assert_eq!(stripped_vlan(&aux), Some((0x8100, 0)));
    }

    #[test]
    fn tpid_used_when_reported() {
        let aux = TpacketAuxdata {
            tp_status: sys::TP_STATUS_VLAN_VALID | sys::TP_STATUS_VLAN_TPID_VALID,
            tp_vlan_tci: 0xa00a,
            tp_vlan_tpid: 0x88a8,
            ..Default::default()
        };
        assert_eq!(stripped_vlan(&aux), Some((0x88a8, 0xa00a)));
    }
}
