//! `system` ports: an AF_PACKET socket bound to an existing device (veth end, NIC, a tap that
//! qemu owns). This is how Open vSwitch's userspace datapath drives "system" interfaces.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::adopt;
use crate::batch::RxBatch;
use crate::error::NetdevError;
use crate::info::{ifindex_on, set_admin_up_on};
use crate::name::IfName;
use crate::ring::{self, RxRing, Slot};
use crate::sys::{self, PacketMreq};
use crate::system_rx::RxScratch;
use crate::system_tx::TxScratch;
use crate::{Netdev, TxFrame};

/// Socket buffer size asked for: deep enough to absorb a burst of 64 KiB super-frames while the
/// forwarding thread is busy with another port.
const SOCKET_BUFFER: libc::c_int = 4 << 20;

/// One receive socket of a port and its ring. A port has one, or several joined in a
/// `PACKET_FANOUT_CPU` group (see [`SystemPort::open_per_cpu`]).
struct RxQueue {
    /// Bound with ETH_P_ALL, polled by the datapath.
    fd: OwnedFd,
    /// Receive ring (frames read in place); `None`: `recvmmsg` into the batch's own slots.
    ring: Option<RxRing>,
}

/// A port on an existing network device, through AF_PACKET.
pub struct SystemPort {
    /// Receive sockets; queue `k` of `n` gets the frames the kernel handled on CPUs `c` with
    /// `c % n == k` (one queue: all of them).
    queues: Vec<RxQueue>,
    /// Transmit socket: bound to the device with protocol 0, so it receives nothing and is never
    /// polled. Kept apart from the receive sockets because a socket someone polls pays a wakeup
    /// call for every transmitted frame the peer frees (`sock_wfree` → write-space wakeup).
    txfd: OwnedFd,
    name: String,
    ifindex: u32,
    /// Set once the device is known to be unregistered: the kernel reports that only once (as a
    /// pending socket error), so later calls must remember it.
    gone: bool,
    rx: RxScratch,
    tx: TxScratch,
}

impl SystemPort {
    /// Opens `name` in the calling thread's network namespace (the socket stays bound to that
    /// namespace afterwards, whichever thread uses it) and brings the device admin-up. Frames are
    /// received through an mmap'd ring when the kernel allows one, else with `recvmmsg`.
    pub fn open(name: &str) -> Result<SystemPort, NetdevError> {
        SystemPort::open_with(name, true, 1)
    }

    /// Like [`SystemPort::open`] but always receives with `recvmmsg` (copies into the batch).
    pub fn open_copying(name: &str) -> Result<SystemPort, NetdevError> {
        SystemPort::open_with(name, false, 1)
    }

    /// Like [`SystemPort::open`] with `queues` receive queues in one `PACKET_FANOUT_CPU` group:
    /// which queue a frame lands in tells on which CPU the kernel handled it — for a frame a
    /// local sender (a VM's vCPU or vhost thread, a namespace's process) transmits, the CPU that
    /// sender ran on. The datapath uses that to run next to the sender. Each queue has its own
    /// ring, smaller than a single-queue port's. If the kernel refuses the group the port falls
    /// back to one queue.
    pub fn open_per_cpu(name: &str, queues: usize) -> Result<SystemPort, NetdevError> {
        SystemPort::open_with(name, true, queues.max(1))
    }

    /// [`SystemPort::open_per_cpu`] without receive rings: frames wait in the sockets' receive
    /// queues (up to the 4 MiB buffer, allocated by the kernel only while frames wait) and are
    /// read with `recvmmsg`. For a slow path that carries little because the kernel fast path
    /// carries the bulk: a ring is 256 KiB of memory mapped into rvswitchd per port whether
    /// used or not (256 MiB at 1000 ports).
    pub fn open_per_cpu_copying(name: &str, queues: usize) -> Result<SystemPort, NetdevError> {
        SystemPort::open_with(name, false, queues.max(1))
    }

    /// True if frames are received through the mmap'd ring.
    pub fn has_rx_ring(&self) -> bool {
        self.queues[0].ring.is_some()
    }

    fn open_with(name: &str, want_ring: bool, queues: usize) -> Result<SystemPort, NetdevError> {
        let ifname = IfName::new(name)?;
        // Per-queue ring: the single-queue size split between the queues, at least two blocks.
        let blocks = (ring::BLOCK_NR / queues).max(2);
        let fd = packet_socket(name)?;
        let ifindex = ifindex_on(fd.as_raw_fd(), &ifname, name)?;
        let first = open_rx_queue(name, fd, ifindex, want_ring, blocks)?;
        let mut all = vec![first];
        if queues > 1 {
            // On failure the port keeps its first queue (callers see `rx_queues() == 1`), alone
            // in its group if it got that far — a one-member group delivers everything to it.
            if let Ok(more) = join_per_cpu_group(name, ifindex, want_ring, blocks, queues, &all[0]) {
                all.extend(more);
            }
        }
        let txfd = open_tx_socket(ifindex).map_err(|e| match sys::errno(&e) {
            libc::ENODEV | libc::ENXIO => NetdevError::NoSuchDevice(name.to_owned()),
            _ => NetdevError::io("tx socket", name, e),
        })?;
        set_admin_up_on(all[0].fd.as_raw_fd(), &ifname, name)?;

        Ok(SystemPort {
            queues: all,
            txfd,
            name: name.to_owned(),
            ifindex,
            gone: false,
            rx: RxScratch::new(),
            tx: TxScratch::new(),
        })
    }

    /// Kernel interface index of the device (in the namespace the port was opened in).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The port's descriptors, labelled, for a descriptor store that keeps them open across a
    /// restart (see [`SystemPort::adopt`]).
    pub fn descriptors(&self) -> Vec<adopt::Labelled<'_>> {
        let mut out = vec![adopt::labelled(adopt::TX, &self.txfd)];
        for (q, queue) in self.queues.iter().enumerate() {
            let blocks = queue.ring.as_ref().map_or(0, RxRing::blocks);
            out.push(adopt::labelled(adopt::rx_label(q, blocks), &queue.fd));
        }
        out
    }

    /// Rebuilds port `name` from the descriptors a previous process opened
    /// ([`SystemPort::descriptors`]): no socket is opened, no ring set up, and frames the kernel
    /// queued meanwhile are read first. Fails with [`NetdevError::StaleDescriptors`] if they do
    /// not belong to the device of that name any more.
    pub fn adopt(name: &str, fds: Vec<(String, OwnedFd)>) -> Result<SystemPort, NetdevError> {
        let fds = adopt::sort_system(name, fds)?;
        let ifindex = adopt::bound_ifindex(&fds.tx, name)?;
        adopt::check_same_device(name, ifindex)?;
        let mut queues = Vec::with_capacity(fds.rx.len());
        for (fd, blocks) in fds.rx {
            let ring = match blocks {
                0 => None,
                b => Some(RxRing::adopt(&fd, b).map_err(|e| NetdevError::io("mmap ring", name, e))?),
            };
            queues.push(RxQueue { fd, ring });
        }
        Ok(SystemPort {
            queues,
            txfd: fds.tx,
            name: name.to_owned(),
            ifindex,
            gone: false,
            rx: RxScratch::new(),
            tx: TxScratch::new(),
        })
    }

    /// Decides whether an error that may mean "device unregistered" really does: ENETDOWN is
    /// also what a device merely set down reports.
    fn vanished(&mut self, errno: i32) -> bool {
        let gone = match errno {
            libc::ENODEV | libc::ENXIO => true,
            libc::ENETDOWN => !sys::ifindex_exists(&self.queues[0].fd, self.ifindex),
            _ => false,
        };
        self.gone |= gone;
        gone
    }

    /// Maps a receive error to the trait's contract (see [`Netdev::recv_batch`] below).
    fn rx_error(&mut self, e: std::io::Error) -> Result<usize, NetdevError> {
        match sys::errno(&e) {
            libc::EAGAIN | libc::EINTR | libc::ENOBUFS => Ok(0),
            errno if self.vanished(errno) => Err(NetdevError::DeviceGone(self.name.clone())),
            libc::ENETDOWN => Ok(0),
            _ => Err(NetdevError::io("recv", &self.name, e)),
        }
    }

    /// Takes up to a batch of frames from queue `q`'s ring (the batch was cleared by the
    /// caller).
    fn recv_ring(&mut self, q: usize, batch: &mut RxBatch) -> Result<usize, NetdevError> {
        let queue = &mut self.queues[q];
        let Some(ring) = queue.ring.as_mut() else { return Ok(0) };
        ring.begin(batch);
        let fd = queue.fd.as_raw_fd();
        let mut out = 0;
        let mut err = None;
        // Bounded by the ring size: each round consumes one slot.
        for _ in 0..ring.frame_nr() {
            if out >= batch.capacity() {
                break;
            }
            match ring.next(batch, out) {
                None => break,
                Some(Slot::Frame) => out += 1,
                Some(Slot::Skipped) => {}
                Some(Slot::Copy) => match self.rx.recv_one(fd, batch, out) {
                    Ok(true) => out += 1,
                    Ok(false) => {}
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                },
            }
        }
        batch.set_len(out);
        if out > 0 {
            return Ok(out);
        }
        // Nothing in the ring: a wakeup without frames may carry a socket error (device down
        // or unregistered), which only a syscall reports. Reading it also clears it, so a
        // level-triggered poller does not spin on it.
        let e = err.or_else(|| sys::take_socket_error(&self.queues[q].fd));
        match e {
            Some(e) => self.rx_error(e),
            None => Ok(0),
        }
    }
}

/// `SO_ATTACH_BPF` (not in the libc crate for every target).
const SO_ATTACH_BPF: libc::c_int = 50;

/// Attaches BPF program `prog` as the socket filter of every receive queue of `port`.
fn attach_filter(port: &SystemPort, prog: std::os::fd::BorrowedFd<'_>) -> Result<Option<u32>, NetdevError> {
    let fd: libc::c_int = prog.as_raw_fd();
    for q in &port.queues {
        sys::setsockopt(&q.fd, libc::SOL_SOCKET, SO_ATTACH_BPF, &fd)
            .map_err(|e| NetdevError::io("SO_ATTACH_BPF", &port.name, e))?;
    }
    Ok(Some(port.ifindex))
}

/// A new AF_PACKET socket for `name`'s port. Protocol 0: it receives nothing until `bind`
/// names ETH_P_ALL, so setting up its ring does not have to detach a running socket (an RCU
/// grace period each).
fn packet_socket(name: &str) -> Result<OwnedFd, NetdevError> {
    sys::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, 0)
        .map_err(|e| NetdevError::io("socket(AF_PACKET)", name, e))
}

/// Makes `fd` (from [`packet_socket`]) a receive queue on device `ifindex`: virtio-net headers,
/// optional ring of `blocks` blocks, bound with ETH_P_ALL, promiscuous, outgoing frames ignored,
/// tag metadata on.
fn open_rx_queue(
    name: &str,
    fd: OwnedFd,
    ifindex: u32,
    want_ring: bool,
    blocks: usize,
) -> Result<RxQueue, NetdevError> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    let io = |op| move |e| NetdevError::io(op, name, e);
    // Every frame carries a virtio-net header both ways, so GSO super-frames and partial
    // checksums pass through whole (set before bind so no frame arrives without one).
    sys::setsockopt_int(&fd, sys::SOL_PACKET, sys::PACKET_VNET_HDR, 1).map_err(io("PACKET_VNET_HDR"))?;
    // The ring needs the header option set first. Without a ring (old kernel, no memory)
    // the port still works through recvmmsg.
    let ring = if want_ring { RxRing::setup(&fd, blocks).ok() } else { None };

    // SAFETY: `sockaddr_ll` is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as libc::c_int;
    // SAFETY: `sll` is a valid sockaddr_ll for the advertised length.
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    sys::cvt(bound).map_err(|e| match sys::errno(&e) {
        // The device vanished between the ifindex lookup and bind.
        libc::ENODEV | libc::ENXIO => NetdevError::NoSuchDevice(name.to_owned()),
        _ => NetdevError::io("bind", name, e),
    })?;

    let mreq = PacketMreq {
        mr_ifindex: ifindex as libc::c_int,
        mr_type: sys::PACKET_MR_PROMISC,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    sys::setsockopt(&fd, sys::SOL_PACKET, sys::PACKET_ADD_MEMBERSHIP, &mreq)
        .map_err(io("PACKET_ADD_MEMBERSHIP"))?;
    // Without this every frame we send would come back to us as PACKET_OUTGOING. Kernels
    // before 4.20 lack it; recv also filters PACKET_OUTGOING, so failure is not fatal.
    let _ = sys::setsockopt_int(&fd, sys::SOL_PACKET, sys::PACKET_IGNORE_OUTGOING, 1);
    sys::setsockopt_int(&fd, sys::SOL_PACKET, sys::PACKET_AUXDATA, 1).map_err(io("PACKET_AUXDATA"))?;
    raise_buffers(&fd);
    Ok(RxQueue { fd, ring })
}

/// Puts `first` into a new `PACKET_FANOUT_CPU` group (the kernel picks a free group id) and
/// opens `queues - 1` more receive sockets joined to it, in order: the kernel hands a frame
/// handled on CPU `c` to member `c % queues`, members numbered by join order.
fn join_per_cpu_group(
    name: &str,
    ifindex: u32,
    want_ring: bool,
    blocks: usize,
    queues: usize,
    first: &RxQueue,
) -> Result<Vec<RxQueue>, NetdevError> {
    let io = |op| move |e| NetdevError::io(op, name, e);
    // The group has one packet hook for all members, and a member's own PACKET_IGNORE_OUTGOING
    // does not apply to it: without the group flag every frame we send on the device would be
    // copied back into our queues (a 64 KiB super-frame each time).
    let mode = sys::PACKET_FANOUT_CPU | sys::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
    let unique = (mode | sys::PACKET_FANOUT_FLAG_UNIQUEID) << 16;
    sys::setsockopt_int(&first.fd, sys::SOL_PACKET, sys::PACKET_FANOUT, unique)
        .map_err(io("PACKET_FANOUT"))?;
    let id = sys::getsockopt_int(&first.fd, sys::SOL_PACKET, sys::PACKET_FANOUT)
        .map_err(io("PACKET_FANOUT"))?
        & 0xffff;
    let mut more = Vec::with_capacity(queues - 1);
    for _ in 1..queues {
        let q = open_rx_queue(name, packet_socket(name)?, ifindex, want_ring, blocks)?;
        sys::setsockopt_int(&q.fd, sys::SOL_PACKET, sys::PACKET_FANOUT, id | (mode << 16))
            .map_err(io("PACKET_FANOUT join"))?;
        more.push(q);
    }
    Ok(more)
}

/// The send-only socket of a port: virtio-net headers on, bound to `ifindex` with protocol 0
/// (receives nothing; the kernel takes each frame's protocol from its Ethernet header).
fn open_tx_socket(ifindex: u32) -> std::io::Result<OwnedFd> {
    let fd = sys::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, 0)?;
    sys::setsockopt_int(&fd, sys::SOL_PACKET, sys::PACKET_VNET_HDR, 1)?;
    // SAFETY: `sockaddr_ll` is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_protocol = 0;
    sll.sll_ifindex = ifindex as libc::c_int;
    // SAFETY: `sll` is a valid sockaddr_ll for the advertised length.
    sys::cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    raise_buffers(&fd);
    Ok(fd)
}

/// Raises both socket buffers; the FORCE variants (root only) ignore the sysctl caps. Smaller
/// buffers only cost drops under load, so failures are ignored.
fn raise_buffers(fd: &OwnedFd) {
    for (force, plain) in [(sys::SO_RCVBUFFORCE, libc::SO_RCVBUF), (sys::SO_SNDBUFFORCE, libc::SO_SNDBUF)] {
        if sys::setsockopt_int(fd, libc::SOL_SOCKET, force, SOCKET_BUFFER).is_err() {
            let _ = sys::setsockopt_int(fd, libc::SOL_SOCKET, plain, SOCKET_BUFFER);
        }
    }
}

impl Netdev for SystemPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn raw_fd(&self) -> RawFd {
        self.queues[0].fd.as_raw_fd()
    }

    fn rx_queues(&self) -> usize {
        self.queues.len()
    }

    fn attach_rx_filter(&self, prog: std::os::fd::BorrowedFd<'_>) -> Result<Option<u32>, NetdevError> {
        attach_filter(self, prog)
    }

    fn queue_fd(&self, q: usize) -> RawFd {
        self.queues.get(q).map_or(-1, |x| x.fd.as_raw_fd())
    }

    /// Errors: a device set down reports ENETDOWN once; that is `Ok(0)` here (link state is read
    /// through [`crate::interface_info`]). An unregistered device gives [`NetdevError::DeviceGone`]
    /// on this and every later call.
    fn recv_batch(&mut self, batch: &mut RxBatch) -> Result<usize, NetdevError> {
        self.recv_queue(0, batch)
    }

    fn recv_queue(&mut self, q: usize, batch: &mut RxBatch) -> Result<usize, NetdevError> {
        batch.clear();
        if self.gone {
            return Err(NetdevError::DeviceGone(self.name.clone()));
        }
        let Some(queue) = self.queues.get(q) else { return Ok(0) };
        if queue.ring.is_some() {
            return self.recv_ring(q, batch);
        }
        match self.rx.recv(queue.fd.as_raw_fd(), batch) {
            Ok(n) => Ok(n),
            Err(e) => self.rx_error(e),
        }
    }

    /// Errors: a full queue (EAGAIN/ENOBUFS) or a device that is down (ENETDOWN) ends the batch
    /// with the count so far; an unregistered device gives [`NetdevError::DeviceGone`].
    /// Reads (and resets) PACKET_STATISTICS: frames lost because the ring or queue was full.
    fn take_kernel_drops(&mut self) -> u64 {
        self.queues.iter().map(|q| sys::packet_drops(&q.fd).unwrap_or(0)).sum()
    }

    fn transmit(&mut self, frames: &[TxFrame<'_>]) -> Result<usize, NetdevError> {
        if self.gone {
            return Err(NetdevError::DeviceGone(self.name.clone()));
        }
        let res = self.tx.send(self.txfd.as_raw_fd(), frames);
        let Some(e) = res.stopped_by else {
            return Ok(res.sent);
        };
        match sys::errno(&e) {
            libc::EAGAIN | libc::ENOBUFS | libc::EINTR => Ok(res.sent),
            errno if self.vanished(errno) => Err(NetdevError::DeviceGone(self.name.clone())),
            libc::ENETDOWN => Ok(res.sent),
            _ => Err(NetdevError::io("sendmmsg", &self.name, e)),
        }
    }
}
