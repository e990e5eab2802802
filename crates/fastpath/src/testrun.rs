//! `BPF_PROG_TEST_RUN` on the tc program: runs one frame through the loaded program in the
//! kernel without a device queue, for the differential tests. aya has no wrapper for it, so
//! this is the one raw `bpf(2)` call in the crate.

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::Error;

const BPF_PROG_TEST_RUN: libc::c_long = 10;
/// `sizeof(struct __sk_buff)` on current kernels; the kernel accepts a shorter or equal ctx.
const SKB_CTX_LEN: usize = 192;
/// Offset of `__sk_buff.ifindex`.
const CTX_IFINDEX: usize = 40;

/// The `test` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    pad: u32,
}

/// What the program returned for one frame, and the frame as it left (tags pushed as metadata
/// do not show in `data`).
#[derive(Debug)]
pub struct TestRun {
    pub retval: u32,
    pub data: Vec<u8>,
}

impl TestRun {
    /// Runs `frame` through `prog` as if received on device `ifindex` (it must exist: the
    /// kernel builds the skb on it).
    pub fn run(prog: BorrowedFd<'_>, frame: &[u8], ifindex: u32) -> Result<TestRun, Error> {
        let mut out = vec![0u8; frame.len() + 256];
        let mut ctx = [0u8; SKB_CTX_LEN];
        ctx[CTX_IFINDEX..CTX_IFINDEX + 4].copy_from_slice(&ifindex.to_ne_bytes());
        let mut attr = TestAttr {
            prog_fd: prog.as_raw_fd() as u32,
            data_size_in: frame.len() as u32,
            data_size_out: out.len() as u32,
            data_in: frame.as_ptr() as u64,
            data_out: out.as_mut_ptr() as u64,
            repeat: 1,
            ctx_size_in: SKB_CTX_LEN as u32,
            ctx_in: ctx.as_ptr() as u64,
            ..TestAttr::default()
        };
        // SAFETY: `attr` is a valid `bpf_attr.test` for its declared size; the buffers it
        // points to outlive the call and their sizes are the ones given.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_TEST_RUN,
                &mut attr as *mut TestAttr,
                std::mem::size_of::<TestAttr>(),
            )
        };
        if rc < 0 {
            return Err(Error::TestRun(std::io::Error::last_os_error()));
        }
        out.truncate(attr.data_size_out as usize);
        Ok(TestRun { retval: attr.retval, data: out })
    }
}
