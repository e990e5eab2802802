//! `where` clauses (RFC 7047 §5.1 `<condition>`), also used by monitor_cond.
//!
//! Transactions combine clauses with AND; monitor_cond combines them with OR,
//! as ovsdb-server does, so both evaluators are provided.

use crate::atom::{short, Atom};
use crate::datum::Datum;
use crate::error::{OResult, OvsdbError};
use crate::row::Row;
use crate::schema::TableSchema;
use serde_json::Value;
use std::cmp::Ordering;
use uuid::Uuid;

/// A comparison function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>=`
    Ge,
    /// `>`
    Gt,
    /// `includes`
    Includes,
    /// `excludes`
    Excludes,
}

impl Func {
    fn parse(s: &str) -> Option<Func> {
        Some(match s {
            "<" => Func::Lt,
            "<=" => Func::Le,
            "==" => Func::Eq,
            "!=" => Func::Ne,
            ">=" => Func::Ge,
            ">" => Func::Gt,
            "includes" => Func::Includes,
            "excludes" => Func::Excludes,
            _ => return None,
        })
    }
}

/// One clause.
#[derive(Debug, Clone)]
pub enum Clause {
    /// Literal `true` (monitor_cond).
    True,
    /// Literal `false` (monitor_cond).
    False,
    /// `[column, function, value]`.
    Cmp {
        /// Column name (may be `_uuid`).
        column: String,
        /// Function.
        func: Func,
        /// Argument.
        arg: Datum,
    },
}

/// Parses a `where` array.
pub fn parse_where(
    table: &TableSchema,
    v: &Value,
    allow_bool: bool,
    resolve: &mut dyn FnMut(&str) -> OResult<Uuid>,
) -> OResult<Vec<Clause>> {
    let arr = v.as_array().ok_or_else(|| OvsdbError::syntax("where must be an array"))?;
    arr.iter().map(|c| parse_clause(table, c, allow_bool, resolve)).collect()
}

fn parse_clause(
    table: &TableSchema,
    c: &Value,
    allow_bool: bool,
    resolve: &mut dyn FnMut(&str) -> OResult<Uuid>,
) -> OResult<Clause> {
    if allow_bool {
        if let Some(b) = c.as_bool() {
            return Ok(if b { Clause::True } else { Clause::False });
        }
    }
    let a = c.as_array().filter(|a| a.len() == 3).ok_or_else(|| {
        OvsdbError::syntax(format!("condition must be [column, function, value], got {}", short(c)))
    })?;
    let column = a[0].as_str().ok_or_else(|| OvsdbError::syntax("condition column must be a string"))?;
    let fname = a[1].as_str().ok_or_else(|| OvsdbError::syntax("condition function must be a string"))?;
    let func = Func::parse(fname)
        .ok_or_else(|| OvsdbError::new("unknown function", format!("No function {fname}")))?;
    let ty = table.column_type(column).ok_or_else(|| table.unknown_column(column))?;
    if matches!(func, Func::Lt | Func::Le | Func::Gt | Func::Ge)
        && (!ty.key.atomic.is_numeric() || ty.max != 1 || ty.is_map())
    {
        return Err(OvsdbError::syntax(format!("function {fname} not allowed on column {column}")));
    }
    let arg = Datum::from_json_unchecked(&ty.relaxed(), &a[2], resolve)?;
    Ok(Clause::Cmp { column: column.to_string(), func, arg })
}

/// Does one clause hold for a row?
pub fn clause_matches(c: &Clause, uuid: &Uuid, row: &Row) -> bool {
    let (column, func, arg) = match c {
        Clause::True => return true,
        Clause::False => return false,
        Clause::Cmp { column, func, arg } => (column, func, arg),
    };
    let Some(val) = row.value(uuid, column) else { return false };
    match func {
        Func::Eq => val == *arg,
        Func::Ne => val != *arg,
        Func::Includes => includes(&val, arg),
        Func::Excludes => excludes(&val, arg),
        Func::Lt | Func::Le | Func::Gt | Func::Ge => {
            let (Some(a), Some(b)) = (val.first(), arg.first()) else { return false };
            if val.len() != 1 || arg.len() != 1 {
                return false;
            }
            let ord = numeric_cmp(a, b);
            match func {
                Func::Lt => ord == Some(Ordering::Less),
                Func::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                Func::Gt => ord == Some(Ordering::Greater),
                _ => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
            }
        }
    }
}

fn numeric_cmp(a: &Atom, b: &Atom) -> Option<Ordering> {
    match (a, b) {
        (Atom::Integer(x), Atom::Integer(y)) => Some(x.cmp(y)),
        (Atom::Real(x), Atom::Real(y)) => x.partial_cmp(y),
        _ => None,
    }
}

fn includes(val: &Datum, arg: &Datum) -> bool {
    match (val, arg) {
        (Datum::Set(v), Datum::Set(a)) => a.is_subset(v),
        (Datum::Map(v), Datum::Map(a)) => a.iter().all(|(k, x)| v.get(k) == Some(x)),
        _ => false,
    }
}

fn excludes(val: &Datum, arg: &Datum) -> bool {
    match (val, arg) {
        (Datum::Set(v), Datum::Set(a)) => a.is_disjoint(v),
        (Datum::Map(v), Datum::Map(a)) => a.iter().all(|(k, x)| v.get(k) != Some(x)),
        _ => true,
    }
}

/// AND of all clauses (transactions). Empty = true.
pub fn matches_all(clauses: &[Clause], uuid: &Uuid, row: &Row) -> bool {
    clauses.iter().all(|c| clause_matches(c, uuid, row))
}

/// OR of all clauses (monitor_cond). Empty = false, as in ovsdb-server.
pub fn matches_any(clauses: &[Clause], uuid: &Uuid, row: &Row) -> bool {
    clauses.iter().any(|c| clause_matches(c, uuid, row))
}

/// If the clauses pin `_uuid == X`, returns X so callers can avoid a scan.
pub fn pinned_uuid(clauses: &[Clause]) -> Option<Uuid> {
    clauses.iter().find_map(|c| match c {
        Clause::Cmp { column, func: Func::Eq, arg } if column == "_uuid" && arg.len() == 1 => {
            match arg.first() {
                Some(Atom::Uuid(u)) => Some(*u),
                _ => None,
            }
        }
        _ => None,
    })
}
