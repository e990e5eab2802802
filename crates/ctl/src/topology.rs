//! `rvsctl topology`: bridges, their ports with VLAN mode and tag, link state, drops, and the VM
//! behind a port (from the Interface's `external_ids`: `vm-id`/`vm-uuid`, `attached-mac`, as
//! libvirt and OpenStack write them). Pure: `rvsctl show`'s data and the external_ids in, DOT
//! or JSON out; SVG is DOT rendered by Graphviz (the CLI runs `dot`).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::{PortStatus, ShowReply};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub bridges: Vec<TopoBridge>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopoBridge {
    pub name: String,
    pub ports: Vec<TopoPort>,
}

/// A port as `rvsctl show` reports it, plus the VM behind it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopoPort {
    #[serde(flatten)]
    pub status: PortStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// Interface external_ids by interface name, from an OVSDB `select` of `name` and
/// `external_ids` (`["map", [[k, v], ...]]`). Rows it cannot read are skipped.
pub fn external_ids(rows: &Value) -> BTreeMap<String, BTreeMap<String, String>> {
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

impl Topology {
    pub fn build(show: &ShowReply, ids: &BTreeMap<String, BTreeMap<String, String>>) -> Topology {
        let port = |p: &PortStatus| {
            let ids = ids.get(&p.name);
            let get = |k: &str| ids.and_then(|m| m.get(k)).cloned();
            TopoPort {
                status: p.clone(),
                vm: get("vm-id").or_else(|| get("vm-uuid")),
                mac: get("attached-mac"),
            }
        };
        let bridges = show
            .bridges
            .iter()
            .map(|b| TopoBridge { name: b.name.clone(), ports: b.ports.iter().map(port).collect() })
            .collect();
        Topology { bridges }
    }

    /// Graphviz DOT: one cluster per bridge, the bridge as a hub, a box per port (green when up,
    /// red when down) labelled with its VLAN rule, drops and VM.
    pub fn to_dot(&self) -> String {
        let mut s =
            String::from("graph rvswitch {\n  rankdir=LR;\n  node [fontname=\"sans-serif\", fontsize=10];\n");
        for (i, b) in self.bridges.iter().enumerate() {
            let hub = quote(&format!("bridge:{}", b.name));
            let _ = writeln!(s, "  subgraph cluster_{i} {{\n    label={};", quote(&b.name));
            let _ = writeln!(s, "    {hub} [shape=ellipse, style=bold, label={}];", quote(&b.name));
            for p in &b.ports {
                let id = quote(&format!("port:{}:{}", b.name, p.status.name));
                let color = if p.status.link_state == "up" { "darkgreen" } else { "red" };
                let _ = writeln!(s, "    {id} [shape=box, color={color}, label={}];", quote(&p.label()));
                let _ = writeln!(s, "    {hub} -- {id};");
            }
            s.push_str("  }\n");
        }
        s.push_str("}\n");
        s
    }
}

impl TopoPort {
    fn label(&self) -> String {
        let p = &self.status;
        let mut l = format!("{} ({})\n{}", p.name, p.kind, p.vlan_mode);
        if let Some(t) = p.tag {
            let _ = write!(l, " tag {t}");
        }
        if !p.trunks.is_empty() {
            let t: Vec<String> = p.trunks.iter().map(u16::to_string).collect();
            let _ = write!(l, " trunks {}", t.join(","));
        }
        let _ = write!(l, "\nlink {}", p.link_state);
        let drops = p.statistics.total_drops();
        if drops > 0 {
            let _ = write!(l, ", {drops} drops");
        }
        match (&self.vm, &self.mac) {
            (Some(vm), Some(mac)) => {
                let _ = write!(l, "\nVM {vm} ({mac})");
            }
            (Some(vm), None) => {
                let _ = write!(l, "\nVM {vm}");
            }
            (None, Some(mac)) => {
                let _ = write!(l, "\nattached {mac}");
            }
            (None, None) => {}
        }
        l
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
        let br = BridgeStatus {
            name: "br\"x".into(),
            mac_aging_time: 300,
            mac_table_size: 8192,
            ports: vec![port("vnet0", true), port("vnet1", false)],
        };
        ShowReply { config_file: None, bridges: vec![br] }
    }

    #[test]
    fn vms_come_from_external_ids_and_dot_is_escaped() {
        let rows = json!({"rows": [
            {"name": "vnet0", "external_ids": ["map", [["vm-id", "web-1"], ["attached-mac", "52:54:00:00:00:01"]]]},
            {"name": "junk", "external_ids": 5}
        ]});
        let ids = external_ids(&rows);
        assert_eq!(ids.len(), 1);
        let t = Topology::build(&show(), &ids);
        assert_eq!(t.bridges[0].ports[0].vm.as_deref(), Some("web-1"));
        assert_eq!(t.bridges[0].ports[1].vm, None);
        let dot = t.to_dot();
        assert!(dot.contains(r#"label="br\"x""#), "{dot}");
        assert!(
            dot.contains(r#"vnet0 (tap)\naccess tag 10\nlink up\nVM web-1 (52:54:00:00:00:01)"#),
            "{dot}"
        );
        assert!(dot.contains("color=red"), "the down port is red: {dot}");
        assert_eq!(quote("a\\b\u{7}"), r#""a\\b""#);
    }
}
