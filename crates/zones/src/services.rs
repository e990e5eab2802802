//! The zone keys for the gateway's IP services: `nat = true` (the zone's VMs share the
//! tunnel address) and `dhcp = { range = ["first", "last"] }` (a DHCP server hands out that
//! range), plus a VM's fixed `ip`, its static lease. Kept apart from the zone's other keys:
//! shape here, the range rules themselves in `l3::dhcp` (their one owner).
//!
//! [`in_subnets`] checks what needs the whole zone: that the range and the VMs' addresses
//! lie in the zone's `subnet` (a key the VPN uplink brings), and that `nat` and `dhcp` have
//! a VPN uplink whose gateway serves them.

use std::collections::HashMap;
use std::net::Ipv4Addr;

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
}

/// A zone's IP services after validation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Services {
    /// `nat = true`: NAT mode (else routed, the default).
    pub nat: bool,
    /// The DHCP server's dynamic range, inclusive; `None`: no DHCP server.
    pub dhcp: Option<DhcpRange>,
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
    Services { nat, dhcp: dhcp.and_then(|d| range(text, r, &d.range)) }
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
