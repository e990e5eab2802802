//! The zone keys for the gateway's IP services: `nat = true` (the zone's VMs share the
//! tunnel address) and `dhcp = { range = ["first", "last"], dns = [...] }` (a DHCP server
//! hands out that range and offers those DNS servers), plus a VM's fixed `ip`, its static
//! lease. Kept apart from the zone's other keys:
//! shape here, the range rules themselves in `l3::dhcp` (their one owner).
//!
//! [`in_subnets`] checks what needs the whole zone: that the range and the VMs' addresses
//! lie in the zone's `subnet` (a key the VPN uplink brings), and that `nat` and `dhcp` have
//! a VPN uplink whose gateway serves them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Pos, Report};
use crate::model::{Vm, Zone};
use crate::raw::{RawVm, RawZone};

/// `dhcp = { range = [...] }` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDhcp {
    pub(crate) range: Spanned<Vec<Spanned<String>>>,
    /// DNS servers offered: IPv4 by DHCP option 6, IPv6 in the RAs (RDNSS); absent: the
    /// tunnel's own (wg-quick's DNS line).
    pub(crate) dns: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A zone's IP services after validation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Services {
    /// `nat = true`: NAT mode (else routed, the default).
    pub nat: bool,
    /// The DHCP server's dynamic range, inclusive; `None`: no DHCP server.
    pub dhcp: Option<DhcpRange>,
    /// `dhcp.dns`: the DNS servers the DHCP server offers (option 6), in order. Empty, and
    /// `dns6` too: those of the wg-quick file's `DNS` line (a tun uplink has none). The only
    /// way to give a tun zone's VMs a resolver; for WireGuard it overrides the file's. The
    /// queries go the way of all the zone's traffic: into the tunnel, or nowhere.
    pub dns: Vec<Ipv4Addr>,
    /// `dhcp.dns`'s IPv6 servers, in order: the gateway's router advertisements name them
    /// (RDNSS, RFC 8106), as DHCP option 6 names the IPv4 ones. Empty, and `dns` too: the
    /// wg-quick file's IPv6 ones (the list, of either family, replaces the tunnel's whole).
    pub dns6: Vec<Ipv6Addr>,
}

/// A validated dynamic range: in order, IPv4, at most `l3::dhcp::MAX_RANGE` addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpRange {
    /// The lowest address handed out.
    pub first: Ipv4Addr,
    /// The highest address handed out.
    pub last: Ipv4Addr,
}

/// Reads a zone's `nat` and `dhcp` keys, reporting what is wrong.
pub(crate) fn zone(
    text: &str,
    r: &mut Report,
    nat: Option<&Spanned<bool>>,
    dhcp: Option<&RawDhcp>,
) -> Services {
    let nat = nat.is_some_and(|n| *n.get_ref());
    let (dns, dns6) = dhcp.and_then(|d| d.dns.as_ref()).map_or_else(Default::default, |d| dns(text, r, d));
    Services { nat, dhcp: dhcp.and_then(|d| range(text, r, &d.range)), dns, dns6 }
}

/// `dhcp.dns`: at most [`l3::dhcp::MAX_DNS`] unicast addresses in all, IPv4 or IPv6, none
/// twice. (That none is the zone's gateway, which answers no DNS, and that IPv6 ones have a
/// `subnet6` to be advertised in, is checked with the zone: [`in_subnets`].)
fn dns(text: &str, r: &mut Report, raw: &Spanned<Vec<Spanned<String>>>) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    if raw.get_ref().len() > l3::dhcp::MAX_DNS {
        let msg = format!("dhcp dns lists {} servers; at most {}", raw.get_ref().len(), l3::dhcp::MAX_DNS);
        r.error(Pos::of_span(text, &raw.span()), msg, "keep the two or three the VMs should ask");
        return (v4, v6);
    }
    for v in raw.get_ref() {
        let Some(ip) = dns_ip(text, r, v) else { continue };
        let why = match ip {
            IpAddr::V4(ip) => {
                l3::dhcp::dns_server_problem(ip).or(v4.contains(&ip).then_some("is listed twice"))
            }
            IpAddr::V6(ip) => {
                l3::nd::dns_server_problem(ip).or(v6.contains(&ip).then_some("is listed twice"))
            }
        };
        match (why, ip) {
            (Some(why), _) => r.error(
                Pos::of_span(text, &v.span()),
                format!("DHCP dns {ip} {why}"),
                "list the DNS servers reachable through the tunnel, e.g. dns = [\"10.0.0.53\", \"2001:db8::53\"]",
            ),
            (None, IpAddr::V4(ip)) => v4.push(ip),
            (None, IpAddr::V6(ip)) => v6.push(ip),
        }
    }
    (v4, v6)
}

/// A `dhcp.dns` entry: an IPv4 address (DHCP option 6) or an IPv6 one (the RAs' RDNSS).
fn dns_ip(text: &str, r: &mut Report, v: &Spanned<String>) -> Option<IpAddr> {
    let parsed = v.get_ref().parse::<IpAddr>();
    if parsed.is_err() {
        r.error(
            Pos::of_span(text, &v.span()),
            format!("DHCP dns: \"{}\" is not an IPv4 or IPv6 address", v.get_ref().escape_debug()),
            "write an address, like \"198.18.0.53\" or \"2001:db8::53\" (a name would need DNS itself)",
        );
    }
    parsed.ok()
}

fn range(text: &str, r: &mut Report, raw: &Spanned<Vec<Spanned<String>>>) -> Option<DhcpRange> {
    let [first, last] = raw.get_ref().as_slice() else {
        r.error(
            Pos::of_span(text, &raw.span()),
            format!("DHCP range has {} addresses, not 2", raw.get_ref().len()),
            "write the first and the last address: range = [\"198.18.0.100\", \"198.18.0.199\"]",
        );
        return None;
    };
    let (first, last) = (ipv4(text, r, first, "DHCP range")?, ipv4(text, r, last, "DHCP range")?);
    if let Err(e) = l3::dhcp::check_range(first, last) {
        r.error(
            Pos::of_span(text, &raw.span()),
            format!("DHCP range: {e}"),
            "give the lower address first, at most a /16 apart",
        );
        return None;
    }
    Some(DhcpRange { first, last })
}

/// An IPv4 address in dotted form; `what` names the key in the message.
fn ipv4(text: &str, r: &mut Report, v: &Spanned<String>, what: &str) -> Option<Ipv4Addr> {
    let parsed = v.get_ref().parse::<Ipv4Addr>();
    if parsed.is_err() {
        r.error(
            Pos::of_span(text, &v.span()),
            format!("{what}: \"{}\" is not an IPv4 address", v.get_ref().escape_debug()),
            "write it dotted, like \"198.18.0.10\" (DHCP here is IPv4 only)",
        );
    }
    parsed.ok()
}

/// A VM's `ip`, if it has one.
pub(crate) fn vm_ip(text: &str, r: &mut Report, ip: Option<&Spanned<String>>) -> Option<Ipv4Addr> {
    ipv4(text, r, ip?, "VM ip")
}

/// No two VMs of one zone share a fixed address (`raw` and `vms` in the same order).
pub(crate) fn unique_vm_ips(text: &str, r: &mut Report, raw: &[RawVm], vms: &[Vm]) {
    let mut seen: HashMap<(&str, Ipv4Addr), &str> = HashMap::new();
    for (raw, vm) in raw.iter().zip(vms) {
        let (Some(at), Some(ip)) = (raw.ip.as_ref(), vm.ip) else { continue };
        if let Some(other) = seen.insert((vm.zone.as_str(), ip), vm.name.as_str()) {
            r.error(
                Pos::of_span(text, &at.span()),
                format!("address {ip} is already VM {other}'s in zone {}", vm.zone),
                "give every VM of a zone its own address",
            );
        }
    }
}

/// The zone's VPN subnet, if it has a VPN uplink with a readable one.
fn vpn_subnet(z: &Zone) -> Option<gateway::Prefix> {
    z.uplink.as_ref()?.vpn.as_ref()?.subnet.parse().ok()
}

/// The gateway runs no DNS server: a zone whose `dhcp.dns` names it (by its IPv4 `gateway`
/// or its IPv6 `gateway6`) would resolve nothing. And IPv6 servers reach the VMs only in the
/// router advertisements of a zone with `subnet6`: without one, they would be dropped silently.
fn dns_in_zone(text: &str, r: &mut Report, rd: &RawDhcp, z: &Zone) {
    let Some(vpn) = z.uplink.as_ref().and_then(|u| u.vpn.as_ref()) else { return };
    let gw4 = vpn.gateway.parse::<Ipv4Addr>().ok().map(IpAddr::from);
    let gw6 = vpn.v6.as_ref().and_then(|(_, g)| g.parse::<Ipv6Addr>().ok()).map(IpAddr::from);
    let raw = rd.dns.as_ref().map_or(&[][..], |d| d.get_ref().as_slice());
    for v in raw {
        let Ok(ip) = v.get_ref().parse::<IpAddr>() else { continue };
        let at = Pos::of_span(text, &v.span());
        if Some(ip) == gw4 || Some(ip) == gw6 {
            r.error(
                at,
                format!("DHCP dns {ip} is the zone's gateway, which answers no DNS"),
                "name the resolver behind the tunnel (the VPN's DNS server)",
            );
        } else if ip.is_ipv6() && vpn.v6.is_none() {
            r.error(
                at,
                format!("DHCP dns {ip} is IPv6, but zone {} has no subnet6 whose router advertisements would name it", z.name),
                "give the zone subnet6 and gateway6, or list only IPv4 servers",
            );
        }
    }
}

/// `nat` and `dhcp` need a VPN uplink; the range and every VM `ip` must lie in its subnet
/// (`raw_*` and the validated lists in the same order).
pub(crate) fn in_subnets(
    text: &str,
    r: &mut Report,
    raw: (&[RawZone], &[RawVm]),
    zones: &[Zone],
    vms: &[Vm],
) {
    for (rz, z) in raw.0.iter().zip(zones) {
        let subnet = vpn_subnet(z);
        let has_vpn = z.uplink.as_ref().is_some_and(|u| u.vpn.is_some());
        if let (Some(n), false) = (rz.nat.as_ref().filter(|n| *n.get_ref()), has_vpn) {
            let fix = "give the zone uplink = { wireguard = ... } (or { tun = ... }) with subnet and gateway, or remove nat";
            r.error(Pos::of_span(text, &n.span()), "nat needs a VPN uplink to translate to", fix);
        }
        let (Some(rd), Some(range)) = (rz.dhcp.as_ref(), z.services.dhcp) else { continue };
        dns_in_zone(text, r, rd, z);
        let at = Pos::of_span(text, &rd.range.span());
        match subnet {
            None if !has_vpn => r.error(
                at,
                "dhcp needs a VPN uplink (its gateway is the DHCP server)",
                "give the zone uplink = { wireguard = ... } (or { tun = ... }) with subnet and gateway, or remove dhcp",
            ),
            Some(net) if !net.contains(range.first.into()) || !net.contains(range.last.into()) => r.error(
                at,
                format!("DHCP range {}-{} is not inside subnet {net}", range.first, range.last),
                "pick the range from the zone's subnet",
            ),
            _ => {}
        }
    }
    for (rv, v) in raw.1.iter().zip(vms) {
        let (Some(at), Some(ip)) = (rv.ip.as_ref(), v.ip) else { continue };
        let Some(net) = zones.iter().find(|z| z.name == v.zone).and_then(vpn_subnet) else { continue };
        if !net.contains(ip.into()) {
            r.error(
                Pos::of_span(text, &at.span()),
                format!("VM {} ip {ip} is not inside zone {}'s subnet {net}", v.name, v.zone),
                "give the VM an address from the zone's subnet",
            );
        }
    }
}
