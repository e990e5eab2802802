//! Database schemas (RFC 7047 §3.2): tables, columns and the full OVSDB type
//! system including constraints.
//!
//! The original schema JSON is kept verbatim and served by `get_schema`, so
//! clients see exactly the file we were given (member order aside), while the
//! parsed form drives validation.

use crate::atom::{no_named, Atom, AtomicType};
use crate::error::{OResult, OvsdbError};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// `"max": "unlimited"`.
pub const UNLIMITED: usize = usize::MAX;

/// Strong references keep rows alive and must point to existing rows; weak
/// references are dropped automatically when their target disappears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefType {
    /// Referential integrity enforced.
    Strong,
    /// Dangling references removed at commit.
    Weak,
}

/// A `<base-type>`: an atomic type plus optional constraints.
#[derive(Debug, Clone)]
pub struct BaseType {
    /// The atomic type.
    pub atomic: AtomicType,
    /// Allowed values, if restricted.
    pub enumeration: Option<BTreeSet<Atom>>,
    /// Inclusive integer range.
    pub min_integer: Option<i64>,
    /// Inclusive integer range.
    pub max_integer: Option<i64>,
    /// Inclusive real range.
    pub min_real: Option<f64>,
    /// Inclusive real range.
    pub max_real: Option<f64>,
    /// String length bounds in UTF-8 characters... (RFC: "bytes"; we count chars like OvS).
    pub min_length: Option<u64>,
    /// String length bounds.
    pub max_length: Option<u64>,
    /// Referenced table for uuid atoms.
    pub ref_table: Option<String>,
    /// Strength of the reference.
    pub ref_type: RefType,
}

impl BaseType {
    /// An unconstrained base type.
    pub fn plain(atomic: AtomicType) -> Self {
        BaseType {
            atomic,
            enumeration: None,
            min_integer: None,
            max_integer: None,
            min_real: None,
            max_real: None,
            min_length: None,
            max_length: None,
            ref_table: None,
            ref_type: RefType::Strong,
        }
    }

    fn from_json(v: &Value) -> OResult<Self> {
        if let Some(s) = v.as_str() {
            let t =
                AtomicType::from_name(s).ok_or_else(|| OvsdbError::syntax(format!("unknown type {s}")))?;
            return Ok(Self::plain(t));
        }
        let o = v.as_object().ok_or_else(|| OvsdbError::syntax("base type must be string or object"))?;
        let tname = o
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| OvsdbError::syntax("base type lacks type"))?;
        let atomic = AtomicType::from_name(tname)
            .ok_or_else(|| OvsdbError::syntax(format!("unknown type {tname}")))?;
        let mut b = Self::plain(atomic);
        if let Some(e) = o.get("enum") {
            // The enum is itself a set (or single atom) of the base type.
            let set = parse_atom_set(atomic, e)?;
            b.enumeration = Some(set);
        }
        let int = |k: &str| -> OResult<Option<i64>> {
            match o.get(k) {
                None => Ok(None),
                Some(x) => {
                    x.as_i64().map(Some).ok_or_else(|| OvsdbError::syntax(format!("{k} must be integer")))
                }
            }
        };
        let real = |k: &str| -> OResult<Option<f64>> {
            match o.get(k) {
                None => Ok(None),
                Some(x) => {
                    x.as_f64().map(Some).ok_or_else(|| OvsdbError::syntax(format!("{k} must be number")))
                }
            }
        };
        b.min_integer = int("minInteger")?;
        b.max_integer = int("maxInteger")?;
        b.min_real = real("minReal")?;
        b.max_real = real("maxReal")?;
        b.min_length = int("minLength")?.map(|x| x.max(0) as u64);
        b.max_length = int("maxLength")?.map(|x| x.max(0) as u64);
        if let Some(rt) = o.get("refTable") {
            let rt = rt.as_str().ok_or_else(|| OvsdbError::syntax("refTable must be string"))?;
            if atomic != AtomicType::Uuid {
                return Err(OvsdbError::syntax("refTable only allowed for uuid"));
            }
            b.ref_table = Some(rt.to_string());
        }
        if let Some(rt) = o.get("refType") {
            b.ref_type = match rt.as_str() {
                Some("strong") => RefType::Strong,
                Some("weak") => RefType::Weak,
                _ => return Err(OvsdbError::syntax("refType must be strong or weak")),
            };
        }
        Ok(b)
    }

    /// Checks an atom against this type's constraints (enum, ranges, lengths).
    pub fn check(&self, a: &Atom) -> OResult<()> {
        if a.atomic_type() != self.atomic {
            return Err(OvsdbError::syntax(format!("expected {}", self.atomic.name())));
        }
        if let Some(e) = &self.enumeration {
            if !e.contains(a) {
                return Err(OvsdbError::constraint(format!(
                    "{} is not one of the allowed values ({})",
                    a.to_json(),
                    e.iter().map(|x| x.to_json().to_string()).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        match a {
            Atom::Integer(i) => {
                let lo = self.min_integer.unwrap_or(i64::MIN);
                let hi = self.max_integer.unwrap_or(i64::MAX);
                if *i < lo || *i > hi {
                    return Err(OvsdbError::constraint(format!(
                        "{i} is not in the valid range {lo} to {hi} (inclusive)"
                    )));
                }
            }
            Atom::Real(r) => {
                let lo = self.min_real.unwrap_or(f64::MIN);
                let hi = self.max_real.unwrap_or(f64::MAX);
                if !(*r >= lo && *r <= hi) {
                    return Err(OvsdbError::constraint(format!(
                        "{r} is not in the valid range {lo} to {hi} (inclusive)"
                    )));
                }
            }
            Atom::String(s) => {
                let n = s.chars().count() as u64;
                if let Some(lo) = self.min_length {
                    if n < lo {
                        return Err(OvsdbError::constraint(format!(
                            "\"{s}\" length {n} is less than minimum {lo}"
                        )));
                    }
                }
                if let Some(hi) = self.max_length {
                    if n > hi {
                        return Err(OvsdbError::constraint(format!(
                            "string length {n} is greater than maximum {hi}"
                        )));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// True when this is a strong reference to another table.
    pub fn strong_ref(&self) -> Option<&str> {
        match (&self.ref_table, self.ref_type) {
            (Some(t), RefType::Strong) => Some(t),
            _ => None,
        }
    }

    /// True when this is a weak reference to another table.
    pub fn weak_ref(&self) -> Option<&str> {
        match (&self.ref_table, self.ref_type) {
            (Some(t), RefType::Weak) => Some(t),
            _ => None,
        }
    }
}

fn parse_atom_set(t: AtomicType, v: &Value) -> OResult<BTreeSet<Atom>> {
    let mut out = BTreeSet::new();
    if let Some(arr) = v.as_array() {
        if arr.first().and_then(Value::as_str) == Some("set") && arr.len() == 2 {
            for e in arr[1].as_array().ok_or_else(|| OvsdbError::syntax("bad set"))? {
                out.insert(Atom::from_json(t, e, &mut no_named)?);
            }
            return Ok(out);
        }
    }
    out.insert(Atom::from_json(t, v, &mut no_named)?);
    Ok(out)
}

/// A column `<type>`: key, optional value (maps) and size bounds.
#[derive(Debug, Clone)]
pub struct ColumnType {
    /// Key type (element type for sets).
    pub key: BaseType,
    /// Value type for maps.
    pub value: Option<BaseType>,
    /// Minimum number of elements (0 or 1).
    pub min: usize,
    /// Maximum number of elements ([`UNLIMITED`] for "unlimited").
    pub max: usize,
}

impl ColumnType {
    /// A scalar column of the given atomic type (min = max = 1).
    pub fn scalar(t: AtomicType) -> Self {
        ColumnType { key: BaseType::plain(t), value: None, min: 1, max: 1 }
    }

    /// Parses a `<type>`.
    pub fn from_json(v: &Value) -> OResult<Self> {
        if v.is_string() {
            return Ok(ColumnType { key: BaseType::from_json(v)?, value: None, min: 1, max: 1 });
        }
        let o = v.as_object().ok_or_else(|| OvsdbError::syntax("type must be string or object"))?;
        let key = BaseType::from_json(o.get("key").ok_or_else(|| OvsdbError::syntax("type lacks key"))?)?;
        let value = o.get("value").map(BaseType::from_json).transpose()?;
        let min = match o.get("min") {
            None => 1,
            Some(x) => {
                x.as_u64().filter(|m| *m <= 1).ok_or_else(|| OvsdbError::syntax("min must be 0 or 1"))?
                    as usize
            }
        };
        let max = match o.get("max") {
            None => 1,
            Some(Value::String(s)) if s == "unlimited" => UNLIMITED,
            Some(x) => x.as_u64().filter(|m| *m >= 1).ok_or_else(|| OvsdbError::syntax("bad max"))? as usize,
        };
        if min > max {
            return Err(OvsdbError::syntax("min > max"));
        }
        Ok(ColumnType { key, value, min, max })
    }

    /// A map column?
    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }

    /// Exactly one atom (no optional, no set, no map): update2 diffs and the
    /// `_is_diff` file format send such columns whole, everything else as a diff.
    pub fn is_scalar(&self) -> bool {
        self.min == 1 && self.max == 1 && self.value.is_none()
    }

    /// The same type with size limits relaxed, for condition and mutation
    /// arguments which may name any subset.
    pub fn relaxed(&self) -> Self {
        ColumnType { key: self.key.clone(), value: self.value.clone(), min: 0, max: UNLIMITED }
    }
}

/// A column definition.
#[derive(Debug, Clone)]
pub struct ColumnSchema {
    /// Column name.
    pub name: String,
    /// The same name, shared by every row's column map: 1000 rows of 40
    /// columns then hold one copy of each name, not 40 000 (issue 13).
    pub key: Arc<str>,
    /// Its type.
    pub ty: ColumnType,
    /// Ephemeral columns are not written to the file log.
    pub ephemeral: bool,
    /// Immutable columns may be set at insert only.
    pub mutable: bool,
}

/// A table definition.
#[derive(Debug, Clone)]
pub struct TableSchema {
    /// Table name.
    pub name: String,
    /// Columns by name (without `_uuid`/`_version`).
    pub columns: BTreeMap<String, ColumnSchema>,
    /// Maximum number of rows.
    pub max_rows: Option<usize>,
    /// Root tables are never garbage-collected.
    pub is_root: bool,
    /// Unique indexes: each a list of column names.
    pub indexes: Vec<Vec<String>>,
}

impl TableSchema {
    /// Type of a column including the implicit `_uuid` and `_version`.
    pub fn column_type(&self, name: &str) -> Option<ColumnType> {
        match name {
            "_uuid" | "_version" => Some(ColumnType::scalar(AtomicType::Uuid)),
            _ => self.columns.get(name).map(|c| c.ty.clone()),
        }
    }

    /// Error for an unknown column, worded like ovsdb-server.
    pub fn unknown_column(&self, name: &str) -> OvsdbError {
        OvsdbError::new(
            "unknown column",
            format!("No column {} in table {}.", crate::atom::trunc(name), self.name),
        )
    }
}

/// A parsed database schema.
#[derive(Debug, Clone)]
pub struct DatabaseSchema {
    /// Database name.
    pub name: String,
    /// Schema version ("8.3.1").
    pub version: String,
    /// Optional checksum string.
    pub cksum: Option<String>,
    /// Tables by name.
    pub tables: BTreeMap<String, TableSchema>,
    /// The schema as given, served verbatim by `get_schema`.
    pub json: Value,
}

impl DatabaseSchema {
    /// Parses schema text.
    pub fn parse_str(s: &str) -> Result<Self, crate::Error> {
        let v: Value = serde_json::from_str(s).map_err(|e| crate::Error::Schema(e.to_string()))?;
        Self::from_json(&v).map_err(|e| crate::Error::Schema(e.to_string()))
    }

    /// Parses a schema JSON value.
    pub fn from_json(v: &Value) -> OResult<Self> {
        let o = v.as_object().ok_or_else(|| OvsdbError::syntax("schema must be an object"))?;
        let name =
            o.get("name").and_then(Value::as_str).ok_or_else(|| OvsdbError::syntax("schema lacks name"))?;
        let version = o.get("version").and_then(Value::as_str).unwrap_or("").to_string();
        let cksum = o.get("cksum").and_then(Value::as_str).map(str::to_string);
        let tables_json = o
            .get("tables")
            .and_then(Value::as_object)
            .ok_or_else(|| OvsdbError::syntax("schema lacks tables"))?;
        let mut tables = BTreeMap::new();
        let any_root = tables_json.values().any(|t| t.get("isRoot").and_then(Value::as_bool).is_some());
        for (tname, tj) in tables_json {
            let t = parse_table(tname, tj, any_root)?;
            tables.insert(tname.clone(), t);
        }
        // Every reference must name an existing table, and indexes existing columns.
        for t in tables.values() {
            for c in t.columns.values() {
                for b in std::iter::once(&c.ty.key).chain(c.ty.value.iter()) {
                    if let Some(rt) = &b.ref_table {
                        if !tables.contains_key(rt) {
                            return Err(OvsdbError::syntax(format!(
                                "column {} in table {} refers to unknown table {rt}",
                                c.name, t.name
                            )));
                        }
                    }
                }
            }
        }
        Ok(DatabaseSchema { name: name.to_string(), version, cksum, tables, json: v.clone() })
    }

    /// Looks up a table or returns the RFC "unknown table" error.
    pub fn table(&self, name: &str) -> OResult<&TableSchema> {
        self.tables.get(name).ok_or_else(|| {
            OvsdbError::new("unknown table", format!("No table named {}.", crate::atom::trunc(name)))
        })
    }
}

fn parse_table(tname: &str, tj: &Value, any_root: bool) -> OResult<TableSchema> {
    let to = tj.as_object().ok_or_else(|| OvsdbError::syntax(format!("table {tname} must be object")))?;
    let cols = to
        .get("columns")
        .and_then(Value::as_object)
        .ok_or_else(|| OvsdbError::syntax(format!("table {tname} lacks columns")))?;
    let mut columns = BTreeMap::new();
    for (cname, cj) in cols {
        if cname.starts_with('_') {
            return Err(OvsdbError::syntax(format!("column name {cname} is reserved")));
        }
        let co: &Map<String, Value> =
            cj.as_object().ok_or_else(|| OvsdbError::syntax(format!("column {cname} must be object")))?;
        let ty =
            ColumnType::from_json(co.get("type").ok_or_else(|| OvsdbError::syntax("column lacks type"))?)?;
        let ephemeral = co.get("ephemeral").and_then(Value::as_bool).unwrap_or(false);
        let mutable = co.get("mutable").and_then(Value::as_bool).unwrap_or(true);
        columns.insert(
            cname.clone(),
            ColumnSchema { name: cname.clone(), key: Arc::from(cname.as_str()), ty, ephemeral, mutable },
        );
    }
    let max_rows = match to.get("maxRows") {
        None => None,
        Some(x) => {
            Some(x.as_u64().filter(|n| *n >= 1).ok_or_else(|| OvsdbError::syntax("bad maxRows"))? as usize)
        }
    };
    // For compatibility with old schemas, when no table says isRoot, all are roots.
    let is_root = match to.get("isRoot").and_then(Value::as_bool) {
        Some(b) => b,
        None => !any_root,
    };
    let mut indexes = Vec::new();
    if let Some(ix) = to.get("indexes") {
        for i in ix.as_array().ok_or_else(|| OvsdbError::syntax("indexes must be array"))? {
            let mut cols_ix = Vec::new();
            for c in i.as_array().ok_or_else(|| OvsdbError::syntax("index must be array"))? {
                let c = c.as_str().ok_or_else(|| OvsdbError::syntax("index column must be string"))?;
                if !columns.contains_key(c) && c != "_uuid" {
                    return Err(OvsdbError::syntax(format!("index refers to unknown column {c}")));
                }
                cols_ix.push(c.to_string());
            }
            if cols_ix.is_empty() {
                return Err(OvsdbError::syntax("index must have at least one column"));
            }
            indexes.push(cols_ix);
        }
    }
    Ok(TableSchema { name: tname.to_string(), columns, max_rows, is_root, indexes })
}

/// The Open_vSwitch schema shipped with this crate (OvS 3.1, version 8.3.1).
pub const VSWITCH_SCHEMA: &str = include_str!("../schema/vswitch.ovsschema");

/// The `_Server` schema as ovsdb-server 3.1 serves it.
pub const SERVER_SCHEMA: &str = include_str!("../schema/_server.ovsschema");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vswitch_schema() {
        let s = DatabaseSchema::parse_str(VSWITCH_SCHEMA).unwrap();
        assert_eq!(s.name, "Open_vSwitch");
        assert_eq!(s.version, "8.3.1");
        let port = s.table("Port").unwrap();
        assert!(!port.is_root);
        let tag = &port.columns["tag"].ty;
        assert_eq!((tag.min, tag.max, tag.key.max_integer), (0, 1, Some(4095)));
        let trunks = &port.columns["trunks"].ty;
        assert_eq!(trunks.max, 4096);
        let br = s.table("Bridge").unwrap();
        assert!(!br.is_root, "bridges live only while Open_vSwitch.bridges refers to them");
        assert!(s.table("Open_vSwitch").unwrap().is_root);
        assert_eq!(br.indexes, vec![vec!["name".to_string()]]);
        assert!(!br.columns["name"].mutable);
        let ovs = s.table("Open_vSwitch").unwrap();
        assert_eq!(ovs.max_rows, Some(1));
        let mirror = s.table("Mirror").unwrap();
        assert_eq!(mirror.columns["output_port"].ty.key.weak_ref(), Some("Port"));
        let ifc = s.table("Interface").unwrap();
        assert!(ifc.columns["ofport"].ty.min == 0 && !ifc.columns["ofport"].ephemeral);
        assert!(ifc.columns["link_state"].ephemeral);
    }

    #[test]
    fn parses_server_schema() {
        let s = DatabaseSchema::parse_str(SERVER_SCHEMA).unwrap();
        assert_eq!(s.name, "_Server");
        assert!(s.tables["Database"].is_root);
    }

    #[test]
    fn rejects_bad_schemas() {
        for bad in [
            "[]",
            "{}",
            r#"{"name":"x","tables":{"T":{"columns":{"c":{"type":"bogus"}}}}}"#,
            r#"{"name":"x","tables":{"T":{"columns":{"c":{"type":{"key":{"type":"uuid","refTable":"Nope"}}}}}}}"#,
            r#"{"name":"x","tables":{"T":{"columns":{"c":{"type":{"key":"integer","min":2}}}}}}"#,
            r#"{"name":"x","tables":{"T":{"columns":{"_c":{"type":"integer"}}}}}"#,
        ] {
            assert!(DatabaseSchema::parse_str(bad).is_err(), "{bad}");
        }
    }
}
