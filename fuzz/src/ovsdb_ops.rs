//! `Database::transact` driven by *well-formed* operations built from the input bytes.
//!
//! Byte mutations of JSON text (the `ovsdb` target) mostly produce JSON the engine refuses at
//! parse time. Here every byte is a choice — which op, table, column, mutator, value — and the
//! values are drawn from each column's own type, near its limits (enum members and one outsider,
//! integer bounds ± 1, string lengths, set sizes around min/max), with references to rows that
//! exist, existed, or never did. So most transactions get past parsing into mutation,
//! garbage collection, weak-reference cleanup, referential integrity and index checks. The same
//! oracles as the `ovsdb` target run after every transaction and at the end.

use ovsdb::schema::{BaseType, ColumnType, TableSchema};
use ovsdb::{Atom, AtomicType};
use serde_json::{json, Value};

use crate::ovsdb_check::{self, Replica};
use crate::ovsdb_rpc::{self, Stats, ROOT_UUID};

/// Reads choices from the input; an exhausted input reads as zeros, so every input is complete.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            usize::from(self.byte()) % n
        }
    }

    fn pick<'t, T>(&mut self, items: &'t [T]) -> Option<&'t T> {
        let i = self.below(items.len());
        items.get(i)
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the generator knows across transactions: UUIDs that were inserted (some since deleted).
struct Gen<'a> {
    c: Choices<'a>,
    uuids: Vec<String>,
}

const STRINGS: &[&str] = &["", "br0", "p0", "internal", "system", "a\u{0}b", "ü", "x:y", "01234567890123456"];
const MUTATORS: &[&str] = &["+=", "-=", "*=", "/=", "%=", "insert", "delete"];
const FUNCS: &[&str] = &["==", "!=", "<", "<=", ">", ">=", "includes", "excludes"];

impl Gen<'_> {
    fn integer(&mut self, b: &BaseType) -> i64 {
        let lo = b.min_integer.unwrap_or(i64::MIN);
        let hi = b.max_integer.unwrap_or(i64::MAX);
        let edges = [lo, hi, lo.saturating_sub(1), hi.saturating_add(1), 0, 1, -1, 4095, 65535];
        match self.c.byte() {
            b @ 0..=127 => edges[usize::from(b) % edges.len()],
            b => i64::from(b) - 192,
        }
    }

    fn string(&mut self, b: &BaseType) -> String {
        match self.c.byte() % 4 {
            0 => "y".repeat(b.max_length.map_or(0, |m| m as usize + 1).min(300)),
            1 => "z".repeat(b.min_length.unwrap_or(0) as usize),
            _ => self.c.pick(STRINGS).copied().unwrap_or_default().to_string(),
        }
    }

    fn uuid(&mut self, b: &BaseType) -> Value {
        match self.c.byte() % 4 {
            0 => json!(["named-uuid", format!("n{}", self.c.below(3))]),
            1 => json!(["uuid", ROOT_UUID]),
            2 if b.ref_table.is_none() => json!(["uuid", "00000000-0000-0000-0000-000000000001"]),
            _ => match self.c.pick(&self.uuids).cloned() {
                Some(u) => json!(["uuid", u]),
                None => json!(["named-uuid", "n0"]),
            },
        }
    }

    fn atom(&mut self, b: &BaseType) -> Value {
        if let Some(e) = &b.enumeration {
            let members: Vec<&Atom> = e.iter().collect();
            if self.c.below(8) != 0 {
                return self.c.pick(&members).map_or(Value::Null, |a| a.to_json());
            }
        }
        match b.atomic {
            AtomicType::Integer => json!(self.integer(b)),
            AtomicType::Real => json!([0.0, -1.5, 1e300, 3.0][self.c.below(4)]),
            AtomicType::Boolean => json!(self.c.byte() & 1 != 0),
            AtomicType::String => json!(self.string(b)),
            AtomicType::Uuid => self.uuid(b),
        }
    }

    /// A value of the column's type (or, now and then, one element too many or too few).
    fn datum(&mut self, ty: &ColumnType) -> Value {
        let max = ty.max.min(4);
        let n = match self.c.byte() % 4 {
            0 => ty.min,
            1 => max,
            2 => max + 1,
            _ => self.c.below(max + 1),
        };
        match &ty.value {
            Some(v) => {
                let pairs: Vec<Value> = (0..n).map(|_| json!([self.atom(&ty.key), self.atom(v)])).collect();
                json!(["map", pairs])
            }
            None if n == 1 && self.c.byte() & 1 != 0 => self.atom(&ty.key),
            None => json!(["set", (0..n).map(|_| self.atom(&ty.key)).collect::<Vec<_>>()]),
        }
    }

    fn column<'t>(&mut self, ts: &'t TableSchema) -> Option<(&'t String, &'t ColumnType)> {
        let cols: Vec<_> = ts.columns.iter().map(|(n, c)| (n, &c.ty)).collect();
        self.c.pick(&cols).copied()
    }

    /// A column's name and type; for a table without columns, the empty name (which the engine
    /// must refuse) typed as an integer.
    fn named_column(&mut self, ts: &TableSchema) -> (String, ColumnType) {
        match self.column(ts) {
            Some((n, t)) => (n.clone(), t.clone()),
            None => (String::new(), ColumnType::scalar(AtomicType::Integer)),
        }
    }

    fn row(&mut self, ts: &TableSchema) -> Value {
        let mut row = serde_json::Map::new();
        for _ in 0..self.c.below(4) {
            if let Some((name, ty)) = self.column(ts) {
                row.insert(name.clone(), self.datum(ty));
            }
        }
        Value::Object(row)
    }

    fn condition(&mut self, ts: &TableSchema) -> Value {
        match self.c.byte() % 4 {
            0 => json!([]),
            1 => json!([["_uuid", "==", self.uuid(&BaseType::plain(AtomicType::Uuid))]]),
            _ => match self.column(ts) {
                Some((name, ty)) => json!([[name, self.c.pick(FUNCS), self.datum(&ty.relaxed())]]),
                None => json!([]),
            },
        }
    }

    fn op(&mut self, ts: &TableSchema) -> Value {
        let t = &ts.name;
        match self.c.byte() % 8 {
            0 | 1 => {
                let name = format!("n{}", self.c.below(3));
                json!({"op": "insert", "table": t, "uuid-name": name, "row": self.row(ts)})
            }
            2 => json!({"op": "update", "table": t, "where": self.condition(ts), "row": self.row(ts)}),
            3 | 4 => {
                let (name, ty) = self.named_column(ts);
                let m = self.c.pick(MUTATORS);
                let value =
                    if self.c.byte() & 1 != 0 { self.datum(&ty.relaxed()) } else { self.atom(&ty.key) };
                json!({"op": "mutate", "table": t, "where": self.condition(ts), "mutations": [[name, m, value]]})
            }
            5 => json!({"op": "delete", "table": t, "where": self.condition(ts)}),
            6 => json!({"op": "select", "table": t, "where": self.condition(ts)}),
            _ => {
                let (name, ty) = self.named_column(ts);
                let mut row = serde_json::Map::new();
                if self.c.byte() & 1 != 0 {
                    row.insert(name.clone(), self.datum(&ty));
                }
                let rows = if row.is_empty() { vec![] } else { vec![Value::Object(row)] };
                let until = if self.c.byte() & 1 != 0 { "==" } else { "!=" };
                json!({"op": "wait", "table": t, "where": self.condition(ts), "columns": [name],
                       "until": until, "rows": rows, "timeout": 0})
            }
        }
    }

    /// Remembers the UUIDs a reply says were inserted.
    fn learn(&mut self, reply: &Value) {
        for r in reply.as_array().into_iter().flatten() {
            if let Some(u) = r.pointer("/uuid/1").and_then(Value::as_str) {
                if self.uuids.len() < 16 {
                    self.uuids.push(u.to_string());
                }
            }
        }
    }
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    run_stats(data);
}

/// The fuzz target, counting transactions and failures (`messages` and `monitors` stay 0).
pub fn run_stats(data: &[u8]) -> Stats {
    let mut stats = Stats::default();
    let db = ovsdb_rpc::fresh_database();
    let tables: Vec<&TableSchema> = db.schema().tables.values().collect();
    let mut replica = Replica::start(&db);
    let mut g = Gen { c: Choices(data), uuids: Vec::new() };
    // Bounded: at most 16 transactions of at most 4 operations each.
    for _ in 0..16 {
        if g.c.done() {
            break;
        }
        let mut ops = vec![json!(db.name())];
        for _ in 0..1 + g.c.below(4) {
            // Bridge, Port and Interface are where clients write; weight them.
            let ts = match g.c.byte() % 4 {
                0 => g.c.pick(&tables).copied(),
                n => db.schema().tables.get(["Bridge", "Port", "Interface"][usize::from(n) - 1]),
            };
            if let Some(ts) = ts {
                ops.push(g.op(ts));
            }
        }
        let reply = ovsdb_rpc::all_or_nothing(&db, || db.transact(Value::Array(ops)));
        stats.transactions += 1;
        stats.failed += usize::from(ovsdb_check::first_error(&reply).is_some());
        g.learn(&reply);
        replica.catch_up();
    }
    ovsdb_check::consistent(&db);
    replica.check(&db);
    stats
}
