//! A zone's gateway port over any [`Transport`]: frames the bridge sends it go through the
//! pure [`gateway::Gateway`] into the tunnel; packets from the tunnel come back as frames for
//! the zone. Besides the transport's descriptor it polls a 250 ms timer (the transport's
//! timers, status, periodic RAs) and an eventfd for ARP/ND/DHCP replies made while
//! transmitting, all behind one epoll fd that the datapath polls like any port's.
//!
//! A transmit segments the zone's super-frames here, once, for every transport (TCP over IPv4
//! and IPv6, UDP), hands each packet to [`Transport::send`] and ends with one
//! [`Transport::flush`], so a transport may batch its sends (WireGuard: one `sendmmsg`).

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use ctl::protocol::VpnStatus;
use gateway::{FromTunnel, FromZone, Gateway, Now};
use netdev::{Netdev, NetdevError, RxBatch, TxFrame, VnetHdr, MAX_FRAME, VNET_F_NEEDS_CSUM};
use packet::gso::{segment_tcp, segment_udp, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4};
use tracing::{info, warn};

use super::timer::Timer;
use super::transport::Transport;
use super::VpnShared;
use crate::datapath::sys::{Epoll, EventFd};

/// boringtun's advice: call `update_timers` about every 250 ms; a tun device's state is read
/// as often.
const TICK: Duration = Duration::from_millis(250);
/// ARP replies waiting for the next receive; more are dropped (a zone flooding ARP).
const MAX_TO_ZONE: usize = 256;
/// How often the gateway announces itself (gratuitous ARP): well inside the shortest MAC
/// aging time OvS allows (15 s), so the bridge always knows where the gateway's MAC is.
const ANNOUNCE: Duration = Duration::from_secs(10);
/// Epoll tokens.
const TOKEN_TUNNEL: u64 = 0;

pub struct GatewayPort<T: Transport> {
    name: String,
    pub(super) uplink: T,
    pub(super) gw: Gateway,
    epoll: Epoll,
    timer: Timer,
    wake: EventFd,
    to_zone: VecDeque<Vec<u8>>,
    /// Super-frames we cannot segment (UDP fragmentation offload, an unknown GSO type).
    unsegmented: u64,
    was_up: bool,
    /// When the gateway last announced itself (None: not yet).
    announced: Option<Instant>,
    shared: VpnShared,
    /// The zone DHCP server's lease file (None: no server, or nowhere to keep them).
    leases: Option<PathBuf>,
    /// The origin of the gateway's monotonic milliseconds.
    start: Instant,
    /// Scratch for a reply the gateway makes (ARP, DHCP, ICMP error).
    reply: Vec<u8>,
    /// Scratch: a frame gathered for sending, a segment of a super-frame.
    frame: Vec<u8>,
    seg: Vec<u8>,
}

impl<T: Transport> GatewayPort<T> {
    pub fn new(name: &str, uplink: T, gw: Gateway) -> std::io::Result<GatewayPort<T>> {
        let epoll = Epoll::new()?;
        let timer = Timer::periodic(TICK)?;
        let wake = EventFd::new()?;
        if let Some(fd) = uplink.poll_fd() {
            epoll.add(fd, TOKEN_TUNNEL)?;
        }
        epoll.add(timer.raw(), 1)?;
        epoll.add(wake.raw(), 2)?;
        let mut port = GatewayPort {
            name: name.to_string(),
            uplink,
            gw,
            epoll,
            timer,
            wake,
            to_zone: VecDeque::new(),
            unsegmented: 0,
            was_up: false,
            announced: None,
            shared: VpnShared::default(),
            leases: None,
            start: Instant::now(),
            reply: vec![0; MAX_FRAME],
            frame: Vec::with_capacity(MAX_FRAME),
            seg: vec![0; MAX_FRAME],
        };
        port.tick(Instant::now());
        Ok(port)
    }

    /// Keeps the DHCP server's leases in `path` (written on every change).
    pub fn with_lease_file(mut self, path: PathBuf) -> GatewayPort<T> {
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

    pub(super) fn is_up(&self, now: Instant) -> bool {
        self.uplink.is_up(now)
    }

    /// Every 250 ms: the transport's timers (a reopened tun joins the poll set), status.
    fn tick(&mut self, now: Instant) {
        if let Some(fd) = self.uplink.tick(now) {
            if let Err(e) = self.epoll.add(fd, TOKEN_TUNNEL) {
                warn!(port = self.name, "cannot poll the reopened tunnel: {e}");
            }
        }
        self.follow_device();
        let up = self.is_up(now);
        if up != self.was_up {
            let endpoint = self.uplink.endpoint();
            info!(port = self.name, endpoint, "VPN tunnel {}", if up { "up" } else { "down" });
            self.was_up = up;
        }
        self.announce(now);
        let clock = self.clock(now);
        if let Some(n) = self.gw.advertise(clock.ms, &mut self.reply) {
            self.queue_to_zone(n);
        }
        self.gw.expire(clock);
        self.save_leases(clock);
        self.publish(up);
    }

    /// The zone follows what the VPN client changed on its device since the last tick (read
    /// by the transport once per tick, not per packet): the MTU (fragmentation, ICMP errors,
    /// MSS clamp, RAs, DHCP's option 26) and, in NAT mode, the address new flows leave as.
    fn follow_device(&mut self) {
        let Some(facts) = self.uplink.device_facts() else { return };
        if let Some(mtu) = facts.mtu {
            let mtu = u16::try_from(mtu).unwrap_or(u16::MAX);
            let old = self.gw.spec().mtu;
            if self.gw.set_mtu(mtu) {
                info!(
                    port = self.name,
                    old,
                    new = self.gw.spec().mtu,
                    "tunnel MTU changed; the zone follows"
                );
            }
        }
        let old = self.gw.nat().map(|n| n.config().public);
        if let Some(dropped) = self.gw.set_nat_address(facts.ipv4) {
            let new = facts.ipv4.map_or("none".to_string(), |a| a.to_string());
            info!(
                port = self.name,
                old = ?old,
                new,
                dropped,
                "tunnel address changed: new flows leave as the new one; the old one's translations are dropped"
            );
        }
    }

    /// A gratuitous ARP to the zone at start and every [`ANNOUNCE`] (see `Gateway::announce`).
    fn announce(&mut self, now: Instant) {
        if self.announced.is_some_and(|t| now.saturating_duration_since(t) < ANNOUNCE) {
            return;
        }
        self.announced = Some(now);
        if let Some(n) = self.gw.announce(&mut self.reply) {
            self.queue_to_zone(n);
        }
    }

    /// Queues the reply scratch's first `n` bytes for the zone (bounded) and wakes the poller.
    fn queue_to_zone(&mut self, n: usize) {
        if self.to_zone.len() < MAX_TO_ZONE {
            self.to_zone.push_back(self.reply[..n].to_vec());
            self.wake.wake();
        }
    }

    fn publish(&self, up: bool) {
        let st = self.uplink.stats();
        let mut drops: std::collections::BTreeMap<String, u64> =
            self.gw.drops().iter().filter(|(_, n)| *n > 0).map(|(k, n)| (k.to_string(), n)).collect();
        for (reason, n) in [(super::UNSEGMENTED, self.unsegmented), (super::SEND_LOST, st.send_lost)] {
            if n > 0 {
                drops.insert(reason.to_string(), n);
            }
        }
        self.shared.set(VpnStatus {
            transport: self.uplink.kind().to_string(),
            state: if up { "up" } else { "down" }.to_string(),
            endpoint: self.uplink.endpoint(),
            last_handshake_secs: st.since_handshake.map(|d| d.as_secs()),
            rx_bytes: st.rx_bytes,
            tx_bytes: st.tx_bytes,
            bad_datagrams: st.bad_datagrams,
            drops,
            services: self.gw.service_counters().into_iter().map(|(k, n)| (k.to_string(), n)).collect(),
            mtu: Some(u32::from(self.gw.spec().mtu)),
        });
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

    /// A super-frame: segmented once (each segment enters the tunnel on its own), straight
    /// from the bridge's buffer. TCP over IPv4 and IPv6 (the ECN bit on the type does not
    /// change the cut), and UDP (`UDP_SEGMENT` senders); the old UDP fragmentation offload is
    /// not segmented but counted.
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
                self.queue_to_zone(n);
                self.save_leases(clock);
            }
            FromZone::Tunnel(ip) => self.uplink.send(ip, now),
            FromZone::Fragments(pieces) => pieces.iter().for_each(|p| self.uplink.send(p, now)),
            FromZone::Drop(_) => {}
        }
    }

    /// Packets from the tunnel become frames for the zone (or ARP requests for their VM).
    fn receive_from_tunnel(&mut self, batch: &mut RxBatch) -> Result<(), NetdevError> {
        let room = batch.capacity() - batch.len();
        let now = clock(self.start, Instant::now());
        let gw = &mut self.gw;
        self.uplink.recv(room, &mut |packet| {
            batch.push_with(|slot| match gw.tunnel_packet(packet, now, slot) {
                FromTunnel::Frame(n) | FromTunnel::Resolve(n) => Some(n),
                FromTunnel::Drop(_) => None,
            });
        })
    }
}

/// Both clocks at `now`: milliseconds since `start`, and the wall clock's seconds.
fn clock(start: Instant, now: Instant) -> Now {
    let ms = now.saturating_duration_since(start).as_millis() as u64;
    let unix = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Now { ms, unix }
}

impl<T: Transport> Netdev for GatewayPort<T> {
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
        if batch.len() < batch.capacity() {
            self.receive_from_tunnel(batch)?;
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
        self.uplink.flush();
        Ok(frames.len())
    }
}

#[cfg(test)]
#[path = "port_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "port_transport_tests.rs"]
mod transport_tests;
