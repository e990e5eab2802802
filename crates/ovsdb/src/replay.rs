//! Converting between database state and log records: the per-transaction
//! record OvS 3.1 writes (`_date`, `_comment`, `_is_diff`), the compaction
//! snapshot, and replaying records on open.

use crate::datum::Datum;
use crate::error::{OResult, OvsdbError};
use crate::row::{DbState, Row, RowChange};
use crate::schema::{DatabaseSchema, TableSchema};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn persistent_row(ts: &TableSchema, row: &Row) -> Map<String, Value> {
    let mut m = Map::new();
    for (c, d) in &row.cols {
        let Some(cs) = ts.columns.get(&**c) else { continue };
        if cs.ephemeral || *d == Datum::default_for(&cs.ty) {
            continue;
        }
        // Diff against the default: for non-scalars the default is empty, so
        // the diff is the value itself.
        m.insert(c.to_string(), d.to_json());
    }
    m
}

/// The log record for one committed transaction, or None if it changed only
/// ephemeral columns.
pub fn txn_record(schema: &DatabaseSchema, changes: &[RowChange], comments: &[String]) -> Option<Value> {
    let mut tables: Map<String, Value> = Map::new();
    for ch in changes {
        let Some(ts) = schema.tables.get(&ch.table) else { continue };
        let v = match (&ch.old, &ch.new) {
            (_, None) => Value::Null,
            (None, Some(n)) => Value::Object(persistent_row(ts, n)),
            (Some(o), Some(n)) => {
                let mut m = Map::new();
                for (c, nd) in &n.cols {
                    let Some(cs) = ts.columns.get(&**c) else { continue };
                    let od = o.cols.get(c);
                    if cs.ephemeral || od == Some(nd) {
                        continue;
                    }
                    let d = match od {
                        Some(od) if !cs.ty.is_scalar() => od.diff(nd),
                        _ => nd.clone(),
                    };
                    m.insert(c.to_string(), d.to_json());
                }
                if m.is_empty() {
                    continue;
                }
                Value::Object(m)
            }
        };
        if let Value::Object(t) = tables.entry(ch.table.clone()).or_insert_with(|| json!({})) {
            t.insert(ch.uuid.to_string(), v);
        }
    }
    if tables.is_empty() {
        return None;
    }
    tables.insert("_date".into(), json!(now_ms()));
    tables.insert("_is_diff".into(), json!(true));
    if !comments.is_empty() {
        tables.insert("_comment".into(), json!(comments.join("\n")));
    }
    Some(Value::Object(tables))
}

/// One record holding every row (used by compaction).
pub fn snapshot_record(schema: &DatabaseSchema, state: &DbState) -> Value {
    let mut tables: Map<String, Value> = Map::new();
    for (t, td) in &state.tables {
        let Some(ts) = schema.tables.get(t) else { continue };
        if td.rows.is_empty() {
            continue;
        }
        let rows: Map<String, Value> =
            td.rows.iter().map(|(u, r)| (u.to_string(), Value::Object(persistent_row(ts, r)))).collect();
        tables.insert(t.clone(), Value::Object(rows));
    }
    tables.insert("_date".into(), json!(now_ms()));
    tables.insert("_comment".into(), json!("compacting database online"));
    Value::Object(tables)
}

/// Applies one transaction or snapshot record. Unknown tables and columns are
/// skipped (a file written with an older or newer schema).
pub fn apply_record(schema: &DatabaseSchema, state: &mut DbState, rec: &Value) -> OResult<()> {
    let o = rec.as_object().ok_or_else(|| OvsdbError::syntax("log record must be an object"))?;
    let is_diff = o.get("_is_diff").and_then(Value::as_bool).unwrap_or(false);
    for (t, rows) in o {
        if t.starts_with('_') {
            continue;
        }
        let Some(ts) = schema.tables.get(t) else {
            tracing::warn!(table = %t, "log record names a table not in the schema; skipped");
            continue;
        };
        let rows =
            rows.as_object().ok_or_else(|| OvsdbError::syntax("table in log record must be an object"))?;
        let Some(td) = state.tables.get_mut(t) else { continue };
        for (us, rv) in rows {
            let u = crate::atom::parse_uuid(us)?;
            if rv.is_null() {
                td.rows.remove(&u);
                continue;
            }
            let cols =
                rv.as_object().ok_or_else(|| OvsdbError::syntax("row in log record must be an object"))?;
            let existed = td.rows.contains_key(&u);
            let row = td.rows.entry(u).or_insert_with(|| Arc::new(Row::with_defaults(ts)));
            let row = Arc::make_mut(row);
            for (c, v) in cols {
                let Some(cs) = ts.columns.get(c) else { continue };
                let d = Datum::from_json_unchecked(&cs.ty, v, &mut crate::atom::no_named)?;
                let nd = match row.cols.get(c.as_str()) {
                    Some(old) if is_diff && existed && !cs.ty.is_scalar() => old.apply_diff(&d),
                    _ => d,
                };
                row.set(c, nd);
            }
        }
    }
    Ok(())
}
