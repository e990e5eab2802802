//! The local copy of a remote database's configuration tables, kept by `update2`/`update3`
//! table-updates (what `monitor_cond_since` sends). It outlives the connection: while no member
//! answers, the switch keeps running on the last rows received, and a resumed monitor only
//! sends what changed since.

use std::collections::BTreeMap;

use ovsdb::{DatabaseSchema, Datum};
use serde_json::{json, Map, Value};

use crate::db::snapshot::COLUMNS;

/// Columns we write ourselves: a change of only these does not need a new sync (our own
/// write-back must not wake us up again).
const STATUS_COLUMNS: [(&str, &str); 3] =
    [("Open_vSwitch", "cur_cfg"), ("Bridge", "datapath_id"), ("Interface", "ofport")];

/// A table-updates object the replica cannot apply (the connection is then restarted with a
/// full resync).
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("table-updates is not an object: {0}")]
    NotAnObject(String),
    #[error("row update for {table} {uuid} is not initial/insert/modify/delete: {update}")]
    BadRowUpdate { table: String, uuid: String, update: String },
    #[error("modify of {table} {uuid} column {column}: {error}")]
    BadDiff { table: String, uuid: String, column: String, error: String },
}

type Row = Map<String, Value>;

/// Rows by table, then by UUID; columns in RFC 7047 JSON notation (absent: the default).
pub struct Replica {
    schema: DatabaseSchema,
    tables: BTreeMap<String, BTreeMap<String, Row>>,
}

impl Replica {
    pub fn new(schema: DatabaseSchema) -> Replica {
        Replica { schema, tables: BTreeMap::new() }
    }

    /// The monitor-cond-requests for `monitor_cond_since`: every column a snapshot reads.
    pub fn monitor_requests() -> Value {
        let tables: Map<String, Value> =
            COLUMNS.iter().map(|(t, cols)| (t.to_string(), json!([{"columns": cols}]))).collect();
        Value::Object(tables)
    }

    /// Forgets every row (before a full resync's initial contents).
    pub fn clear(&mut self) {
        self.tables.clear();
    }

    /// Applies one table-updates2 object. Returns whether a configuration column changed (any
    /// insert or delete, or a modify of a column that is not ours to write). On error nothing
    /// of `updates` is applied.
    pub fn apply(&mut self, updates: &Value) -> Result<bool, ReplicaError> {
        let tables = updates.as_object().ok_or_else(|| ReplicaError::NotAnObject(short(updates)))?;
        let mut next = self.tables.clone();
        let mut changed = false;
        for (table, rows) in tables {
            let rows = rows.as_object().ok_or_else(|| ReplicaError::NotAnObject(short(rows)))?;
            let target = next.entry(table.clone()).or_default();
            for (uuid, update) in rows {
                changed |= self.apply_row(table, uuid, update, target)?;
            }
        }
        self.tables = next;
        Ok(changed)
    }

    fn apply_row(
        &self,
        table: &str,
        uuid: &str,
        update: &Value,
        rows: &mut BTreeMap<String, Row>,
    ) -> Result<bool, ReplicaError> {
        let bad =
            || ReplicaError::BadRowUpdate { table: table.into(), uuid: uuid.into(), update: short(update) };
        let (kind, body) = update.as_object().and_then(|o| o.iter().next()).ok_or_else(bad)?;
        match (kind.as_str(), body) {
            ("initial" | "insert", Value::Object(row)) => {
                rows.insert(uuid.to_string(), row.clone());
                Ok(true)
            }
            ("delete", _) => Ok(rows.remove(uuid).is_some()),
            ("modify", Value::Object(diff)) => {
                let row = rows.entry(uuid.to_string()).or_default();
                let mut config = false;
                for (column, d) in diff {
                    row.insert(column.clone(), self.patched(table, uuid, column, row.get(column), d)?);
                    config |= !STATUS_COLUMNS.contains(&(table, column.as_str()));
                }
                Ok(config)
            }
            _ => Err(bad()),
        }
    }

    /// A column after an update2 modify: scalars are replaced, sets and maps get the diff.
    fn patched(
        &self,
        table: &str,
        uuid: &str,
        column: &str,
        old: Option<&Value>,
        diff: &Value,
    ) -> Result<Value, ReplicaError> {
        let error = |error: String| ReplicaError::BadDiff {
            table: table.into(),
            uuid: uuid.into(),
            column: column.into(),
            error,
        };
        let ty = self
            .schema
            .table(table)
            .ok()
            .and_then(|t| t.column_type(column))
            .ok_or_else(|| error("not in the schema".into()))?;
        if ty.is_scalar() {
            return Ok(diff.clone());
        }
        let parse = |v: &Value| {
            let mut no_names =
                |n: &str| Err(ovsdb::OvsdbError::syntax(format!("named-uuid {n} in an update")));
            Datum::from_json_unchecked(&ty, v, &mut no_names).map_err(|e| error(e.to_string()))
        };
        let old = match old {
            Some(v) => parse(v)?,
            None => Datum::default_for(&ty),
        };
        Ok(old.apply_diff(&parse(diff)?).to_json())
    }

    /// The rows in the shape of [`crate::db::snapshot::read_ops`]'s reply, so
    /// `Snapshot::parse` reads a replica exactly as it reads the embedded database.
    pub fn select_reply(&self) -> Value {
        let results: Vec<Value> = COLUMNS
            .iter()
            .map(|(table, _)| {
                let rows: Vec<Value> = self
                    .tables
                    .get(*table)
                    .into_iter()
                    .flatten()
                    .map(|(uuid, row)| {
                        let mut r = row.clone();
                        r.insert("_uuid".into(), json!(["uuid", uuid]));
                        Value::Object(r)
                    })
                    .collect();
                json!({ "rows": rows })
            })
            .collect();
        Value::Array(results)
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::snapshot::Snapshot;

    fn replica() -> Replica {
        Replica::new(DatabaseSchema::parse_str(ovsdb::VSWITCH_SCHEMA).unwrap())
    }

    const B: &str = "6a3c2f4e-0000-4000-8000-000000000001";
    const P1: &str = "6a3c2f4e-0000-4000-8000-000000000002";
    const P2: &str = "6a3c2f4e-0000-4000-8000-000000000003";

    #[test]
    fn initial_then_diffs_give_the_rows_a_snapshot_reads() {
        let mut r = replica();
        let initial = json!({"Bridge": {B: {"initial": {"name": "br0", "ports": ["uuid", P1]}}}});
        assert!(r.apply(&initial).unwrap());
        // A set diff adds P2; a map diff adds a key; a scalar is replaced.
        let diff = json!({"Bridge": {B: {"modify": {"ports": ["uuid", P2],
            "external_ids": ["map", [["rvswitch-system-id", "h1"]]], "name": "br1"}}}});
        assert!(r.apply(&diff).unwrap());
        let snap = Snapshot::parse(&r.select_reply()).unwrap();
        let b = &snap.bridges[B];
        assert_eq!(b.name, "br1");
        let mut ports = b.ports.clone();
        ports.sort();
        assert_eq!(ports, vec![P1.to_string(), P2.to_string()]);
        assert_eq!(b.external_ids, vec![("rvswitch-system-id".into(), "h1".into())]);
        // The same set diff again removes P2 (symmetric difference).
        assert!(r.apply(&json!({"Bridge": {B: {"modify": {"ports": ["uuid", P2]}}}})).unwrap());
        assert_eq!(Snapshot::parse(&r.select_reply()).unwrap().bridges[B].ports, vec![P1.to_string()]);
        assert!(r.apply(&json!({"Bridge": {B: {"delete": null}}})).unwrap());
        assert!(Snapshot::parse(&r.select_reply()).unwrap().bridges.is_empty());
    }

    #[test]
    fn our_own_status_writes_are_not_a_configuration_change() {
        let mut r = replica();
        r.apply(&json!({"Bridge": {B: {"insert": {"name": "br0"}}}})).unwrap();
        assert!(!r.apply(&json!({"Bridge": {B: {"modify": {"datapath_id": "0000525400000001"}}}})).unwrap());
        assert!(r
            .apply(&json!({"Bridge": {B: {"modify": {"other_config": ["map", [["a", "b"]]]}}}}))
            .unwrap());
    }

    #[test]
    fn a_bad_update_is_an_error_and_changes_nothing() {
        let mut r = replica();
        r.apply(&json!({"Bridge": {B: {"insert": {"name": "br0"}}}})).unwrap();
        let before = r.select_reply();
        for bad in [
            json!([1]),
            json!({"Bridge": {P1: {"insert": {"name": "x"}}, B: {"frobnicate": {}}}}),
            json!({"Bridge": {B: {"modify": {"ports": ["map", [[1, 2]]]}}}}),
            json!({"Bridge": {B: {"modify": {"no_such_column": 1}}}}),
        ] {
            assert!(r.apply(&bad).is_err(), "{bad}");
            assert_eq!(r.select_reply(), before, "{bad}");
        }
    }
}
