//! Rows and the in-memory database state.
//!
//! Rows sit behind `Arc` so that a transaction can copy the whole state cheaply
//! (pointer copies), modify its private copy with copy-on-write, and either
//! swap it in atomically at commit or drop it on failure.

use crate::datum::Datum;
use crate::schema::{DatabaseSchema, TableSchema};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// One row: its `_version` and the values of all schema columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `_version`: changes whenever the row is modified.
    pub version: Uuid,
    /// Column values by name; every schema column is present. The names are
    /// the schema's shared [`crate::schema::ColumnSchema::key`]s; write with
    /// [`Row::set`] so they stay shared.
    pub cols: BTreeMap<Arc<str>, Datum>,
}

impl Row {
    /// A row with every column at its default value.
    pub fn with_defaults(table: &TableSchema) -> Row {
        Row {
            version: Uuid::new_v4(),
            cols: table.columns.values().map(|c| (c.key.clone(), Datum::default_for(&c.ty))).collect(),
        }
    }

    /// Sets a column, keeping the row's existing (shared) name key; a name
    /// the row lacks gets its own key.
    pub fn set(&mut self, col: &str, d: Datum) {
        match self.cols.get_mut(col) {
            Some(v) => *v = d,
            None => {
                self.cols.insert(Arc::from(col), d);
            }
        }
    }

    /// The value of a column including the implicit `_uuid`/`_version`.
    pub fn value(&self, uuid: &Uuid, col: &str) -> Option<Datum> {
        match col {
            "_uuid" => Some(Datum::scalar(crate::atom::Atom::Uuid(*uuid))),
            "_version" => Some(Datum::scalar(crate::atom::Atom::Uuid(self.version))),
            _ => self.cols.get(col).cloned(),
        }
    }

    /// JSON object with the listed columns.
    pub fn to_json(&self, uuid: &Uuid, columns: &[String]) -> Value {
        let mut m = Map::new();
        for c in columns {
            if let Some(d) = self.value(uuid, c) {
                m.insert(c.clone(), d.to_json());
            }
        }
        Value::Object(m)
    }
}

/// The rows of one table.
#[derive(Debug, Clone, Default)]
pub struct TableData {
    /// Rows by UUID.
    pub rows: BTreeMap<Uuid, Arc<Row>>,
}

/// The contents of a whole database.
#[derive(Debug, Clone, Default)]
pub struct DbState {
    /// Tables by name (every schema table is present).
    pub tables: BTreeMap<String, TableData>,
}

impl DbState {
    /// An empty database for a schema.
    pub fn empty(schema: &DatabaseSchema) -> Self {
        DbState { tables: schema.tables.keys().map(|t| (t.clone(), TableData::default())).collect() }
    }

    /// Looks up a row.
    pub fn row(&self, table: &str, uuid: &Uuid) -> Option<&Arc<Row>> {
        self.tables.get(table).and_then(|t| t.rows.get(uuid))
    }

    /// Dumps every table and row as JSON (for debugging and tests).
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        for (t, td) in &self.tables {
            let mut rows = Map::new();
            for (u, r) in &td.rows {
                let cols: Map<String, Value> =
                    r.cols.iter().map(|(k, v)| (k.to_string(), v.to_json())).collect();
                rows.insert(u.to_string(), Value::Object(cols));
            }
            out.insert(t.clone(), Value::Object(rows));
        }
        json!(out)
    }
}

/// What one committed transaction did to one row.
#[derive(Debug, Clone)]
pub struct RowChange {
    /// Table name.
    pub table: String,
    /// Row UUID.
    pub uuid: Uuid,
    /// Row before the transaction (`None` for inserts).
    pub old: Option<Arc<Row>>,
    /// Row after the transaction (`None` for deletions).
    pub new: Option<Arc<Row>>,
}
