//! The rules of the zones file. Every rule runs even when an earlier one failed, so the user
//! sees all problems at once; the result is either a [`Model`] or every [`Diagnostic`].

use std::collections::{HashMap, HashSet};

use toml::Spanned;

use crate::diag::{Diagnostic, Pos, Report};
use crate::model::{
    vpn_port_name, IpNet, Mac, Model, Portgroup, Uplink, Vm, VpnTunnel, VpnUplink, Zone,
    DEFAULT_BRIDGE_TEMPLATE,
};
use crate::raw::{RawFile, RawPortgroup, RawVm, RawZone};

/// Largest zones file accepted; a larger one is refused before parsing (bounded input).
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// Longest description: Linux's IFALIASZ (256) minus the terminator.
pub const MAX_DESCRIPTION_BYTES: usize = 255;

/// Parses and validates a zones file. `file_name` is only used in the diagnostics. Never
/// panics, whatever `text` holds.
pub fn parse(text: &str, file_name: &str) -> Result<Model, Vec<Diagnostic>> {
    let mut r = Report::new(file_name);
    if text.len() > MAX_FILE_BYTES {
        r.error(
            Pos { line: 1, col: 1 },
            format!("the file is {} bytes", text.len()),
            format!("zones files are limited to {MAX_FILE_BYTES} bytes"),
        );
        return Err(r.finish());
    }
    let raw: RawFile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let pos = e.span().map_or(Pos { line: 1, col: 1 }, |s| Pos::of_span(text, &s));
            r.error(
                pos,
                format!("not a valid zones file: {}", e.message().trim()),
                "fix the TOML syntax or the key named here (see examples/zones.toml)",
            );
            return Err(r.finish());
        }
    };
    let model = Checker { text, r: &mut r }.model(&raw);
    if r.items.is_empty() {
        Ok(model)
    } else {
        Err(r.finish())
    }
}

pub(crate) struct Checker<'a> {
    text: &'a str,
    pub(crate) r: &'a mut Report,
}

impl Checker<'_> {
    pub(crate) fn at<T>(&self, v: &Spanned<T>) -> Pos {
        Pos::of_span(self.text, &v.span())
    }

    fn model(&mut self, raw: &RawFile) -> Model {
        let template = self.template(raw);
        let zones: Vec<Zone> = raw.zone.iter().map(|z| self.zone(z, &template)).collect();
        self.unique_zone_names(&zones);
        self.unique_bridges(&zones);
        self.unique_tunnels(&zones);
        self.uplinks(&zones);
        let vms = self.vms(&raw.vm, &zones);
        crate::services::in_subnets(self.text, self.r, (&raw.zone, &raw.vm), &zones, &vms);
        Model { zones, vms }
    }

    fn template(&mut self, raw: &RawFile) -> String {
        let Some(t) = raw.naming.as_ref().and_then(|n| n.bridge.as_ref()) else {
            return DEFAULT_BRIDGE_TEMPLATE.to_string();
        };
        let rest = t.get_ref().replace("{zone}", "");
        if rest.contains('{') || rest.contains('}') {
            self.r.error(
                self.at(t),
                format!("naming template \"{}\" has a placeholder other than {{zone}}", t.get_ref()),
                "use only {zone}, e.g. bridge = \"br-{zone}\"",
            );
        }
        t.get_ref().clone()
    }

    fn zone(&mut self, z: &RawZone, template: &str) -> Zone {
        let name = z.name.get_ref().clone();
        let name_pos = self.at(&z.name);
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            self.r.error(
                name_pos,
                format!("zone name \"{}\" may only use a-z, 0-9 and '-'", name.escape_debug()),
                "rename the zone, e.g. name = \"intranet\"",
            );
        }
        let description = z.description.as_ref().map(|d| self.description(d)).unwrap_or_default();
        let (bridge, bridge_pos) = match &z.bridge {
            Some(b) => (b.get_ref().clone(), self.at(b)),
            None => (template.replace("{zone}", &name), name_pos),
        };
        self.bridge_name(&bridge, bridge_pos, &name, z.bridge.is_some());
        let uplink = self.uplink(z, &name);
        let portgroups = self.portgroups(&name, name_pos, &z.portgroup);
        let (peers, local_ip) = self.tunnels(z, &portgroups);
        let services = crate::services::zone(self.text, self.r, z.nat.as_ref(), z.dhcp.as_ref());
        Zone {
            name,
            name_pos,
            description,
            bridge,
            bridge_pos,
            uplink,
            portgroups,
            peers,
            local_ip,
            services,
        }
    }

    /// `uplink = { nic = ... }`, `{ wireguard = ... }` or `{ tun = ... }` (the last two with
    /// the zone's `subnet` and `gateway`); exactly one: a VPN zone's only way out is its tunnel.
    fn uplink(&mut self, z: &RawZone, zone: &str) -> Option<Uplink> {
        let vpn_keys = [&z.subnet, &z.gateway, &z.subnet6, &z.gateway6].into_iter().find_map(Option::as_ref);
        let Some(u) = &z.uplink else {
            if let Some(k) = vpn_keys {
                self.r.error(
                    self.at(k),
                    "subnet and gateway belong to a VPN uplink",
                    "add uplink = { wireguard = \"/etc/rvswitch/office.conf\" } (or { tun = \"tun0\" }) or remove them",
                );
            }
            return None;
        };
        let raw = u.get_ref();
        let named = [raw.nic.is_some(), raw.wireguard.is_some(), raw.tun.is_some()];
        match named.iter().filter(|n| **n).count() {
            0 => {
                self.r.error(self.at(u), "the uplink names none of nic, wireguard and tun", "write uplink = { nic = \"eth1\" }, uplink = { wireguard = \"/etc/rvswitch/office.conf\" } or uplink = { tun = \"tun0\" }");
                return None;
            }
            1 => {}
            _ => {
                self.r.error(
                    self.at(u),
                    "an uplink is one NIC or one VPN tunnel (wireguard or tun), not several",
                    "a VPN zone has no way out but its tunnel: keep one of nic, wireguard and tun",
                );
                return None;
            }
        }
        if let Some(nic) = &raw.nic {
            if let Some(k) = vpn_keys {
                self.r.error(
                    self.at(k),
                    "subnet and gateway belong to a VPN uplink, not a NIC",
                    "remove them, or make the uplink { wireguard = ... } or { tun = ... }",
                );
            }
            return Some(Uplink { nic: nic.get_ref().clone(), pos: self.at(nic), vpn: None });
        }
        let (at, tunnel) = match (&raw.wireguard, &raw.tun) {
            (Some(wg), _) => (self.wireguard_file(wg), VpnTunnel::WireGuard(wg.get_ref().clone())),
            (None, Some(dev)) => (self.tun_device(dev), VpnTunnel::Tun(dev.get_ref().clone())),
            (None, None) => return None,
        };
        self.vpn_uplink(z, zone, at, tunnel)
    }

    fn wireguard_file(&mut self, wg: &Spanned<String>) -> Pos {
        let pos = self.at(wg);
        if !wg.get_ref().starts_with('/') {
            self.r.error(
                pos,
                format!("wireguard file \"{}\" is not an absolute path", wg.get_ref().escape_debug()),
                "give the full path, e.g. /etc/rvswitch/office.conf",
            );
        }
        pos
    }

    /// The tun device's name follows the kernel's rules (netdev::IfName owns them).
    fn tun_device(&mut self, dev: &Spanned<String>) -> Pos {
        let pos = self.at(dev);
        if let Err(e) = netdev::IfName::new(dev.get_ref()) {
            self.r.error(
                pos,
                format!("tun device \"{}\": {e}", dev.get_ref().escape_debug()),
                "name the VPN client's device, e.g. tun0",
            );
        }
        pos
    }

    fn vpn_uplink(&mut self, z: &RawZone, zone: &str, pos: Pos, tunnel: VpnTunnel) -> Option<Uplink> {
        let port = vpn_port_name(zone);
        if netdev::IfName::new(&port).is_err() {
            self.r.error(
                self.at(&z.name),
                format!("the gateway port {port} would not be a valid interface name"),
                "shorten the zone name to 12 characters or fewer",
            );
        }
        let (Some(subnet), Some(gw)) = (&z.subnet, &z.gateway) else {
            self.r.error(
                pos,
                "a VPN uplink needs the zone's subnet and gateway",
                "add e.g. subnet = \"10.1.0.0/24\" and gateway = \"10.1.0.1\" to the zone",
            );
            return None;
        };
        let prefix = match subnet.get_ref().parse::<gateway::Prefix>() {
            Ok(p) if p.addr().is_ipv4() => Some(p),
            Ok(_) => {
                self.r.error(
                    self.at(subnet),
                    "subnet must be IPv4 (the gateway answers ARP)",
                    "write e.g. subnet = \"10.1.0.0/24\"",
                );
                None
            }
            Err(e) => {
                self.r.error(self.at(subnet), format!("subnet: {e}"), "write e.g. subnet = \"10.1.0.0/24\"");
                None
            }
        };
        match gw.get_ref().parse::<std::net::Ipv4Addr>() {
            Ok(ip) if prefix.is_none_or(|p| p.contains(ip.into())) => {}
            Ok(ip) => self.r.error(
                self.at(gw),
                format!("gateway {ip} is not in subnet {}", subnet.get_ref()),
                "pick an address inside the subnet, e.g. its first one",
            ),
            Err(_) => self.r.error(
                self.at(gw),
                format!("gateway \"{}\" is not an IPv4 address", gw.get_ref().escape_debug()),
                "write e.g. gateway = \"10.1.0.1\"",
            ),
        }
        let vpn = VpnUplink {
            tunnel,
            subnet: subnet.get_ref().clone(),
            gateway: gw.get_ref().clone(),
            v6: self.vpn_v6(z),
        };
        Some(Uplink { nic: port, pos, vpn: Some(vpn) })
    }

    fn description(&mut self, d: &Spanned<String>) -> String {
        let text = d.get_ref();
        if text.len() > MAX_DESCRIPTION_BYTES {
            self.r.error(self.at(d), format!("description is {} bytes; the interface alias it becomes holds at most {MAX_DESCRIPTION_BYTES}", text.len()), "shorten the description");
        } else if text.chars().any(char::is_control) {
            self.r.error(
                self.at(d),
                "description contains a control character (newline, tab...)",
                "write the description on one line without control characters",
            );
        }
        text.clone()
    }

    /// The kernel's interface-name rules (netdev::IfName owns them); a long name is refused
    /// with a suggestion, never truncated, so it can never silently address another device.
    fn bridge_name(&mut self, bridge: &str, pos: Pos, zone: &str, explicit: bool) {
        let Err(e) = netdev::IfName::new(bridge) else { return };
        let source = if explicit { "bridge" } else { "bridge name from the naming template" };
        if bridge.len() > netdev::MAX_NAME_LEN {
            let fix = format!(
                "set a shorter name on this zone, e.g. bridge = \"{}\" (Linux allows {} bytes; rvswitch never truncates)",
                suggest_bridge(zone),
                netdev::MAX_NAME_LEN
            );
            self.r.error(
                pos,
                format!(
                    "{source} \"{}\" is {} bytes, longer than Linux's 15",
                    bridge.escape_debug(),
                    bridge.len()
                ),
                fix,
            );
        } else {
            self.r.error(
                pos,
                format!("{source} is not a valid interface name: {e}"),
                "use 1-15 printable ASCII bytes without '/', ':' or spaces",
            );
        }
    }
}

/// A bridge name that fits: `br-` and as much of the zone name as fits, without a trailing '-'.
fn suggest_bridge(zone: &str) -> String {
    let keep: String = zone
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(netdev::MAX_NAME_LEN - 3)
        .collect();
    format!("br-{}", keep.trim_end_matches('-'))
}

impl Checker<'_> {
    fn portgroups(&mut self, zone: &str, zone_pos: Pos, raw: &[RawPortgroup]) -> Vec<Portgroup> {
        let mut seen = Seen::default();
        let out: Vec<Portgroup> = raw.iter().map(|pg| self.portgroup(zone, pg, &mut seen)).collect();
        if !raw.is_empty() && seen.defaults == 0 {
            self.r.error(
                zone_pos,
                format!("zone {zone} has portgroups but none is the default"),
                "add `default = true` to exactly one [[zone.portgroup]]",
            );
        }
        out
    }

    /// One portgroup's rules; `seen` carries what the zone's earlier portgroups used.
    fn portgroup(&mut self, zone: &str, pg: &RawPortgroup, seen: &mut Seen) -> Portgroup {
        let name = pg.name.get_ref().as_str();
        if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            let what = format!(
                "portgroup name \"{}\" is empty or has spaces/control characters",
                name.escape_debug()
            );
            self.r.error(self.at(&pg.name), what, "name it like \"vlan-10\"");
        }
        if !seen.names.insert(name.to_string()) {
            let what = format!("portgroup \"{name}\" appears twice in zone {zone}");
            self.r.error(self.at(&pg.name), what, "give each portgroup of a zone its own name");
        }
        let vlan = *pg.vlan.get_ref();
        if !(1..=4094).contains(&vlan) {
            self.r.error(
                self.at(&pg.vlan),
                format!("VLAN {vlan} is out of range"),
                "use a VLAN ID from 1 to 4094",
            );
        } else if let Some(other) = seen.vlans.insert(vlan, name.to_string()) {
            let what = format!("VLAN {vlan} is already portgroup \"{other}\" of zone {zone}");
            self.r.error(self.at(&pg.vlan), what, "give each portgroup of a zone its own VLAN");
        }
        let default = pg.default.as_ref().filter(|d| *d.get_ref());
        if let Some(d) = default {
            seen.defaults += 1;
            if seen.defaults > 1 {
                let what = format!("zone {zone} has more than one default portgroup");
                self.r.error(self.at(d), what, "keep `default = true` on exactly one portgroup");
            }
        }
        Portgroup {
            name: name.to_string(),
            vlan: u16::try_from(vlan).unwrap_or(0),
            default: default.is_some(),
            vni: self.vni(zone, pg, seen),
        }
    }
}

/// What a zone's portgroups used so far (names, VLANs, VNIs, defaults).
#[derive(Default)]
pub(crate) struct Seen {
    names: HashSet<String>,
    vlans: HashMap<i64, String>,
    pub(crate) vnis: HashMap<i64, String>,
    defaults: usize,
}

impl Checker<'_> {
    fn unique_zone_names(&mut self, zones: &[Zone]) {
        let mut seen = HashSet::new();
        for z in zones {
            if !seen.insert(z.name.as_str()) {
                self.r.error(
                    z.name_pos,
                    format!("zone \"{}\" is declared twice", z.name),
                    "give every [[zone]] its own name",
                );
            }
        }
    }

    fn unique_bridges(&mut self, zones: &[Zone]) {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for z in zones {
            if let Some(other) = seen.insert(z.bridge.as_str(), z.name.as_str()) {
                self.r.error(
                    z.bridge_pos,
                    format!("zone {} would use bridge {}, which zone {other} already uses", z.name, z.bridge),
                    "set a distinct `bridge =` on one of them (one bridge per zone)",
                );
            }
        }
    }

    /// A NIC trunks one zone only, and no NIC may share a name with a zone's bridge (whose
    /// internal port carries the bridge's name).
    fn uplinks(&mut self, zones: &[Zone]) {
        let bridges: HashMap<&str, &str> =
            zones.iter().map(|z| (z.bridge.as_str(), z.name.as_str())).collect();
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for z in zones {
            let Some(u) = z.uplink.as_ref().filter(|u| u.vpn.is_none()) else { continue };
            if let Err(e) = netdev::IfName::new(&u.nic) {
                self.r.error(
                    u.pos,
                    format!("uplink NIC name is not a valid interface name: {e}"),
                    "name the NIC as `ip link` shows it, e.g. nic = \"eth1\"",
                );
            }
            if let Some(other) = seen.insert(u.nic.as_str(), z.name.as_str()) {
                self.r.error(
                    u.pos,
                    format!("NIC {} is already the uplink of zone {other}", u.nic),
                    "a NIC can be the uplink of one zone only; give this zone another NIC or none",
                );
            }
            if let Some(owner) = bridges.get(u.nic.as_str()) {
                self.r.error(
                    u.pos,
                    format!("uplink NIC {} has the name of zone {owner}'s bridge", u.nic),
                    "use the NIC's real name, distinct from every zone's bridge",
                );
            }
        }
    }

    fn vms(&mut self, raw: &[RawVm], zones: &[Zone]) -> Vec<Vm> {
        let mut names = HashSet::new();
        let mut macs: HashMap<Mac, String> = HashMap::new();
        let mut out = Vec::new();
        for v in raw {
            let name = v.name.get_ref().clone();
            if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) {
                self.r.error(
                    self.at(&v.name),
                    format!("VM name \"{}\" cannot be a libvirt domain name", name.escape_debug()),
                    "use the domain's name as `virsh list` shows it",
                );
            } else if !names.insert(name.clone()) {
                self.r.error(
                    self.at(&v.name),
                    format!("VM \"{name}\" is declared twice"),
                    "give every [[vm]] its own name",
                );
            }
            let portgroup = self.vm_place(v, zones);
            let mac = self.vm_mac(v, &name, &mut macs);
            let ip = crate::services::vm_ip(self.text, self.r, v.ip.as_ref());
            let ips = self.vm_ips(v);
            out.push(Vm { name, zone: v.zone.get_ref().clone(), portgroup, mac, ip, ips });
        }
        crate::services::unique_vm_ips(self.text, self.r, raw, &out);
        out
    }

    /// Resolves the VM's portgroup: the one named, else the zone's default.
    fn vm_place(&mut self, v: &RawVm, zones: &[Zone]) -> Option<String> {
        let zname = v.zone.get_ref();
        let Some(zone) = zones.iter().find(|z| &z.name == zname) else {
            let known: Vec<&str> = zones.iter().map(|z| z.name.as_str()).collect();
            self.r.error(
                self.at(&v.zone),
                format!("VM {} names zone \"{zname}\", which is not declared", v.name.get_ref()),
                format!("use one of the declared zones: {}", known.join(", ")),
            );
            return None;
        };
        match &v.portgroup {
            None => zone.default_portgroup().map(|p| p.name.clone()),
            Some(pg) if zone.portgroups.iter().any(|p| &p.name == pg.get_ref()) => Some(pg.get_ref().clone()),
            Some(pg) => {
                let known: Vec<&str> = zone.portgroups.iter().map(|p| p.name.as_str()).collect();
                let fix = if known.is_empty() {
                    format!("zone {zname} is untagged; remove `portgroup =`")
                } else {
                    format!("use one of zone {zname}'s portgroups: {}", known.join(", "))
                };
                self.r.error(self.at(pg), format!("zone {zname} has no portgroup \"{}\"", pg.get_ref()), fix);
                None
            }
        }
    }

    /// Every `ips` entry parsed; each bad one is an error at its own position.
    fn vm_ips(&mut self, v: &RawVm) -> Vec<IpNet> {
        let mut out = Vec::new();
        for ip in &v.ips {
            match IpNet::parse(ip.get_ref()) {
                Ok(n) if out.contains(&n) => {
                    self.r.error(self.at(ip), format!("{n} is listed twice"), "list every address once");
                }
                Ok(n) => out.push(n),
                Err(e) => {
                    let fix = "write an address (198.18.0.5, 2001:db8::5) or a prefix (198.18.0.0/24)";
                    self.r.error(self.at(ip), format!("VM {}: {e}", v.name.get_ref()), fix);
                }
            }
        }
        out
    }

    fn vm_mac(&mut self, v: &RawVm, name: &str, macs: &mut HashMap<Mac, String>) -> Mac {
        let pos = self.at(&v.mac);
        let Some(mac) = Mac::parse(v.mac.get_ref()) else {
            self.r.error(
                pos,
                format!("\"{}\" is not a MAC address", v.mac.get_ref().escape_debug()),
                "write six hex bytes like \"52:54:00:10:00:01\"",
            );
            return Mac([0; 6]);
        };
        if mac.is_multicast() || mac.0 == [0; 6] {
            self.r.error(
                pos,
                format!("MAC {mac} is not a unicast address"),
                "use a unicast MAC (first byte even, e.g. 52:54:00:...)",
            );
        } else if let Some(other) = macs.insert(mac, name.to_string()) {
            self.r.error(pos, format!("MAC {mac} is already VM {other}'s"), "give every VM its own MAC");
        }
        mac
    }
}

/// A diagnostic list as one text block, one line each (what the CLI prints).
pub fn render(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("{d}\n")).collect()
}
