//! `rvsctl topology`: zones and their bridges, ports with VLAN mode and tag, link state,
//! drops, the zone's NIC uplink, and the VM behind a port (from the Interface's `external_ids`:
//! `vm-id`/`vm-uuid`, `attached-mac`, as libvirt and OpenStack write them). Zones come from the
//! marks `rvsctl zones apply` leaves on Bridge and Port rows (`rvswitch-zone`,
//! `rvswitch-description`, `rvswitch-portgroups`, `rvswitch-role`). Pure: `rvsctl show`'s data
//! and the rows' external_ids in, DOT or JSON out; SVG is DOT rendered by Graphviz (the CLI
//! runs `dot`).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use zones::desired::decode_portgroups;
use zones::live::{DESCRIPTION_KEY, PORTGROUPS_KEY, ROLE_KEY, ZONE_KEY};

use crate::protocol::{BridgeStatus, PortStatus, ShowReply};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub bridges: Vec<TopoBridge>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopoBridge {
    pub name: String,
    /// The zone that made this bridge (`rvsctl zones apply`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The zone's portgroups: (name, VLAN).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub portgroups: Vec<(String, u16)>,
    pub ports: Vec<TopoPort>,
}

/// A port as `rvsctl show` reports it, plus the VM behind it and its role in a zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopoPort {
    #[serde(flatten)]
    pub status: PortStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// `uplink` (the zone's NIC trunk) or `internal` (the bridge's own port), for zone ports;
    /// `vpn-uplink` for a VPN gateway port (the zone's way out through its WireGuard tunnel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The role of a VPN gateway port in the picture.
const VPN_UPLINK: &str = "vpn-uplink";

/// external_ids by row name.
pub type IdsByName = BTreeMap<String, BTreeMap<String, String>>;

/// The external_ids the picture reads, per table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DbIds {
    pub bridges: IdsByName,
    pub ports: IdsByName,
    pub interfaces: IdsByName,
}

impl DbIds {
    /// The OVSDB `select`s whose results [`DbIds::from_results`] reads, in this order.
    pub fn selects() -> Vec<Value> {
        ["Bridge", "Port", "Interface"]
            .map(|t| serde_json::json!({"op": "select", "table": t, "where": [], "columns": ["name", "external_ids"]}))
            .into()
    }

    pub fn from_results(results: &[Value]) -> DbIds {
        let table = |i: usize| results.get(i).map(external_ids).unwrap_or_default();
        DbIds { bridges: table(0), ports: table(1), interfaces: table(2) }
    }
}

/// external_ids by name, from an OVSDB `select` of `name` and `external_ids`
/// (`["map", [[k, v], ...]]`). Rows it cannot read are skipped.
pub fn external_ids(rows: &Value) -> IdsByName {
    let rows = rows.get("rows").and_then(Value::as_array).map_or(&[][..], |r| r.as_slice());
    rows.iter()
        .filter_map(|r| {
            let name = r.get("name")?.as_str()?.to_string();
            let pairs = r.get("external_ids")?.get(1)?.as_array()?;
            let map = pairs
                .iter()
                .filter_map(|p| Some((p.get(0)?.as_str()?.to_string(), p.get(1)?.as_str()?.to_string())))
                .collect();
            Some((name, map))
        })
        .collect()
}

fn id(ids: &IdsByName, name: &str, key: &str) -> Option<String> {
    ids.get(name).and_then(|m| m.get(key)).cloned()
}

impl Topology {
    pub fn build(show: &ShowReply, ids: &DbIds) -> Topology {
        Topology { bridges: show.bridges.iter().map(|b| TopoBridge::build(b, ids)).collect() }
    }
}

impl TopoBridge {
    fn build(b: &BridgeStatus, ids: &DbIds) -> TopoBridge {
        let get = |k| id(&ids.bridges, &b.name, k);
        let port = |p: &PortStatus| {
            let vm = |k| id(&ids.interfaces, &p.name, k);
            TopoPort {
                status: p.clone(),
                vm: vm("vm-id").or_else(|| vm("vm-uuid")),
                mac: vm("attached-mac"),
                role: if p.vpn.is_some() {
                    Some(VPN_UPLINK.to_string())
                } else {
                    id(&ids.ports, &p.name, ROLE_KEY).filter(|_| id(&ids.ports, &p.name, ZONE_KEY).is_some())
                },
            }
        };
        TopoBridge {
            name: b.name.clone(),
            zone: get(ZONE_KEY),
            description: get(DESCRIPTION_KEY),
            portgroups: get(PORTGROUPS_KEY).map(|s| decode_portgroups(&s)).unwrap_or_default(),
            ports: b.ports.iter().map(port).collect(),
        }
    }

    /// The cluster's title: zone, bridge, description, portgroups.
    fn title(&self) -> String {
        let mut t = match &self.zone {
            Some(z) => format!("zone {z} — bridge {}", self.name),
            None => format!("bridge {}", self.name),
        };
        if let Some(d) = &self.description {
            let _ = write!(t, "\n{d}");
        }
        if !self.portgroups.is_empty() {
            let pgs: Vec<String> = self.portgroups.iter().map(|(n, v)| format!("{n}={v}")).collect();
            let _ = write!(t, "\nportgroups {}", pgs.join(", "));
        }
        t
    }
}

impl Topology {
    /// Graphviz DOT: one cluster per bridge (titled with its zone), the bridge as a hub, a box
    /// per port (green when up, red when down) labelled with its VLAN rule and drops; the
    /// zone's uplink as a NIC leading out of the cluster, or its VPN gateway as a plum arrow
    /// (green/red by tunnel state) labelled with the peer's endpoint and the handshake's age;
    /// the VM behind a port as its own node.
    pub fn to_dot(&self) -> String {
        let mut s = String::from(
            "graph rvswitch {\n  rankdir=LR;\n  node [fontname=\"sans-serif\", fontsize=10];\n  \
             graph [fontname=\"sans-serif\", fontsize=11];\n",
        );
        for (i, b) in self.bridges.iter().enumerate() {
            let hub = quote(&format!("bridge:{}", b.name));
            let _ = writeln!(s, "  subgraph cluster_{i} {{\n    label={};", quote(&b.title()));
            let _ = writeln!(s, "    {hub} [shape=ellipse, style=bold, label={}];", quote(&b.name));
            for p in &b.ports {
                p.to_dot(&mut s, &b.name, &hub);
            }
            s.push_str("  }\n");
        }
        s.push_str("}\n");
        s
    }
}

impl TopoPort {
    fn to_dot(&self, s: &mut String, bridge: &str, hub: &str) {
        let id = quote(&format!("port:{bridge}:{}", self.status.name));
        let up = match &self.status.vpn {
            Some(v) => v.state == "up",
            None => self.status.link_state == "up",
        };
        let color = if up { "darkgreen" } else { "red" };
        let shape = match self.role.as_deref() {
            Some("uplink") => "box, style=\"rounded,filled\", fillcolor=lightblue",
            Some(VPN_UPLINK) => "cds, style=filled, fillcolor=plum",
            _ => "box",
        };
        let width = if self.status.statistics.total_drops() > 0 { ", penwidth=2" } else { "" };
        let _ =
            writeln!(s, "    {id} [shape={shape}, color={color}{width}, label={}];", quote(&self.label()));
        let _ = writeln!(s, "    {hub} -- {id};");
        if let Some(vm) = self.vm_label() {
            let vid = quote(&format!("vm:{bridge}:{}", self.status.name));
            let _ = writeln!(
                s,
                "    {vid} [shape=component, style=filled, fillcolor=lightyellow, label={}];",
                quote(&vm)
            );
            let _ = writeln!(s, "    {id} -- {vid};");
        }
    }

    fn label(&self) -> String {
        let p = &self.status;
        let mut l = match (self.role.as_deref(), &p.vpn) {
            (Some("uplink"), _) => format!("uplink {} ({})\nNIC trunk", p.name, p.kind),
            (_, Some(v)) => {
                if v.transport == "tun" {
                    format!("VPN uplink {}\ntun device {}\nvpn {}", p.name, v.endpoint, v.state)
                } else {
                    let seen = v.last_handshake_secs.map_or("never".to_string(), |s| format!("{s} s ago"));
                    format!(
                        "VPN uplink {}\nWireGuard to {}\nvpn {}, handshake {seen}",
                        p.name, v.endpoint, v.state
                    )
                }
            }
            _ => format!("{} ({})", p.name, p.kind),
        };
        let _ = write!(l, "\n{}", p.vlan_mode);
        if let Some(t) = p.tag {
            let _ = write!(l, " tag {t}");
        }
        if !p.trunks.is_empty() {
            let t: Vec<String> = p.trunks.iter().map(u16::to_string).collect();
            let word = if p.vlan_mode == "trunk" { "" } else { " trunks" };
            let _ = write!(l, "{word} {}", t.join(","));
        }
        let _ = write!(l, "\nlink {}", p.link_state);
        let drops = p.statistics.total_drops();
        if drops > 0 {
            let _ = write!(l, ", {drops} drops");
        }
        l
    }

    /// The VM node's label, when the port has a VM behind it.
    fn vm_label(&self) -> Option<String> {
        match (&self.vm, &self.mac) {
            (Some(vm), Some(mac)) => Some(format!("VM {vm}\n{mac}")),
            (Some(vm), None) => Some(format!("VM {vm}")),
            (None, Some(mac)) => Some(format!("VM\n{mac}")),
            (None, None) => None,
        }
    }
}

/// A DOT double-quoted string: backslashes and quotes escaped, newlines as DOT's `\n`.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c if c.is_control() => {}
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{BridgeStatus, CounterSnapshot};
    use serde_json::json;

    fn show() -> ShowReply {
        let port = |name: &str, up: bool| PortStatus {
            name: name.into(),
            kind: "tap".into(),
            vlan_mode: "access".into(),
            tag: Some(10),
            trunks: vec![],
            link_state: if up { "up" } else { "down" }.into(),
            ifindex: None,
            error: None,
            statistics: CounterSnapshot::default(),
            vpn: None,
        };
        let mut uplink = port("eth1", true);
        (uplink.kind, uplink.vlan_mode, uplink.tag, uplink.trunks) =
            ("system".into(), "trunk".into(), None, vec![10, 20]);
        uplink.statistics.drops.insert("spoofed-mac".into(), 3);
        let br = BridgeStatus {
            name: "br\"x".into(),
            mac_aging_time: 300,
            mac_table_size: 8192,
            ports: vec![port("vnet0", true), port("vnet1", false), uplink],
            mirrors: vec![],
        };
        ShowReply { config_file: None, bridges: vec![br] }
    }

    fn rows(v: Value) -> Value {
        json!({ "rows": v })
    }

    #[test]
    fn zones_uplinks_and_vms_come_from_external_ids_and_dot_is_escaped() {
        let results = [
            rows(json!([{"name": "br\"x", "external_ids": ["map", [["rvswitch-zone", "intranet"],
                ["rvswitch-description", "Company LAN"], ["rvswitch-portgroups", "vlan-10=10,guest=20"]]]}])),
            rows(
                json!([{"name": "eth1", "external_ids": ["map", [["rvswitch-zone", "intranet"], ["rvswitch-role", "uplink"]]]}]),
            ),
            rows(json!([
                {"name": "vnet0", "external_ids": ["map", [["vm-id", "web-1"], ["attached-mac", "52:54:00:00:00:01"]]]},
                {"name": "junk", "external_ids": 5}
            ])),
        ];
        let ids = DbIds::from_results(&results);
        assert_eq!(ids.interfaces.len(), 1, "the unreadable row is skipped");
        let t = Topology::build(&show(), &ids);
        let b = &t.bridges[0];
        assert_eq!((b.zone.as_deref(), b.portgroups.len()), (Some("intranet"), 2));
        assert_eq!(b.ports[0].vm.as_deref(), Some("web-1"));
        assert_eq!((b.ports[1].vm.as_ref(), b.ports[2].role.as_deref()), (None, Some("uplink")));
        let dot = t.to_dot();
        for want in [
            r#"label="zone intranet — bridge br\"x\nCompany LAN\nportgroups vlan-10=10, guest=20""#,
            r#"label="vnet0 (tap)\naccess tag 10\nlink up""#,
            r#"[shape=component, style=filled, fillcolor=lightyellow, label="VM web-1\n52:54:00:00:00:01"]"#,
            r#"[shape=box, style="rounded,filled", fillcolor=lightblue, color=darkgreen, penwidth=2, label="uplink eth1 (system)\nNIC trunk\ntrunk 10,20\nlink up, 3 drops"]"#,
            "color=red",
        ] {
            assert!(dot.contains(want), "missing {want:?} in {dot}");
        }
        assert_eq!(quote("a\\b\u{7}"), r#""a\\b""#);
    }

    #[test]
    fn a_vpn_port_is_the_zones_uplink_with_endpoint_and_state() {
        use crate::protocol::VpnStatus;
        let mut show = show();
        let mut vpn = show.bridges[0].ports[0].clone();
        (vpn.name, vpn.kind) = ("vpn0".into(), "rvswitch-vpn".into());
        let status = |state: &str, secs| VpnStatus {
            state: state.into(),
            endpoint: "198.18.60.1:51820".into(),
            last_handshake_secs: secs,
            ..Default::default()
        };
        vpn.vpn = Some(status("up", Some(12)));
        let mut never = vpn.clone();
        (never.name, never.vpn) = ("vpn1".into(), Some(status("down", None)));
        let mut tun = vpn.clone();
        let on_tun = VpnStatus { transport: "tun".into(), endpoint: "tun0".into(), ..status("up", None) };
        (tun.name, tun.vpn) = ("vpn2".into(), Some(on_tun));
        show.bridges[0].ports.extend([vpn, never, tun]);
        let t = Topology::build(&show, &DbIds::default());
        let roles: Vec<_> = t.bridges[0].ports.iter().map(|p| p.role.as_deref()).collect();
        assert_eq!(roles, [None, None, None, Some("vpn-uplink"), Some("vpn-uplink"), Some("vpn-uplink")]);
        let dot = t.to_dot();
        for want in [
            r#"[shape=cds, style=filled, fillcolor=plum, color=darkgreen, label="VPN uplink vpn0\nWireGuard to 198.18.60.1:51820\nvpn up, handshake 12 s ago\naccess tag 10\nlink up"]"#,
            r#"[shape=cds, style=filled, fillcolor=plum, color=red, label="VPN uplink vpn1\nWireGuard to 198.18.60.1:51820\nvpn down, handshake never"#,
            r#"label="VPN uplink vpn2\ntun device tun0\nvpn up\n"#,
        ] {
            assert!(dot.contains(want), "missing {want:?} in {dot}");
        }
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["bridges"][0]["ports"][3]["vpn"]["endpoint"], "198.18.60.1:51820");
    }
}
