//! Batched AF_PACKET send: one `sendmmsg` hands many gather-list frames to the kernel, each
//! preceded by its virtio-net header (the socket has `PACKET_VNET_HDR` on). The iovec and header
//! arrays are scratch space grown once and reused, so sending never allocates after warm-up.

use std::io;
use std::os::fd::RawFd;

use crate::vnet::VNET_HDR_LEN;
use crate::TxFrame;

/// Most messages one `sendmmsg` call accepts (`UIO_MAXIOV`).
const MAX_VLEN: usize = 1024;

/// `mmsghdr`/iovec/header arrays grown to the largest batch seen, then reused.
pub(crate) struct TxScratch {
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<[u8; VNET_HDR_LEN]>,
}

// SAFETY: the pointers stored in `msgs`/`iovs` are rewritten from the caller's frames and this
// struct's own vectors at the start of every `send` and never dereferenced after it returns, so
// no access can outlive the frames or race with another thread.
unsafe impl Send for TxScratch {}

/// How a send ended: frames accepted, plus the error that stopped it early (if any).
pub(crate) struct TxResult {
    pub sent: usize,
    pub stopped_by: Option<io::Error>,
}

impl TxScratch {
    pub(crate) fn new() -> Self {
        TxScratch { msgs: Vec::new(), iovs: Vec::new(), hdrs: Vec::new() }
    }

    /// Sends `frames` on the bound socket `fd` without blocking. A frame the kernel rejects on
    /// its own (EMSGSIZE: bigger than the MTU and not GSO; EINVAL: malformed, e.g. a runt or an
    /// inconsistent offload header) is skipped and the rest still go; any other error stops the
    /// send and is returned.
    pub(crate) fn send(&mut self, fd: RawFd, frames: &[TxFrame<'_>]) -> TxResult {
        self.hdrs.clear();
        self.hdrs.extend(frames.iter().map(|f| f.vnet.to_bytes()));
        self.iovs.clear();
        for (f, hdr) in frames.iter().zip(&self.hdrs) {
            self.iovs.push(libc::iovec { iov_base: hdr.as_ptr().cast_mut().cast(), iov_len: VNET_HDR_LEN });
            // IoSlice is ABI-compatible with iovec (guaranteed by std on Unix).
            self.iovs.extend(
                f.parts
                    .iter()
                    .map(|p| libc::iovec { iov_base: p.as_ptr().cast_mut().cast(), iov_len: p.len() }),
            );
        }
        if self.msgs.len() < frames.len() {
            // SAFETY: `mmsghdr` is plain old data; all-zero is a valid value.
            self.msgs.resize(frames.len(), unsafe { std::mem::zeroed() });
        }
        let iovs = self.iovs.as_mut_ptr();
        let mut at = 0;
        for (m, frame) in self.msgs.iter_mut().zip(frames) {
            let n = frame.parts.len() + 1;
            m.msg_len = 0;
            m.msg_hdr.msg_name = std::ptr::null_mut();
            m.msg_hdr.msg_namelen = 0;
            // wrapping_add stays inside `iovs`: at + n <= iovs.len() by construction above.
            m.msg_hdr.msg_iov = iovs.wrapping_add(at);
            m.msg_hdr.msg_iovlen = n as _;
            m.msg_hdr.msg_control = std::ptr::null_mut();
            m.msg_hdr.msg_controllen = 0;
            m.msg_hdr.msg_flags = 0;
            at += n;
        }
        let mut sent = 0;
        let mut next = 0;
        // Each round either advances `next` by at least one or stops; EINTR retries are capped.
        let mut interrupts = 0;
        while next < frames.len() {
            let vlen = (frames.len() - next).min(MAX_VLEN);
            // SAFETY: headers next..next+vlen point at live iovecs (this struct's, describing the
            // caller's slices and our header copies).
            let r = unsafe {
                libc::sendmmsg(fd, self.msgs[next..].as_mut_ptr(), vlen as libc::c_uint, libc::MSG_DONTWAIT)
            };
            if r > 0 {
                sent += r as usize;
                next += r as usize;
                continue;
            }
            let err = if r == 0 {
                // Not expected from Linux; treat like a full queue rather than spin.
                io::Error::from_raw_os_error(libc::EAGAIN)
            } else {
                io::Error::last_os_error()
            };
            match err.raw_os_error() {
                Some(libc::EMSGSIZE | libc::EINVAL) => next += 1,
                Some(libc::EINTR) if interrupts < 8 => interrupts += 1,
                _ => return TxResult { sent, stopped_by: Some(err) },
            }
        }
        TxResult { sent, stopped_by: None }
    }
}
