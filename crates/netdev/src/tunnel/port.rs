//! A tunnel port: a port of its bridge like any other (a pollable fd, batched receive and
//! send), whose "device" is a remote host reached over UDP. Receive takes the inner frames of
//! datagrams from its remote with its VNI; transmit wraps frames in the outer headers, finishing
//! checksums and cutting TCP super-frames in software first (the underlay sees only UDP).

use std::io::IoSlice;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use packet::csum::complete_partial;
use packet::gso::{segment_tcp, GSO_TCPV4, GSO_TCPV6};
use packet::tunnel::{decap, emit_outer, source_port, OuterSpec, OUTER_LEN};

use super::config::{max_inner_frame, underlay_mtu_problem, TunnelConfig};
use super::endpoint::{Delivery, Endpoint, EndpointKey, Inbox, Route, TunnelEndpoints};
use super::underlay::{probe, Path, RawSender};
use crate::batch::{RxBatch, MAX_FRAME};
use crate::error::NetdevError;
use crate::vnet::{VnetHdr, VNET_F_NEEDS_CSUM, VNET_HDR_LEN};
use crate::{sys, Labelled, Netdev, TxFrame};

/// Where a datagram is received in a slot's area: its 8-byte tunnel header then ends exactly
/// where the frame must start (after the virtio-net header), so VXLAN needs no copy.
const RX_AT: usize = VNET_HDR_LEN - packet::vxlan::HEADER_LEN;

/// An open tunnel port.
pub struct TunnelPort {
    name: String,
    cfg: TunnelConfig,
    me: Route,
    endpoint: Arc<Endpoint>,
    inbox: Arc<Inbox>,
    /// Watches the shared socket and our inbox: the fd the datapath polls.
    poll: OwnedFd,
    tx: Encap,
    /// A frame flattened from its gather list, and one segment of it.
    frame: Vec<u8>,
    segment: Vec<u8>,
}

/// What became of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    Ok,
    /// Larger than the underlay carries: dropped, counted as too big.
    TooBig,
    /// Not sendable (unsupported offload, malformed) or the send failed.
    Failed,
}

impl Sent {
    /// The outcome of a frame sent as several segments: the worst of theirs.
    fn and(self, other: Sent) -> Sent {
        match (self, other) {
            (Sent::Ok, o) | (o, Sent::Ok) => o,
            (Sent::TooBig, _) | (_, Sent::TooBig) => Sent::TooBig,
            _ => Sent::Failed,
        }
    }
}

/// The transmit side, apart from the buffers so both can be borrowed at once.
struct Encap {
    cfg: TunnelConfig,
    path: Path,
    raw: RawSender,
    max_frame: usize,
    too_big: u64,
}

impl TunnelPort {
    /// Opens port `name`: joins (or opens) the socket for its local address and port, and asks
    /// the route to the remote for our source address and the underlay MTU.
    pub fn open(
        name: &str,
        cfg: TunnelConfig,
        endpoints: &TunnelEndpoints,
    ) -> Result<TunnelPort, NetdevError> {
        let path = probe(cfg.remote, cfg.dst_port, cfg.local)
            .map_err(|e| NetdevError::Tunnel(format!("no route to remote_ip {}: {e}", cfg.remote)))?;
        let raw = RawSender::open().map_err(|e| NetdevError::io("socket(SOCK_RAW)", name, e))?;
        let key = EndpointKey { local: cfg.local, port: cfg.dst_port };
        let endpoint = endpoints.get(key, cfg.proto)?;
        let me = Route { remote: cfg.remote, vni: cfg.vni };
        let inbox = endpoint.join(me).map_err(NetdevError::Tunnel)?;
        let poll = port_poll(&endpoint, &inbox).map_err(|e| {
            endpoint.leave(me);
            NetdevError::io("epoll", name, e)
        })?;
        let max_frame = max_inner_frame(path.mtu);
        Ok(TunnelPort {
            name: name.to_string(),
            cfg,
            me,
            endpoint,
            inbox,
            poll,
            tx: Encap { cfg, path, raw, max_frame, too_big: 0 },
            frame: Vec::with_capacity(MAX_FRAME),
            segment: vec![0; MAX_FRAME],
        })
    }

    pub fn config(&self) -> &TunnelConfig {
        &self.cfg
    }

    /// The underlay path MTU found at open.
    pub fn underlay_mtu(&self) -> u32 {
        self.tx.path.mtu
    }

    /// Our source address on the underlay.
    pub fn source_ip(&self) -> Ipv4Addr {
        self.tx.path.src
    }

    /// What Interface `error` should say about the underlay (too small an MTU), if anything.
    pub fn underlay_problem(&self) -> Option<String> {
        underlay_mtu_problem(self.cfg.proto, self.tx.path.mtu)
    }

    /// Frames dropped because they do not fit the underlay, since the last call.
    pub fn take_too_big(&mut self) -> u64 {
        std::mem::take(&mut self.tx.too_big)
    }

    /// Tunnel ports keep no descriptors across restarts (the socket is rebound).
    pub fn descriptors(&self) -> Vec<Labelled<'_>> {
        Vec::new()
    }

    /// Moves the inner frame at `area[from..from + len]` to where a frame starts, behind a
    /// plain virtio-net header, and records it as frame `out`.
    fn place(batch: &mut RxBatch, out: usize, from: usize, len: usize) -> bool {
        let Some(area) = batch.rx_area(out) else { return false };
        if from != VNET_HDR_LEN {
            area.copy_within(from..from + len, VNET_HDR_LEN);
        }
        area[..VNET_HDR_LEN].copy_from_slice(&VnetHdr::default().to_bytes());
        batch.set_frame(out, out, VNET_HDR_LEN + len, None)
    }

    fn recv_inbox(&mut self, batch: &mut RxBatch, mut n: usize) -> usize {
        while n < batch.capacity() {
            let Some(f) = self.inbox.pop() else { break };
            let Some(area) = batch.rx_area(n) else { break };
            if f.len() > area.len() - VNET_HDR_LEN {
                continue;
            }
            area[VNET_HDR_LEN..VNET_HDR_LEN + f.len()].copy_from_slice(&f);
            if Self::place(batch, n, VNET_HDR_LEN, f.len()) {
                n += 1;
            }
        }
        n
    }

    /// Reads datagrams from the shared socket: ours into the batch, others' to their inboxes.
    fn recv_socket(&mut self, batch: &mut RxBatch, mut n: usize) -> Result<usize, NetdevError> {
        // Bounded: at most one batch of reads, whoever they are for.
        for _ in 0..batch.capacity() {
            if n >= batch.capacity() {
                break;
            }
            let Some(area) = batch.rx_area(n) else { break };
            let (len, from) = match self.endpoint.sock.recv_from(&mut area[RX_AT..]) {
                Ok(r) => r,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    break
                }
                // Report the frames we have; the error recurs on the next call.
                Err(_) if n > 0 => break,
                Err(e) => return Err(NetdevError::io("recvfrom", &self.name, e)),
            };
            let dgram = &area[RX_AT..RX_AT + len];
            let (SocketAddr::V4(from), Ok(d)) = (from, decap(self.endpoint.proto, dgram)) else {
                self.endpoint.strays.fetch_add(1, Relaxed);
                continue;
            };
            let route = Route { remote: *from.ip(), vni: d.vni };
            let inner = RX_AT + d.inner_offset..RX_AT + len;
            match self.endpoint.deliver(route, self.me, &area[inner.clone()]) {
                Delivery::Mine => {
                    if Self::place(batch, n, inner.start, inner.len()) {
                        n += 1;
                    }
                }
                Delivery::Other | Delivery::Stray => {}
            }
        }
        Ok(n)
    }
}

/// An epoll instance over the shared socket and the port's inbox: one fd, readable when either
/// is (epoll instances nest).
fn port_poll(endpoint: &Endpoint, inbox: &Inbox) -> std::io::Result<OwnedFd> {
    // SAFETY: no pointers; a non-negative result is a fresh fd we own.
    let fd = sys::cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: fd is valid and owned by nobody else.
    let ep = unsafe { OwnedFd::from_raw_fd(fd) };
    for watched in [endpoint.sock.as_raw_fd(), inbox.event.as_raw_fd()] {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: watched as u64 };
        // SAFETY: `ev` is a live epoll_event; both fds are open for the call.
        sys::cvt(unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, watched, &mut ev) })?;
    }
    Ok(ep)
}

impl Drop for TunnelPort {
    fn drop(&mut self) {
        self.endpoint.leave(self.me);
    }
}

impl Encap {
    /// Sends one complete inner frame.
    fn send(&self, inner: &[u8]) -> Sent {
        if inner.len() > self.max_frame {
            return Sent::TooBig;
        }
        let (tos, ttl) = self.cfg.outer_tos_ttl(inner);
        let spec = OuterSpec {
            proto: self.cfg.proto,
            vni: self.cfg.vni,
            src: self.path.src,
            dst: self.cfg.remote,
            src_port: source_port(inner),
            dst_port: self.cfg.dst_port,
            tos,
            ttl,
            df: self.cfg.df,
            udp_csum: self.cfg.csum,
        };
        let mut hdr = [0u8; OUTER_LEN];
        if emit_outer(&mut hdr, &spec, &[inner]).is_err() {
            return Sent::TooBig;
        }
        match self.raw.send(self.cfg.remote, &[IoSlice::new(&hdr), IoSlice::new(inner)]) {
            Ok(()) => Sent::Ok,
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => Sent::TooBig,
            Err(_) => Sent::Failed,
        }
    }

    /// Sends `frame` with its offload state resolved: a super-frame as segments, a partial
    /// checksum completed.
    fn send_offloaded(&self, frame: &mut [u8], vnet: VnetHdr, segment: &mut [u8]) -> Sent {
        if vnet.is_gso() {
            let gso = vnet.gso_type & 0x7f;
            if gso != GSO_TCPV4 && gso != GSO_TCPV6 {
                return Sent::Failed; // UDP fragmentation offload: never negotiated by our ports
            }
            let mut all = Sent::Ok;
            let r =
                segment_tcp(frame, usize::from(vnet.gso_size), segment, |seg| all = all.and(self.send(seg)));
            return if r.is_ok() { all } else { Sent::Failed };
        }
        if vnet.flags & VNET_F_NEEDS_CSUM != 0
            && complete_partial(frame, usize::from(vnet.csum_start), usize::from(vnet.csum_offset)).is_err()
        {
            return Sent::Failed;
        }
        self.send(frame)
    }
}

impl Netdev for TunnelPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn raw_fd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }

    fn recv_batch(&mut self, batch: &mut RxBatch) -> Result<usize, NetdevError> {
        batch.clear();
        let n = self.recv_inbox(batch, 0);
        let n = self.recv_socket(batch, n)?;
        batch.set_len(n);
        Ok(n)
    }

    fn transmit(&mut self, frames: &[TxFrame<'_>]) -> Result<usize, NetdevError> {
        let mut sent = 0;
        for f in frames {
            self.frame.clear();
            for p in f.parts {
                self.frame.extend_from_slice(p);
            }
            match self.tx.send_offloaded(&mut self.frame, f.vnet, &mut self.segment) {
                Sent::Ok => sent += 1,
                Sent::TooBig => self.tx.too_big += 1,
                Sent::Failed => {}
            }
        }
        Ok(sent)
    }

    fn take_kernel_drops(&mut self) -> u64 {
        self.inbox.dropped.swap(0, Relaxed)
    }

    fn take_oversize_drops(&mut self) -> u64 {
        self.take_too_big()
    }
}
