//! The gateway's IP services from the `l3` crate, wired between routing and the tunnel: MSS
//! clamping and "too big" handling (ICMP errors, IPv4 fragmentation) on the way out, MSS
//! clamping on the way in, the zone's DHCP server and NAT. Each is optional but the MTU ones.

use std::net::Ipv4Addr;

use l3::dhcp::{BindingEvent, DhcpServer, UnixSecs};
use l3::icmp_error::{IcmpErrors, Oversize};
use l3::nat::Nat;
use l3::Millis;
use packet::{ipv4, udp, EthernetHeader, FrameSpec, MacAddr, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

use crate::DropReason;

/// WireGuard's default MTU (wg-quick: 1500 minus 80 bytes of IPv6 overhead).
pub const DEFAULT_TUNNEL_MTU: u16 = 1420;

/// The two clocks the services run on: monotonic milliseconds (rate limits, NAT timeouts) and
/// wall-clock seconds (DHCP leases, which are persisted and must survive a reboot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    pub ms: Millis,
    pub unix: UnixSecs,
}

/// A packet against the tunnel MTU.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Size {
    Fits,
    /// IPv4 without DF: to be fragmented.
    Fragment,
    /// Too big with DF (or IPv6): the ICMP error for the VM is the frame of this length in `out`.
    Error(usize),
}

/// What leaves towards the tunnel.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Egress {
    /// The packet (rewritten in place) as it is.
    Whole,
    /// IPv4 pieces of the packet, each within the tunnel MTU.
    Fragments(Vec<Vec<u8>>),
}

pub(crate) struct Services {
    pub(crate) mtu: u16,
    pub(crate) icmp: IcmpErrors,
    pub(crate) dhcp: Option<DhcpServer>,
    pub(crate) nat: Option<Nat>,
    /// A lease was bound or ended since the shell last saved them.
    pub(crate) leases_dirty: bool,
}

impl Services {
    pub(crate) fn new(mtu: u16, gw_ip: Ipv4Addr, gw_mac: MacAddr) -> Services {
        let v6 = packet::ipv6::eui64_link_local(gw_mac);
        Services { mtu, icmp: IcmpErrors::new(gw_ip, v6, 0), dhcp: None, nat: None, leases_dirty: false }
    }

    /// A packet routed to the tunnel (TTL not yet decremented): fits, is fragmented, or is
    /// answered with fragmentation-needed / packet-too-big (a frame to `vm` in `out`).
    pub(crate) fn check_size(
        &mut self,
        ip: &[u8],
        gw: MacAddr,
        vm: MacAddr,
        now: Now,
        out: &mut [u8],
    ) -> Result<Size, DropReason> {
        match self.icmp.check(ip, self.mtu, now.ms) {
            Oversize::Fits => Ok(Size::Fits),
            Oversize::Fragmentable => Ok(Size::Fragment),
            Oversize::Reply(err) => frame(out, gw, vm, &err).map(Size::Error),
            Oversize::Drop(_) => Err(DropReason::TooBig),
        }
    }

    /// After TTL: MSS clamp, NAT, then the fragments if [`Services::check_size`] asked for them.
    pub(crate) fn finish_out(&mut self, ip: &mut [u8], frag: bool, now: Now) -> Result<Egress, DropReason> {
        l3::mss::clamp(ip, self.mtu);
        if let Some(nat) = &mut self.nat {
            if nat.config().public.is_unspecified() {
                return Err(DropReason::NatNoAddress);
            }
            if ip.first().is_some_and(|b| b >> 4 == 4) {
                nat.outbound(ip, now.ms).map_err(|_| DropReason::Nat)?;
            }
        }
        if !frag {
            return Ok(Egress::Whole);
        }
        l3::frag::fragment_v4(ip, self.mtu).map(Egress::Fragments).map_err(|_| DropReason::TooBig)
    }

    /// A tunnel packet for the NAT's public address: translated back; returns the VM's address.
    pub(crate) fn nat_in(
        &mut self,
        ip: &mut [u8],
        dst: Ipv4Addr,
        now: Now,
    ) -> Option<Result<Ipv4Addr, DropReason>> {
        let nat = self.nat.as_mut().filter(|n| n.config().public == dst)?;
        Some(nat.inbound(ip, now.ms).map_err(|_| DropReason::Nat))
    }

    /// A DHCP packet from the zone (UDP to port 67), if a server runs: its reply framed into
    /// `out` (`Some(Ok(n))`), nothing to send (`Some(Err(DhcpNoReply))`), or not DHCP (`None`).
    /// Bindings teach the neighbour table through `learn`.
    pub(crate) fn dhcp(
        &mut self,
        eth: &EthernetHeader,
        ip: &[u8],
        gw: MacAddr,
        now: Now,
        out: &mut [u8],
        mut learn: impl FnMut(Ipv4Addr, MacAddr),
    ) -> Option<Result<usize, DropReason>> {
        let server = self.dhcp.as_mut()?;
        if eth.ethertype != ETHERTYPE_IPV4 || !to_dhcp_server(ip) {
            return None;
        }
        let Ok(outcome) = server.handle(ip, now.unix) else { return Some(Err(DropReason::DhcpNoReply)) };
        match outcome.event {
            Some(BindingEvent::Bound(b)) => {
                learn(b.ip, b.mac);
                self.leases_dirty = true;
            }
            Some(BindingEvent::Ended { .. }) => self.leases_dirty = true,
            None => {}
        }
        Some(match outcome.reply {
            Some(r) => frame(out, gw, r.dst_mac, &r.packet),
            None => Err(DropReason::DhcpNoReply),
        })
    }
}

/// IPv4/UDP to port 67 (what a DHCP client sends, from 0.0.0.0 or its address).
fn to_dhcp_server(ip: &[u8]) -> bool {
    let Ok(p) = ipv4::Frame::new_checked(ip) else { return false };
    p.protocol() == ipv4::PROTO_UDP
        && !p.is_later_fragment()
        && udp::Frame::new_checked(p.payload()).is_ok_and(|u| u.dst_port() == udp::PORT_DHCP_SERVER)
}

/// An IP packet from the gateway to `dst` in the zone, framed into `out`.
pub(crate) fn frame(out: &mut [u8], gw: MacAddr, dst: MacAddr, ip: &[u8]) -> Result<usize, DropReason> {
    let ethertype = if ip.first().is_some_and(|b| b >> 4 == 6) { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 };
    let spec = FrameSpec { dst, src: gw, vlan: None, ethertype };
    packet::ethernet_frame(out, &spec, ip).map_err(|_| DropReason::Malformed)
}
