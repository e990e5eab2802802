//! Executing the operations of one `transact` request (RFC 7047 §5.2).
//!
//! The transaction works on a private copy of the state. Only if every
//! operation and every commit-time check succeeds does the caller swap the
//! copy in, so a transaction is all or nothing by construction.

use crate::atom::{parse_uuid, short};
use crate::commit::{self, CommitResult};
use crate::condition::{matches_all, parse_where, pinned_uuid, Clause};
use crate::datum::Datum;
use crate::error::{OResult, OvsdbError};
use crate::mutation::{apply, parse_mutations};
use crate::row::{DbState, Row};
use crate::schema::{DatabaseSchema, TableSchema};
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The result of trying to run a transaction once.
pub enum Outcome {
    /// Finished: the reply to send and, if it changed something, the commit.
    Done {
        /// The `result` array for the JSON-RPC reply.
        reply: Value,
        /// State and changes to install (None on failure or no-op).
        commit: Option<CommitResult>,
    },
    /// A `wait` operation is not satisfied yet; retry after the database
    /// changes or at `deadline` (None = wait forever).
    Blocked {
        /// When the wait times out.
        deadline: Option<Instant>,
    },
}

/// Inputs that do not come from the request itself.
pub struct TxnEnv<'a> {
    /// Lock ownership for `assert`.
    pub owns_lock: &'a dyn Fn(&str) -> bool,
    /// When the request first arrived (wait timeouts count from here).
    pub started: Instant,
    /// Read-only databases (`_Server`) reject writes.
    pub read_only: bool,
}

struct Txn<'a> {
    schema: &'a DatabaseSchema,
    state: DbState,
    touched: BTreeSet<(String, Uuid)>,
    symbols: HashMap<String, (Uuid, bool)>,
    comments: Vec<String>,
    env: &'a TxnEnv<'a>,
    blocked: Option<Option<Instant>>,
}

/// Runs `ops` against `base`.
pub fn execute(schema: &DatabaseSchema, base: &DbState, ops: &[Value], env: &TxnEnv<'_>) -> Outcome {
    let mut t = Txn {
        schema,
        state: base.clone(),
        touched: BTreeSet::new(),
        symbols: HashMap::new(),
        comments: Vec::new(),
        env,
        blocked: None,
    };
    let mut results: Vec<Value> = Vec::with_capacity(ops.len() + 1);
    for op in ops {
        match t.op(op) {
            Ok(r) => results.push(r),
            Err(e) => {
                if let Some(deadline) = t.blocked {
                    return Outcome::Blocked { deadline };
                }
                results.push(e.to_json());
                results.resize(ops.len(), Value::Null);
                return Outcome::Done { reply: Value::Array(results), commit: None };
            }
        }
    }
    let Txn { state, touched, comments, .. } = t;
    match commit::finish(schema, base, state, touched, comments) {
        Ok(c) => {
            let commit = if c.changes.is_empty() { None } else { Some(c) };
            Outcome::Done { reply: Value::Array(results), commit }
        }
        Err(e) => {
            results.push(e.to_json());
            Outcome::Done { reply: Value::Array(results), commit: None }
        }
    }
}

fn get_str<'v>(o: &'v Map<String, Value>, k: &str) -> OResult<&'v str> {
    o.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| OvsdbError::syntax(format!("operation lacks string member \"{k}\"")))
}

impl<'a> Txn<'a> {
    fn resolver(symbols: &mut HashMap<String, (Uuid, bool)>) -> impl FnMut(&str) -> OResult<Uuid> + '_ {
        move |name: &str| Ok(symbols.entry(name.to_string()).or_insert_with(|| (Uuid::new_v4(), false)).0)
    }

    fn op(&mut self, op: &Value) -> OResult<Value> {
        let o = op
            .as_object()
            .ok_or_else(|| OvsdbError::syntax(format!("operation must be an object: {}", short(op))))?;
        let name = get_str(o, "op")?;
        let writes = matches!(name, "insert" | "update" | "mutate" | "delete");
        if writes && self.env.read_only {
            return Err(OvsdbError::new(
                "not allowed",
                format!("database {} is read-only", self.schema.name),
            ));
        }
        match name {
            "insert" => self.insert(o),
            "select" => self.select(o),
            "update" => self.update(o),
            "mutate" => self.mutate(o),
            "delete" => self.delete(o),
            "wait" => self.wait(o),
            "commit" => {
                match o.get("durable") {
                    Some(Value::Bool(_)) | None => {}
                    _ => return Err(OvsdbError::syntax("durable must be boolean")),
                }
                Ok(json!({}))
            }
            "abort" => Err(OvsdbError::bare("aborted")),
            "comment" => {
                self.comments.push(get_str(o, "comment")?.to_string());
                Ok(json!({}))
            }
            "assert" => {
                let lock = get_str(o, "lock")?;
                if (self.env.owns_lock)(lock) {
                    Ok(json!({}))
                } else {
                    Err(OvsdbError::new(
                        "not owner",
                        format!("Asserted lock {} not held.", crate::atom::trunc(lock)),
                    ))
                }
            }
            other => Err(OvsdbError::new(
                "unknown operation",
                format!("No operation \"{}\"", crate::atom::trunc(other)),
            )),
        }
    }

    fn table(&self, o: &Map<String, Value>) -> OResult<&'a TableSchema> {
        self.schema.table(get_str(o, "table")?)
    }

    fn parse_where(&mut self, ts: &TableSchema, o: &Map<String, Value>) -> OResult<Vec<Clause>> {
        let w = o.get("where").ok_or_else(|| OvsdbError::syntax("operation lacks \"where\""))?;
        parse_where(ts, w, false, &mut Self::resolver(&mut self.symbols))
    }

    /// Rows of `ts` matching the clauses, in UUID order.
    fn matching(&self, ts: &TableSchema, clauses: &[Clause]) -> Vec<Uuid> {
        let Some(td) = self.state.tables.get(&ts.name) else { return Vec::new() };
        if let Some(u) = pinned_uuid(clauses) {
            return td
                .rows
                .get(&u)
                .filter(|r| matches_all(clauses, &u, r))
                .map(|_| vec![u])
                .unwrap_or_default();
        }
        td.rows.iter().filter(|(u, r)| matches_all(clauses, u, r)).map(|(u, _)| *u).collect()
    }

    fn parse_row(&mut self, ts: &TableSchema, v: &Value, for_update: bool) -> OResult<Vec<(String, Datum)>> {
        let o = v.as_object().ok_or_else(|| OvsdbError::syntax("row must be an object"))?;
        let mut out = Vec::with_capacity(o.len());
        for (k, val) in o {
            let Some(col) = ts.columns.get(k) else {
                if k == "_uuid" || k == "_version" {
                    return Err(OvsdbError::constraint(format!("Cannot set column {k}")));
                }
                return Err(ts.unknown_column(k));
            };
            if for_update && !col.mutable {
                return Err(OvsdbError::constraint(format!(
                    "Cannot update immutable column {k} in table {}.",
                    ts.name
                )));
            }
            let d = Datum::from_json(&col.ty, val, &mut Self::resolver(&mut self.symbols)).map_err(|e| {
                OvsdbError {
                    error: e.error,
                    details: Some(format!("column {k}: {}", e.details.unwrap_or_default())),
                }
            })?;
            out.push((k.clone(), d));
        }
        Ok(out)
    }

    fn insert(&mut self, o: &Map<String, Value>) -> OResult<Value> {
        let ts = self.table(o)?;
        let uuid_name = match o.get("uuid-name") {
            None => None,
            Some(v) => {
                Some(v.as_str().ok_or_else(|| OvsdbError::syntax("uuid-name must be a string"))?.to_string())
            }
        };
        let explicit = match o.get("uuid") {
            None => None,
            Some(v) => {
                Some(parse_uuid(v.as_str().ok_or_else(|| OvsdbError::syntax("uuid must be a string"))?)?)
            }
        };
        let uuid = match (&uuid_name, explicit) {
            (Some(n), ex) => {
                let ent = self.symbols.get(n).copied();
                match (ent, ex) {
                    (Some((_, true)), _) => {
                        return Err(OvsdbError::new(
                            "duplicate uuid-name",
                            format!("uuid-name {n} used twice"),
                        ))
                    }
                    (Some((u, false)), Some(e)) if u != e => {
                        return Err(OvsdbError::syntax(format!(
                            "uuid-name {n} referenced before insert with explicit uuid"
                        )))
                    }
                    (Some((u, false)), _) => u,
                    (None, Some(e)) => e,
                    (None, None) => Uuid::new_v4(),
                }
            }
            (None, Some(e)) => e,
            (None, None) => Uuid::new_v4(),
        };
        if let Some(n) = &uuid_name {
            self.symbols.insert(n.clone(), (uuid, true));
        }
        let exists = self.state.tables.values().any(|t| t.rows.contains_key(&uuid))
            || self.touched.iter().any(|(_, u)| *u == uuid);
        if exists {
            return Err(OvsdbError::new(
                "duplicate uuid",
                format!("This UUID ({uuid}) would duplicate a UUID already present within the table or deleted within the same transaction."),
            ));
        }
        let mut row = Row::with_defaults(ts);
        if let Some(rv) = o.get("row") {
            for (k, d) in self.parse_row(ts, rv, false)? {
                row.set(&k, d);
            }
        }
        self.put(ts, uuid, row);
        Ok(json!({"uuid": ["uuid", uuid.to_string()]}))
    }

    fn put(&mut self, ts: &TableSchema, uuid: Uuid, row: Row) {
        if let Some(td) = self.state.tables.get_mut(&ts.name) {
            td.rows.insert(uuid, Arc::new(row));
            self.touched.insert((ts.name.clone(), uuid));
        }
    }

    fn columns_arg(
        &self,
        ts: &TableSchema,
        o: &Map<String, Value>,
        with_hidden: bool,
    ) -> OResult<Vec<String>> {
        match o.get("columns") {
            None => {
                let mut c: Vec<String> = Vec::new();
                if with_hidden {
                    c.push("_uuid".into());
                    c.push("_version".into());
                }
                c.extend(ts.columns.keys().cloned());
                Ok(c)
            }
            Some(v) => {
                let arr = v.as_array().ok_or_else(|| OvsdbError::syntax("columns must be an array"))?;
                let mut c = Vec::with_capacity(arr.len());
                for x in arr {
                    let n = x.as_str().ok_or_else(|| OvsdbError::syntax("column name must be a string"))?;
                    if ts.column_type(n).is_none() {
                        return Err(ts.unknown_column(n));
                    }
                    c.push(n.to_string());
                }
                Ok(c)
            }
        }
    }

    fn select(&mut self, o: &Map<String, Value>) -> OResult<Value> {
        let ts = self.table(o)?;
        let clauses = self.parse_where(ts, o)?;
        let cols = self.columns_arg(ts, o, true)?;
        let rows: Vec<Value> = self
            .matching(ts, &clauses)
            .iter()
            .filter_map(|u| self.state.row(&ts.name, u).map(|r| r.to_json(u, &cols)))
            .collect();
        Ok(json!({ "rows": rows }))
    }

    fn update(&mut self, o: &Map<String, Value>) -> OResult<Value> {
        let ts = self.table(o)?;
        let clauses = self.parse_where(ts, o)?;
        let rv = o.get("row").ok_or_else(|| OvsdbError::syntax("update lacks row"))?;
        let newcols = self.parse_row(ts, rv, true)?;
        let hits = self.matching(ts, &clauses);
        for u in &hits {
            if let Some(r) = self.state.tables.get_mut(&ts.name).and_then(|t| t.rows.get_mut(u)) {
                let r = Arc::make_mut(r);
                for (k, d) in &newcols {
                    r.set(k, d.clone());
                }
                self.touched.insert((ts.name.clone(), *u));
            }
        }
        Ok(json!({"count": hits.len()}))
    }

    fn mutate(&mut self, o: &Map<String, Value>) -> OResult<Value> {
        let ts = self.table(o)?;
        let clauses = self.parse_where(ts, o)?;
        let mv = o.get("mutations").ok_or_else(|| OvsdbError::syntax("mutate lacks mutations"))?;
        let muts = parse_mutations(ts, mv, &mut Self::resolver(&mut self.symbols))?;
        let hits = self.matching(ts, &clauses);
        for u in &hits {
            if let Some(r) = self.state.tables.get_mut(&ts.name).and_then(|t| t.rows.get_mut(u)) {
                let r = Arc::make_mut(r);
                for m in &muts {
                    let col = ts.columns.get(&m.column).ok_or_else(|| ts.unknown_column(&m.column))?;
                    let cur =
                        r.cols.get(m.column.as_str()).cloned().unwrap_or_else(|| Datum::default_for(&col.ty));
                    let nv = apply(m, &cur, &col.ty)?;
                    r.set(&m.column, nv);
                }
                self.touched.insert((ts.name.clone(), *u));
            }
        }
        Ok(json!({"count": hits.len()}))
    }

    fn delete(&mut self, o: &Map<String, Value>) -> OResult<Value> {
        let ts = self.table(o)?;
        let clauses = self.parse_where(ts, o)?;
        let hits = self.matching(ts, &clauses);
        if let Some(td) = self.state.tables.get_mut(&ts.name) {
            for u in &hits {
                td.rows.remove(u);
                self.touched.insert((ts.name.clone(), *u));
            }
        }
        Ok(json!({"count": hits.len()}))
    }

    fn wait(&mut self, o: &Map<String, Value>) -> OResult<Value> {
        let ts = self.table(o)?;
        let clauses = self.parse_where(ts, o)?;
        let cols = self.columns_arg(ts, o, false)?;
        let until = get_str(o, "until")?;
        let want_equal = match until {
            "==" => true,
            "!=" => false,
            _ => return Err(OvsdbError::syntax("until must be == or !=")),
        };
        let timeout = match o.get("timeout") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .or_else(|| v.as_f64().map(|f| f.max(0.0) as u64))
                    .ok_or_else(|| OvsdbError::syntax("timeout must be a number"))?,
            ),
        };
        let rows =
            o.get("rows").and_then(Value::as_array).ok_or_else(|| OvsdbError::syntax("wait lacks rows"))?;
        let mut expected: Vec<Vec<(String, Datum)>> = Vec::with_capacity(rows.len());
        for r in rows {
            let ro = r.as_object().ok_or_else(|| OvsdbError::syntax("row must be an object"))?;
            let mut parsed = Vec::new();
            for c in &cols {
                let ty = ts.column_type(c).ok_or_else(|| ts.unknown_column(c))?;
                let v = ro.get(c).ok_or_else(|| OvsdbError::syntax(format!("wait row lacks column {c}")))?;
                parsed.push((
                    c.clone(),
                    Datum::from_json_unchecked(&ty, v, &mut Self::resolver(&mut self.symbols))?,
                ));
            }
            for k in ro.keys() {
                if !cols.contains(k) {
                    return Err(OvsdbError::syntax(format!("wait row has column {k} not in columns")));
                }
            }
            expected.push(parsed);
        }
        let mut actual: Vec<Vec<(String, Datum)>> = self
            .matching(ts, &clauses)
            .iter()
            .filter_map(|u| {
                self.state.row(&ts.name, u).map(|r| {
                    cols.iter()
                        .map(|c| (c.clone(), r.value(u, c).unwrap_or(Datum::Set(Default::default()))))
                        .collect()
                })
            })
            .collect();
        actual.sort();
        expected.sort();
        if (actual == expected) == want_equal {
            return Ok(json!({}));
        }
        let deadline = timeout.map(|ms| self.env.started + Duration::from_millis(ms));
        match deadline {
            Some(d) if Instant::now() >= d => Err(OvsdbError::new("timed out", "\"wait\" timed out")),
            d => {
                self.blocked = Some(d);
                Err(OvsdbError::bare("blocked"))
            }
        }
    }
}
