//! The kernel fast path: a TC-BPF program that replays forwarding decisions the userspace
//! pipeline (crate `switch`) already made, and its loader.
//!
//! The pipeline stays the authority: this crate only mirrors what it learned into BPF maps
//! (per-port VLAN config, and per (bridge, VLAN, MAC) the port and egress VID) and reads back
//! per-CPU counters and last-seen stamps. Broadcast, multicast, unknown or moved sources and
//! anything unusual go to the slow path unchanged. See `bpf/fastpath.bpf.c` for the program and
//! how a frame is decided exactly once.

pub mod binds;
mod loader;
pub mod maps;
pub mod mirror;
pub mod pins;
mod testrun;

pub use loader::{FastPath, TcLink};
pub use maps::{Binding, Counters, FlowKey, FlowVal, PortConf};
pub use testrun::TestRun;

/// `bpf_ktime_get_ns` as userspace reads it (CLOCK_MONOTONIC), to express deadlines the
/// program compares with its clock.
pub fn kernel_now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// How many programs are attached at TCX ingress of device `dev` (any loader's): a fast path
/// taken out of the kernel leaves none.
pub fn tcx_ingress_programs(dev: &str) -> Result<usize, Error> {
    use aya::programs::{SchedClassifier, TcAttachType};
    let (_, progs) = SchedClassifier::query_tcx(dev, TcAttachType::Ingress)
        .map_err(|e| Error::Attach { dev: dev.to_string(), msg: e.to_string() })?;
    Ok(progs.len())
}

/// The kernel's id of the map pinned at `path`: with [`map_exists`], whether the kernel still
/// holds that map after its pin and every process using it are gone (ids are not reused soon:
/// the kernel allocates them cyclically).
pub fn pinned_map_id(path: &std::path::Path) -> Result<u32, Error> {
    let info = aya::maps::MapInfo::from_pin(path)
        .map_err(|e| Error::Pins { dir: path.to_path_buf(), msg: e.to_string() })?;
    Ok(info.id())
}

/// Whether a map with kernel id `id` exists (see [`pinned_map_id`]).
pub fn map_exists(id: u32) -> bool {
    aya::maps::MapInfo::from_id(id).is_ok()
}

/// Why the fast path cannot be used here.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("built without the BPF program (clang was not found at build time)")]
    NotBuilt,
    #[error("cannot load the BPF program: {0}")]
    Load(String),
    #[error("cannot attach to {dev}: {msg}")]
    Attach { dev: String, msg: String },
    #[error("BPF map {map}: {msg}")]
    Map { map: &'static str, msg: String },
    #[error("pin directory {dir}: {msg}")]
    Pins { dir: std::path::PathBuf, msg: String },
    #[error("BPF_PROG_TEST_RUN: {0}")]
    TestRun(std::io::Error),
}

#[cfg(fastpath_bpf)]
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fastpath.bpf.o"));
#[cfg(fastpath_bpf)]
static OBJECT_PINNED: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fastpath-pinned.bpf.o"));

/// The compiled BPF object, or why there is none: its maps private to one load.
pub fn object() -> Result<&'static [u8], Error> {
    #[cfg(fastpath_bpf)]
    return Ok(OBJECT);
    #[cfg(not(fastpath_bpf))]
    Err(Error::NotBuilt)
}

/// The same program with every map pinned by name (see [`pins`]).
pub fn object_pinned() -> Result<&'static [u8], Error> {
    #[cfg(fastpath_bpf)]
    return Ok(OBJECT_PINNED);
    #[cfg(not(fastpath_bpf))]
    Err(Error::NotBuilt)
}
