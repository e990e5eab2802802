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
    pub external_ids: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub struct BridgeRow {
    pub uuid: String,
    pub name: String,
    pub ports: Vec<String>,
    pub other_config: Vec<(String, String)>,
    pub external_ids: Vec<(String, String)>,
    pub datapath_id: Option<String>,
    /// Mirror UUIDs (Bridge `mirrors`).
    pub mirrors: Vec<String>,
}

/// A Mirror row (port mirroring, SPAN); port references are Port UUIDs.
#[derive(Clone, Debug, Default)]
pub struct MirrorRow {
    pub uuid: String,
    pub name: String,
    pub select_all: bool,
    pub select_src_port: Vec<String>,
    pub select_dst_port: Vec<String>,
    pub select_vlan: Vec<i64>,
    pub output_port: Option<String>,
    pub output_vlan: Option<i64>,
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
    pub other_config: Vec<(String, String)>,
    pub external_ids: Vec<(String, String)>,
    /// Type-specific settings (OvS: a tunnel's `remote_ip`; ours: a VPN port's `wireguard`...).
    pub options: Vec<(String, String)>,
}

/// The configuration tables at one moment, by UUID, plus name indexes (names are unique per
/// table in this schema) so lookups stay O(1) with thousands of ports.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub ovs: Option<OvsRow>,
    pub bridges: HashMap<String, BridgeRow>,
    pub ports: HashMap<String, PortRow>,
    pub ifaces: HashMap<String, IfaceRow>,
    pub mirrors: HashMap<String, MirrorRow>,
    bridge_names: HashMap<String, String>,
    port_names: HashMap<String, String>,
    iface_names: HashMap<String, String>,
}

/// The tables and columns a snapshot reads, in the order [`Snapshot::parse`] expects them: the
/// selects of [`Snapshot::read`] and the monitor of a remote database are both made from it.
pub const COLUMNS: [(&str, &[&str]); 5] = [
    ("Open_vSwitch", &["bridges", "next_cfg", "cur_cfg", "external_ids"]),
    ("Bridge", &["name", "ports", "other_config", "external_ids", "datapath_id", "mirrors"]),
    ("Port", &["name", "interfaces", "tag", "trunks", "vlan_mode"]),
    ("Interface", &["name", "type", "ofport", "ofport_request", "other_config", "external_ids", "options"]),
    ("Mirror", &MIRROR_COLUMNS),
];

/// The Mirror columns the switch is configured from (not `statistics`: we write those).
pub const MIRROR_COLUMNS: [&str; 7] =
    ["name", "select_all", "select_src_port", "select_dst_port", "select_vlan", "output_port", "output_vlan"];

impl Snapshot {
    pub fn read(session: &Session) -> Result<Snapshot, DbError> {
        Snapshot::parse(&session.transact(read_ops()))
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
            external_ids: string_map(&r["external_ids"]),
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
                mirrors: uuids(&r["mirrors"]),
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
                other_config: string_map(&r["other_config"]),
                external_ids: string_map(&r["external_ids"]),
                options: string_map(&r["options"]),
            })
            .map(|i| (i.uuid.clone(), i))
            .collect();
        // A reply without the Mirror select (an older caller's shape) reads as no mirrors.
        let mirrors = rows(4).map(|rows| rows.iter().map(|r| mirror_row(uuid_of(r), r)).collect());
        Ok(Snapshot::new(ovs, bridges, ports, ifaces).with_mirrors(mirrors.unwrap_or_default()))
    }

    /// The same snapshot with these Mirror rows (by UUID).
    pub fn with_mirrors(mut self, mirrors: HashMap<String, MirrorRow>) -> Snapshot {
        self.mirrors = mirrors;
        self
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
        Snapshot {
            ovs,
            bridges,
            ports,
            ifaces,
            mirrors: HashMap::new(),
            bridge_names,
            port_names,
            iface_names,
        }
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

fn mirror_row(uuid: String, r: &Value) -> (String, MirrorRow) {
    let row = MirrorRow {
        uuid: uuid.clone(),
        name: r["name"].as_str().unwrap_or_default().to_string(),
        select_all: r["select_all"].as_bool().unwrap_or(false),
        select_src_port: uuids(&r["select_src_port"]),
        select_dst_port: uuids(&r["select_dst_port"]),
        select_vlan: ints(&r["select_vlan"]),
        output_port: uuids(&r["output_port"]).into_iter().next(),
        output_vlan: opt_int(&r["output_vlan"]),
    };
    (uuid, row)
}

/// One transaction of selects, one per table of [`COLUMNS`].
pub fn read_ops() -> Value {
    let mut ops = vec![json!("Open_vSwitch")];
    for (table, columns) in COLUMNS {
        let mut cols = vec!["_uuid"];
        cols.extend_from_slice(columns);
        ops.push(json!({"op": "select", "table": table, "where": [], "columns": cols}));
    }
    Value::Array(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_rows_and_bridge_mirrors_are_read() {
        let uuid = |u: &str| json!(["uuid", u]);
        let set = |items: Vec<Value>| json!(["set", items]);
        let bridge = json!({"_uuid": uuid("b"), "name": "br0", "ports": set(vec![]), "mirrors": uuid("m")});
        let mirror = json!({
            "_uuid": uuid("m"), "name": "m0", "select_all": false,
            "select_src_port": set(vec![uuid("p1"), uuid("p2")]), "select_dst_port": uuid("p3"),
            "select_vlan": set(vec![json!(10), json!(20)]), "output_port": uuid("p4"), "output_vlan": set(vec![]),
        });
        let rows = |r: Vec<Value>| json!({ "rows": r });
        let reply = json!([rows(vec![]), rows(vec![bridge]), rows(vec![]), rows(vec![]), rows(vec![mirror])]);
        let s = Snapshot::parse(&reply).unwrap();
        assert_eq!(s.bridges["b"].mirrors, ["m"]);
        let m = &s.mirrors["m"];
        assert_eq!(
            (m.name.as_str(), m.select_all, m.output_port.as_deref(), m.output_vlan),
            ("m0", false, Some("p4"), None)
        );
        assert_eq!(
            (m.select_src_port.len(), m.select_dst_port.as_slice(), m.select_vlan.as_slice()),
            (2, &["p3".to_string()][..], &[10, 20][..])
        );
    }

    #[test]
    fn malformed_replies_are_errors_not_empty_snapshots() {
        assert!(matches!(Snapshot::parse(&json!({"error": "x"})), Err(DbError::BadReply(_))));
        let e = Snapshot::parse(&json!([{"error": "not allowed"}])).unwrap_err();
        assert!(matches!(&e, DbError::SelectFailed(_)), "{e:?}");
        assert!(e.to_string().starts_with("select failed: "), "{e}");
    }
}
