//! Monitors (RFC 7047 §4.1.5 and the ovsdb-server extensions monitor_cond /
//! monitor_cond_since): parsing requests and turning committed change sets
//! into `update`, `update2` and `update3` table-updates.

use crate::condition::{matches_any, parse_where, Clause};
use crate::datum::Datum;
use crate::error::{OResult, OvsdbError};
use crate::row::{DbState, Row, RowChange};
use crate::schema::{DatabaseSchema, TableSchema};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Which notification flavour a monitor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorVersion {
    /// `monitor` → `update` with old/new rows.
    V1,
    /// `monitor_cond` → `update2` with initial/insert/delete/modify.
    V2,
    /// `monitor_cond_since` → `update3` (update2 plus the last txn id).
    V3,
}

impl MonitorVersion {
    /// The notification method name.
    pub fn method(self) -> &'static str {
        match self {
            MonitorVersion::V1 => "update",
            MonitorVersion::V2 => "update2",
            MonitorVersion::V3 => "update3",
        }
    }
}

/// Which kinds of change to report.
#[derive(Debug, Clone, Copy)]
pub struct Select {
    /// Report existing rows in the reply.
    pub initial: bool,
    /// Report inserted rows.
    pub insert: bool,
    /// Report deleted rows.
    pub delete: bool,
    /// Report modified rows.
    pub modify: bool,
}

/// What a monitor watches in one table.
#[derive(Debug, Clone)]
pub struct TableMon {
    /// Columns reported.
    pub columns: Vec<String>,
    /// Change kinds reported.
    pub select: Select,
    /// Row filter (OR of clauses); None = all rows.
    pub cond: Option<Vec<Clause>>,
}

impl TableMon {
    fn matches(&self, uuid: &Uuid, row: &Row) -> bool {
        match &self.cond {
            None => true,
            Some(c) => matches_any(c, uuid, row),
        }
    }
}

/// A parsed monitor.
#[derive(Debug, Clone)]
pub struct MonitorSpec {
    /// Notification flavour.
    pub version: MonitorVersion,
    /// The client's `json-value` identifying the monitor.
    pub id: Value,
    /// Per-table requests.
    pub tables: BTreeMap<String, TableMon>,
}

/// Parses `<monitor-requests>`: an object mapping table names to one request
/// or an array of requests (merged: union of columns and select flags, OR of
/// conditions).
pub fn parse_requests(
    schema: &DatabaseSchema,
    v: &Value,
    version: MonitorVersion,
) -> OResult<BTreeMap<String, TableMon>> {
    let o = v.as_object().ok_or_else(|| OvsdbError::syntax("monitor requests must be an object"))?;
    let mut out = BTreeMap::new();
    for (tname, req) in o {
        let ts = schema.table(tname)?;
        let reqs: Vec<&Value> = match req {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        let mut mon: Option<TableMon> = None;
        for r in reqs {
            let m = parse_one(ts, r, version)?;
            mon = Some(match mon {
                None => m,
                Some(mut acc) => {
                    for c in m.columns {
                        if !acc.columns.contains(&c) {
                            acc.columns.push(c);
                        }
                    }
                    acc.select.initial |= m.select.initial;
                    acc.select.insert |= m.select.insert;
                    acc.select.delete |= m.select.delete;
                    acc.select.modify |= m.select.modify;
                    acc.cond = match (acc.cond, m.cond) {
                        (Some(mut a), Some(b)) => {
                            a.extend(b);
                            Some(a)
                        }
                        _ => None,
                    };
                    acc
                }
            });
        }
        if let Some(m) = mon {
            out.insert(tname.clone(), m);
        }
    }
    Ok(out)
}

fn parse_one(ts: &TableSchema, r: &Value, version: MonitorVersion) -> OResult<TableMon> {
    let o = r.as_object().ok_or_else(|| OvsdbError::syntax("monitor request must be an object"))?;
    let columns = match o.get("columns") {
        None => ts.columns.keys().cloned().collect(),
        Some(c) => {
            let arr = c.as_array().ok_or_else(|| OvsdbError::syntax("columns must be an array"))?;
            let mut cols = Vec::new();
            for x in arr {
                let n = x.as_str().ok_or_else(|| OvsdbError::syntax("column must be a string"))?;
                if !ts.columns.contains_key(n) {
                    return Err(ts.unknown_column(n));
                }
                if !cols.iter().any(|c: &String| c == n) {
                    cols.push(n.to_string());
                }
            }
            cols
        }
    };
    let mut select = Select { initial: true, insert: true, delete: true, modify: true };
    if let Some(s) = o.get("select") {
        let so = s.as_object().ok_or_else(|| OvsdbError::syntax("select must be an object"))?;
        let flag = |k: &str| -> OResult<bool> {
            match so.get(k) {
                None => Ok(true),
                Some(Value::Bool(b)) => Ok(*b),
                _ => Err(OvsdbError::syntax(format!("select.{k} must be boolean"))),
            }
        };
        select = Select {
            initial: flag("initial")?,
            insert: flag("insert")?,
            delete: flag("delete")?,
            modify: flag("modify")?,
        };
    }
    let cond = match (o.get("where"), version) {
        (Some(w), MonitorVersion::V2 | MonitorVersion::V3) => {
            Some(parse_where(ts, w, true, &mut crate::atom::no_named)?)
        }
        _ => None,
    };
    Ok(TableMon { columns, select, cond })
}

fn row_obj(row: &Row, columns: &[String], skip_defaults: Option<&TableSchema>) -> Value {
    let mut m = Map::new();
    for c in columns {
        if let Some(d) = row.cols.get(c.as_str()) {
            if let Some(ts) = skip_defaults {
                if ts.columns.get(c).is_some_and(|cs| *d == Datum::default_for(&cs.ty)) {
                    continue;
                }
            }
            m.insert(c.clone(), d.to_json());
        }
    }
    Value::Object(m)
}

/// The initial contents for a monitor (the reply to monitor / monitor_cond).
pub fn initial(schema: &DatabaseSchema, spec: &MonitorSpec, state: &DbState) -> Value {
    let mut out = Map::new();
    for (t, mon) in &spec.tables {
        if !mon.select.initial {
            continue;
        }
        let (Some(ts), Some(td)) = (schema.tables.get(t), state.tables.get(t)) else { continue };
        let mut rows = Map::new();
        for (u, r) in &td.rows {
            if !mon.matches(u, r) {
                continue;
            }
            let v = match spec.version {
                MonitorVersion::V1 => json!({"new": row_obj(r, &mon.columns, None)}),
                _ => json!({"initial": row_obj(r, &mon.columns, Some(ts))}),
            };
            rows.insert(u.to_string(), v);
        }
        if !rows.is_empty() {
            out.insert(t.clone(), Value::Object(rows));
        }
    }
    Value::Object(out)
}

/// Table-updates for one committed change set, or None if this monitor sees
/// nothing of it.
pub fn updates(schema: &DatabaseSchema, spec: &MonitorSpec, changes: &[RowChange]) -> Option<Value> {
    let mut out: Map<String, Value> = Map::new();
    for ch in changes {
        let Some(mon) = spec.tables.get(&ch.table) else { continue };
        let Some(ts) = schema.tables.get(&ch.table) else { continue };
        let upd = match spec.version {
            MonitorVersion::V1 => update_v1(mon, ch),
            _ => update_v2(ts, mon, ch),
        };
        if let Some(u) = upd {
            let tbl = out.entry(ch.table.clone()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = tbl {
                m.insert(ch.uuid.to_string(), u);
            }
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(Value::Object(out))
    }
}

fn update_v1(mon: &TableMon, ch: &RowChange) -> Option<Value> {
    match (&ch.old, &ch.new) {
        (None, Some(n)) if mon.select.insert => Some(json!({"new": row_obj(n, &mon.columns, None)})),
        (Some(o), None) if mon.select.delete => Some(json!({"old": row_obj(o, &mon.columns, None)})),
        (Some(o), Some(n)) if mon.select.modify => {
            let changed: Vec<String> = mon
                .columns
                .iter()
                .filter(|c| o.cols.get(c.as_str()) != n.cols.get(c.as_str()))
                .cloned()
                .collect();
            if changed.is_empty() {
                return None;
            }
            Some(json!({"old": row_obj(o, &changed, None), "new": row_obj(n, &mon.columns, None)}))
        }
        _ => None,
    }
}

fn update_v2(ts: &TableSchema, mon: &TableMon, ch: &RowChange) -> Option<Value> {
    let old_in = ch.old.as_ref().is_some_and(|r| mon.matches(&ch.uuid, r));
    let new_in = ch.new.as_ref().is_some_and(|r| mon.matches(&ch.uuid, r));
    match (old_in, new_in, &ch.old, &ch.new) {
        (false, true, _, Some(n)) if mon.select.insert => {
            Some(json!({"insert": row_obj(n, &mon.columns, Some(ts))}))
        }
        (true, false, _, _) if mon.select.delete => Some(json!({"delete": null})),
        (true, true, Some(o), Some(n)) if mon.select.modify => {
            let mut m = Map::new();
            for c in &mon.columns {
                let (Some(a), Some(b), Some(cs)) =
                    (o.cols.get(c.as_str()), n.cols.get(c.as_str()), ts.columns.get(c))
                else {
                    continue;
                };
                if a != b {
                    let d = if cs.ty.is_scalar() { b.clone() } else { a.diff(b) };
                    m.insert(c.clone(), d.to_json());
                }
            }
            if m.is_empty() {
                None
            } else {
                Some(json!({ "modify": m }))
            }
        }
        _ => None,
    }
}

/// Collapses a sequence of change sets into one (first old, last new per row),
/// for monitor_cond_since catching a client up.
pub fn compose(sets: &[&[RowChange]]) -> Vec<RowChange> {
    let mut acc: BTreeMap<(String, Uuid), RowChange> = BTreeMap::new();
    for set in sets {
        for ch in set.iter() {
            acc.entry((ch.table.clone(), ch.uuid))
                .and_modify(|e| e.new = ch.new.clone())
                .or_insert_with(|| ch.clone());
        }
    }
    acc.into_values().filter(|c| !(c.old.is_none() && c.new.is_none())).collect()
}

/// Updates for a monitor_cond_change: rows leaving the condition are deleted,
/// rows entering it are inserted.
pub fn cond_change(
    schema: &DatabaseSchema,
    old: &MonitorSpec,
    new: &MonitorSpec,
    state: &DbState,
) -> Option<Value> {
    let mut out: Map<String, Value> = Map::new();
    for (t, nm) in &new.tables {
        let (Some(ts), Some(td)) = (schema.tables.get(t), state.tables.get(t)) else { continue };
        let om = old.tables.get(t);
        let mut rows = Map::new();
        for (u, r) in &td.rows {
            let was = om.is_some_and(|m| m.matches(u, r));
            let is = nm.matches(u, r);
            if was && !is {
                rows.insert(u.to_string(), json!({"delete": null}));
            } else if is && !was {
                rows.insert(u.to_string(), json!({"insert": row_obj(r, &nm.columns, Some(ts))}));
            }
        }
        if !rows.is_empty() {
            out.insert(t.clone(), Value::Object(rows));
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(Value::Object(out))
    }
}
