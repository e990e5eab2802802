//! Keeps the host's IP stack away from what arrives on an L3 uplink's device: a two-instruction
//! BPF program ("drop") on the device's TCX ingress hook. The uplink's AF_PACKET socket still
//! gets every packet, because the kernel serves such taps before the ingress hook; the host's
//! routing, local delivery and netfilter never see them. Without it the host would answer or
//! forward the zone's traffic itself: reset the TCP connections a NAT gateway made with the
//! tunnel's address, or route packets for the zone's subnet out of another interface.
//!
//! Raw `bpf(2)` calls rather than a BPF library: the program is fixed and tiny, and the crate
//! keeps to libc. The returned link descriptor owns the attachment; closing it detaches.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// <linux/bpf.h> commands, program type, attach type, and <linux/pkt_cls.h>'s verdict.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_TCX_INGRESS: u32 = 46;
const TC_ACT_SHOT: i32 = 2;

/// One eBPF instruction (`struct bpf_insn`; the two 4-bit registers share `regs`).
#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

/// `r0 = TC_ACT_SHOT; exit`.
const DROP_ALL: [Insn; 2] = [
    Insn { code: 0xb7, regs: 0, off: 0, imm: TC_ACT_SHOT }, // BPF_ALU64 | BPF_MOV | BPF_K
    Insn { code: 0x95, regs: 0, off: 0, imm: 0 },           // BPF_JMP | BPF_EXIT
];

/// The leading fields of `union bpf_attr` for BPF_PROG_LOAD (the kernel zero-fills the rest).
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// The leading fields of `union bpf_attr` for BPF_LINK_CREATE on a TCX hook.
#[repr(C)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    relative_fd: u32,
    _pad: u32,
    expected_revision: u64,
}

fn bpf<T>(cmd: libc::c_long, attr: &T) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a live, initialised prefix of `union bpf_attr` of the size passed; the
    // kernel reads it and returns a new descriptor that we then own.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *const T, std::mem::size_of::<T>()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Attaches the drop program to `ifindex`'s TCX ingress (in the caller's network namespace).
/// Returns the link; the program descriptor is closed, the link keeps the program alive.
pub(crate) fn drop_ingress(ifindex: u32) -> io::Result<OwnedFd> {
    let mut name = [0u8; 16];
    name[..13].copy_from_slice(b"rvs_l3_shield");
    let load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_SCHED_CLS,
        insn_cnt: DROP_ALL.len() as u32,
        insns: DROP_ALL.as_ptr() as u64,
        license: c"GPL".as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
    };
    let prog = bpf(BPF_PROG_LOAD, &load)?;
    let link = LinkCreateAttr {
        prog_fd: std::os::fd::AsRawFd::as_raw_fd(&prog) as u32,
        target_ifindex: ifindex,
        attach_type: BPF_TCX_INGRESS,
        flags: 0,
        relative_fd: 0,
        _pad: 0,
        expected_revision: 0,
    };
    bpf(BPF_LINK_CREATE, &link)
}
