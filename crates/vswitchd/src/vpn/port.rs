//! The VPN gateway port's I/O: one UDP socket to the peer, a 250 ms timer for boringtun, and
//! an eventfd for ARP/ND replies made while transmitting (and periodic RAs), all behind one epoll fd that the
//! datapath polls like any port's.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use boringtun::noise::{Tunn, TunnResult};
use ctl::protocol::VpnStatus;
use gateway::{FromTunnel, FromZone, Gateway, Now};
use netdev::{Netdev, NetdevError, RxBatch, TxFrame, VnetHdr, MAX_FRAME, VNET_F_NEEDS_CSUM, VNET_GSO_NONE};
use packet::gso::{segment_tcp, GSO_TCPV4, GSO_TCPV6};
use tracing::{debug, info, warn};

use super::health::Health;
use super::timer::Timer;
use super::VpnShared;
use crate::datapath::sys::{Epoll, EventFd};

/// boringtun's advice: call `update_timers` about every 250 ms.
const TICK: Duration = Duration::from_millis(250);
/// ARP replies waiting for the next receive; more are dropped (a zone flooding ARP).
const MAX_TO_ZONE: usize = 256;
/// Room for WireGuard's header and tag around a packet (and for a 148-byte handshake).
const OVERHEAD: usize = 64;

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
    /// Datagrams that did not authenticate; super-frames we cannot segment (UDP).
    bad_datagrams: u64,
    unsegmented: u64,
    was_up: bool,
    shared: VpnShared,
    /// The zone DHCP server's lease file (None: no server, or nowhere to keep them).
    leases: Option<PathBuf>,
    /// The origin of the gateway's monotonic milliseconds.
    start: Instant,
    /// Scratch for a reply the gateway makes (ARP, DHCP, ICMP error).
    reply: Vec<u8>,
    /// Scratch: a datagram received, boringtun's output, a frame gathered for sending.
    rx: Vec<u8>,
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
            was_up: false,
            shared: VpnShared::default(),
            leases: None,
            start: Instant::now(),
            reply: vec![0; MAX_FRAME],
            rx: vec![0; MAX_FRAME + OVERHEAD],
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

    /// Every 250 ms: boringtun's timers (rekey, keepalive), a handshake while down or idle, status.
    fn tick(&mut self, now: Instant) {
        if let TunnResult::WriteToNetwork(p) = self.tunn.update_timers(&mut self.out) {
            send(&self.sock, p, self.endpoint);
        }
        let up = self.is_up(now);
        // Down: retry a handshake every 5 s; up but silent: probe with one (see `health`).
        let retry = self.health.initiate(now, up);
        let probe = !retry && self.health.probe(now, up);
        if probe {
            debug!(port = self.name, "the peer has been silent for 25 s: probing it with a handshake");
        }
        if retry || probe {
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
        if let Some(n) = self.gw.advertise(clock.ms, &mut self.reply) {
            self.queue_to_zone(n);
        }
        self.gw.expire(clock);
        self.save_leases(clock);
        self.publish(up);
    }

    fn publish(&self, up: bool) {
        let (since, tx, rx, ..) = self.tunn.stats();
        let mut drops: std::collections::BTreeMap<String, u64> =
            self.gw.drops().iter().filter(|(_, n)| *n > 0).map(|(k, n)| (k.to_string(), n)).collect();
        if self.unsegmented > 0 {
            drops.insert(super::UNSEGMENTED.to_string(), self.unsegmented);
        }
        self.shared.set(VpnStatus {
            state: if up { "up" } else { "down" }.to_string(),
            endpoint: self.endpoint.to_string(),
            last_handshake_secs: since.map(|d| d.as_secs()),
            rx_bytes: rx as u64,
            tx_bytes: tx as u64,
            bad_datagrams: self.bad_datagrams,
            drops,
            services: self.gw.service_counters().into_iter().map(|(k, n)| (k.to_string(), n)).collect(),
        });
    }

    /// One datagram from the network: handshake traffic answered, data decrypted and handed to
    /// the gateway, whose frame (or ARP request) lands in `batch`.
    fn datagram(&mut self, len: usize, from: SocketAddr, batch: &mut RxBatch) {
        let res = self.tunn.decapsulate(Some(from.ip()), &self.rx[..len], &mut self.out);
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
        self.health.heard(Instant::now());
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

    /// After a handshake completes boringtun hands back the packets it queued meanwhile.
    fn flush_queued(&mut self) {
        for _ in 0..1024 {
            match self.tunn.decapsulate(None, &[], &mut self.out) {
                TunnResult::WriteToNetwork(p) => send(&self.sock, p, self.endpoint),
                _ => break,
            }
        }
    }

    /// One frame the bridge sent: a TCP (IPv4 or IPv6) super-frame is segmented first (each segment is
    /// encrypted on its own), a partial checksum completed (nothing after us would).
    fn one_frame(&mut self, frame: &mut [u8], vnet: VnetHdr, now: Instant) {
        match vnet.gso_type {
            VNET_GSO_NONE => {
                let (start, off) = (usize::from(vnet.csum_start), usize::from(vnet.csum_offset));
                if vnet.flags & VNET_F_NEEDS_CSUM != 0
                    && packet::csum::complete_partial(frame, start, off).is_err()
                {
                    self.gw.count(gateway::DropReason::Malformed);
                    return;
                }
                self.route_zone_frame(frame, now);
            }
            GSO_TCPV4 | GSO_TCPV6 => {
                let mut seg = std::mem::take(&mut self.seg);
                let mss = usize::from(vnet.gso_size);
                let done = segment_tcp(frame, mss, &mut seg, |s| self.route_zone_frame(s, now));
                if done.is_err() {
                    self.gw.count(gateway::DropReason::Malformed);
                }
                self.seg = seg;
            }
            // UDP super-frames: not segmented yet.
            _ => self.unsegmented += 1,
        }
    }

    /// One complete frame from the zone.
    fn route_zone_frame(&mut self, frame: &mut [u8], now: Instant) {
        let up = self.is_up(now);
        let clock = self.clock(now);
        match self.gw.zone_frame(frame, up, clock, &mut self.reply) {
            FromZone::Reply(n) => {
                self.queue_to_zone(n);
                self.save_leases(clock);
            }
            FromZone::Tunnel(ip) => self.encrypt(ip, now),
            FromZone::Fragments(pieces) => pieces.iter().for_each(|p| self.encrypt(p, now)),
            FromZone::Drop(_) => {}
        }
    }

    /// The gateway's frame of length `n` in `reply` goes to the zone at the next receive.
    fn queue_to_zone(&mut self, n: usize) {
        if self.to_zone.len() < MAX_TO_ZONE {
            self.to_zone.push_back(self.reply[..n].to_vec());
            self.wake.wake();
        }
    }

    fn encrypt(&mut self, ip: &[u8], now: Instant) {
        if let TunnResult::WriteToNetwork(p) = self.tunn.encapsulate(ip, &mut self.out) {
            send(&self.sock, p, self.endpoint);
        }
        self.health.sent(now);
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
        for _ in 0..batch.capacity() {
            if batch.len() >= batch.capacity() {
                break;
            }
            match self.sock.recv_from(&mut self.rx) {
                Ok((len, from)) => self.datagram(len, from, batch),
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => break,
                Err(e) => return Err(NetdevError::Io { op: "recvfrom", dev: self.name.clone(), source: e }),
            }
        }
        Ok(batch.len())
    }

    fn transmit(&mut self, frames: &[TxFrame<'_>]) -> Result<usize, NetdevError> {
        let now = Instant::now();
        let mut frame = std::mem::take(&mut self.frame);
        for f in frames {
            frame.clear();
            for p in f.parts {
                frame.extend_from_slice(p);
            }
            self.one_frame(&mut frame, f.vnet, now);
        }
        self.frame = frame;
        Ok(frames.len())
    }
}

#[cfg(test)]
#[path = "port_tests.rs"]
mod tests;
