//! The gateway between a zone (Ethernet frames on its VLAN) and its tunnel (IP packets): it
//! answers ARP (and, with `subnet6`, neighbor discovery: see [`crate::v6`]) for the gateway, routes what the VMs send to the gateway MAC into the
//! tunnel when the destination is in the peer's AllowedIPs, and frames what the tunnel returns
//! for the VM that owns the address. While the tunnel is down it routes nothing (`vpn-down`).
//! On the way it applies the zone's IP services (see [`crate::services`]): MSS clamping and
//! ICMP "too big" errors or fragmentation for the tunnel MTU, the DHCP server, NAT.

use std::net::{IpAddr, Ipv4Addr};

use packet::ttl::{self, Hop};
use packet::{arp, ipv4, ArpSpec, EthernetHeader, FrameSpec, MacAddr};
use packet::{ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

use crate::services::{Egress, Now, Services, Size};
use crate::{DropReason, Drops, GatewayV6, Neighbours, Prefix};

/// The gateway's place in the zone and what lies behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewaySpec {
    pub mac: MacAddr,
    /// The address the VMs use as their default gateway.
    pub ip: Ipv4Addr,
    /// The zone's subnet (the VMs' addresses; what the office routes to us).
    pub subnet: Prefix,
    /// Destinations the tunnel carries (the peer's AllowedIPs).
    pub allowed: Vec<Prefix>,
    /// The tunnel's MTU (wg-quick `MTU`, default [`crate::DEFAULT_TUNNEL_MTU`]): bigger packets
    /// are fragmented or answered with ICMP errors, TCP MSS is clamped to fit it.
    pub mtu: u16,
    /// Routed IPv6 (the zone's `subnet6` and `gateway6`); None: the zone drops all IPv6.
    pub v6: Option<GatewayV6>,
}

/// The smallest tunnel MTU the gateway works with: IPv4's minimum datagram every link must
/// carry whole (RFC 791), also the tun driver's floor.
pub const MIN_MTU: u16 = 68;

/// What to do with a frame from the zone.
#[derive(Debug, PartialEq, Eq)]
pub enum FromZone<'a> {
    /// Send the frame of this length written to `out` back into the zone (an ARP or DHCP
    /// reply, an ICMP error about a packet too big for the tunnel).
    Reply(usize),
    /// Encrypt this IP packet (a slice of the input, TTL already decremented) into the tunnel.
    Tunnel(&'a [u8]),
    /// Encrypt each of these IPv4 fragments of the packet into the tunnel.
    Fragments(Vec<Vec<u8>>),
    Drop(DropReason),
}

/// What to do with a packet that came out of the tunnel.
#[derive(Debug, PartialEq, Eq)]
pub enum FromTunnel {
    /// Send the frame of this length written to `out` into the zone.
    Frame(usize),
    /// The VM's MAC is unknown: the packet is dropped (`no-neighbour`) and the ARP request of
    /// this length written to `out` goes into the zone instead.
    Resolve(usize),
    Drop(DropReason),
}

pub struct Gateway {
    pub(crate) spec: GatewaySpec,
    pub(crate) neighbours: Neighbours,
    drops: Drops,
    pub(crate) services: Services,
    /// When the next unsolicited Router Advertisement is due (monotonic ms).
    pub(crate) next_advert_ms: u64,
    /// The IPv6 DNS servers the RAs name ([`Gateway::with_dns6`]).
    pub(crate) dns6: Vec<std::net::Ipv6Addr>,
}

impl Gateway {
    pub fn new(spec: GatewaySpec) -> Gateway {
        let services = Services::new(spec.mtu, spec.ip, spec.mac);
        Gateway {
            spec,
            neighbours: Neighbours::default(),
            drops: Drops::default(),
            services,
            next_advert_ms: 0,
            dns6: Vec::new(),
        }
    }

    pub fn spec(&self) -> &GatewaySpec {
        &self.spec
    }

    pub fn drops(&self) -> &Drops {
        &self.drops
    }

    pub fn neighbours(&self) -> &Neighbours {
        &self.neighbours
    }

    /// Runs the zone's DHCP server (its leases restored by the shell beforehand).
    pub fn with_dhcp(mut self, server: l3::dhcp::DhcpServer) -> Gateway {
        self.services.dhcp = Some(server);
        self
    }

    /// NAT mode: the zone's VMs leave as the NAT's public address.
    pub fn with_nat(mut self, nat: l3::nat::Nat) -> Gateway {
        self.services.nat = Some(nat);
        self
    }

    pub fn dhcp(&self) -> Option<&l3::dhcp::DhcpServer> {
        self.services.dhcp.as_ref()
    }

    pub fn nat(&self) -> Option<&l3::nat::Nat> {
        self.services.nat.as_ref()
    }

    pub fn icmp_errors(&self) -> l3::icmp_error::IcmpCounters {
        self.services.icmp.counters()
    }

    /// True once after a lease was bound or ended: the shell saves the leases then.
    pub fn take_leases_changed(&mut self) -> bool {
        std::mem::take(&mut self.services.leases_dirty)
    }

    /// The tunnel's MTU changed (a VPN client set its tun's): from the next packet on, bigger
    /// ones are fragmented or answered with ICMP errors for it, MSS is clamped to it, Router
    /// Advertisements and new DHCP leases announce it. Clamped to 68..=65535 (IPv4's minimum,
    /// RFC 791). Returns whether it changed.
    pub fn set_mtu(&mut self, mtu: u16) -> bool {
        let mtu = mtu.max(MIN_MTU);
        if mtu == self.spec.mtu {
            return false;
        }
        self.spec.mtu = mtu;
        self.services.mtu = mtu;
        if let Some(d) = &mut self.services.dhcp {
            d.set_mtu(Some(mtu));
        }
        true
    }

    /// A NAT zone's tunnel address changed (a VPN client reconnected with a new one, or
    /// `ip addr` on its tun): new flows leave as `public`; the mappings of the old address
    /// are dropped (`nat-readdressed`; see `l3::nat::Nat::readdress`). None: the device has
    /// no IPv4 address now, and the zone's packets are dropped (`nat-no-address`) until it
    /// has one. Returns the number of mappings dropped, or None if nothing changed (the same
    /// address, or no NAT).
    pub fn set_nat_address(&mut self, public: Option<Ipv4Addr>) -> Option<usize> {
        let nat = self.services.nat.as_mut()?;
        let public = public.unwrap_or(Ipv4Addr::UNSPECIFIED);
        (nat.config().public != public).then(|| nat.readdress(public))
    }

    /// Timers: NAT mappings and DHCP leases past their time end (call it about every second).
    pub fn expire(&mut self, now: Now) {
        if let Some(nat) = &mut self.services.nat {
            nat.expire(now.ms);
        }
        if let Some(d) = &mut self.services.dhcp {
            self.services.leases_dirty |= !d.expire(now.unix).is_empty();
        }
    }

    /// Counts a drop the shell decided (e.g. a tunnel packet it could not send).
    pub fn count(&mut self, r: DropReason) {
        self.drops.count(r);
    }

    /// Handles one frame the bridge sent to the gateway port. `tunnel_up` is the kill switch:
    /// false routes nothing. `out` must hold a reply frame: 1294 bytes (an ICMPv6 error).
    pub fn zone_frame<'a>(
        &mut self,
        frame: &'a mut [u8],
        tunnel_up: bool,
        now: Now,
        out: &mut [u8],
    ) -> FromZone<'a> {
        let verdict = self.zone_verdict(frame, tunnel_up, now, out);
        if let FromZone::Drop(r) = verdict {
            self.drops.count(r);
        }
        verdict
    }

    fn zone_verdict<'a>(&mut self, frame: &'a mut [u8], up: bool, now: Now, out: &mut [u8]) -> FromZone<'a> {
        let Ok(eth) = EthernetHeader::parse(frame) else { return FromZone::Drop(DropReason::Malformed) };
        let off = eth.payload_offset;
        if eth.ethertype == ETHERTYPE_ARP {
            return self.zone_arp(&eth, &frame[off..], out);
        }
        if eth.ethertype == ETHERTYPE_IPV6 {
            if let Some(v) = self.zone_v6_local(&eth, &frame[off..], out) {
                return v;
            }
        }
        // DHCP stays in the zone (broadcast, from 0.0.0.0): answered whether or not the tunnel is up.
        let learn = &mut self.neighbours;
        if let Some(r) =
            self.services.dhcp(&eth, &frame[off..], self.spec.mac, now, out, |ip, mac| learn.learn(ip, mac))
        {
            return r.map_or_else(FromZone::Drop, FromZone::Reply);
        }
        if eth.dst != self.spec.mac {
            return FromZone::Drop(DropReason::NotForGateway);
        }
        let ip = &mut frame[off..];
        let len = match eth.ethertype {
            ETHERTYPE_IPV4 => self.zone_ipv4(eth.src, ip, up),
            ETHERTYPE_IPV6 => self.zone_ipv6(eth.src, ip, up),
            _ => Err(DropReason::NotIp),
        };
        match len.and_then(|n| self.egress(&mut ip[..n], eth.src, now, out).map(|e| (n, e))) {
            Ok((n, None)) => FromZone::Tunnel(&frame[off..off + n]),
            Ok((_, Some(v))) => v,
            Err(r) => FromZone::Drop(r),
        }
    }

    /// A routed packet on its way out: checked against the tunnel MTU (an oversize one is
    /// dropped, counted `too-big`, and answered with an ICMP error to `vm`), one hop less, MSS
    /// clamped, translated, fragmented if need be. `None`: send it whole.
    fn egress(
        &mut self,
        ip: &mut [u8],
        vm: MacAddr,
        now: Now,
        out: &mut [u8],
    ) -> Result<Option<FromZone<'static>>, DropReason> {
        let size = self.services.check_size(ip, self.spec.mac, vm, now, out)?;
        if let Size::Error(n) = size {
            self.drops.count(DropReason::TooBig);
            return Ok(Some(FromZone::Reply(n)));
        }
        hop(ip)?;
        Ok(match self.services.finish_out(ip, size == Size::Fragment, now)? {
            Egress::Whole => None,
            Egress::Fragments(f) => Some(FromZone::Fragments(f)),
        })
    }

    /// Learns the sender; answers a request for the gateway address (ARP stays in the zone,
    /// so it is answered whether or not the tunnel is up).
    fn zone_arp(&mut self, eth: &EthernetHeader, body: &[u8], out: &mut [u8]) -> FromZone<'static> {
        let Ok(a) = arp::Frame::new_checked(body) else { return FromZone::Drop(DropReason::Malformed) };
        if self.spec.subnet.contains(a.sender_ip().into()) && a.sender_ip() != self.spec.ip {
            self.neighbours.learn(a.sender_ip(), a.sender_mac());
        }
        if a.operation() != arp::OP_REQUEST || a.target_ip() != self.spec.ip {
            return FromZone::Drop(DropReason::NotForGateway);
        }
        let reply = ArpSpec {
            operation: arp::OP_REPLY,
            sender_mac: self.spec.mac,
            sender_ip: self.spec.ip,
            target_mac: a.sender_mac(),
            target_ip: a.sender_ip(),
        };
        let spec = FrameSpec { dst: eth.src, src: self.spec.mac, vlan: None, ethertype: ETHERTYPE_ARP };
        match packet::arp_frame(out, &spec, &reply) {
            Ok(n) => FromZone::Reply(n),
            Err(_) => FromZone::Drop(DropReason::Malformed),
        }
    }

    /// A gratuitous ARP for the gateway address, broadcast to the zone. The bridge learns
    /// from it where the gateway's MAC is, so the VMs' frames to their gateway are never
    /// flooded (to the bridge's internal port, the host's leg, among others) for lack of a MAC
    /// table entry: after a restart, or when the tunnel was down longer than the aging time
    /// and the gateway had nothing to send. VMs' caches are refreshed as a side effect.
    pub fn announce(&self, out: &mut [u8]) -> Option<usize> {
        let ip = self.spec.ip.octets();
        packet::arp_request(out, self.spec.mac, None, ip, ip).ok()
    }

    /// Checks an IPv4 packet from VM `src_mac`; returns its length without Ethernet padding.
    fn zone_ipv4(&mut self, src_mac: MacAddr, ip: &[u8], up: bool) -> Result<usize, DropReason> {
        let p = ipv4::Frame::new_checked(ip).map_err(|_| DropReason::Malformed)?;
        let len = total_len(ip, 2, 0)?;
        if !self.spec.subnet.contains(p.src().into()) || p.src() == self.spec.ip {
            return Err(DropReason::BadSource);
        }
        self.neighbours.learn(p.src(), src_mac);
        if !up {
            return Err(DropReason::VpnDown);
        }
        if p.dst() == self.spec.ip {
            return Err(DropReason::ToGateway);
        }
        self.route(p.dst().into())?;
        Ok(len)
    }

    pub(crate) fn route(&self, dst: IpAddr) -> Result<(), DropReason> {
        if self.spec.allowed.iter().any(|p| p.contains(dst)) {
            Ok(())
        } else {
            Err(DropReason::NoRoute)
        }
    }

    /// Handles one IP packet the tunnel decrypted. `out` must hold the packet plus 14 bytes.
    pub fn tunnel_packet(&mut self, ip: &mut [u8], now: Now, out: &mut [u8]) -> FromTunnel {
        let verdict = self.tunnel_verdict(ip, now, out);
        match verdict {
            FromTunnel::Drop(r) => self.drops.count(r),
            FromTunnel::Resolve(_) => self.drops.count(DropReason::NoNeighbour),
            FromTunnel::Frame(_) => {}
        }
        verdict
    }

    fn tunnel_verdict(&mut self, ip: &mut [u8], now: Now, out: &mut [u8]) -> FromTunnel {
        match ip.first().map(|b| b >> 4) {
            Some(4) => {}
            Some(6) => return self.tunnel_ipv6(ip, out),
            _ => return FromTunnel::Drop(DropReason::Malformed),
        }
        let Ok(p) = ipv4::Frame::new_checked(&*ip) else { return FromTunnel::Drop(DropReason::Malformed) };
        let (src, dst) = (p.src(), p.dst());
        let Ok(len) = total_len(ip, 2, 0) else { return FromTunnel::Drop(DropReason::Malformed) };
        if self.route(src.into()).is_err() || self.spec.subnet.contains(src.into()) {
            return FromTunnel::Drop(DropReason::NotAllowedSource);
        }
        let dst = match self.services.nat_in(&mut ip[..len], dst, now) {
            None => dst,
            Some(Ok(vm)) => vm,
            Some(Err(r)) => return FromTunnel::Drop(r),
        };
        if !self.spec.subnet.contains(dst.into()) || dst == self.spec.ip {
            return FromTunnel::Drop(DropReason::NotInSubnet);
        }
        let Some(mac) = self.neighbours.get(dst) else { return self.resolve(dst, out) };
        if let Err(r) = hop(&mut ip[..len]) {
            return FromTunnel::Drop(r);
        }
        // The SYN-ACK too: the VM's own MSS then fits the tunnel whatever its MTU.
        l3::mss::clamp(&mut ip[..len], self.services.mtu);
        let spec = FrameSpec { dst: mac, src: self.spec.mac, vlan: None, ethertype: ETHERTYPE_IPV4 };
        match packet::ethernet_frame(out, &spec, &ip[..len]) {
            Ok(n) => FromTunnel::Frame(n),
            Err(_) => FromTunnel::Drop(DropReason::Malformed),
        }
    }

    fn resolve(&self, ip: Ipv4Addr, out: &mut [u8]) -> FromTunnel {
        match packet::arp_request(out, self.spec.mac, None, self.spec.ip.octets(), ip.octets()) {
            Ok(n) => FromTunnel::Resolve(n),
            Err(_) => FromTunnel::Drop(DropReason::NoNeighbour),
        }
    }
}

/// The packet's own length from its header (the 16-bit field at `at`, plus `extra` bytes of
/// header it does not count), so Ethernet padding never enters the tunnel.
pub(crate) fn total_len(ip: &[u8], at: usize, extra: usize) -> Result<usize, DropReason> {
    let field = ip.get(at..at + 2).ok_or(DropReason::Malformed)?;
    let n = usize::from(u16::from_be_bytes([field[0], field[1]])) + extra;
    if n > ip.len() {
        return Err(DropReason::Malformed);
    }
    Ok(n)
}

pub(crate) fn hop(ip: &mut [u8]) -> Result<(), DropReason> {
    match ttl::decrement(ip) {
        Hop::Forward => Ok(()),
        Hop::Expired => Err(DropReason::TtlExpired),
        Hop::Malformed => Err(DropReason::Malformed),
    }
}

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "services_tests.rs"]
mod services_tests;
