//! The VPN gateway port's I/O: one UDP socket to the peer, a 250 ms timer for boringtun, and
//! an eventfd for ARP replies made while transmitting, all behind one epoll fd that the
//! datapath polls like any port's. Both directions are batched: a transmit segments the
//! zone's super-frames once, encrypts every segment straight into the [`Outbox`] and sends
//! them all with one `sendmmsg` (UDP GSO runs); a receive takes many datagrams with one
//! `recvmmsg` and decrypts them in turn.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use boringtun::noise::{Tunn, TunnResult};
use ctl::protocol::VpnStatus;
use gateway::{FromTunnel, FromZone, Gateway, Now};
use netdev::{Netdev, NetdevError, RxBatch, TxFrame, VnetHdr, MAX_FRAME, VNET_F_NEEDS_CSUM};
use packet::gso::{segment_tcp, segment_udp, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4};
use tracing::{debug, info, warn};

use super::health::Health;
use super::mmsg::{UdpReceiver, UdpSender};
use super::outbox::Outbox;
use super::timer::Timer;
use super::VpnShared;
use crate::datapath::sys::{Epoll, EventFd};

/// boringtun's advice: call `update_timers` about every 250 ms.
const TICK: Duration = Duration::from_millis(250);
/// ARP replies waiting for the next receive; more are dropped (a zone flooding ARP).
const MAX_TO_ZONE: usize = 256;
/// Room for WireGuard's header and tag around a packet (and for a 148-byte handshake).
const OVERHEAD: usize = 64;
/// boringtun's data overhead (16-byte header, 16-byte tag) and the size its handshake
/// initiation needs, which `encapsulate` may write instead of the packet.
const DATA_OVERHEAD: usize = 32;
const HANDSHAKE_LEN: usize = 148;
/// Datagrams one `recvmmsg` takes (the batch's room bounds it further).
const RX_SLOTS: usize = 32;

pub struct VpnPort {
    name: String,
    tunn: Tunn,
    gw: Gateway,
    sock: UdpSocket,
    endpoint: SocketAddr,
    health: Health,
    epoll: Epoll,
    timer: Timer,
    wake: EventFd,
    to_zone: VecDeque<Vec<u8>>,
    /// Datagrams that did not authenticate; super-frames we cannot segment (UFO); encrypted
    /// datagrams the socket did not take.
    bad_datagrams: u64,
    unsegmented: u64,
    send_lost: u64,
    was_up: bool,
    shared: VpnShared,
    /// The zone DHCP server's lease file (None: no server, or nowhere to keep them).
    leases: Option<PathBuf>,
    /// The origin of the gateway's monotonic milliseconds.
    start: Instant,
    /// Scratch for a reply the gateway makes (ARP, DHCP, ICMP error).
    reply: Vec<u8>,
    /// Datagrams received in one call; encrypted ones waiting to be sent, and their sender.
    rx: UdpReceiver,
    outbox: Outbox,
    sender: UdpSender,
    /// Scratch: boringtun's output, a frame gathered for sending, a segment.
    out: Vec<u8>,
    frame: Vec<u8>,
    seg: Vec<u8>,
}

impl VpnPort {
    pub fn new(
        name: &str,
        tunn: Tunn,
        gw: Gateway,
        sock: UdpSocket,
        endpoint: SocketAddr,
    ) -> std::io::Result<VpnPort> {
        let epoll = Epoll::new()?;
        let timer = Timer::periodic(TICK)?;
        let wake = EventFd::new()?;
        epoll.add(sock.as_raw_fd(), 0)?;
        epoll.add(timer.raw(), 1)?;
        epoll.add(wake.raw(), 2)?;
        let sender = UdpSender::new(sock.as_raw_fd());
        let mut port = VpnPort {
            name: name.to_string(),
            tunn,
            gw,
            sock,
            endpoint,
            health: Health::default(),
            epoll,
            timer,
            wake,
            to_zone: VecDeque::new(),
            bad_datagrams: 0,
            unsegmented: 0,
            send_lost: 0,
            was_up: false,
            shared: VpnShared::default(),
            leases: None,
            start: Instant::now(),
            reply: vec![0; MAX_FRAME],
            rx: UdpReceiver::new(RX_SLOTS, MAX_FRAME + OVERHEAD),
            outbox: Outbox::default(),
            sender,
            out: vec![0; MAX_FRAME + OVERHEAD],
            frame: Vec::with_capacity(MAX_FRAME),
            seg: vec![0; MAX_FRAME],
        };
        port.tick(Instant::now());
        Ok(port)
    }

    /// Keeps the DHCP server's leases in `path` (written on every change).
    pub fn with_lease_file(mut self, path: PathBuf) -> VpnPort {
        self.leases = Some(path);
        self
    }

    /// Both clocks of the gateway's services at `now`.
    fn clock(&self, now: Instant) -> Now {
        clock(self.start, now)
    }

    /// Writes the leases when they changed: to a temporary file renamed over the old one, so
    /// a crash leaves the old or the new file, never half of one.
    fn save_leases(&mut self, now: Now) {
        if !self.gw.take_leases_changed() {
            return;
        }
        let (Some(path), Some(server)) = (&self.leases, self.gw.dhcp()) else { return };
        let tmp = path.with_extension("tmp");
        let done = std::fs::write(&tmp, server.save(now.unix)).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = done {
            warn!(port = self.name, file = %path.display(), "saving DHCP leases failed: {e}");
        }
    }

    /// The status the reconciler reads.
    pub fn shared(&self) -> VpnShared {
        self.shared.clone()
    }

    fn is_up(&self, now: Instant) -> bool {
        self.health.is_up(now, self.tunn.time_since_last_handshake())
    }

    /// Every 250 ms: boringtun's timers (rekey, keepalive), a handshake while down, status.
    fn tick(&mut self, now: Instant) {
        if let TunnResult::WriteToNetwork(p) = self.tunn.update_timers(&mut self.out) {
            send(&self.sock, p, self.endpoint);
        }
        let up = self.is_up(now);
        if self.health.initiate(now, up) {
            if let TunnResult::WriteToNetwork(p) = self.tunn.format_handshake_initiation(&mut self.out, true)
            {
                send(&self.sock, p, self.endpoint);
            }
        }
        if up != self.was_up {
            info!(port = self.name, endpoint = %self.endpoint, "VPN tunnel {}", if up { "up" } else { "down" });
            self.was_up = up;
        }
        let clock = self.clock(now);
        self.gw.expire(clock);
        self.save_leases(clock);
        self.publish(up);
    }

    fn publish(&self, up: bool) {
        let (since, tx, rx, ..) = self.tunn.stats();
        let mut drops: std::collections::BTreeMap<String, u64> =
            self.gw.drops().iter().filter(|(_, n)| *n > 0).map(|(k, n)| (k.to_string(), n)).collect();
        for (reason, n) in [(super::UNSEGMENTED, self.unsegmented), (super::SEND_LOST, self.send_lost)] {
            if n > 0 {
                drops.insert(reason.to_string(), n);
            }
        }
        self.shared.set(VpnStatus {
            state: if up { "up" } else { "down" }.to_string(),
            endpoint: self.endpoint.to_string(),
            last_handshake_secs: since.map(|d| d.as_secs()),
            rx_bytes: rx as u64,
            tx_bytes: tx as u64,
            bad_datagrams: self.bad_datagrams,
            drops,
        });
    }

    /// One datagram from the network: handshake traffic answered, data decrypted and handed to
    /// the gateway, whose frame (or ARP request) lands in `batch`.
    fn datagram(&mut self, datagram: &[u8], from: SocketAddr, batch: &mut RxBatch) {
        let res = self.tunn.decapsulate(Some(from.ip()), datagram, &mut self.out);
        let packet = match res {
            TunnResult::Err(e) => {
                debug!(port = self.name, %from, "dropped a datagram: {e:?}");
                self.bad_datagrams += 1;
                return;
            }
            TunnResult::Done => None,
            TunnResult::WriteToNetwork(p) => {
                // A handshake answer (or cookie) goes back where the message came from.
                send(&self.sock, p, from);
                self.flush_queued();
                None
            }
            TunnResult::WriteToTunnelV4(p, _) | TunnResult::WriteToTunnelV6(p, _) => Some(p),
        };
        self.health.heard();
        let Some(packet) = packet else { return };
        // Roaming (whitepaper §2.1): the peer is where its last authenticated data came from.
        self.endpoint = from;
        let now = clock(self.start, Instant::now());
        let gw = &mut self.gw;
        batch.push_with(|slot| match gw.tunnel_packet(packet, now, slot) {
            FromTunnel::Frame(n) | FromTunnel::Resolve(n) => Some(n),
            FromTunnel::Drop(_) => None,
        });
    }

    /// One `recvmmsg` of up to `room` datagrams, each handled in turn; false when none waited
    /// (or fewer than asked: the socket is drained).
    fn recv_datagrams(&mut self, room: usize, batch: &mut RxBatch) -> Result<bool, NetdevError> {
        let mut rx = std::mem::replace(&mut self.rx, UdpReceiver::new(0, 0));
        let got = rx.recv(self.sock.as_raw_fd(), room.min(RX_SLOTS));
        let n = match got {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => 0,
            Err(e) => {
                self.rx = rx;
                return Err(NetdevError::Io { op: "recvmmsg", dev: self.name.clone(), source: e });
            }
        };
        for i in 0..n {
            match rx.datagram(i) {
                (d, Some(from), false) => self.datagram(d, from, batch),
                _ => self.bad_datagrams += 1,
            }
        }
        self.rx = rx;
        Ok(n == room.min(RX_SLOTS))
    }

    /// After a handshake completes boringtun hands back the packets it queued meanwhile.
    fn flush_queued(&mut self) {
        for _ in 0..1024 {
            match self.tunn.decapsulate(None, &[], &mut self.out) {
                TunnResult::WriteToNetwork(p) => send(&self.sock, p, self.endpoint),
                _ => break,
            }
        }
    }

    /// One complete frame the bridge sent (no GSO): a partial checksum completed (nothing
    /// after us would), then routed.
    fn one_frame(&mut self, frame: &mut [u8], vnet: VnetHdr, now: Instant) {
        let (start, off) = (usize::from(vnet.csum_start), usize::from(vnet.csum_offset));
        if vnet.flags & VNET_F_NEEDS_CSUM != 0 && packet::csum::complete_partial(frame, start, off).is_err() {
            self.gw.count(gateway::DropReason::Malformed);
            return;
        }
        self.route_zone_frame(frame, now);
    }

    /// A super-frame: segmented once (each segment is encrypted on its own), straight from the
    /// bridge's buffer. TCP over IPv4 and IPv6, and UDP (`UDP_SEGMENT` senders); the old UDP
    /// fragmentation offload is not segmented but counted.
    fn super_frame(&mut self, frame: &[u8], vnet: VnetHdr, now: Instant) {
        let size = usize::from(vnet.gso_size);
        let mut seg = std::mem::take(&mut self.seg);
        let done = match vnet.gso_type & 0x7f {
            GSO_TCPV4 | GSO_TCPV6 => segment_tcp(frame, size, &mut seg, |s| self.route_zone_frame(s, now)),
            GSO_UDP_L4 => segment_udp(frame, size, &mut seg, |s| self.route_zone_frame(s, now)),
            _ => {
                self.unsegmented += 1;
                Ok(0)
            }
        };
        if done.is_err() {
            self.gw.count(gateway::DropReason::Malformed);
        }
        self.seg = seg;
    }

    /// One complete frame from the zone.
    fn route_zone_frame(&mut self, frame: &mut [u8], now: Instant) {
        let up = self.is_up(now);
        let clock = self.clock(now);
        match self.gw.zone_frame(frame, up, clock, &mut self.reply) {
            FromZone::Reply(n) => {
                if self.to_zone.len() < MAX_TO_ZONE {
                    self.to_zone.push_back(self.reply[..n].to_vec());
                    self.wake.wake();
                }
                self.save_leases(clock);
            }
            FromZone::Tunnel(ip) => self.encrypt(ip, now),
            FromZone::Fragments(pieces) => pieces.iter().for_each(|p| self.encrypt(p, now)),
            FromZone::Drop(_) => {}
        }
    }

    /// Encrypts `ip` straight into the outbox (flushed first when full); sent at the end of
    /// the transmit.
    fn encrypt(&mut self, ip: &[u8], now: Instant) {
        let need = (ip.len() + DATA_OVERHEAD).max(HANDSHAKE_LEN);
        if self.outbox.space(need).is_none() {
            self.flush();
        }
        let Some(dst) = self.outbox.space(need) else { return };
        // boringtun writes the datagram (or a handshake initiation) at the start of `dst`.
        if let TunnResult::WriteToNetwork(p) = self.tunn.encapsulate(ip, dst) {
            let n = p.len();
            self.outbox.commit(n);
        }
        self.health.sent(now);
    }

    /// Sends what the outbox holds to the peer.
    fn flush(&mut self) {
        if !self.outbox.is_empty() {
            self.send_lost += self.outbox.flush(&mut self.sender, self.endpoint).dropped as u64;
        }
    }
}

/// Both clocks at `now`: milliseconds since `start`, and the wall clock's seconds.
fn clock(start: Instant, now: Instant) -> Now {
    let ms = now.saturating_duration_since(start).as_millis() as u64;
    let unix = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Now { ms, unix }
}

/// Sends one datagram; a full socket buffer or an unreachable peer loses it, as a wire would
/// (WireGuard's timers recover).
fn send(sock: &UdpSocket, p: &[u8], to: SocketAddr) {
    if let Err(e) = sock.send_to(p, to) {
        if e.kind() != ErrorKind::WouldBlock {
            debug!(%to, "WireGuard send failed: {e}");
        }
    }
}

impl Netdev for VpnPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn raw_fd(&self) -> RawFd {
        self.epoll.raw()
    }

    fn recv_batch(&mut self, batch: &mut RxBatch) -> Result<usize, NetdevError> {
        batch.clear();
        if self.timer.fired() {
            self.tick(Instant::now());
        }
        self.wake.drain();
        while batch.len() < batch.capacity() {
            let Some(f) = self.to_zone.pop_front() else { break };
            batch.push_with(|slot| slot.get_mut(..f.len()).map(|s| s.copy_from_slice(&f)).map(|()| f.len()));
        }
        if !self.to_zone.is_empty() {
            self.wake.wake();
        }
        // Each datagram gives at most one frame; a few rounds while the room lasts.
        for _ in 0..4 {
            let room = batch.capacity() - batch.len();
            if room == 0 || !self.recv_datagrams(room, batch)? {
                break;
            }
        }
        Ok(batch.len())
    }

    fn transmit(&mut self, frames: &[TxFrame<'_>]) -> Result<usize, NetdevError> {
        let now = Instant::now();
        let mut frame = std::mem::take(&mut self.frame);
        for f in frames {
            if f.vnet.is_gso() && f.parts.len() == 1 {
                self.super_frame(&f.parts[0], f.vnet, now);
                continue;
            }
            frame.clear();
            for p in f.parts {
                frame.extend_from_slice(p);
            }
            if f.vnet.is_gso() {
                self.super_frame(&frame, f.vnet, now);
            } else {
                self.one_frame(&mut frame, f.vnet, now);
            }
        }
        self.frame = frame;
        self.flush();
        Ok(frames.len())
    }
}

#[cfg(test)]
#[path = "port_tests.rs"]
mod tests;
