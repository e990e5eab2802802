//! The `mutate` operation's mutators (RFC 7047 §5.1 `<mutation>`).

use crate::atom::{Atom, AtomicType};
use crate::datum::Datum;
use crate::error::{OResult, OvsdbError};
use crate::schema::{ColumnType, TableSchema};
use crate::sorted::SortedSet;
use serde_json::Value;
use uuid::Uuid;

/// A mutator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutator {
    /// `+=`
    Add,
    /// `-=`
    Sub,
    /// `*=`
    Mul,
    /// `/=`
    Div,
    /// `%=`
    Mod,
    /// `insert`
    Insert,
    /// `delete`
    Delete,
}

/// One parsed mutation.
#[derive(Debug, Clone)]
pub struct Mutation {
    /// Column mutated.
    pub column: String,
    /// Mutator.
    pub mutator: Mutator,
    /// Argument.
    pub arg: Datum,
}

/// Parses a `mutations` array, checking that each mutator fits its column.
pub fn parse_mutations(
    table: &TableSchema,
    v: &Value,
    resolve: &mut dyn FnMut(&str) -> OResult<Uuid>,
) -> OResult<Vec<Mutation>> {
    let arr = v.as_array().ok_or_else(|| OvsdbError::syntax("mutations must be an array"))?;
    let mut out = Vec::with_capacity(arr.len());
    for m in arr {
        let a = m
            .as_array()
            .filter(|a| a.len() == 3)
            .ok_or_else(|| OvsdbError::syntax("mutation must be [column, mutator, value]"))?;
        let column = a[0].as_str().ok_or_else(|| OvsdbError::syntax("mutation column must be a string"))?;
        let mname = a[1].as_str().ok_or_else(|| OvsdbError::syntax("mutator must be a string"))?;
        let col = match table.columns.get(column) {
            Some(c) => c,
            None if column.starts_with('_') => {
                return Err(OvsdbError::constraint(format!("Cannot mutate column {column}")));
            }
            None => return Err(table.unknown_column(column)),
        };
        if !col.mutable {
            return Err(OvsdbError::constraint(format!(
                "Cannot mutate immutable column {column} in table {}.",
                table.name
            )));
        }
        let ty = &col.ty;
        let mutator = match mname {
            "+=" => Mutator::Add,
            "-=" => Mutator::Sub,
            "*=" => Mutator::Mul,
            "/=" => Mutator::Div,
            "%=" => Mutator::Mod,
            "insert" => Mutator::Insert,
            "delete" => Mutator::Delete,
            _ => return Err(OvsdbError::syntax(format!("unknown mutator {}", crate::atom::trunc(mname)))),
        };
        let arg = match mutator {
            Mutator::Insert => Datum::from_json_unchecked(&ty.relaxed(), &a[2], resolve)?,
            Mutator::Delete => {
                let is_map_arg =
                    a[2].as_array().and_then(|x| x.first()).and_then(Value::as_str) == Some("map");
                if ty.is_map() && !is_map_arg {
                    // Deleting from a map by a set of keys.
                    let kt = ColumnType {
                        key: ty.key.clone(),
                        value: None,
                        min: 0,
                        max: crate::schema::UNLIMITED,
                    };
                    Datum::from_json_unchecked(&kt, &a[2], resolve)?
                } else {
                    Datum::from_json_unchecked(&ty.relaxed(), &a[2], resolve)?
                }
            }
            _ => {
                if ty.is_map()
                    || !ty.key.atomic.is_numeric()
                    || (mutator == Mutator::Mod && ty.key.atomic != AtomicType::Integer)
                {
                    return Err(OvsdbError::constraint(format!(
                        "mutator {mname} not valid for column {column}"
                    )));
                }
                Datum::from_json_unchecked(&ColumnType::scalar(ty.key.atomic), &a[2], resolve)?
            }
        };
        out.push(Mutation { column: column.to_string(), mutator, arg });
    }
    Ok(out)
}

/// Applies a mutation to a value and checks the result against the column type.
pub fn apply(m: &Mutation, val: &Datum, ty: &ColumnType) -> OResult<Datum> {
    let result = match m.mutator {
        Mutator::Insert => match (val, &m.arg) {
            (Datum::Set(s), Datum::Set(a)) => Datum::Set(s.union(a).cloned().collect()),
            (Datum::Map(s), Datum::Map(a)) => {
                let mut r = s.clone();
                for (k, v) in a {
                    if !r.contains_key(k) {
                        r.insert(k.clone(), v.clone());
                    }
                }
                Datum::Map(r)
            }
            _ => return Err(OvsdbError::syntax("insert argument type mismatch")),
        },
        Mutator::Delete => match (val, &m.arg) {
            (Datum::Set(s), Datum::Set(a)) if !ty.is_map() => Datum::Set(s.difference(a).cloned().collect()),
            (Datum::Map(s), Datum::Set(keys)) => Datum::Map(
                s.iter().filter(|(k, _)| !keys.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
            ),
            (Datum::Map(s), Datum::Map(a)) => Datum::Map(
                s.iter().filter(|(k, v)| a.get(k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect(),
            ),
            _ => return Err(OvsdbError::syntax("delete argument type mismatch")),
        },
        op => {
            let Datum::Set(s) = val else { return Err(OvsdbError::syntax("arithmetic on a map")) };
            let arg = m.arg.first().ok_or_else(|| OvsdbError::syntax("missing argument"))?;
            let mut r = SortedSet::new();
            for a in s {
                if !r.insert(arith(op, a, arg)?) {
                    return Err(OvsdbError::constraint("mutation produced duplicate set elements"));
                }
            }
            Datum::Set(r)
        }
    };
    result.check(ty)?;
    Ok(result)
}

fn arith(op: Mutator, a: &Atom, b: &Atom) -> OResult<Atom> {
    let range = || OvsdbError::new("range error", "Result of arithmetic mutation is out of range.");
    let domain = || OvsdbError::new("domain error", "Division by zero.");
    match (a, b) {
        (Atom::Integer(x), Atom::Integer(y)) => {
            let r = match op {
                Mutator::Add => x.checked_add(*y).ok_or_else(range)?,
                Mutator::Sub => x.checked_sub(*y).ok_or_else(range)?,
                Mutator::Mul => x.checked_mul(*y).ok_or_else(range)?,
                Mutator::Div => {
                    if *y == 0 {
                        return Err(domain());
                    }
                    x.checked_div(*y).ok_or_else(range)?
                }
                Mutator::Mod => {
                    if *y == 0 {
                        return Err(domain());
                    }
                    x.checked_rem(*y).ok_or_else(range)?
                }
                _ => return Err(OvsdbError::syntax("not arithmetic")),
            };
            Ok(Atom::Integer(r))
        }
        (Atom::Real(x), Atom::Real(y)) => {
            let r = match op {
                Mutator::Add => x + y,
                Mutator::Sub => x - y,
                Mutator::Mul => x * y,
                Mutator::Div => {
                    if *y == 0.0 {
                        return Err(domain());
                    }
                    x / y
                }
                _ => return Err(OvsdbError::syntax("not valid for real")),
            };
            if r.is_finite() {
                Ok(Atom::Real(r))
            } else {
                Err(range())
            }
        }
        _ => Err(OvsdbError::syntax("arithmetic type mismatch")),
    }
}
