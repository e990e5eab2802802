//! Commit-time checks (RFC 7047 §4.1.3 and the OvS extensions): garbage
//! collection of unreferenced non-root rows, removal of dangling weak
//! references, referential integrity, maxRows and unique indexes. Then the
//! change set that monitors and the file log consume.

use crate::atom::Atom;
use crate::datum::Datum;
use crate::error::{OResult, OvsdbError};
use crate::row::{DbState, RowChange};
use crate::schema::{ColumnType, DatabaseSchema};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use uuid::Uuid;

/// A transaction that passed every check.
#[derive(Debug, Clone)]
pub struct CommitResult {
    /// The new state to install.
    pub state: DbState,
    /// What changed, per row (ordered by table, then UUID).
    pub changes: Vec<RowChange>,
    /// `comment` operations, for the log's `_comment`.
    pub comments: Vec<String>,
}

/// Runs the checks and builds the change set.
pub fn finish(
    schema: &DatabaseSchema,
    base: &DbState,
    mut state: DbState,
    mut touched: BTreeSet<(String, Uuid)>,
    comments: Vec<String>,
) -> OResult<CommitResult> {
    if touched.is_empty() {
        return Ok(CommitResult { state, changes: Vec::new(), comments });
    }
    collect_garbage(schema, &mut state, &mut touched);
    remove_weak(schema, &mut state, &mut touched)?;
    check_refs(schema, &state)?;
    check_limits(schema, base, &state, &touched)?;
    let mut changes = Vec::new();
    for (t, u) in &touched {
        let old = base.row(t, u).cloned();
        let new_ref = state.tables.get_mut(t).and_then(|td| td.rows.get_mut(u));
        match (old, new_ref) {
            (None, None) => {}
            (Some(o), Some(n)) => {
                if o.cols == n.cols {
                    *n = o; // unchanged: keep the old version
                } else {
                    Arc::make_mut(n).version = Uuid::new_v4();
                    changes.push(RowChange {
                        table: t.clone(),
                        uuid: *u,
                        old: Some(o),
                        new: Some(n.clone()),
                    });
                }
            }
            (None, Some(n)) => {
                Arc::make_mut(n).version = Uuid::new_v4();
                changes.push(RowChange { table: t.clone(), uuid: *u, old: None, new: Some(n.clone()) });
            }
            (Some(o), None) => {
                changes.push(RowChange { table: t.clone(), uuid: *u, old: Some(o), new: None })
            }
        }
    }
    Ok(CommitResult { state, changes, comments })
}

/// (table, column, type) of every column whose key or value is a reference.
fn ref_columns(schema: &DatabaseSchema) -> Vec<(&str, &str, &ColumnType)> {
    let mut out = Vec::new();
    for t in schema.tables.values() {
        for c in t.columns.values() {
            if c.ty.key.ref_table.is_some() || c.ty.value.as_ref().is_some_and(|v| v.ref_table.is_some()) {
                out.push((t.name.as_str(), c.name.as_str(), &c.ty));
            }
        }
    }
    out
}

fn strong_targets(ty: &ColumnType, d: &Datum, mut f: impl FnMut(&str, Uuid)) {
    if let Some(rt) = ty.key.strong_ref() {
        for u in d.uuids(true, false) {
            f(rt, u)
        }
    }
    if let Some(rt) = ty.value.as_ref().and_then(|v| v.strong_ref()) {
        for u in d.uuids(false, true) {
            f(rt, u)
        }
    }
}

fn collect_garbage(schema: &DatabaseSchema, state: &mut DbState, touched: &mut BTreeSet<(String, Uuid)>) {
    let refcols = ref_columns(schema);
    loop {
        let mut referenced: HashSet<(String, Uuid)> = HashSet::new();
        for (t, c, ty) in &refcols {
            let Some(td) = state.tables.get(*t) else { continue };
            for r in td.rows.values() {
                if let Some(d) = r.cols.get(*c) {
                    strong_targets(ty, d, |rt, u| {
                        referenced.insert((rt.to_string(), u));
                    });
                }
            }
        }
        let mut removed = false;
        for ts in schema.tables.values().filter(|t| !t.is_root) {
            let Some(td) = state.tables.get_mut(&ts.name) else { continue };
            let dead: Vec<Uuid> =
                td.rows.keys().filter(|u| !referenced.contains(&(ts.name.clone(), **u))).copied().collect();
            for u in dead {
                td.rows.remove(&u);
                touched.insert((ts.name.clone(), u));
                removed = true;
            }
        }
        if !removed {
            return;
        }
    }
}

fn remove_weak(
    schema: &DatabaseSchema,
    state: &mut DbState,
    touched: &mut BTreeSet<(String, Uuid)>,
) -> OResult<()> {
    for ts in schema.tables.values() {
        for c in ts.columns.values() {
            let kw = c.ty.key.weak_ref().map(str::to_string);
            let vw = c.ty.value.as_ref().and_then(|v| v.weak_ref()).map(str::to_string);
            if kw.is_none() && vw.is_none() {
                continue;
            }
            let exists = |state: &DbState, t: &Option<String>, a: &Atom| -> bool {
                match (t, a) {
                    (Some(t), Atom::Uuid(u)) => state.row(t, u).is_some(),
                    _ => true,
                }
            };
            let uuids: Vec<Uuid> =
                state.tables.get(&ts.name).map(|t| t.rows.keys().copied().collect()).unwrap_or_default();
            for u in uuids {
                let Some(d) = state.row(&ts.name, &u).and_then(|r| r.cols.get(c.name.as_str())) else {
                    continue;
                };
                let cleaned = match d {
                    Datum::Set(s) => {
                        Datum::Set(s.iter().filter(|a| exists(state, &kw, a)).cloned().collect())
                    }
                    Datum::Map(m) => Datum::Map(
                        m.iter()
                            .filter(|(k, v)| exists(state, &kw, k) && exists(state, &vw, v))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                };
                if cleaned.len() != d.len() {
                    if cleaned.len() < c.ty.min {
                        return Err(OvsdbError::constraint(format!(
                            "Deletion of a row referenced weakly by column {} of table {} would leave it below its minimum size.",
                            c.name, ts.name
                        )));
                    }
                    if let Some(r) = state.tables.get_mut(&ts.name).and_then(|t| t.rows.get_mut(&u)) {
                        Arc::make_mut(r).set(&c.name, cleaned);
                        touched.insert((ts.name.clone(), u));
                    }
                }
            }
        }
    }
    Ok(())
}

fn check_refs(schema: &DatabaseSchema, state: &DbState) -> OResult<()> {
    for (t, c, ty) in ref_columns(schema) {
        let Some(td) = state.tables.get(t) else { continue };
        for (u, r) in &td.rows {
            let Some(d) = r.cols.get(c) else { continue };
            let mut bad: Option<(String, Uuid)> = None;
            strong_targets(ty, d, |rt, target| {
                if bad.is_none() && state.row(rt, &target).is_none() {
                    bad = Some((rt.to_string(), target));
                }
            });
            if let Some((rt, target)) = bad {
                return Err(OvsdbError::new(
                    "referential integrity violation",
                    format!(
                        "Table {t} column {c} row {u} references nonexistent row {target} in table {rt}."
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn check_limits(
    schema: &DatabaseSchema,
    base: &DbState,
    state: &DbState,
    touched: &BTreeSet<(String, Uuid)>,
) -> OResult<()> {
    let tables: BTreeSet<&str> = touched.iter().map(|(t, _)| t.as_str()).collect();
    for t in tables {
        let Some(ts) = schema.tables.get(t) else { continue };
        let Some(td) = state.tables.get(t) else { continue };
        if let Some(max) = ts.max_rows {
            if td.rows.len() > max {
                return Err(OvsdbError::constraint(format!(
                    "Transaction causes \"{t}\" table to contain {} rows, greater than the schema-defined limit of {max} row(s).",
                    td.rows.len()
                )));
            }
        }
        for ix in &ts.indexes {
            let mut seen: BTreeMap<Vec<Datum>, Uuid> = BTreeMap::new();
            for (u, r) in &td.rows {
                let key: Vec<Datum> =
                    ix.iter().map(|c| r.value(u, c).unwrap_or(Datum::Set(Default::default()))).collect();
                if let Some(first) = seen.insert(key.clone(), *u) {
                    let vals: Vec<String> = key.iter().map(|d| d.to_json().to_string()).collect();
                    let origin = |x: &Uuid| {
                        if base.row(t, x).is_some() {
                            "existed in the database before this transaction"
                        } else {
                            "was inserted by this transaction"
                        }
                    };
                    return Err(OvsdbError::constraint(format!(
                        "Transaction causes multiple rows in \"{t}\" table to have identical values ({}) for index on column{} \"{}\".  First row, with UUID {first}, {}.  Second row, with UUID {u}, {}.",
                        vals.join(", "),
                        if ix.len() > 1 { "s" } else { "" },
                        ix.join("\", \""),
                        origin(&first),
                        origin(u)
                    )));
                }
            }
        }
    }
    Ok(())
}
