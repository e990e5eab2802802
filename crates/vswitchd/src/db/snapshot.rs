//! One consistent read of the tables the switch is configured from (a single transaction of
//! selects), parsed into plain structs.

use std::collections::HashMap;

use ovsdb::Session;
use serde_json::{json, Value};

use super::datum::{ints, opt_int, opt_str, string_map, uuids};
use super::DbError;

#[derive(Clone, Debug, Default)]
pub struct OvsRow {
    pub uuid: String,
    pub bridges: Vec<String>,
    pub next_cfg: i64,
    pub cur_cfg: i64,
}

#[derive(Clone, Debug)]
pub struct BridgeRow {
    pub uuid: String,
    pub name: String,
    pub ports: Vec<String>,
    pub other_config: Vec<(String, String)>,
    pub external_ids: Vec<(String, String)>,
    pub datapath_id: Option<String>,
}

#[derive(Clone, Debug)]
pub struct PortRow {
    pub uuid: String,
    pub name: String,
    pub interfaces: Vec<String>,
    pub tag: Option<i64>,
    pub trunks: Vec<i64>,
    pub vlan_mode: Option<String>,
}

#[derive(Clone, Debug)]
pub struct IfaceRow {
    pub uuid: String,
    pub name: String,
    pub kind: String,
    pub ofport: Option<i64>,
    pub ofport_request: Option<i64>,
    pub options: Vec<(String, String)>,
    pub other_config: Vec<(String, String)>,
    pub external_ids: Vec<(String, String)>,
}

/// The configuration tables at one moment, by UUID, plus name indexes (names are unique per
/// table in this schema) so lookups stay O(1) with thousands of ports.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub ovs: Option<OvsRow>,
    pub bridges: HashMap<String, BridgeRow>,
    pub ports: HashMap<String, PortRow>,
    pub ifaces: HashMap<String, IfaceRow>,
    bridge_names: HashMap<String, String>,
    port_names: HashMap<String, String>,
    iface_names: HashMap<String, String>,
}

impl Snapshot {
    pub fn read(session: &Session) -> Result<Snapshot, DbError> {
        let reply = session.transact(json!([
            "Open_vSwitch",
            {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["_uuid", "bridges", "next_cfg", "cur_cfg"]},
            {"op": "select", "table": "Bridge", "where": [],
             "columns": ["_uuid", "name", "ports", "other_config", "external_ids", "datapath_id"]},
            {"op": "select", "table": "Port", "where": [],
             "columns": ["_uuid", "name", "interfaces", "tag", "trunks", "vlan_mode"]},
            {"op": "select", "table": "Interface", "where": [],
             "columns": ["_uuid", "name", "type", "ofport", "ofport_request", "options", "other_config", "external_ids"]}
        ]));
        Snapshot::parse(&reply)
    }

    /// Parses the reply of [`Snapshot::read`]'s transaction.
    pub fn parse(reply: &Value) -> Result<Snapshot, DbError> {
        let results = reply.as_array().ok_or_else(|| DbError::BadReply(reply.to_string()))?;
        let rows = |i: usize| -> Result<&Vec<Value>, DbError> {
            results
                .get(i)
                .and_then(|r| r.get("rows"))
                .and_then(Value::as_array)
                .ok_or_else(|| DbError::SelectFailed(results.get(i).unwrap_or(&Value::Null).to_string()))
        };
        let uuid_of = |r: &Value| super::datum::uuid(&r["_uuid"]).unwrap_or_default().to_string();
        let str_of = |r: &Value, c: &str| r[c].as_str().unwrap_or_default().to_string();
        let ovs = rows(0)?.first().map(|r| OvsRow {
            uuid: uuid_of(r),
            bridges: uuids(&r["bridges"]),
            next_cfg: r["next_cfg"].as_i64().unwrap_or(0),
            cur_cfg: r["cur_cfg"].as_i64().unwrap_or(0),
        });
        let bridges = rows(1)?
            .iter()
            .map(|r| BridgeRow {
                uuid: uuid_of(r),
                name: str_of(r, "name"),
                ports: uuids(&r["ports"]),
                other_config: string_map(&r["other_config"]),
                external_ids: string_map(&r["external_ids"]),
                datapath_id: opt_str(&r["datapath_id"]).map(str::to_string),
            })
            .map(|b| (b.uuid.clone(), b))
            .collect();
        let ports = rows(2)?
            .iter()
            .map(|r| PortRow {
                uuid: uuid_of(r),
                name: str_of(r, "name"),
                interfaces: uuids(&r["interfaces"]),
                tag: opt_int(&r["tag"]),
                trunks: ints(&r["trunks"]),
                vlan_mode: opt_str(&r["vlan_mode"]).map(str::to_string),
            })
            .map(|p| (p.uuid.clone(), p))
            .collect();
        let ifaces = rows(3)?
            .iter()
            .map(|r| IfaceRow {
                uuid: uuid_of(r),
                name: str_of(r, "name"),
                kind: str_of(r, "type"),
                ofport: opt_int(&r["ofport"]),
                ofport_request: opt_int(&r["ofport_request"]),
                options: string_map(&r["options"]),
                other_config: string_map(&r["other_config"]),
                external_ids: string_map(&r["external_ids"]),
            })
            .map(|i| (i.uuid.clone(), i))
            .collect();
        Ok(Snapshot::new(ovs, bridges, ports, ifaces))
    }

    pub fn new(
        ovs: Option<OvsRow>,
        bridges: HashMap<String, BridgeRow>,
        ports: HashMap<String, PortRow>,
        ifaces: HashMap<String, IfaceRow>,
    ) -> Snapshot {
        let bridge_names = bridges.values().map(|b| (b.name.clone(), b.uuid.clone())).collect();
        let port_names = ports.values().map(|p| (p.name.clone(), p.uuid.clone())).collect();
        let iface_names = ifaces.values().map(|i| (i.name.clone(), i.uuid.clone())).collect();
        Snapshot { ovs, bridges, ports, ifaces, bridge_names, port_names, iface_names }
    }

    /// Bridges in use (referenced from the root row), sorted by name for stable output.
    pub fn active_bridges(&self) -> Vec<&BridgeRow> {
        let mut v: Vec<&BridgeRow> =
            self.ovs.iter().flat_map(|o| o.bridges.iter()).filter_map(|u| self.bridges.get(u)).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn bridge_by_name(&self, name: &str) -> Option<&BridgeRow> {
        self.bridge_names.get(name).and_then(|u| self.bridges.get(u))
    }

    pub fn port_by_name(&self, name: &str) -> Option<&PortRow> {
        self.port_names.get(name).and_then(|u| self.ports.get(u))
    }

    pub fn iface_by_name(&self, name: &str) -> Option<&IfaceRow> {
        self.iface_names.get(name).and_then(|u| self.ifaces.get(u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_replies_are_errors_not_empty_snapshots() {
        assert!(matches!(Snapshot::parse(&json!({"error": "x"})), Err(DbError::BadReply(_))));
        let e = Snapshot::parse(&json!([{"error": "not allowed"}])).unwrap_err();
        assert!(matches!(&e, DbError::SelectFailed(_)), "{e:?}");
        assert!(e.to_string().starts_with("select failed: "), "{e}");
    }
}
