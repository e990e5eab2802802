//! The VPN zones' part of the proof. A VPN zone's kill switch holds only while its segments
//! reach nothing but its VM ports and its gateway port: a NIC uplink or a patch port beside the
//! gateway is another way out, and so is any other port that carries one of the zone's VLANs —
//! above all the bridge's internal port, the host's IP stack, which would hear every ARP and
//! DHCP broadcast of the zone's VMs (zones puts it on [`switch::HOST_ONLY_VID`], which no
//! trunk carries).
//!
//! The zone's VLANs are those its VM ports and its gateway carry, and its portgroups' — so an
//! untagged zone, whose VM ports are trunks of all VLANs, counts every VLAN a VM could tag.
//! Which port carries which VLAN is decided by `switch::PortVlan`, as the data path decides it.

use serde::Serialize;

use super::{port_vlan, zone_portgroups};
use crate::live::{LiveBridge, LiveDb, LivePort, ROLE_KEY};

/// A way out of a VPN zone other than its tunnel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VpnEscape {
    /// Zone.
    pub zone: String,
    /// The zone's gateway port (type `rvswitch-vpn`).
    pub gateway: String,
    /// The other exit.
    pub port: String,
    /// Why it is one (`NIC uplink`, `patch port`, `internal port (the host's IP stack)
    /// carrying VLAN 10`...).
    pub what: String,
}

/// What a VPN zone's VLANs reach on its bridge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VpnReach {
    /// Zone.
    pub zone: String,
    /// Its bridge.
    pub bridge: String,
    /// Its gateway port.
    pub gateway: String,
    /// The zone's VLANs, as ranges (`10`, `0-4094`).
    pub vlans: String,
    /// The VM ports that carry them (ports zones did not create, of a plain or tap type).
    pub vm_ports: Vec<String>,
}

/// Interface types a VM's NIC has on the bridge (libvirt's `vnetN` taps, veths of test VMs).
const VM_TYPES: [&str; 3] = ["", "system", "tap"];

fn is_gateway(p: &LivePort) -> bool {
    p.interfaces.iter().any(|i| i.kind == "rvswitch-vpn")
}

fn is_vm_port(p: &LivePort) -> bool {
    p.zone().is_none() && p.interfaces.iter().all(|i| VM_TYPES.contains(&i.kind.as_str()))
}

/// The VLANs (0..=4095) port `p` carries.
fn carried(p: &LivePort) -> Vec<u16> {
    let Some(v) = port_vlan(p) else { return Vec::new() };
    (0..=4095).filter(|&vlan| v.egress_vid(vlan).is_some()).collect()
}

/// Per VPN zone bridge: what its VLANs reach, and every exit beside the gateway.
pub(super) fn check(live: &LiveDb) -> (Vec<VpnReach>, Vec<VpnEscape>) {
    let (mut reach, mut escapes) = (Vec::new(), Vec::new());
    for b in &live.bridges {
        let (Some(zone), Some(gw)) = (b.zone(), b.ports.iter().find(|p| is_gateway(p))) else { continue };
        let vlans = zone_vlans(b, gw);
        let mut vm_ports = Vec::new();
        for p in b.ports.iter().filter(|p| p.name != gw.name) {
            let hit: Vec<u16> = carried(p).into_iter().filter(|v| vlans.contains(v)).collect();
            if let Some(what) = exit(p, &hit) {
                escapes.push(VpnEscape {
                    zone: zone.into(),
                    gateway: gw.name.clone(),
                    port: p.name.clone(),
                    what,
                });
            } else if !hit.is_empty() {
                vm_ports.push(p.name.clone());
            }
        }
        let (zone, bridge, gateway) = (zone.to_string(), b.name.clone(), gw.name.clone());
        reach.push(VpnReach { zone, bridge, gateway, vlans: ranges(&vlans), vm_ports });
    }
    (reach, escapes)
}

/// The VLANs of the zone on bridge `b`: its portgroups', its gateway's and its VM ports'.
fn zone_vlans(b: &LiveBridge, gw: &LivePort) -> Vec<u16> {
    let mut v: Vec<u16> = zone_portgroups(b).into_iter().map(|(_, vlan)| vlan).collect();
    v.extend(carried(gw));
    v.extend(b.ports.iter().filter(|p| is_vm_port(p)).flat_map(carried));
    v.sort_unstable();
    v.dedup();
    v
}

/// Why port `p` (carrying the zone's VLANs `hit`) is a way out, if it is one.
fn exit(p: &LivePort, hit: &[u16]) -> Option<String> {
    if p.interfaces.iter().any(|i| i.kind == "patch") {
        return Some("patch port".into());
    }
    let role = p.zone().and(p.external_ids.get(ROLE_KEY)).map(String::as_str);
    if role == Some("uplink") {
        return Some("NIC uplink".into());
    }
    if hit.is_empty() || is_vm_port(p) {
        return None;
    }
    let kind = p.interfaces.first().map_or("", |i| i.kind.as_str());
    let label = match (role, kind) {
        (Some("internal"), _) | (_, "internal") => "internal port (the host's IP stack)".to_string(),
        (Some("tunnel"), _) | (_, "vxlan" | "geneve") => "tunnel port".to_string(),
        _ => format!("port of type {kind:?}"),
    };
    Some(format!("{label} carrying VLAN {}", ranges(hit)))
}

/// `0-4094`, `10,20`: ascending VLANs as ranges.
fn ranges(v: &[u16]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j { v[i].to_string() } else { format!("{}-{}", v[i], v[j]) });
        i = j + 1;
    }
    out.join(",")
}

/// The VPN zones' lines of the text report: the proof, or each way out.
pub(super) fn render(r: &super::Report) -> String {
    let mut s = String::new();
    for z in &r.vpn_zones {
        if r.vpn_escapes.iter().any(|e| e.zone == z.zone) {
            continue;
        }
        let vms = if z.vm_ports.is_empty() { "no VM ports yet".to_string() } else { z.vm_ports.join(", ") };
        s.push_str(&format!(
            "\nVPN zone {}: VLAN {} on {} reaches only its gateway port {} and VM ports ({vms})\n",
            z.zone, z.vlans, z.bridge, z.gateway
        ));
    }
    for e in &r.vpn_escapes {
        s.push_str(&format!(
            "\nVPN ZONE {} HAS ANOTHER WAY OUT: {} {} beside its gateway port {} (the kill switch needs the tunnel to be the only exit)\n",
            e.zone, e.what, e.port, e.gateway
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::fixture::{bridge, db, port};
    use crate::live::{PORTGROUPS_KEY, ZONE_KEY as Z};
    use crate::verify::{render as render_all, verify};

    fn gateway() -> LivePort {
        let mut gw = port("wg-intranet", Some(10), &[], None, &[(Z, "intranet"), (ROLE_KEY, "uplink")]);
        gw.interfaces[0].kind = "rvswitch-vpn".into();
        gw
    }

    /// The internal port as zones makes it for a VPN zone (host-only VLAN) or not (all VLANs).
    fn internal(host_only: bool) -> LivePort {
        let (tag, mode) =
            if host_only { (Some(switch::HOST_ONLY_VID), Some("access")) } else { (None, None) };
        let mut p = port("br-intranet", tag, &[], mode, &[(Z, "intranet"), (ROLE_KEY, "internal")]);
        p.interfaces[0].kind = "internal".into();
        p
    }

    fn vpn_bridge(pgs: &str, ports: Vec<LivePort>) -> LiveBridge {
        bridge("br-intranet", &[(Z, "intranet"), (PORTGROUPS_KEY, pgs)], ports)
    }

    #[test]
    fn the_zones_vlans_reach_only_vm_ports_and_the_gateway() {
        let vm = port("vnet0", Some(10), &[], None, &[]);
        let r = verify(&db(vec![vpn_bridge("vlan-10=10", vec![internal(true), gateway(), vm])]), &[]);
        assert!(!r.joined() && r.vpn_escapes.is_empty(), "{r:#?}");
        assert_eq!(r.vpn_zones[0].vm_ports, ["vnet0"]);
        assert_eq!(r.vpn_zones[0].vlans, "10");
        let text = render_all(&r);
        assert!(
            text.contains("VPN zone intranet: VLAN 10 on br-intranet reaches only its gateway port wg-intranet and VM ports (vnet0)"),
            "{text}"
        );
    }

    #[test]
    fn an_internal_port_that_trunks_the_zone_is_a_way_out() {
        let r = verify(&db(vec![vpn_bridge("vlan-10=10", vec![internal(false), gateway()])]), &[]);
        let e: Vec<(&str, &str)> = r.vpn_escapes.iter().map(|e| (e.port.as_str(), e.what.as_str())).collect();
        assert_eq!(e, [("br-intranet", "internal port (the host's IP stack) carrying VLAN 10")]);
        assert!(r.joined());
        // A hand-added internal port on the zone's VLAN is one as well.
        let mut extra = port("host0", Some(10), &[], None, &[]);
        extra.interfaces[0].kind = "internal".into();
        let r = verify(&db(vec![vpn_bridge("vlan-10=10", vec![internal(true), gateway(), extra])]), &[]);
        assert_eq!(r.vpn_escapes.len(), 1, "{r:#?}");
        assert_eq!(r.vpn_escapes[0].port, "host0");
    }

    #[test]
    fn in_an_untagged_zone_every_vlan_a_vm_can_tag_counts() {
        let mut gw = gateway();
        gw.tag = Some(0);
        let vm = port("vnet0", None, &[], None, &[]); // a trunk of all VLANs
        let mut on_5 = port("host5", Some(5), &[], None, &[]);
        on_5.interfaces[0].kind = "internal".into();
        let r = verify(&db(vec![vpn_bridge("", vec![internal(true), gw.clone(), vm.clone()])]), &[]);
        assert!(r.vpn_escapes.is_empty(), "no trunk carries the host-only VLAN: {r:#?}");
        assert_eq!(r.vpn_zones[0].vlans, "0-4094");
        let r = verify(&db(vec![vpn_bridge("", vec![internal(true), gw, vm, on_5])]), &[]);
        assert_eq!(r.vpn_escapes[0].what, "internal port (the host's IP stack) carrying VLAN 5", "{r:#?}");
    }

    #[test]
    fn a_nic_uplink_or_a_patch_port_beside_the_gateway_is_a_way_out() {
        let nic = port("eth1", None, &[10, 20], Some("trunk"), &[(Z, "intranet"), (ROLE_KEY, "uplink")]);
        let mut patch = port("pa", Some(30), &[], None, &[]);
        patch.interfaces[0].kind = "patch".into();
        let r = verify(&db(vec![vpn_bridge("vlan-10=10", vec![internal(true), gateway(), nic, patch])]), &[]);
        let e: Vec<(&str, &str)> = r.vpn_escapes.iter().map(|e| (e.port.as_str(), e.what.as_str())).collect();
        assert_eq!(e, [("eth1", "NIC uplink"), ("pa", "patch port")]);
        let text = render_all(&r);
        assert!(text.contains("VPN ZONE intranet HAS ANOTHER WAY OUT: NIC uplink eth1"), "{text}");
        assert!(!text.contains("reaches only"), "{text}");
    }

    #[test]
    fn vlan_ranges() {
        assert_eq!(ranges(&[]), "");
        assert_eq!(ranges(&[10]), "10");
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), "1-3,7,9-10");
    }
}
