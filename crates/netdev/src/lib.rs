//! Port backends behind one trait. A backend moves whole Ethernet frames between the switch and a
//! Linux network device; it knows nothing about VLAN policy or MAC addresses.
//!
//! * [`SystemPort`]: AF_PACKET on any existing netdev (veth end, NIC, a tap qemu created).
//! * [`TapPort`]: a tap device rvswitchd creates itself through /dev/net/tun.
//! * internal ports are tap devices too (see [`TapPort::create_internal`]): the host stack's leg.

mod batch;
mod error;
mod info;
mod name;
mod sys;
mod system;
mod system_rx;
mod system_tx;
mod tap;

pub use batch::{RxBatch, HEADROOM, MAX_FRAME};
pub use error::NetdevError;
pub use info::{interface_info, set_admin_up, InterfaceInfo};
pub use system::SystemPort;
pub use tap::TapPort;

use std::io::IoSlice;
use std::os::fd::RawFd;

/// What the datapath needs from a port: a pollable fd, batched receive, batched gather-send.
pub trait Netdev: Send {
    /// Device name (e.g. `vnet0`).
    fn name(&self) -> &str;
    /// File descriptor that becomes readable (EPOLLIN) when frames are waiting.
    fn raw_fd(&self) -> RawFd;
    /// Receive up to `batch.capacity()` frames without blocking. Returns how many were received
    /// (0 when none are waiting). Frames are complete Ethernet frames; a VLAN tag that the kernel
    /// stripped into metadata is put back in place.
    fn recv_batch(&mut self, batch: &mut RxBatch) -> Result<usize, NetdevError>;
    /// Send frames without blocking; each frame is a gather list of slices that together form one
    /// Ethernet frame. Returns how many frames were accepted by the kernel (the rest are dropped;
    /// the caller counts them).
    fn send_batch(&mut self, frames: &[&[IoSlice<'_>]]) -> Result<usize, NetdevError>;
}
