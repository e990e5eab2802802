//! Builds the one OVSDB transaction of an apply. Guards come first: a `wait` per row the plan
//! read and depends on (the root's bridge list, each touched bridge's ports and marks, each
//! touched port's columns), so a concurrent change makes the whole transaction fail instead of
//! half-applying on top of rows that moved. `external_ids` changes are mutations (delete our
//! keys, insert our pairs), so other programs' keys on the same row are never overwritten.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::desired::{VlanCols, OUR_KEYS};
use crate::live::{LiveBridge, LiveDb, LivePort, Map, BRIDGE_GUARD, PORT_GUARD};

/// The operations of one transaction under construction.
pub(crate) struct Txn {
    root: String,
    root_guard: Value,
    guards: Vec<Value>,
    guarded: BTreeSet<String>,
    ops: Vec<Value>,
    names: u32,
}

fn by_uuid(u: &str) -> Value {
    json!([["_uuid", "==", ["uuid", u]]])
}

fn map(m: &Map) -> Value {
    json!(["map", m.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()])
}

fn opt(v: Option<u16>) -> Value {
    v.map_or_else(|| json!(["set", []]), |t| json!(t))
}

impl Txn {
    pub(crate) fn new(root: &str, live: &LiveDb) -> Txn {
        let root_guard = json!({"op": "wait", "timeout": 0, "table": "Open_vSwitch", "where": by_uuid(root),
            "columns": ["bridges"], "until": "==", "rows": [{"bridges": live.ovs_bridges_raw}]});
        Txn { root: root.into(), root_guard, guards: vec![], guarded: BTreeSet::new(), ops: vec![], names: 0 }
    }

    /// Fails the transaction if the bridge's ports or marks changed since they were read.
    pub(crate) fn guard_bridge(&mut self, b: &LiveBridge) {
        if self.guarded.insert(b.uuid.clone()) {
            self.guards
                .push(json!({"op": "wait", "timeout": 0, "table": "Bridge", "where": by_uuid(&b.uuid),
                "columns": BRIDGE_GUARD, "until": "==", "rows": [b.raw]}));
        }
    }

    /// Fails the transaction if the port changed since it was read.
    pub(crate) fn guard_port(&mut self, p: &LivePort) {
        if self.guarded.insert(p.uuid.clone()) {
            self.guards.push(json!({"op": "wait", "timeout": 0, "table": "Port", "where": by_uuid(&p.uuid),
                "columns": PORT_GUARD, "until": "==", "rows": [p.raw]}));
        }
    }

    fn name(&mut self) -> String {
        self.names += 1;
        format!("rvs_row{}", self.names)
    }

    /// Inserts an Interface (`type` and `options`, none when empty) and a Port holding it;
    /// returns the port's uuid-name.
    pub(crate) fn insert_port(
        &mut self,
        name: &str,
        (kind, options): (&str, &Map),
        vlans: Option<&VlanCols>,
        port_marks: &Map,
        if_marks: &Map,
    ) -> String {
        let (iface, port) = (self.name(), self.name());
        self.ops.push(json!({"op": "insert", "table": "Interface", "uuid-name": iface,
            "row": {"name": name, "type": kind, "options": map(options), "external_ids": map(if_marks)}}));
        let mut row =
            json!({"name": name, "interfaces": ["named-uuid", iface], "external_ids": map(port_marks)});
        if let Some(v) = vlans {
            row["vlan_mode"] = v.vlan_mode.as_ref().map_or_else(|| json!(["set", []]), |m| json!(m));
            row["tag"] = opt(v.tag);
            row["trunks"] = json!(["set", v.trunks]);
        }
        self.ops.push(json!({"op": "insert", "table": "Port", "uuid-name": port, "row": row}));
        port
    }

    /// Inserts a Bridge with `ports` (uuid-names) and links it from the root row.
    pub(crate) fn insert_bridge(&mut self, name: &str, ports: &[String], marks: &Map) {
        let br = self.name();
        let refs: Vec<Value> = ports.iter().map(|p| json!(["named-uuid", p])).collect();
        self.ops.push(json!({"op": "insert", "table": "Bridge", "uuid-name": br,
            "row": {"name": name, "ports": ["set", refs], "external_ids": map(marks)}}));
        self.ops.push(json!({"op": "mutate", "table": "Open_vSwitch", "where": by_uuid(&self.root),
            "mutations": [["bridges", "insert", ["set", [["named-uuid", br]]]]]}));
    }

    /// Unlinks a bridge from the root; OVSDB's garbage collection removes it with its ports
    /// and interfaces (none of those tables is a root table).
    pub(crate) fn remove_bridge(&mut self, b: &LiveBridge) {
        self.guard_bridge(b);
        self.ops.push(json!({"op": "mutate", "table": "Open_vSwitch", "where": by_uuid(&self.root),
            "mutations": [["bridges", "delete", ["set", [["uuid", b.uuid]]]]]}));
    }

    /// Adds ports (uuid-names) to an existing bridge.
    pub(crate) fn add_port(&mut self, b: &LiveBridge, port: &str) {
        self.guard_bridge(b);
        self.ops.push(json!({"op": "mutate", "table": "Bridge", "where": by_uuid(&b.uuid),
            "mutations": [["ports", "insert", ["set", [["named-uuid", port]]]]]}));
    }

    /// Detaches a port from its bridge (garbage collection deletes it and its interfaces).
    pub(crate) fn remove_port(&mut self, b: &LiveBridge, p: &LivePort) {
        self.guard_bridge(b);
        self.guard_port(p);
        self.ops.push(json!({"op": "mutate", "table": "Bridge", "where": by_uuid(&b.uuid),
            "mutations": [["ports", "delete", ["set", [["uuid", p.uuid]]]]]}));
    }

    /// Sets an existing tunnel Interface's `type` and `options` (guarded by its port).
    pub(crate) fn set_tunnel(&mut self, p: &LivePort, iface_uuid: &str, kind: &str, options: &Map) {
        self.guard_port(p);
        self.ops.push(json!({"op": "update", "table": "Interface", "where": by_uuid(iface_uuid),
            "row": {"type": kind, "options": map(options)}}));
    }

    /// Sets a port's VLAN columns.
    pub(crate) fn set_vlans(&mut self, p: &LivePort, v: &VlanCols) {
        self.guard_port(p);
        let mode = v.vlan_mode.as_ref().map_or_else(|| json!(["set", []]), |m| json!(m));
        self.ops.push(json!({"op": "update", "table": "Port", "where": by_uuid(&p.uuid),
            "row": {"vlan_mode": mode, "tag": opt(v.tag), "trunks": ["set", v.trunks]}}));
    }

    /// Sets an interface's `type` and `options` (a VPN uplink whose settings changed).
    pub(crate) fn set_interface(&mut self, uuid: &str, kind: &str, options: &Map) {
        self.ops.push(json!({"op": "update", "table": "Interface", "where": by_uuid(uuid),
            "row": {"type": kind, "options": map(options)}}));
    }

    /// Replaces zones' keys in a row's `external_ids` by `marks`, keeping every other key.
    pub(crate) fn set_marks(&mut self, table: &str, uuid: &str, marks: &Map) {
        self.ops.push(json!({"op": "mutate", "table": table, "where": by_uuid(uuid),
            "mutations": [["external_ids", "delete", ["set", OUR_KEYS]], ["external_ids", "insert", map(marks)]]}));
    }

    /// The finished transaction: empty when there is nothing to change; otherwise guards,
    /// changes, and `next_cfg += 1` with a select of the new value (the last result), which the
    /// caller waits for in `cur_cfg` like ovs-vsctl.
    pub(crate) fn finish(self, comment: &str) -> Vec<Value> {
        if self.ops.is_empty() {
            return Vec::new();
        }
        let mut out = vec![json!({"op": "comment", "comment": comment}), self.root_guard];
        out.extend(self.guards);
        out.extend(self.ops);
        out.push(json!({"op": "mutate", "table": "Open_vSwitch", "where": by_uuid(&self.root),
            "mutations": [["next_cfg", "+=", 1]]}));
        out.push(json!({"op": "select", "table": "Open_vSwitch", "where": by_uuid(&self.root), "columns": ["next_cfg"]}));
        out
    }
}
