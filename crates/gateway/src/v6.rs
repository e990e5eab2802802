//! The gateway's IPv6 side (routed mode only): neighbor discovery in the zone (NA for its
//! address and its link-local one, RA with the zone's prefix, the tunnel MTU and the zone's
//! IPv6 DNS servers (RFC 8106 RDNSS), NS to find
//! VMs), and routing between the zone's `subnet6` and the tunnel like IPv4. A zone without
//! `subnet6` drops all IPv6 (`ipv6-unsupported`), and a NAT zone too (`nat-ipv6`: the NAT
//! translates IPv4 only), so no VM's IPv6 can leave untranslated or around the tunnel.

use std::net::{IpAddr, Ipv6Addr};

use l3::nd::{self, Advert, Nd};
use packet::{ipv6, EthernetHeader, FrameSpec, MacAddr, ETHERTYPE_IPV6};

use crate::gateway::{hop, total_len};
use crate::services::frame;
use crate::{DropReason, FromTunnel, FromZone, Gateway, Prefix};

/// Seconds VMs keep the gateway as their default router after an RA (radvd's default).
pub const ROUTER_LIFETIME_SECS: u16 = 1800;
/// Unsolicited RAs this often (RFC 4861's MinRtrAdvInterval for the 600 s maximum); a VM
/// that solicits gets one at once.
pub const ADVERT_INTERVAL_MS: u64 = 200_000;

/// RFC 4861's default MaxRtrAdvInterval (the one our [`ADVERT_INTERVAL_MS`] is the minimum of).
const MAX_RTR_ADV_INTERVAL_SECS: u32 = 600;
/// Seconds VMs keep the RDNSS servers after an RA: RFC 8106 §5.1 says at least 3 ×
/// MaxRtrAdvInterval, so two lost unsolicited RAs do not leave a VM without a resolver. Equal
/// to the router lifetime: the servers are reached through this router and expire with it.
pub const DNS_LIFETIME_SECS: u32 = 3 * MAX_RTR_ADV_INTERVAL_SECS;

/// The zone's routed IPv6: the gateway's address (`gateway6`) in `subnet6`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewayV6 {
    pub ip: Ipv6Addr,
    pub subnet: Prefix,
}

impl Gateway {
    /// The gateway's link-local address (RAs come from it, as RFC 4861 §4.2 requires).
    pub fn link_local(&self) -> Ipv6Addr {
        ipv6::eui64_link_local(self.spec.mac)
    }

    /// IPv6 the zone may use, or why it may not.
    fn v6(&self) -> Result<GatewayV6, DropReason> {
        match (self.spec.v6, self.services.nat.is_some()) {
            (_, true) => Err(DropReason::NatIpv6),
            (Some(v6), false) if v6.subnet.addr().is_ipv6() => Ok(v6),
            _ => Err(DropReason::Ipv6Unsupported),
        }
    }

    /// An IPv6 frame that stays in the zone: ND (answered whether or not the tunnel is up,
    /// like ARP), or any IPv6 at all when the zone may not use it. `None`: route it.
    pub(crate) fn zone_v6_local(
        &mut self,
        eth: &EthernetHeader,
        ip: &[u8],
        out: &mut [u8],
    ) -> Option<FromZone<'static>> {
        let v6 = match self.v6() {
            Ok(v6) => v6,
            Err(r) => return Some(FromZone::Drop(r)),
        };
        let reply = match nd::parse(ip)? {
            Err(_) => return Some(FromZone::Drop(DropReason::Malformed)),
            Ok(Nd::NeighborSolicit { src, target }) => {
                self.learn_v6(v6, src, eth.src);
                if target != v6.ip && target != self.link_local() {
                    return Some(FromZone::Drop(DropReason::NotForGateway));
                }
                nd::neighbor_advert(target, answer_to(src), self.spec.mac)
            }
            Ok(Nd::RouterSolicit { src }) => {
                nd::router_advert(self.link_local(), answer_to(src), &self.advert(v6))
            }
            Ok(Nd::NeighborAdvert { target }) => {
                self.learn_v6(v6, target, eth.src);
                return Some(FromZone::Drop(DropReason::NotForGateway));
            }
            Ok(Nd::RouterOnly) => return Some(FromZone::Drop(DropReason::NotForGateway)),
        };
        let to = ipv6::Frame::new_checked(&reply[..]).map(|p| p.dst()).unwrap_or(nd::ALL_NODES);
        let dst = if to.is_multicast() { nd::multicast_mac(to) } else { eth.src };
        Some(frame(out, self.spec.mac, dst, &reply).map_or_else(FromZone::Drop, FromZone::Reply))
    }

    fn learn_v6(&mut self, v6: GatewayV6, ip: Ipv6Addr, mac: MacAddr) {
        if v6.subnet.contains(ip.into()) && ip != v6.ip {
            self.neighbours.learn(ip, mac);
        }
    }

    /// The IPv6 DNS servers the RAs name (RDNSS, RFC 8106): at most [`nd::MAX_RDNSS`] (the rest
    /// are left out), none that [`nd::dns_server_problem`] refuses nor the gateway's own
    /// address (it answers no DNS). The caller checked them already; this keeps the RA true
    /// whatever it is handed.
    pub fn with_dns6(mut self, servers: &[Ipv6Addr]) -> Gateway {
        let gw = self.spec.v6.map(|v6| v6.ip);
        let mut dns: Vec<Ipv6Addr> = Vec::new();
        for &ip in servers {
            if nd::dns_server_problem(ip).is_none() && Some(ip) != gw && !dns.contains(&ip) {
                dns.push(ip);
            }
        }
        dns.truncate(nd::MAX_RDNSS);
        self.dns6 = dns;
        self
    }

    /// The IPv6 DNS servers the RAs name.
    pub fn dns6(&self) -> &[Ipv6Addr] {
        &self.dns6
    }

    fn advert(&self, v6: GatewayV6) -> Advert<'_> {
        // [`Gateway::v6`] let only an IPv6 subnet through.
        let prefix = match v6.subnet.addr() {
            IpAddr::V6(a) => a,
            IpAddr::V4(_) => Ipv6Addr::UNSPECIFIED,
        };
        Advert {
            mac: self.spec.mac,
            mtu: u32::from(self.services.mtu),
            prefix,
            prefix_len: v6.subnet.len(),
            router_lifetime: ROUTER_LIFETIME_SECS,
            dns: &self.dns6,
            dns_lifetime: DNS_LIFETIME_SECS,
        }
    }

    /// An unsolicited Router Advertisement to all nodes when one is due (call it every tick;
    /// the first comes at once): the frame's length in `out`.
    pub fn advertise(&mut self, now_ms: u64, out: &mut [u8]) -> Option<usize> {
        let v6 = self.v6().ok()?;
        if now_ms < self.next_advert_ms {
            return None;
        }
        self.next_advert_ms = now_ms + ADVERT_INTERVAL_MS;
        let ra = nd::router_advert(self.link_local(), nd::ALL_NODES, &self.advert(v6));
        frame(out, self.spec.mac, nd::multicast_mac(nd::ALL_NODES), &ra).ok()
    }

    /// Checks an IPv6 packet a VM routes through the gateway; returns its length.
    pub(crate) fn zone_ipv6(&mut self, src_mac: MacAddr, ip: &[u8], up: bool) -> Result<usize, DropReason> {
        let v6 = self.v6()?;
        let p = ipv6::Frame::new_checked(ip).map_err(|_| DropReason::Malformed)?;
        let len = total_len(ip, 4, ipv6::HEADER_LEN)?;
        // A link-local source never leaves its link (RFC 4291 §2.5.6).
        if !v6.subnet.contains(p.src().into()) || p.src() == v6.ip {
            return Err(DropReason::BadSource);
        }
        self.neighbours.learn(p.src(), src_mac);
        if !up {
            return Err(DropReason::VpnDown);
        }
        let dst = p.dst();
        if dst == v6.ip || dst == self.link_local() {
            return Err(DropReason::ToGateway);
        }
        if dst.is_multicast() || dst.is_unicast_link_local() {
            return Err(DropReason::NoRoute);
        }
        self.route(dst.into())?;
        Ok(len)
    }

    /// An IPv6 packet from the tunnel, for a VM in `subnet6`.
    pub(crate) fn tunnel_ipv6(&mut self, ip: &mut [u8], out: &mut [u8]) -> FromTunnel {
        match self.tunnel_ipv6_checked(ip) {
            Ok((len, dst)) => self.frame_for_vm_v6(&mut ip[..len], dst, out),
            Err(r) => FromTunnel::Drop(r),
        }
    }

    fn tunnel_ipv6_checked(&self, ip: &[u8]) -> Result<(usize, Ipv6Addr), DropReason> {
        let v6 = self.v6()?;
        let p = ipv6::Frame::new_checked(ip).map_err(|_| DropReason::Malformed)?;
        let len = total_len(ip, 4, ipv6::HEADER_LEN)?;
        let (src, dst) = (p.src(), p.dst());
        if self.route(src.into()).is_err() || v6.subnet.contains(src.into()) {
            return Err(DropReason::NotAllowedSource);
        }
        if !v6.subnet.contains(dst.into()) || dst == v6.ip {
            return Err(DropReason::NotInSubnet);
        }
        Ok((len, dst))
    }

    fn frame_for_vm_v6(&mut self, ip: &mut [u8], dst: Ipv6Addr, out: &mut [u8]) -> FromTunnel {
        let Some(mac) = self.neighbours.get(dst) else {
            let ns = nd::neighbor_solicit(self.link_local(), dst, self.spec.mac);
            let group = nd::multicast_mac(nd::solicited_node(dst));
            return frame(out, self.spec.mac, group, &ns)
                .map_or(FromTunnel::Drop(DropReason::NoNeighbour), FromTunnel::Resolve);
        };
        if let Err(r) = hop(ip) {
            return FromTunnel::Drop(r);
        }
        l3::mss::clamp(ip, self.services.mtu);
        let spec = FrameSpec { dst: mac, src: self.spec.mac, vlan: None, ethertype: ETHERTYPE_IPV6 };
        match packet::ethernet_frame(out, &spec, ip) {
            Ok(n) => FromTunnel::Frame(n),
            Err(_) => FromTunnel::Drop(DropReason::Malformed),
        }
    }
}

/// Where an answer to a solicitation from `src` goes: back to it, or to all nodes when it
/// has no address yet (DAD, RFC 4861 §7.2.4; an RS from ::, §6.2.6).
fn answer_to(src: Ipv6Addr) -> Ipv6Addr {
    if src.is_unspecified() {
        nd::ALL_NODES
    } else {
        src
    }
}

#[cfg(test)]
#[path = "v6_tests.rs"]
mod tests;
