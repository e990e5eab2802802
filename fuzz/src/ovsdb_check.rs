//! Oracles for the OVSDB target: what must hold after any sequence of requests.
//!
//! They work from the outside — the JSON dump, read-only selects and a monitor — and re-derive
//! every rule from the schema rather than calling the commit code they are checking.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ovsdb::schema::TableSchema;
use ovsdb::{Database, Datum, MonitorVersion, OvsdbError, Session};
use serde_json::{json, Map, Value};

/// The first error object in a transact reply, if any.
pub fn first_error(reply: &Value) -> Option<&Value> {
    reply.as_array()?.iter().find(|r| r.get("error").is_some_and(|e| !e.is_null()))
}

type Dump = Map<String, Value>;

/// Panics unless the database satisfies the schema's rules and reads are repeatable.
pub fn consistent(db: &Database) {
    let dump = match db.dump() {
        Value::Object(m) => m,
        other => panic!("dump is not an object: {other}"),
    };
    let mut strong_in: HashMap<(String, String), usize> = HashMap::new();
    for (tname, ts) in &db.schema().tables {
        let rows = table_rows(&dump, tname);
        if let Some(max) = ts.max_rows {
            assert!(rows.len() <= max, "{tname}: {} rows, maxRows {max}", rows.len());
        }
        for (uuid, row) in rows {
            check_row(&dump, ts, uuid, row, &mut strong_in);
        }
        check_indexes(ts, rows);
    }
    for (tname, ts) in &db.schema().tables {
        if ts.is_root {
            continue;
        }
        for uuid in table_rows(&dump, tname).keys() {
            let key = (tname.clone(), uuid.clone());
            assert!(strong_in.contains_key(&key), "{tname} {uuid}: non-root row nobody references");
        }
    }
    selects_repeat(db, &dump);
}

fn table_rows<'d>(dump: &'d Dump, table: &str) -> &'d Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    dump.get(table).and_then(Value::as_object).unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

fn no_names(name: &str) -> Result<uuid::Uuid, OvsdbError> {
    Err(OvsdbError::syntax(format!("named-uuid {name} in stored data")))
}

/// Every stored value re-parses under its column type with all constraints (enum, range,
/// length, element count), and every reference points at an existing row.
fn check_row(
    dump: &Dump,
    ts: &TableSchema,
    uuid: &str,
    row: &Value,
    strong_in: &mut HashMap<(String, String), usize>,
) {
    let tname = &ts.name;
    let cols = row.as_object().unwrap_or_else(|| panic!("{tname} {uuid}: row is not an object"));
    for (cname, v) in cols {
        let cs = ts.columns.get(cname).unwrap_or_else(|| panic!("{tname} {uuid}: unknown column {cname}"));
        let d = Datum::from_json(&cs.ty, v, &mut no_names)
            .unwrap_or_else(|e| panic!("{tname} {uuid}.{cname} = {v} breaks its type: {}", e.to_json()));
        let sides = [(Some(&cs.ty.key), d.uuids(true, false)), (cs.ty.value.as_ref(), d.uuids(false, true))];
        for (base, targets) in sides {
            let Some((base, rt)) = base.and_then(|b| b.ref_table.as_ref().map(|rt| (b, rt))) else {
                continue;
            };
            for t in targets {
                let t = t.to_string();
                assert!(
                    table_rows(dump, rt).contains_key(&t),
                    "{tname} {uuid}.{cname} references missing {rt} {t}"
                );
                if base.strong_ref().is_some() {
                    *strong_in.entry((rt.clone(), t)).or_default() += 1;
                }
            }
        }
    }
}

/// No two rows agree on all columns of a unique index.
fn check_indexes(ts: &TableSchema, rows: &Map<String, Value>) {
    for index in &ts.indexes {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for (uuid, row) in rows {
            let key: Vec<&Value> = index.iter().map(|c| row.get(c).unwrap_or(&Value::Null)).collect();
            let key = serde_json::to_string(&key).unwrap_or_default();
            assert!(seen.insert(key.clone()), "{} {uuid}: duplicate index {index:?} = {key}", ts.name);
        }
    }
}

/// Two identical read-only selects of every table succeed, agree, and match the dump.
fn selects_repeat(db: &Database, dump: &Dump) {
    let tables: Vec<&String> = db.schema().tables.keys().collect();
    let mut ops = vec![json!(db.name())];
    ops.extend(tables.iter().map(|t| json!({"op": "select", "table": t, "where": []})));
    let first = db.transact(Value::Array(ops.clone()));
    let second = db.transact(Value::Array(ops));
    assert!(first_error(&first).is_none(), "read-only select failed: {first}");
    assert_eq!(first, second, "two identical selects disagree");
    for (t, r) in tables.iter().zip(first.as_array().into_iter().flatten()) {
        let n = r.get("rows").and_then(Value::as_array).map_or(0, Vec::len);
        assert_eq!(n, table_rows(dump, t).len(), "select on {t} sees {n} rows; the dump differs");
    }
}

/// A client-side copy of the database kept only from a `monitor` (v1) on every column: after
/// each input it must equal the database, or a monitor lost or invented an update.
pub struct Replica {
    session: Session,
    rows: BTreeMap<String, Map<String, Value>>,
}

impl Replica {
    /// Registers the monitor and applies its initial contents.
    pub fn start(db: &std::sync::Arc<Database>) -> Replica {
        let session = db.session();
        let req: Map<String, Value> = db.schema().tables.keys().map(|t| (t.clone(), json!({}))).collect();
        let initial = session
            .monitor(MonitorVersion::V1, json!("replica"), &Value::Object(req))
            .unwrap_or_else(|e| panic!("replica monitor refused: {}", e.to_json()));
        let mut r = Replica { session, rows: BTreeMap::new() };
        r.apply(&initial);
        r
    }

    /// Applies the notifications that arrived since the last call.
    pub fn catch_up(&mut self) {
        while let Ok(note) = self.session.notifications().try_recv() {
            if note.get("method").and_then(Value::as_str) != Some("update") {
                continue;
            }
            let upd = note.pointer("/params/1").cloned().unwrap_or(Value::Null);
            self.apply(&upd);
        }
    }

    fn apply(&mut self, updates: &Value) {
        let Some(tables) = updates.as_object() else { panic!("table-updates not an object: {updates}") };
        for (t, rows) in tables {
            let Some(rows) = rows.as_object() else { panic!("{t}: row-updates not an object") };
            let mine = self.rows.entry(t.clone()).or_default();
            for (uuid, u) in rows {
                match u.get("new") {
                    Some(new) => mine.insert(uuid.clone(), new.clone()),
                    None => mine.remove(uuid),
                };
            }
            if mine.is_empty() {
                self.rows.remove(t);
            }
        }
    }

    /// Panics unless the replica equals the database.
    pub fn check(&mut self, db: &Database) {
        self.catch_up();
        let mut want: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        if let Value::Object(dump) = db.dump() {
            for (t, rows) in dump {
                if let Value::Object(rows) = rows {
                    if !rows.is_empty() {
                        want.insert(t, rows);
                    }
                }
            }
        }
        assert!(self.rows == want, "monitor replica differs from the database");
    }
}
