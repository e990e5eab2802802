//! Applying the TOML config file to the database as one transaction, so the file and `ovs-vsctl`
//! configure the same switch and `ovs-vsctl show` shows everything. The file is authoritative for
//! the bridges it names (their ports, VLAN settings and bridge options); bridges made another way
//! are left alone. Bridges the file created are marked in `external_ids`, so removing one from
//! the file removes it from the switch.

use serde_json::{json, Value};

use super::datum::{by_uuid, map, set, uuid_ref};
use super::scope::{Scope, BRIDGE_HOST_KEY};
use super::snapshot::Snapshot;
use crate::state::{DesiredPort, DesiredState, PortKind};

/// `external_ids` key marking bridges that come from a config file (value: the file's path).
pub const SOURCE_KEY: &str = "rvswitch-config";

fn iface_type(kind: PortKind) -> &'static str {
    match kind {
        PortKind::System => "",
        PortKind::Tap => "tap",
        PortKind::Internal => "internal",
        PortKind::Tunnel(t) => t.proto.as_str(),
        PortKind::Vpn => "rvswitch-vpn",
    }
}

/// Port VLAN columns as `ovs-vsctl` would have set them for this port.
fn vlan_columns(p: &DesiredPort) -> Value {
    let mode = p.vlan.mode();
    let trunks = p.vlan.trunks();
    // "All VLANs" (and, for native modes, all but VLAN 0) is the empty set in OvS's columns.
    let all = p.vlan.trunks_all();
    let trunks: Vec<Value> = if all { Vec::new() } else { trunks.iter().map(Value::from).collect() };
    json!({
        "vlan_mode": mode.as_str(),
        "tag": set(p.vlan.tag().map(Value::from)),
        "trunks": set(trunks),
    })
}

/// The transaction that makes the database hold `desired`'s bridges. `source` labels them; in
/// a shared database they are also marked as this host's (`scope`), and only this host's
/// bridges are ever removed as stale.
pub fn seed_ops(snap: &Snapshot, desired: &DesiredState, source: &str, scope: &Scope) -> Value {
    let labels = |mut ids: Vec<(String, String)>| {
        ids.retain(|(k, _)| k != SOURCE_KEY && k != BRIDGE_HOST_KEY);
        ids.push((SOURCE_KEY.into(), source.into()));
        if let Some(id) = &scope.system_id {
            ids.push((BRIDGE_HOST_KEY.into(), id.clone()));
        }
        map(ids)
    };
    let mut ops = vec![json!("Open_vSwitch")];
    if snap.ovs.is_none() {
        // A fresh database: create the root row, as `ovs-vsctl init` would.
        ops.push(json!({"op": "insert", "table": "Open_vSwitch", "row": {}}));
    }
    let root_where = match &snap.ovs {
        Some(o) => by_uuid(&o.uuid),
        None => json!([]),
    };
    let mut claimed_ports = Vec::new();
    for (bi, b) in desired.bridges.iter().enumerate() {
        let mut port_refs = Vec::new();
        for (pi, p) in b.ports.iter().enumerate() {
            let iface_ref = match snap.iface_by_name(&p.name) {
                Some(i) => {
                    ops.push(json!({"op": "update", "table": "Interface", "where": by_uuid(&i.uuid),
                                    "row": {"type": iface_type(p.kind)}}));
                    uuid_ref(&i.uuid)
                }
                None => {
                    let name = format!("i{bi}_{pi}");
                    ops.push(json!({"op": "insert", "table": "Interface", "uuid-name": name,
                                    "row": {"name": p.name, "type": iface_type(p.kind)}}));
                    json!(["named-uuid", name])
                }
            };
            let mut row = vlan_columns(p);
            row["interfaces"] = iface_ref;
            let port_ref = match snap.port_by_name(&p.name) {
                Some(existing) => {
                    claimed_ports.push((existing.uuid.clone(), b.name.clone()));
                    ops.push(json!({"op": "update", "table": "Port", "where": by_uuid(&existing.uuid), "row": row}));
                    uuid_ref(&existing.uuid)
                }
                None => {
                    let name = format!("p{bi}_{pi}");
                    row["name"] = json!(p.name);
                    ops.push(json!({"op": "insert", "table": "Port", "uuid-name": name, "row": row}));
                    json!(["named-uuid", name])
                }
            };
            port_refs.push(port_ref);
        }
        let other_config = map([
            ("mac-aging-time", (b.settings.mac_aging_ms / 1000).to_string()),
            ("mac-table-size", b.settings.mac_table_size.to_string()),
            ("forward-bpdu", b.settings.forward_bpdu.to_string()),
        ]);
        match snap.bridge_by_name(&b.name) {
            Some(existing) => {
                let ids = labels(existing.external_ids.clone());
                ops.push(json!({"op": "update", "table": "Bridge", "where": by_uuid(&existing.uuid),
                                "row": {"ports": set(port_refs), "other_config": other_config, "external_ids": ids}}));
                if !snap.ovs.as_ref().is_some_and(|o| o.bridges.contains(&existing.uuid)) {
                    ops.push(json!({"op": "mutate", "table": "Open_vSwitch", "where": root_where,
                                    "mutations": [["bridges", "insert", set([uuid_ref(&existing.uuid)])]]}));
                }
            }
            None => {
                let name = format!("b{bi}");
                ops.push(json!({"op": "insert", "table": "Bridge", "uuid-name": name,
                                "row": {"name": b.name, "ports": set(port_refs), "other_config": other_config,
                                        "external_ids": labels(Vec::new())}}));
                ops.push(json!({"op": "mutate", "table": "Open_vSwitch", "where": root_where,
                                "mutations": [["bridges", "insert", set([json!(["named-uuid", name])])]]}));
            }
        }
    }
    // A port the file puts on one of its bridges leaves whichever other bridge held it.
    for (port_uuid, owner) in &claimed_ports {
        for other in snap.bridges.values().filter(|o| &o.name != owner && o.ports.contains(port_uuid)) {
            ops.push(json!({"op": "mutate", "table": "Bridge", "where": by_uuid(&other.uuid),
                            "mutations": [["ports", "delete", set([uuid_ref(port_uuid)])]]}));
        }
    }
    // Bridges an earlier version of the file created but this one no longer names.
    for stale in snap.bridges.values().filter(|o| {
        o.external_ids.iter().any(|(k, _)| k == SOURCE_KEY)
            && scope.owns(snap, o)
            && !desired.bridges.iter().any(|b| b.name == o.name)
    }) {
        ops.push(json!({"op": "mutate", "table": "Open_vSwitch", "where": root_where,
                        "mutations": [["bridges", "delete", set([uuid_ref(&stale.uuid)])]]}));
    }
    ops.push(json!({"op": "comment", "comment": format!("rvswitchd: applied {source}")}));
    Value::Array(ops)
}
