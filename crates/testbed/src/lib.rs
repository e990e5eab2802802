//! Helpers for integration tests across the workspace: network namespaces as "VMs", veth links,
//! child processes and frame capture, each behind a guard that cleans up even when a test panics.
//! Not for release binaries.

mod capture;
mod child;
mod cmd;
mod files;
pub mod frames;
mod guest;
mod host_lock;
mod libvirt;
mod link;
mod marked;
mod names;
mod netns;
mod ping;
mod process;
mod root;
mod unix;
mod veth;
mod wait;

pub use capture::{frame_capture, frame_capture_counted, frame_capture_until, send_frame};
pub use child::ChildGuard;
pub use cmd::{promtool_check_metrics, run, run_quiet_ok};
pub use files::{wg_keypair, write_file};
pub use guest::{
    boot_guest, build_initramfs, build_initramfs_with, guest_init, require_vm_assets, vm_assets,
    VIRTIO_NET_MODULES,
};
pub use host_lock::{HostLock, OVS_DB_LOCK, OVS_DB_WAIT};
pub use libvirt::Libvirt;
pub use link::link_counter;
pub use marked::{marked_frame, markers_in, ETHERTYPE_TEST};
pub use names::unique;
pub use netns::Netns;
pub use ping::{BackgroundPing, PingReport};
pub use process::{proc_status, raise_nofile};
pub use root::{is_root, require_file, require_program, require_root, skip, under_ci};
pub use unix::{signal_pid, socket_answers};
pub use veth::Veth;
pub use wait::{wait_until, wait_until_every};
