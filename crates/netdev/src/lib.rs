//! Port backends behind one trait. A backend moves whole Ethernet frames between the switch and a
//! Linux network device; it knows nothing about VLAN policy or MAC addresses.
//!
//! * [`SystemPort`]: AF_PACKET on any existing netdev (veth end, NIC, a tap qemu created).
//! * [`TapPort`]: a tap device rvswitchd creates itself through /dev/net/tun.
//! * internal ports are tap devices too (see [`TapPort::create_internal`]): the host stack's leg.
//! * [`L3Uplink`]: not a port: bare IP packets on an existing tun / point-to-point device, the
//!   transport of a zone gateway whose tunnel is a VPN client's device.
//! * [`memory::MemoryPort`]: frames in memory, for unit tests of the code above (no device).

mod adopt;
mod batch;
mod error;
mod info;
mod l3tun;
mod l3tun_shield;
pub mod memory;
mod name;
mod ring;
mod sys;
mod system;
mod system_rx;
mod system_tx;
mod tap;
pub mod tunnel;
mod vnet;

pub use adopt::Labelled;
pub use batch::{RxBatch, HEADROOM, MAX_FRAME};
pub use error::NetdevError;
pub use info::{interface_info, ipv4_address, set_admin_up, InterfaceInfo};
pub use l3tun::{DeviceFacts, L3Drops, L3Uplink, LinkState, L3_MAX_BATCH};
pub use name::{IfName, MAX_NAME_LEN};
pub use system::SystemPort;
pub use tap::TapPort;
pub use tunnel::{TunnelConfig, TunnelEndpoints, TunnelPort};
pub use vnet::{VnetHdr, VNET_F_DATA_VALID, VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_HDR_LEN};

use std::io::IoSlice;
use std::os::fd::RawFd;

/// One frame to send: its pieces (a gather list forming one Ethernet frame) and its offload
/// metadata (all zero for a plain, complete frame).
#[derive(Clone, Copy, Debug)]
pub struct TxFrame<'a> {
    pub vnet: VnetHdr,
    pub parts: &'a [IoSlice<'a>],
}

/// What the datapath needs from a port: a pollable fd, batched receive, batched gather-send.
/// Every backend carries virtio-net headers, so offloaded super-frames cross the switch whole.
pub trait Netdev: Send {
    /// Device name (e.g. `vnet0`).
    fn name(&self) -> &str;
    /// File descriptor that becomes readable (EPOLLIN) when frames are waiting.
    fn raw_fd(&self) -> RawFd;
    /// Receive up to `batch.capacity()` frames without blocking. Returns how many were received
    /// (0 when none are waiting). Frames are complete Ethernet frames; a VLAN tag that the kernel
    /// stripped into metadata is put back in place.
    fn recv_batch(&mut self, batch: &mut RxBatch) -> Result<usize, NetdevError>;
    /// Receive queues: more than one when the port spreads arrivals over queues by the CPU
    /// that handled them (queue `k` of `n`: CPUs `c` with `c % n == k`). Queue 0 is `raw_fd`.
    fn rx_queues(&self) -> usize {
        1
    }
    /// The pollable fd of receive queue `q` (`q < rx_queues()`).
    fn queue_fd(&self, q: usize) -> RawFd {
        let _ = q;
        self.raw_fd()
    }
    /// Like [`Netdev::recv_batch`] for receive queue `q`.
    fn recv_queue(&mut self, q: usize, batch: &mut RxBatch) -> Result<usize, NetdevError> {
        let _ = q;
        self.recv_batch(batch)
    }
    /// Sends frames (with their offload metadata) without blocking. Returns how many frames the
    /// kernel accepted (the rest are dropped; the caller counts them).
    fn transmit(&mut self, frames: &[TxFrame<'_>]) -> Result<usize, NetdevError>;

    /// Frames the kernel dropped before we could read them (receive ring or socket queue full)
    /// since the last call. Backends that cannot tell return 0.
    fn take_kernel_drops(&mut self) -> u64 {
        0
    }

    /// Frames [`Netdev::transmit`] did not send because they are larger than the device carries
    /// (a tunnel's underlay MTU), since the last call: the caller counts them under that reason
    /// instead of as failed sends. Backends whose kernel reports this as a send error return 0.
    fn take_oversize_drops(&mut self) -> u64 {
        0
    }

    /// Attaches the BPF socket filter `prog` (SO_ATTACH_BPF) to every receive socket of the
    /// port, so a kernel fast path can keep the frames it forwards away from this port's
    /// receive queues. Returns the device's ifindex when attached; `None` for backends whose
    /// frames do not arrive through such sockets (taps: the fd rvswitchd holds is the device).
    fn attach_rx_filter(&self, prog: std::os::fd::BorrowedFd<'_>) -> Result<Option<u32>, NetdevError> {
        let _ = prog;
        Ok(None)
    }

    /// Convenience for tools and tests: sends plain frames (no offloads), each a gather list.
    /// Allocates; the datapath uses [`Netdev::transmit`].
    fn send_batch(&mut self, frames: &[&[IoSlice<'_>]]) -> Result<usize, NetdevError> {
        let tx: Vec<TxFrame<'_>> =
            frames.iter().map(|parts| TxFrame { vnet: VnetHdr::default(), parts }).collect();
        self.transmit(&tx)
    }
}
