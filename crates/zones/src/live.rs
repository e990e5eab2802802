//! The live database, as plain structs: what `plan`, `show` and `verify` compare against. The
//! CLI runs [`select_ops`] in one transaction (one consistent snapshot) and hands the results
//! to [`LiveDb::from_results`]; decoding the RFC 7047 datum encoding is done here, bounded and
//! without panics, because the rows come from outside.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// The `external_ids` key marking a row as created by zones; its value is the zone name.
pub const ZONE_KEY: &str = "rvswitch-zone";
/// `external_ids` key on a bridge: its zone's portgroups, `name=vlan,name=vlan`.
pub const PORTGROUPS_KEY: &str = "rvswitch-portgroups";
/// `external_ids` key: the zone's description (the internal port's ifalias).
pub const DESCRIPTION_KEY: &str = "rvswitch-description";
/// `external_ids` key on a port: `internal` or `uplink`.
pub const ROLE_KEY: &str = "rvswitch-role";
/// `external_ids` key on a bridge a removed zone left behind because foreign ports remain.
pub const RELEASED_KEY: &str = "rvswitch-released-zone";

/// `external_ids` key on a bridge: the zone's VMs' allowed addresses by MAC,
/// `mac=ip/len,ip/len;mac=…`. libvirt creates a VM's port only when the VM starts (and a new
/// row on every start), so zones cannot write the port's own `other_config:allowed-ips`; the
/// daemon adds these to the port whose `external_ids:attached-mac` is that MAC.
pub const VM_IPS_KEY: &str = "rvswitch-vm-ips";

/// A string-to-string OVSDB map column.
pub type Map = BTreeMap<String, String>;

/// The rows zones reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveDb {
    /// The Open_vSwitch root row's UUID; None in a database nobody initialised.
    pub ovs_uuid: Option<String>,
    /// `Open_vSwitch.bridges`, raw, for the transaction guard.
    pub ovs_bridges_raw: Value,
    /// `next_cfg` as read.
    pub next_cfg: i64,
    /// `cur_cfg` as read.
    pub cur_cfg: i64,
    /// The bridges referenced by the root row, with their ports and interfaces.
    pub bridges: Vec<LiveBridge>,
}

/// A Bridge row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveBridge {
    /// Row UUID.
    pub uuid: String,
    /// Bridge name.
    pub name: String,
    /// `external_ids`.
    pub external_ids: Map,
    /// Its ports.
    pub ports: Vec<LivePort>,
    /// The guarded columns as read (`ports`, `external_ids`), for `wait` operations.
    pub raw: Value,
}

/// A Port row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePort {
    /// Row UUID.
    pub uuid: String,
    /// Port name.
    pub name: String,
    /// `tag`.
    pub tag: Option<u16>,
    /// `trunks`.
    pub trunks: Vec<u16>,
    /// `vlan_mode`.
    pub vlan_mode: Option<String>,
    /// `external_ids`.
    pub external_ids: Map,
    /// Its interfaces.
    pub interfaces: Vec<LiveInterface>,
    /// The guarded columns as read, for `wait` operations.
    pub raw: Value,
}

/// An Interface row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveInterface {
    /// Row UUID.
    pub uuid: String,
    /// Interface (netdev) name.
    pub name: String,
    /// `type`: "" (system), internal, patch, tap...
    pub kind: String,
    /// `external_ids` (libvirt writes attached-mac, vm-id, iface-id here).
    pub external_ids: Map,
    /// `options` (patch ports: `peer`).
    pub options: Map,
    /// `link_state` as the switch daemon reports it.
    pub link_state: Option<String>,
}

impl LiveBridge {
    /// The zone this bridge belongs to, if zones created it.
    pub fn zone(&self) -> Option<&str> {
        self.external_ids.get(ZONE_KEY).map(String::as_str)
    }
}

impl LivePort {
    /// The zone that created this port, if any.
    pub fn zone(&self) -> Option<&str> {
        self.external_ids.get(ZONE_KEY).map(String::as_str)
    }
}

/// Why the rows could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LiveError {
    /// The reply is not shaped like the answer to [`select_ops`].
    #[error("unexpected database contents: {0}")]
    Shape(String),
}

const PORT_COLUMNS: [&str; 7] = ["_uuid", "name", "interfaces", "tag", "trunks", "vlan_mode", "external_ids"];
/// Port columns a `wait` guard compares.
pub(crate) const PORT_GUARD: [&str; 5] = ["interfaces", "tag", "trunks", "vlan_mode", "external_ids"];
/// Bridge columns a `wait` guard compares.
pub(crate) const BRIDGE_GUARD: [&str; 2] = ["ports", "external_ids"];

/// The read-only transaction whose results [`LiveDb::from_results`] decodes.
pub fn select_ops() -> Vec<Value> {
    let sel =
        |table: &str, cols: &[&str]| json!({"op": "select", "table": table, "where": [], "columns": cols});
    vec![
        sel("Open_vSwitch", &["_uuid", "bridges", "next_cfg", "cur_cfg"]),
        sel("Bridge", &["_uuid", "name", "ports", "external_ids"]),
        sel("Port", &PORT_COLUMNS),
        sel("Interface", &["_uuid", "name", "type", "external_ids", "options", "link_state"]),
    ]
}

fn rows<'a>(results: &'a [Value], i: usize, table: &str) -> Result<&'a Vec<Value>, LiveError> {
    results
        .get(i)
        .and_then(|r| r.get("rows"))
        .and_then(Value::as_array)
        .ok_or_else(|| LiveError::Shape(format!("no {table} rows in the reply")))
}

impl LiveDb {
    /// Decodes the results of [`select_ops`].
    pub fn from_results(results: &[Value]) -> Result<LiveDb, LiveError> {
        let ifaces: BTreeMap<String, LiveInterface> =
            rows(results, 3, "Interface")?.iter().map(interface).collect::<Result<_, _>>()?;
        let ports: BTreeMap<String, LivePort> =
            rows(results, 2, "Port")?.iter().map(|r| port(r, &ifaces)).collect::<Result<_, _>>()?;
        let bridges: BTreeMap<String, LiveBridge> =
            rows(results, 1, "Bridge")?.iter().map(|r| bridge(r, &ports)).collect::<Result<_, _>>()?;
        let mut db = LiveDb::default();
        if let Some(root) = rows(results, 0, "Open_vSwitch")?.first() {
            db.ovs_uuid = Some(uuid(&root["_uuid"])?);
            db.ovs_bridges_raw = root["bridges"].clone();
            db.next_cfg = root["next_cfg"].as_i64().unwrap_or(0);
            db.cur_cfg = root["cur_cfg"].as_i64().unwrap_or(0);
            let refs = set(&root["bridges"]).into_iter().map(uuid).collect::<Result<Vec<_>, _>>()?;
            db.bridges = refs.iter().filter_map(|u| bridges.get(u).cloned()).collect();
            db.bridges.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Ok(db)
    }

    /// Every port on every bridge, with its bridge.
    pub fn ports(&self) -> impl Iterator<Item = (&LiveBridge, &LivePort)> {
        self.bridges.iter().flat_map(|b| b.ports.iter().map(move |p| (b, p)))
    }

    /// A bridge by name.
    pub fn bridge(&self, name: &str) -> Option<&LiveBridge> {
        self.bridges.iter().find(|b| b.name == name)
    }
}

fn interface(r: &Value) -> Result<(String, LiveInterface), LiveError> {
    let i = LiveInterface {
        uuid: uuid(&r["_uuid"])?,
        name: string(&r["name"]),
        kind: string(&r["type"]),
        external_ids: map(&r["external_ids"]),
        options: map(&r["options"]),
        link_state: set(&r["link_state"]).first().and_then(|v| v.as_str()).map(str::to_string),
    };
    Ok((i.uuid.clone(), i))
}

fn port(r: &Value, ifaces: &BTreeMap<String, LiveInterface>) -> Result<(String, LivePort), LiveError> {
    let vlan = |v: &Value| v.as_u64().and_then(|t| u16::try_from(t).ok());
    let mut interfaces = Vec::new();
    for u in set(&r["interfaces"]) {
        interfaces.extend(ifaces.get(&uuid(u)?).cloned());
    }
    let p = LivePort {
        uuid: uuid(&r["_uuid"])?,
        name: string(&r["name"]),
        tag: set(&r["tag"]).into_iter().next().and_then(vlan),
        trunks: set(&r["trunks"]).into_iter().filter_map(vlan).collect(),
        vlan_mode: set(&r["vlan_mode"]).first().and_then(|v| v.as_str()).map(str::to_string),
        external_ids: map(&r["external_ids"]),
        interfaces,
        raw: pick(r, &PORT_GUARD),
    };
    Ok((p.uuid.clone(), p))
}

fn bridge(r: &Value, ports: &BTreeMap<String, LivePort>) -> Result<(String, LiveBridge), LiveError> {
    let mut bports = Vec::new();
    for u in set(&r["ports"]) {
        bports.extend(ports.get(&uuid(u)?).cloned());
    }
    bports.sort_by(|a, b| a.name.cmp(&b.name));
    let b = LiveBridge {
        uuid: uuid(&r["_uuid"])?,
        name: string(&r["name"]),
        external_ids: map(&r["external_ids"]),
        ports: bports,
        raw: pick(r, &BRIDGE_GUARD),
    };
    Ok((b.uuid.clone(), b))
}

fn pick(r: &Value, cols: &[&str]) -> Value {
    Value::Object(cols.iter().map(|c| (c.to_string(), r.get(*c).cloned().unwrap_or(Value::Null))).collect())
}

fn uuid(v: &Value) -> Result<String, LiveError> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, Value::String(u)]) if tag == "uuid" => Ok(u.clone()),
        _ => Err(LiveError::Shape(format!("expected a uuid, got {v}"))),
    }
}

fn string(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The members of a set datum: `["set", [...]]`, or a single atom standing for a 1-set.
fn set(v: &Value) -> Vec<&Value> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, Value::Array(items)]) if tag == "set" => items.iter().collect(),
        _ if v.is_null() => Vec::new(),
        _ => vec![v],
    }
}

fn map(v: &Value) -> Map {
    let pairs = match v.as_array().map(Vec::as_slice) {
        Some([tag, Value::Array(p)]) if tag == "map" => p.as_slice(),
        _ => &[],
    };
    pairs
        .iter()
        .filter_map(|kv| match kv.as_array().map(Vec::as_slice) {
            Some([Value::String(k), Value::String(v)]) => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect()
}

/// Builders for tests of the modules that consume a [`LiveDb`].
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;

    /// A port with `tag`/`trunks`/`vlan_mode` and one interface of the same name.
    pub(crate) fn port(
        name: &str,
        tag: Option<u16>,
        trunks: &[u16],
        mode: Option<&str>,
        marks: &[(&str, &str)],
    ) -> LivePort {
        let external_ids: Map = marks.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        LivePort {
            uuid: format!("u-port-{name}"),
            name: name.into(),
            tag,
            trunks: trunks.to_vec(),
            vlan_mode: mode.map(str::to_string),
            external_ids: external_ids.clone(),
            interfaces: vec![LiveInterface {
                uuid: format!("u-if-{name}"),
                name: name.into(),
                kind: String::new(),
                external_ids,
                options: Map::new(),
                link_state: None,
            }],
            raw: json!({"p": name}),
        }
    }

    pub(crate) fn bridge(name: &str, marks: &[(&str, &str)], ports: Vec<LivePort>) -> LiveBridge {
        LiveBridge {
            uuid: format!("u-br-{name}"),
            name: name.into(),
            external_ids: marks.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ports,
            raw: json!({"b": name}),
        }
    }

    pub(crate) fn db(bridges: Vec<LiveBridge>) -> LiveDb {
        LiveDb {
            ovs_uuid: Some("u-root".into()),
            ovs_bridges_raw: json!(["set", []]),
            next_cfg: 1,
            cur_cfg: 1,
            bridges,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_datum_encoding() {
        let results = json!([
            {"rows": [{"_uuid": ["uuid", "r"], "bridges": ["uuid", "b1"], "next_cfg": 4, "cur_cfg": 3}]},
            {"rows": [{"_uuid": ["uuid", "b1"], "name": "br-a", "ports": ["set", [["uuid", "p1"]]],
                       "external_ids": ["map", [["rvswitch-zone", "a"]]]},
                      {"_uuid": ["uuid", "b2"], "name": "orphan", "ports": ["set", []], "external_ids": ["map", []]}]},
            {"rows": [{"_uuid": ["uuid", "p1"], "name": "eth1", "interfaces": ["uuid", "i1"], "tag": ["set", []],
                       "trunks": ["set", [10, 20]], "vlan_mode": "trunk", "external_ids": ["map", []]}]},
            {"rows": [{"_uuid": ["uuid", "i1"], "name": "eth1", "type": "", "external_ids": ["map", []],
                       "options": ["map", []], "link_state": "up"}]}
        ]);
        let db = LiveDb::from_results(results.as_array().unwrap()).unwrap();
        assert_eq!((db.ovs_uuid.as_deref(), db.next_cfg, db.cur_cfg), (Some("r"), 4, 3));
        assert_eq!(db.bridges.len(), 1, "a bridge not in Open_vSwitch.bridges is not live");
        let b = &db.bridges[0];
        assert_eq!((b.name.as_str(), b.zone()), ("br-a", Some("a")));
        let p = &b.ports[0];
        assert_eq!((p.tag, p.trunks.clone(), p.vlan_mode.as_deref()), (None, vec![10, 20], Some("trunk")));
        assert_eq!(p.interfaces[0].link_state.as_deref(), Some("up"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(LiveDb::from_results(&[]).is_err());
        let bad = json!([{"rows": [{"_uuid": 5}]}, {"rows": []}, {"rows": []}, {"rows": []}]);
        assert!(LiveDb::from_results(bad.as_array().unwrap()).is_err());
        let empty = json!([{"rows": []}, {"rows": []}, {"rows": []}, {"rows": []}]);
        assert_eq!(LiveDb::from_results(empty.as_array().unwrap()).unwrap().ovs_uuid, None);
    }
}
