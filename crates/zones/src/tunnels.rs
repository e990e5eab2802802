//! The zones file's tunnel rules: a portgroup's `vni`, a zone's `peers` and `local_ip`. A zone
//! stretched to other hosts gets one VXLAN port per peer per portgroup with a VNI, named
//! [`tunnel_port_name`]: always a valid interface name (OVSDB port names are netdev names to
//! ovs-vsctl users), unique in the file or the file is refused.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use toml::Spanned;

use crate::model::{tunnel_port_name, Portgroup, Zone};
use crate::raw::{RawPortgroup, RawZone};
use crate::validate::{Checker, Seen};

/// Who a port name is for: a description, and the (zone, VNI, peer) of a tunnel (None: a bridge).
type Claim<'a> = (String, Option<(&'a str, u32, Ipv4Addr)>);

/// VXLAN's 24-bit VNI space (0 is left out: it is the "no key" of OvS tunnels).
const MAX_VNI: i64 = (1 << 24) - 1;

impl Checker<'_> {
    /// A portgroup's `vni`: in range and not used twice in one zone (that would join VLANs).
    pub(crate) fn vni(&mut self, zone: &str, pg: &RawPortgroup, seen: &mut Seen) -> Option<u32> {
        let v = pg.vni.as_ref()?;
        let vni = *v.get_ref();
        if !(1..=MAX_VNI).contains(&vni) {
            self.r.error(
                self.at(v),
                format!("VNI {vni} is out of range"),
                format!("use a VNI from 1 to {MAX_VNI}"),
            );
            return None;
        }
        if let Some(other) = seen.vnis.insert(vni, pg.name.get_ref().clone()) {
            let what = format!("VNI {vni} is already portgroup \"{other}\" of zone {zone}");
            self.r.error(self.at(v), what, "one VNI carries one VLAN: give each portgroup its own VNI");
        }
        u32::try_from(vni).ok()
    }

    fn address(&mut self, v: &Spanned<String>, what: &str) -> Option<Ipv4Addr> {
        match v.get_ref().parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) if !a.is_multicast() && !a.is_broadcast() && !a.is_unspecified() => Some(a),
            Ok(IpAddr::V6(_)) => {
                let msg = format!("{what} {} is IPv6; rvswitch tunnels run over IPv4", v.get_ref());
                self.r.error(self.at(v), msg, "give the host's IPv4 underlay address");
                None
            }
            _ => {
                let msg = format!("{what} \"{}\" is not a unicast IPv4 address", v.get_ref().escape_debug());
                self.r.error(self.at(v), msg, "write an address like \"198.51.100.2\"");
                None
            }
        }
    }

    /// The zone's peers and local address.
    pub(crate) fn tunnels(&mut self, z: &RawZone, pgs: &[Portgroup]) -> (Vec<Ipv4Addr>, Option<Ipv4Addr>) {
        let local = z.local_ip.as_ref().and_then(|l| self.address(l, "local_ip"));
        let mut seen = HashSet::new();
        let mut peers = Vec::new();
        for p in &z.peers {
            let Some(a) = self.address(p, "peer") else { continue };
            if Some(a) == local {
                self.r.error(
                    self.at(p),
                    format!("peer {a} is this host's local_ip"),
                    "list only the other hosts",
                );
            } else if !seen.insert(a) {
                self.r.error(self.at(p), format!("peer {a} is listed twice"), "list every peer once");
            } else {
                peers.push(a);
            }
        }
        let zone = z.name.get_ref();
        let vnis: Vec<u32> = pgs.iter().filter_map(|p| p.vni).collect();
        if let (Some(first), true) = (z.peers.first(), vnis.is_empty()) {
            let what = format!("zone {zone} has peers but no portgroup with a vni");
            self.r.error(self.at(first), what, "add `vni = N` to the portgroups to stretch to the peers");
        }
        let vpn =
            z.uplink.as_ref().is_some_and(|u| u.get_ref().wireguard.is_some() || u.get_ref().tun.is_some());
        if let (Some(first), true) = (z.peers.first(), vpn) {
            // VXLAN leaves through the host's own stack and NIC, in clear: a way out of a VPN
            // zone that the kill switch would not hold shut.
            let what = format!("zone {zone} has a VPN uplink and peers");
            self.r.error(self.at(first), what, "a VPN zone's only way out is its tunnel: remove peers");
        }
        (peers, local)
    }

    /// Tunnel port names carry a hash: two tunnels of the file (or a tunnel and a bridge) whose
    /// names come out alike are refused, since renaming one would not be stable across applies.
    pub(crate) fn unique_tunnels(&mut self, zones: &[Zone]) {
        // A repeat of the same tunnel (a VNI or zone given twice) is not a collision: it has
        // its own error.
        let mut seen: HashMap<String, Claim> = zones
            .iter()
            .map(|z| (z.bridge.clone(), (format!("the bridge of zone {}", z.name), None)))
            .collect();
        for z in zones {
            for vni in z.portgroups.iter().filter_map(|p| p.vni) {
                for peer in &z.peers {
                    let (name, key) =
                        (tunnel_port_name(&z.name, vni, *peer), Some((z.name.as_str(), vni, *peer)));
                    let this = format!("zone {}'s tunnel for VNI {vni} to {peer}", z.name);
                    match seen.get(&name) {
                        Some((_, k)) if *k == key => {}
                        Some((other, _)) => self.r.error(
                            z.name_pos,
                            format!("{this} would be port {name}, as would {other}"),
                            "use another VNI for one of them",
                        ),
                        None => {
                            seen.insert(name, (this, key));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    /// `tunnel_port_name("corp", 100, 198.51.100.2)`, pinned.
    const GOLDEN: &str = "vxcorp-63o57cul";

    const OK: &str = "[[zone]]\nname = \"corp\"\npeers = [\"198.51.100.2\", \"198.51.100.3\"]\n\
        local_ip = \"198.51.100.1\"\n[[zone.portgroup]]\nname = \"v10\"\nvlan = 10\ndefault = true\nvni = 100\n\
        [[zone.portgroup]]\nname = \"v20\"\nvlan = 20\n";

    fn errors(text: &str) -> Vec<String> {
        crate::parse(text, "z.toml").unwrap_err().iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn peers_local_ip_and_vni_are_read() {
        let m = crate::parse(OK, "z.toml").unwrap();
        let z = &m.zones[0];
        assert_eq!(z.peers, vec![Ipv4Addr::new(198, 51, 100, 2), Ipv4Addr::new(198, 51, 100, 3)]);
        assert_eq!(z.local_ip, Some(Ipv4Addr::new(198, 51, 100, 1)));
        assert_eq!(z.portgroups.iter().map(|p| p.vni).collect::<Vec<_>>(), vec![Some(100), None]);
    }

    #[test]
    fn bad_tunnel_settings_are_all_reported() {
        let text = OK
            .replace("\"198.51.100.3\"", "\"198.51.100.2\", \"2001:db8::1\", \"198.51.100.1\", \"nope\"")
            .replace("vlan = 20\n", "vlan = 20\nvni = 100\n");
        let e = errors(&text);
        let has = |s: &str| e.iter().any(|d| d.contains(s));
        assert!(has("peer 198.51.100.2 is listed twice"), "{e:#?}");
        assert!(has("is IPv6"), "{e:#?}");
        assert!(has("is this host's local_ip"), "{e:#?}");
        assert!(has("\"nope\" is not a unicast IPv4"), "{e:#?}");
        assert!(has("VNI 100 is already portgroup \"v10\""), "{e:#?}");
        assert_eq!(e.len(), 5, "{e:#?}");
        assert!(errors(&OK.replace("vni = 100", "vni = 16777216"))
            .iter()
            .any(|d| d.contains("out of range")));
        let no_vni = errors(&OK.replace("vni = 100\n", ""));
        assert!(no_vni.iter().any(|d| d.contains("peers but no portgroup with a vni")), "{no_vni:#?}");
    }

    #[test]
    fn long_zone_names_get_tunnel_names_that_fit() {
        // Once refused ("vx-intranet-100-1" was 17 bytes); a zone name of any length now fits.
        let m = crate::parse(&OK.replace("\"corp\"", "\"intranet\""), "z.toml").unwrap();
        let names: Vec<String> =
            crate::desired::desired(&m).remove(0).tunnels.into_iter().map(|t| t.name).collect();
        let p = |last| Ipv4Addr::new(198, 51, 100, last);
        let want =
            [super::tunnel_port_name("intranet", 100, p(2)), super::tunnel_port_name("intranet", 100, p(3))];
        assert_eq!(names, want);
        let long = OK.replace("\"corp\"", &format!("\"{}\"\nbridge = \"br-long\"", "z".repeat(200)));
        assert!(crate::parse(&long, "z.toml").is_ok());
    }

    #[test]
    fn tunnel_names_are_short_distinct_and_stable() {
        let base = "intranet-of-the-branch-office-".repeat(10);
        let mut seen = HashSet::new();
        for len in (1..=40).chain([120, 300]) {
            let zone = &base[..len];
            for vni in [1, 100, 4094, 65_536, 16_777_215] {
                for last in 0..=255 {
                    let peer = Ipv4Addr::new(198, 51, 100, last);
                    let name = super::tunnel_port_name(zone, vni, peer);
                    assert!(netdev::IfName::new(&name).is_ok() && name.len() <= 15, "{name}");
                    assert!(name.starts_with(&format!("vx{}-", &zone[..len.min(4)])), "{name}");
                    assert_eq!(name, super::tunnel_port_name(zone, vni, peer));
                    assert!(seen.insert(name), "zone {zone} VNI {vni} peer {peer}");
                }
            }
        }
        assert_eq!(seen.len(), 42 * 5 * 256);
        // Pinned: the names in live databases must not change with the hash's implementation.
        assert_eq!(super::tunnel_port_name("corp", 100, Ipv4Addr::new(198, 51, 100, 2)), GOLDEN);
    }

    #[test]
    fn tunnels_whose_names_collide_are_refused() {
        // Found by search: (584, 198.51.3.220) and (737, 198.51.2.156) hash alike in zone corp.
        let a = super::tunnel_port_name("corp", 584, Ipv4Addr::new(198, 51, 3, 220));
        assert_eq!(a, super::tunnel_port_name("corp", 737, Ipv4Addr::new(198, 51, 2, 156)));
        let text = "[[zone]]\nname = \"corp\"\npeers = [\"198.51.3.220\", \"198.51.2.156\"]\n\
            [[zone.portgroup]]\nname = \"v10\"\nvlan = 10\ndefault = true\nvni = 584\n\
            [[zone.portgroup]]\nname = \"v20\"\nvlan = 20\nvni = 737\n";
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(e[0].contains(&format!("VNI 737 to 198.51.2.156 would be port {a}")), "{e:#?}");
        assert!(e[0].contains("VNI 584 to 198.51.3.220"), "{e:#?}");
    }
}
