//! Atomic values (RFC 7047 §5.1 `<atom>`).
//!
//! Atoms are totally ordered so that sets and maps can be kept sorted
//! ([`crate::sorted`]), which gives canonical ordering, O(log n) membership and cheap
//! equality for the datum comparisons that `wait`, conditions and monitors need.

use crate::error::{OResult, OvsdbError};
use serde_json::{json, Value};
use std::cmp::Ordering;
use uuid::Uuid;

/// The five OVSDB atomic types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AtomicType {
    /// 64-bit signed integer.
    Integer,
    /// IEEE double.
    Real,
    /// true/false.
    Boolean,
    /// UTF-8 string.
    String,
    /// 128-bit UUID (possibly a reference to a row).
    Uuid,
}

impl AtomicType {
    /// Parses the schema spelling ("integer", "real", ...).
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "integer" => AtomicType::Integer,
            "real" => AtomicType::Real,
            "boolean" => AtomicType::Boolean,
            "string" => AtomicType::String,
            "uuid" => AtomicType::Uuid,
            _ => return None,
        })
    }

    /// The schema spelling.
    pub fn name(self) -> &'static str {
        match self {
            AtomicType::Integer => "integer",
            AtomicType::Real => "real",
            AtomicType::Boolean => "boolean",
            AtomicType::String => "string",
            AtomicType::Uuid => "uuid",
        }
    }

    /// Integer or real (the types arithmetic and ordering apply to).
    pub fn is_numeric(self) -> bool {
        matches!(self, AtomicType::Integer | AtomicType::Real)
    }

    /// The default atom of this type (0, 0.0, false, "", all-zero UUID).
    pub fn default_atom(self) -> Atom {
        match self {
            AtomicType::Integer => Atom::Integer(0),
            AtomicType::Real => Atom::Real(0.0),
            AtomicType::Boolean => Atom::Boolean(false),
            AtomicType::String => Atom::String(String::new()),
            AtomicType::Uuid => Atom::Uuid(Uuid::nil()),
        }
    }
}

/// One atomic value.
#[derive(Debug, Clone)]
pub enum Atom {
    /// integer
    Integer(i64),
    /// real
    Real(f64),
    /// boolean
    Boolean(bool),
    /// string
    String(String),
    /// uuid
    Uuid(Uuid),
}

impl Atom {
    fn rank(&self) -> u8 {
        match self {
            Atom::Integer(_) => 0,
            Atom::Real(_) => 1,
            Atom::Boolean(_) => 2,
            Atom::String(_) => 3,
            Atom::Uuid(_) => 4,
        }
    }

    /// The atom's type.
    pub fn atomic_type(&self) -> AtomicType {
        match self {
            Atom::Integer(_) => AtomicType::Integer,
            Atom::Real(_) => AtomicType::Real,
            Atom::Boolean(_) => AtomicType::Boolean,
            Atom::String(_) => AtomicType::String,
            Atom::Uuid(_) => AtomicType::Uuid,
        }
    }

    /// RFC 7047 JSON notation of the atom.
    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => json!(i),
            Atom::Real(r) => {
                // OvS prints reals that happen to be integral without a fraction;
                // serde_json would print "1.0" which is also valid JSON real.
                json!(r)
            }
            Atom::Boolean(b) => json!(b),
            Atom::String(s) => json!(s),
            Atom::Uuid(u) => json!(["uuid", u.to_string()]),
        }
    }

    /// Parses an atom of type `ty` from JSON. `resolve` maps a
    /// `["named-uuid", name]` to a UUID (transactions provide it; elsewhere
    /// named UUIDs are a syntax error).
    pub fn from_json(
        ty: AtomicType,
        v: &Value,
        resolve: &mut dyn FnMut(&str) -> OResult<Uuid>,
    ) -> OResult<Atom> {
        let bad = || OvsdbError::syntax(format!("expected {}, got {}", ty.name(), short(v)));
        match ty {
            AtomicType::Integer => match v {
                Value::Number(n) => n.as_i64().map(Atom::Integer).ok_or_else(bad),
                _ => Err(bad()),
            },
            AtomicType::Real => match v {
                Value::Number(n) => n.as_f64().map(Atom::Real).ok_or_else(bad),
                _ => Err(bad()),
            },
            AtomicType::Boolean => v.as_bool().map(Atom::Boolean).ok_or_else(bad),
            AtomicType::String => v.as_str().map(|s| Atom::String(s.to_string())).ok_or_else(bad),
            AtomicType::Uuid => {
                let arr = v.as_array().ok_or_else(bad)?;
                match (arr.first().and_then(Value::as_str), arr.get(1).and_then(Value::as_str), arr.len()) {
                    (Some("uuid"), Some(s), 2) => parse_uuid(s).map(Atom::Uuid),
                    (Some("named-uuid"), Some(name), 2) => resolve(name).map(Atom::Uuid),
                    _ => Err(bad()),
                }
            }
        }
    }
}

/// Parses a UUID in the canonical 36-character form.
pub fn parse_uuid(s: &str) -> OResult<Uuid> {
    if s.len() != 36 {
        return Err(OvsdbError::syntax(format!("\"{}\" is not a valid UUID", trunc(s))));
    }
    Uuid::parse_str(s).map_err(|_| OvsdbError::syntax(format!("\"{}\" is not a valid UUID", trunc(s))))
}

/// A resolver that rejects named UUIDs (outside transactions).
pub fn no_named(name: &str) -> OResult<Uuid> {
    Err(OvsdbError::syntax(format!("named-uuid \"{}\" not allowed here", trunc(name))))
}

/// Short rendering of a JSON value for error details (bounded length).
pub(crate) fn short(v: &Value) -> String {
    let s = v.to_string();
    trunc(&s).to_string()
}

pub(crate) fn trunc(s: &str) -> &str {
    let mut end = s.len().min(200);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl PartialEq for Atom {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Atom {}
impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Atom {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a.cmp(b),
            (Atom::Real(a), Atom::Real(b)) => a.total_cmp(b),
            (Atom::Boolean(a), Atom::Boolean(b)) => a.cmp(b),
            (Atom::String(a), Atom::String(b)) => a.cmp(b),
            (Atom::Uuid(a), Atom::Uuid(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_uuid() {
        let v = json!(["uuid", "024e058f-4b1c-4469-b721-98454fc5ffba"]);
        let a = Atom::from_json(AtomicType::Uuid, &v, &mut no_named).unwrap();
        assert_eq!(a.to_json(), v);
    }

    #[test]
    fn rejects_wrong_types() {
        assert!(Atom::from_json(AtomicType::Integer, &json!("x"), &mut no_named).is_err());
        assert!(Atom::from_json(AtomicType::Integer, &json!(1.5), &mut no_named).is_err());
        assert!(Atom::from_json(AtomicType::Uuid, &json!(["uuid", "nope"]), &mut no_named).is_err());
        assert!(Atom::from_json(AtomicType::Uuid, &json!(["named-uuid", "a"]), &mut no_named).is_err());
        assert!(Atom::from_json(AtomicType::Uuid, &json!([]), &mut no_named).is_err());
    }

    #[test]
    fn real_accepts_integers() {
        let a = Atom::from_json(AtomicType::Real, &json!(3), &mut no_named).unwrap();
        assert_eq!(a, Atom::Real(3.0));
    }
}
