//! The per-frame checks on a secured port, in the order a frame meets them: layer 2 (hidden
//! tags, source MAC, MAC limit), then by EtherType ARP, IPv4 or IPv6. Other EtherTypes from an
//! allowed source MAC pass.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use packet::{
    arp, dhcp, icmpv6, ipv4, ipv6, udp, EthernetHeader, MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4,
    ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN,
};

use super::bindings::Bindings;
use super::config::PortSecurity;
use crate::{DropReason, MacTable, Millis};

/// The pre-standard QinQ TPID some switches still use.
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

/// What a check needs to know about the frame's port and the bridge.
pub(crate) struct Ctx<'a> {
    pub slot: usize,
    pub sec: &'a PortSecurity,
    pub bindings: &'a Bindings,
    pub macs: &'a MacTable,
    pub vlan: u16,
    pub now: Millis,
    /// Whether the port could exceed its MAC limit at all (see [`super::Policy`]).
    pub limit_reachable: bool,
}

/// An EtherType that announces another VLAN tag (802.1Q, 802.1ad, pre-standard QinQ).
#[inline]
pub(crate) fn is_tag(ethertype: u16) -> bool {
    matches!(ethertype, ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD)
}

/// `Ok` when a frame from a port with `checks_l2()` may go on, else the reason to drop it.
pub(crate) fn admit(cx: &Ctx<'_>, eth: &EthernetHeader, frame: &[u8]) -> Result<(), DropReason> {
    // A VM port carries untagged frames; one that still holds a tag (behind a priority tag, or
    // an S-tag the bridge does not read) would be a second VLAN the bridge never checked.
    if is_tag(eth.ethertype) {
        return Err(DropReason::HiddenTag);
    }
    if !cx.sec.macs.contains(&eth.src) {
        return Err(DropReason::SpoofedMac);
    }
    if let Some(limit) = cx.sec.mac_limit.filter(|_| cx.limit_reachable) {
        let known = cx.macs.lookup(cx.vlan, eth.src, cx.now) == Some(cx.slot as u32);
        if !known && cx.macs.port_count(cx.slot as u32) >= limit {
            return Err(DropReason::PortMacLimit);
        }
    }
    if !cx.sec.checks_l3() {
        return Ok(());
    }
    let l3 = frame.get(eth.payload_offset..).unwrap_or_default();
    match eth.ethertype {
        ETHERTYPE_ARP => check_arp(cx, l3),
        ETHERTYPE_IPV4 => check_ipv4(cx, l3),
        ETHERTYPE_IPV6 => check_ipv6(cx, eth.src, l3),
        _ => Ok(()),
    }
}

/// The sender must be the port: its MAC, and an IPv4 address it may use (0.0.0.0 = a probe).
fn check_arp(cx: &Ctx<'_>, l3: &[u8]) -> Result<(), DropReason> {
    let a = arp::Frame::new_checked(l3).map_err(|_| DropReason::SpoofedArp)?;
    let ok = cx.sec.macs.contains(&a.sender_mac())
        && (a.sender_ip().is_unspecified() || v4_source_ok(cx, a.sender_ip()));
    ok.then_some(()).ok_or(DropReason::SpoofedArp)
}

fn check_ipv4(cx: &Ctx<'_>, l3: &[u8]) -> Result<(), DropReason> {
    let ip = ipv4::Frame::new_checked(l3).map_err(|_| DropReason::SpoofedIp)?;
    let udp = (ip.protocol() == ipv4::PROTO_UDP && !ip.is_later_fragment())
        .then(|| udp::Frame::new_checked(ip.payload()).ok())
        .flatten();
    if !cx.sec.trusted && udp.is_some_and(|u| u.src_port() == udp::PORT_DHCP_SERVER) {
        return Err(DropReason::RogueDhcp);
    }
    let src = ip.src();
    let ok = if src.is_unspecified() {
        udp.is_some_and(|u| is_dhcp_client_query(&u))
    } else {
        !src.is_multicast() && !src.is_broadcast() && v4_source_ok(cx, src)
    };
    ok.then_some(()).ok_or(DropReason::SpoofedIp)
}

/// DHCPDISCOVER or DHCPREQUEST from client port to server port: the only 0.0.0.0 sources.
fn is_dhcp_client_query(u: &udp::Frame<&[u8]>) -> bool {
    (u.src_port(), u.dst_port()) == (udp::PORT_DHCP_CLIENT, udp::PORT_DHCP_SERVER)
        && dhcp::Frame::new_checked(u.payload())
            .is_ok_and(|d| matches!(d.message_type(), Some(dhcp::DISCOVER | dhcp::REQUEST)))
}

fn check_ipv6(cx: &Ctx<'_>, src_mac: MacAddr, l3: &[u8]) -> Result<(), DropReason> {
    let ip = ipv6::Frame::new_checked(l3).map_err(|_| DropReason::SpoofedIp)?;
    let upper = ip.upper_layer().map_err(|_| DropReason::SpoofedIp)?;
    let mut dad = false;
    match upper {
        ipv6::Upper::Protocol(ipv6::NEXT_ICMPV6, bytes) => {
            let m = icmpv6::Frame::new_checked(bytes).map_err(|_| DropReason::SpoofedIp)?;
            // A neighbour caches the link-layer address an NS/NA announces, not the frame's
            // source: announcing another MAC would steal its traffic all the same.
            if m.nd_link_addrs().any(|a| a != Ok(src_mac)) {
                return Err(DropReason::SpoofedNd);
            }
            match m.msg_type() {
                icmpv6::ROUTER_ADVERT if !cx.sec.trusted => return Err(DropReason::RogueRa),
                icmpv6::NEIGHBOR_ADVERT => {
                    let own = m.nd_target().is_some_and(|t| v6_address_ok(cx, t));
                    own.then_some(()).ok_or(DropReason::SpoofedNd)?;
                }
                icmpv6::NEIGHBOR_SOLICIT | icmpv6::MLDV2_REPORT => dad = true,
                _ => {}
            }
        }
        ipv6::Upper::Protocol(ipv6::NEXT_UDP, bytes) => {
            let server =
                udp::Frame::new_checked(bytes).is_ok_and(|u| u.src_port() == udp::PORT_DHCPV6_SERVER);
            if server && !cx.sec.trusted {
                return Err(DropReason::RogueDhcp);
            }
        }
        _ => {}
    }
    let src = ip.src();
    // `::` is the source of Duplicate Address Detection (NS) and the MLD report sent with it.
    let ok = if src.is_unspecified() { dad } else { !src.is_multicast() && v6_address_ok(cx, src) };
    ok.then_some(()).ok_or(DropReason::SpoofedIp)
}

/// An IPv4 address the port may claim: its own, or (while it has no IPv4 binding) any address
/// no other port owns.
fn v4_source_ok(cx: &Ctx<'_>, ip: Ipv4Addr) -> bool {
    if cx.bindings.bound_v4(cx.sec, ip, cx.now) {
        return true;
    }
    !cx.bindings.owned_by_other(cx.slot, IpAddr::V4(ip), cx.now)
        && !cx.bindings.has_v4_binding(cx.sec, cx.now)
}

/// An IPv6 address the port may claim. The EUI-64 link-local of its MAC always; configured
/// and DHCPv6-leased addresses; and while it has no IPv6 binding, any address no other port owns (so a guest
/// with a stable-privacy link-local, RFC 7217, keeps working). A port's EUI-64 link-local is
/// owned by it, so no neighbour can claim it.
fn v6_address_ok(cx: &Ctx<'_>, ip: Ipv6Addr) -> bool {
    if cx.sec.macs.iter().any(|m| ipv6::eui64_link_local(*m) == ip)
        || cx.bindings.bound_v6(cx.sec, ip, cx.now)
    {
        return true;
    }
    !cx.bindings.owned_by_other(cx.slot, IpAddr::V6(ip), cx.now)
        && !cx.bindings.has_v6_binding(cx.sec, cx.now)
}
