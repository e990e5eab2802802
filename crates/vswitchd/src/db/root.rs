//! The root `Open_vSwitch` row, made ready before any client can connect. Open vSwitch's
//! packaging runs `ovs-vsctl init` and ovs-vswitchd fills in its version at start; clients such
//! as OpenStack's ovsdbapp read the root row the moment they connect and fail on an empty table
//! (ovs-vsctl creates the row itself, which hid this).

use ovsdb::Database;
use serde_json::{json, Value};

use super::datum::{by_uuid, map, set, string_map, uuids};
use super::{txn_errors, DbError};

/// `external_ids` key naming this host, as OvS's `system-id.conf` does; one database may later
/// serve several hosts, each finding its own rows by it.
pub const SYSTEM_ID_KEY: &str = "system-id";

/// The columns ovs-vswitchd writes into the root row at start (`ovs-vsctl show` prints the
/// version; libvirt and ovsdbapp read the type lists).
pub fn announce_columns() -> Value {
    let db_version = serde_json::from_str::<Value>(ovsdb::VSWITCH_SCHEMA)
        .ok()
        .and_then(|s| s["version"].as_str().map(str::to_string))
        .unwrap_or_default();
    json!({
        "ovs_version": format!("rvswitch-{}", env!("CARGO_PKG_VERSION")),
        "db_version": db_version,
        "datapath_types": set([json!("netdev")]),
        "iface_types": set(["internal", "system", "tap"].map(Value::from)),
    })
}

/// The transaction that gives `existing` (the root rows' `_uuid` and `external_ids` as selected)
/// a ready root row: inserted when the table is empty (and still empty when the transaction
/// runs: two hosts starting on one fresh shared database make one root row, not two), else
/// brought up to date. A system-id, once chosen, is kept; `new_system_id` is given to a row
/// without one (`None`: the row's system-id is left to others, see `scope`).
pub fn root_row_ops(existing: &[Value], new_system_id: Option<&str>) -> Value {
    let mut row = announce_columns();
    match existing.first() {
        None => {
            row["external_ids"] = map(new_system_id.map(|id| (SYSTEM_ID_KEY, id)));
            json!(["Open_vSwitch",
                {"op": "wait", "table": "Open_vSwitch", "where": [], "columns": ["_uuid"],
                 "until": "==", "rows": [], "timeout": 0},
                {"op": "insert", "table": "Open_vSwitch", "row": row}])
        }
        Some(root) => {
            let uuid = uuids(&root["_uuid"]).pop().unwrap_or_default();
            let mut ids = string_map(&root["external_ids"]);
            if let Some(id) = new_system_id.filter(|_| !ids.iter().any(|(k, _)| k == SYSTEM_ID_KEY)) {
                ids.push((SYSTEM_ID_KEY.into(), id.into()));
            }
            row["external_ids"] = map(ids);
            json!(["Open_vSwitch", {"op": "update", "table": "Open_vSwitch", "where": by_uuid(&uuid), "row": row}])
        }
    }
}

/// Makes the root row ready in `db` (before its socket is opened).
pub fn ensure_root_row(db: &Database) -> Result<(), DbError> {
    let reply = db.transact(json!(["Open_vSwitch",
        {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["_uuid", "external_ids"]}]));
    let rows = reply[0]["rows"].as_array().cloned().ok_or_else(|| DbError::ReadRoot(reply.to_string()))?;
    let reply = db.transact(root_row_ops(&rows, Some(&uuid::Uuid::new_v4().to_string())));
    match txn_errors(&reply) {
        Some(e) => Err(DbError::PrepareRoot(e)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ovsdb::DatabaseSchema;

    fn root(db: &Database) -> Value {
        let r = db.transact(json!(["Open_vSwitch", {"op": "select", "table": "Open_vSwitch", "where": []}]));
        let rows = r[0]["rows"].as_array().unwrap().clone();
        assert_eq!(rows.len(), 1, "{r}");
        rows[0].clone()
    }

    #[test]
    fn a_fresh_database_gets_a_ready_root_row_and_keeps_its_system_id() {
        let db = Database::in_memory(DatabaseSchema::parse_str(ovsdb::VSWITCH_SCHEMA).unwrap());
        ensure_root_row(&db).unwrap();
        let first = root(&db);
        assert!(first["ovs_version"].as_str().unwrap().starts_with("rvswitch-"), "{first}");
        assert_eq!(first["db_version"], "8.3.1");
        let ids = string_map(&first["external_ids"]);
        let id = ids.iter().find(|(k, _)| k == SYSTEM_ID_KEY).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(id.len(), 36, "{id}");
        // A second start updates the row in place: still one row, same system-id.
        ensure_root_row(&db).unwrap();
        let again = root(&db);
        assert_eq!(again["_uuid"], first["_uuid"]);
        assert_eq!(string_map(&again["external_ids"]), ids);
    }

    #[test]
    fn an_existing_root_row_keeps_its_bridges_and_other_external_ids() {
        let db = Database::in_memory(DatabaseSchema::parse_str(ovsdb::VSWITCH_SCHEMA).unwrap());
        let r = db.transact(json!(["Open_vSwitch",
            {"op": "insert", "table": "Bridge", "uuid-name": "b", "row": {"name": "br0"}},
            {"op": "insert", "table": "Open_vSwitch", "row": {"bridges": ["named-uuid", "b"],
                "external_ids": ["map", [["hostname", "h1"]]]}}]));
        assert_eq!(txn_errors(&r), None, "{r}");
        ensure_root_row(&db).unwrap();
        let row = root(&db);
        assert_eq!(uuids(&row["bridges"]).len(), 1, "{row}");
        let ids = string_map(&row["external_ids"]);
        assert!(ids.contains(&("hostname".into(), "h1".into())), "{ids:?}");
        assert!(ids.iter().any(|(k, _)| k == SYSTEM_ID_KEY), "{ids:?}");
        assert_eq!(row["iface_types"], json!(["set", ["internal", "system", "tap"]]));
    }
}
