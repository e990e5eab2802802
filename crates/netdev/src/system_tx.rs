//! Batched AF_PACKET send: one `sendmmsg` hands many gather-list frames to the kernel. The
//! frames' `IoSlice`s are used directly as iovecs (std guarantees the layouts match), so the only
//! scratch is the `mmsghdr` array, reused across calls.

use std::io::{self, IoSlice};
use std::os::fd::RawFd;

/// Most messages one `sendmmsg` call accepts (`UIO_MAXIOV`).
const MAX_VLEN: usize = 1024;

/// `mmsghdr` array grown to the largest batch seen, then reused.
pub(crate) struct TxScratch {
    msgs: Vec<libc::mmsghdr>,
}

// SAFETY: the iovec pointers stored in `msgs` are rewritten from the caller's frames at the start
// of every `send` and never dereferenced after it returns, so no access can outlive the frames or
// race with another thread.
unsafe impl Send for TxScratch {}

/// How a send ended: frames accepted, plus the error that stopped it early (if any).
pub(crate) struct TxResult {
    pub sent: usize,
    pub stopped_by: Option<io::Error>,
}

impl TxScratch {
    pub(crate) fn new() -> Self {
        TxScratch { msgs: Vec::new() }
    }

    /// Sends `frames` on the bound socket `fd` without blocking. A frame the kernel rejects on
    /// its own (EMSGSIZE: bigger than the MTU; EINVAL: shorter than an Ethernet header) is
    /// skipped and the rest still go; any other error stops the send and is returned.
    pub(crate) fn send(&mut self, fd: RawFd, frames: &[&[IoSlice<'_>]]) -> TxResult {
        if self.msgs.len() < frames.len() {
            // SAFETY: `mmsghdr` is plain old data; all-zero is a valid value.
            self.msgs.resize(frames.len(), unsafe { std::mem::zeroed() });
        }
        for (m, frame) in self.msgs.iter_mut().zip(frames) {
            m.msg_len = 0;
            m.msg_hdr.msg_name = std::ptr::null_mut();
            m.msg_hdr.msg_namelen = 0;
            // The kernel only reads the iovecs of a send; the cast to *mut is what the C type asks.
            m.msg_hdr.msg_iov = frame.as_ptr().cast::<libc::iovec>().cast_mut();
            m.msg_hdr.msg_iovlen = frame.len() as _;
            m.msg_hdr.msg_control = std::ptr::null_mut();
            m.msg_hdr.msg_controllen = 0;
            m.msg_hdr.msg_flags = 0;
        }
        let mut sent = 0;
        let mut next = 0;
        // Each round either advances `next` by at least one or stops; EINTR retries are capped.
        let mut interrupts = 0;
        while next < frames.len() {
            let vlen = (frames.len() - next).min(MAX_VLEN);
            // SAFETY: headers next..next+vlen point at the caller's live IoSlices (iovec-ABI).
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
