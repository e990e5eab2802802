//! `zones show`: what the zones in the live database look like now — bridges, VLANs, uplinks,
//! and the VMs attached right now, recognised by the Interface `external_ids` libvirt writes
//! (`attached-mac`, `vm-id`, `iface-id`).

use std::fmt::Write;

use serde::Serialize;

use crate::desired::decode_portgroups;
use crate::live::{LiveDb, LivePort, DESCRIPTION_KEY, PORTGROUPS_KEY, ROLE_KEY};
use crate::model::{Mac, Model};

/// One zone as the database holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ZoneView {
    /// Zone name.
    pub zone: String,
    /// Bridge name.
    pub bridge: String,
    /// Description.
    pub description: String,
    /// `(portgroup, VLAN)`.
    pub portgroups: Vec<(String, u16)>,
    /// NIC uplinks.
    pub uplinks: Vec<PortView>,
    /// VM interfaces (ports carrying libvirt's marks).
    pub vms: Vec<PortView>,
}

/// A port of a zone bridge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortView {
    /// Port name (`vnet0`, `eth1`).
    pub port: String,
    /// The `[[vm]]` whose MAC is `attached-mac`, when a zones file was given.
    pub vm: Option<String>,
    /// `tag`.
    pub tag: Option<u16>,
    /// The portgroup `tag` belongs to.
    pub portgroup: Option<String>,
    /// `trunks`.
    pub trunks: Vec<u16>,
    /// `attached-mac`.
    pub mac: Option<String>,
    /// `vm-id` (libvirt's domain UUID).
    pub vm_id: Option<String>,
    /// `iface-id`.
    pub iface_id: Option<String>,
    /// `link_state` as the switch reports it.
    pub link_state: Option<String>,
}

fn view(p: &LivePort, portgroups: &[(String, u16)]) -> PortView {
    let i = p.interfaces.iter().find(|i| i.name == p.name).or(p.interfaces.first());
    let id = |k: &str| i.and_then(|i| i.external_ids.get(k)).cloned();
    PortView {
        port: p.name.clone(),
        vm: None,
        tag: p.tag,
        portgroup: p.tag.and_then(|t| portgroups.iter().find(|(_, v)| *v == t)).map(|(n, _)| n.clone()),
        trunks: p.trunks.clone(),
        mac: id("attached-mac"),
        vm_id: id("vm-id"),
        iface_id: id("iface-id"),
        link_state: i.and_then(|i| i.link_state.clone()),
    }
}

/// Every zone bridge in the database; with `model`, attached VMs are named by their MAC.
pub fn zones(live: &LiveDb, model: Option<&Model>) -> Vec<ZoneView> {
    let mut out = zone_views(live);
    let vms = model.map(|m| m.vms.as_slice()).unwrap_or_default();
    for v in out.iter_mut().flat_map(|z| z.vms.iter_mut()) {
        let mac = v.mac.as_deref().and_then(Mac::parse);
        v.vm = vms.iter().find(|vm| Some(vm.mac) == mac).map(|vm| vm.name.clone());
    }
    out
}

fn zone_views(live: &LiveDb) -> Vec<ZoneView> {
    let mut out = Vec::new();
    for b in &live.bridges {
        let Some(zone) = b.zone() else { continue };
        let portgroups = b.external_ids.get(PORTGROUPS_KEY).map(|s| decode_portgroups(s)).unwrap_or_default();
        let is_uplink = |p: &LivePort| {
            p.zone().is_some() && p.external_ids.get(ROLE_KEY).map(String::as_str) == Some("uplink")
        };
        let is_vm = |p: &LivePort| {
            p.interfaces.iter().any(|i| {
                ["attached-mac", "vm-id", "iface-id"].iter().any(|k| i.external_ids.contains_key(*k))
            })
        };
        out.push(ZoneView {
            zone: zone.into(),
            bridge: b.name.clone(),
            description: b.external_ids.get(DESCRIPTION_KEY).cloned().unwrap_or_default(),
            uplinks: b.ports.iter().filter(|p| is_uplink(p)).map(|p| view(p, &portgroups)).collect(),
            vms: b.ports.iter().filter(|p| is_vm(p)).map(|p| view(p, &portgroups)).collect(),
            portgroups,
        });
    }
    out
}

/// Text form.
pub fn render(zones: &[ZoneView]) -> String {
    let mut s = String::new();
    for z in zones {
        let _ = writeln!(
            s,
            "Zone {}  bridge {}{}",
            z.zone,
            z.bridge,
            if z.description.is_empty() { String::new() } else { format!("  \"{}\"", z.description) }
        );
        let pgs: Vec<String> = z.portgroups.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let _ = writeln!(
            s,
            "    portgroups: {}",
            if pgs.is_empty() { "none (untagged)".into() } else { pgs.join(" ") }
        );
        for u in &z.uplinks {
            let t: Vec<String> = u.trunks.iter().map(u16::to_string).collect();
            let _ = writeln!(
                s,
                "    uplink {}  trunks: {}  link: {}",
                u.port,
                if t.is_empty() { "-".into() } else { t.join(",") },
                u.link_state.as_deref().unwrap_or("?")
            );
        }
        for v in &z.vms {
            let _ = writeln!(
                s,
                "    vm {}port {}  mac {}  vm-id {}  portgroup {}  link: {}",
                v.vm.as_ref().map(|n| format!("{n}  ")).unwrap_or_default(),
                v.port,
                v.mac.as_deref().unwrap_or("?"),
                v.vm_id.as_deref().unwrap_or("?"),
                v.portgroup.as_deref().or(v.tag.map(|_| "(other VLAN)")).unwrap_or("(untagged)"),
                v.link_state.as_deref().unwrap_or("?")
            );
        }
    }
    if zones.is_empty() {
        s.push_str("no zones in the database\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::fixture::{bridge, db, port};
    use crate::live::ZONE_KEY;

    #[test]
    fn lists_uplinks_and_attached_vms_with_their_portgroup() {
        let mut vnet = port("vnet0", Some(10), &[], None, &[]);
        vnet.interfaces[0].external_ids.insert("attached-mac".into(), "52:54:00:10:00:01".into());
        vnet.interfaces[0].external_ids.insert("vm-id".into(), "1234".into());
        vnet.interfaces[0].link_state = Some("up".into());
        let b = bridge(
            "br-intranet",
            &[(ZONE_KEY, "intranet"), (PORTGROUPS_KEY, "vlan-10=10,guest=20")],
            vec![
                port("eth1", None, &[10, 20], Some("trunk"), &[(ZONE_KEY, "intranet"), (ROLE_KEY, "uplink")]),
                vnet,
                port("other", None, &[], None, &[]),
            ],
        );
        let file = "[[zone]]\nname = \"intranet\"\n[[vm]]\nname = \"desk\"\nzone = \"intranet\"\nmac = \"52:54:00:10:00:01\"\n";
        let model = crate::parse(file, "z").unwrap();
        let live = db(vec![b, bridge("handmade", &[], vec![])]);
        assert_eq!(zones(&live, None)[0].vms[0].vm, None);
        let z = zones(&live, Some(&model));
        assert_eq!(z.len(), 1);
        assert_eq!(z[0].uplinks[0].port, "eth1");
        assert_eq!((z[0].vms.len(), z[0].vms[0].portgroup.as_deref()), (1, Some("vlan-10")));
        let text = render(&z);
        assert!(
            text.contains(
                "vm desk  port vnet0  mac 52:54:00:10:00:01  vm-id 1234  portgroup vlan-10  link: up"
            ),
            "{text}"
        );
        assert!(text.contains("uplink eth1  trunks: 10,20"), "{text}");
    }
}
