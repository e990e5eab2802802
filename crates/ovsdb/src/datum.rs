//! Column values (RFC 7047 §5.1 `<value>`): sets, maps and scalars.
//!
//! Every value is a set or a map; a scalar is a one-element set. Keeping one
//! representation makes mutations, conditions and update2 diffs uniform.
//! Sets and maps are sorted vectors ([`crate::sorted`]), not B-trees: a
//! scalar then costs one small allocation instead of a whole tree node.

use crate::atom::{short, Atom};
use crate::error::{OResult, OvsdbError};
use crate::schema::ColumnType;
use crate::sorted::{SortedMap, SortedSet};
use serde_json::{json, Value};
use uuid::Uuid;

/// A column value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Datum {
    /// A set of atoms (scalars are one-element sets).
    Set(SortedSet<Atom>),
    /// A map from key atoms to value atoms.
    Map(SortedMap<Atom, Atom>),
}

impl Datum {
    /// A one-element set.
    pub fn scalar(a: Atom) -> Self {
        Datum::Set(SortedSet::from([a]))
    }

    /// The default value for a column type: empty for optional/set/map columns,
    /// the type's default atom for mandatory scalars.
    pub fn default_for(ty: &ColumnType) -> Self {
        if ty.is_map() {
            Datum::Map(SortedMap::new())
        } else if ty.min == 0 {
            Datum::Set(SortedSet::new())
        } else {
            // Prefer the first enum value for constrained scalars so the
            // default is itself valid.
            let a = match &ty.key.enumeration {
                Some(e) if !e.is_empty() && !e.contains(&ty.key.atomic.default_atom()) => {
                    e.iter().next().cloned().unwrap_or_else(|| ty.key.atomic.default_atom())
                }
                _ => ty.key.atomic.default_atom(),
            };
            Datum::scalar(a)
        }
    }

    /// Number of elements / pairs.
    pub fn len(&self) -> usize {
        match self {
            Datum::Set(s) => s.len(),
            Datum::Map(m) => m.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first key atom, for scalars.
    pub fn first(&self) -> Option<&Atom> {
        match self {
            Datum::Set(s) => s.iter().next(),
            Datum::Map(m) => m.keys().next(),
        }
    }

    /// All key atoms (set elements or map keys).
    pub fn keys(&self) -> Box<dyn Iterator<Item = &Atom> + '_> {
        match self {
            Datum::Set(s) => Box::new(s.iter()),
            Datum::Map(m) => Box::new(m.keys()),
        }
    }

    /// All atoms that are UUIDs, in keys and values (for reference walking).
    pub fn uuids(&self, keys: bool, values: bool) -> Vec<Uuid> {
        let mut out = Vec::new();
        let mut push = |a: &Atom| {
            if let Atom::Uuid(u) = a {
                out.push(*u)
            }
        };
        match self {
            Datum::Set(s) => {
                if keys {
                    s.iter().for_each(&mut push)
                }
            }
            Datum::Map(m) => {
                for (k, v) in m {
                    if keys {
                        push(k)
                    }
                    if values {
                        push(v)
                    }
                }
            }
        }
        out
    }

    /// RFC 7047 JSON notation: a bare atom for one-element sets, otherwise
    /// `["set", [...]]` or `["map", [[k, v], ...]]`.
    pub fn to_json(&self) -> Value {
        match self {
            Datum::Set(s) if s.len() == 1 => s.iter().next().map(Atom::to_json).unwrap_or(Value::Null),
            Datum::Set(s) => json!(["set", s.iter().map(Atom::to_json).collect::<Vec<_>>()]),
            Datum::Map(m) => {
                json!(["map", m.iter().map(|(k, v)| json!([k.to_json(), v.to_json()])).collect::<Vec<_>>()])
            }
        }
    }

    /// Parses a value of column type `ty`, checking atom constraints and the
    /// element count. `resolve` handles `named-uuid`.
    pub fn from_json(
        ty: &ColumnType,
        v: &Value,
        resolve: &mut dyn FnMut(&str) -> OResult<Uuid>,
    ) -> OResult<Self> {
        let d = Self::from_json_unchecked(ty, v, resolve)?;
        d.check(ty)?;
        Ok(d)
    }

    /// Parses without checking enum/range constraints or size (for condition
    /// arguments and for replaying the log).
    pub fn from_json_unchecked(
        ty: &ColumnType,
        v: &Value,
        resolve: &mut dyn FnMut(&str) -> OResult<Uuid>,
    ) -> OResult<Self> {
        if let Some(vt) = &ty.value {
            let arr =
                v.as_array().ok_or_else(|| OvsdbError::syntax(format!("expected map, got {}", short(v))))?;
            if arr.len() != 2 || arr[0].as_str() != Some("map") {
                return Err(OvsdbError::syntax(format!("expected [\"map\", ...], got {}", short(v))));
            }
            let pairs =
                arr[1].as_array().ok_or_else(|| OvsdbError::syntax("map contents must be an array"))?;
            let mut v = Vec::with_capacity(pairs.len());
            for p in pairs {
                let pa = p
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or_else(|| OvsdbError::syntax("map pair must be [k, v]"))?;
                v.push((
                    Atom::from_json(ty.key.atomic, &pa[0], resolve)?,
                    Atom::from_json(vt.atomic, &pa[1], resolve)?,
                ));
            }
            // Collecting sorts once (a 4094-VLAN trunk set stays O(n log n)); a shorter
            // result means a key was repeated.
            let m: SortedMap<Atom, Atom> = v.into_iter().collect();
            if m.len() != pairs.len() {
                return Err(OvsdbError::new("ovsdb error", "map contains duplicate key"));
            }
            return Ok(Datum::Map(m));
        }
        if let Some(arr) = v.as_array() {
            if arr.len() == 2 && arr[0].as_str() == Some("set") {
                let elems =
                    arr[1].as_array().ok_or_else(|| OvsdbError::syntax("set contents must be an array"))?;
                let s = elems
                    .iter()
                    .map(|e| Atom::from_json(ty.key.atomic, e, resolve))
                    .collect::<OResult<SortedSet<Atom>>>()?;
                if s.len() != elems.len() {
                    return Err(OvsdbError::new("ovsdb error", "set contains duplicate value"));
                }
                return Ok(Datum::Set(s));
            }
        }
        Ok(Datum::scalar(Atom::from_json(ty.key.atomic, v, resolve)?))
    }

    /// Checks constraints on every atom and the element count against `ty`.
    pub fn check(&self, ty: &ColumnType) -> OResult<()> {
        match self {
            Datum::Set(s) => {
                if ty.is_map() {
                    return Err(OvsdbError::syntax("expected map"));
                }
                for a in s {
                    ty.key.check(a)?;
                }
            }
            Datum::Map(m) => {
                let vt = ty.value.as_ref().ok_or_else(|| OvsdbError::syntax("expected set, got map"))?;
                for (k, v) in m {
                    ty.key.check(k)?;
                    vt.check(v)?;
                }
            }
        }
        let n = self.len();
        if n < ty.min || n > ty.max {
            let max =
                if ty.max == crate::schema::UNLIMITED { "unlimited".to_string() } else { ty.max.to_string() };
            return Err(OvsdbError::constraint(format!(
                "{n} values when type requires between {} and {max}",
                ty.min
            )));
        }
        Ok(())
    }

    /// The update2 / `_is_diff` difference from `self` to `new`: symmetric
    /// difference for sets; for maps, added or changed pairs with their new
    /// value and removed keys with their old value.
    pub fn diff(&self, new: &Datum) -> Datum {
        match (self, new) {
            (Datum::Set(a), Datum::Set(b)) => Datum::Set(a.symmetric_difference(b).cloned().collect()),
            (Datum::Map(a), Datum::Map(b)) => {
                let mut d = SortedMap::new();
                for (k, v) in a {
                    if !b.contains_key(k) {
                        d.insert(k.clone(), v.clone());
                    }
                }
                for (k, v) in b {
                    if a.get(k) != Some(v) {
                        d.insert(k.clone(), v.clone());
                    }
                }
                Datum::Map(d)
            }
            _ => new.clone(),
        }
    }

    /// Applies a diff produced by [`Datum::diff`].
    pub fn apply_diff(&self, diff: &Datum) -> Datum {
        match (self, diff) {
            (Datum::Set(a), Datum::Set(d)) => Datum::Set(a.symmetric_difference(d).cloned().collect()),
            (Datum::Map(a), Datum::Map(d)) => {
                let mut m = a.clone();
                for (k, v) in d {
                    match m.get(k) {
                        Some(old) if old == v => {
                            m.remove(k);
                        }
                        _ => {
                            m.insert(k.clone(), v.clone());
                        }
                    }
                }
                Datum::Map(m)
            }
            _ => diff.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atom::no_named;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn ty(v: Value) -> ColumnType {
        ColumnType::from_json(&v).unwrap()
    }

    #[test]
    fn round_trips_notation() {
        let t = ty(json!({"key": "string", "value": "string", "min": 0, "max": "unlimited"}));
        let v = json!(["map", [["a", "1"], ["b", "2"]]]);
        assert_eq!(Datum::from_json(&t, &v, &mut no_named).unwrap().to_json(), v);
        let t = ty(
            json!({"key": {"type": "integer", "minInteger": 0, "maxInteger": 4095}, "min": 0, "max": 4096}),
        );
        let v = json!(["set", [10, 20]]);
        assert_eq!(Datum::from_json(&t, &v, &mut no_named).unwrap().to_json(), v);
        assert_eq!(Datum::from_json(&t, &json!(7), &mut no_named).unwrap().to_json(), json!(7));
        assert_eq!(
            Datum::from_json(&t, &json!(["set", []]), &mut no_named).unwrap().to_json(),
            json!(["set", []])
        );
    }

    #[test]
    fn enforces_constraints() {
        let t =
            ty(json!({"key": {"type": "integer", "minInteger": 0, "maxInteger": 4095}, "min": 0, "max": 1}));
        let e = Datum::from_json(&t, &json!(5000), &mut no_named).unwrap_err();
        assert_eq!(e.error, "constraint violation");
        let e = Datum::from_json(&t, &json!(["set", [1, 2]]), &mut no_named).unwrap_err();
        assert_eq!(e.error, "constraint violation");
        let t = ty(json!({"key": {"type": "string", "enum": ["set", ["a", "b"]]}}));
        assert!(Datum::from_json(&t, &json!("c"), &mut no_named).is_err());
        assert!(Datum::from_json(&t, &json!("a"), &mut no_named).is_ok());
        assert!(Datum::from_json(&t, &json!(["set", []]), &mut no_named).is_err());
        let t = ty(json!({"key": "string", "min": 0, "max": "unlimited"}));
        assert_eq!(
            Datum::from_json(&t, &json!(["set", ["a", "a"]]), &mut no_named).unwrap_err().error,
            "ovsdb error"
        );
    }

    fn arb_map() -> impl Strategy<Value = BTreeMap<Atom, Atom>> {
        proptest::collection::btree_map(
            (0i64..8).prop_map(Atom::Integer),
            (0i64..4).prop_map(Atom::Integer),
            0..6,
        )
    }

    proptest! {
        #[test]
        fn map_diff_applies(a in arb_map(), b in arb_map()) {
            let (a, b) = (Datum::Map(a.into_iter().collect()), Datum::Map(b.into_iter().collect()));
            prop_assert_eq!(a.apply_diff(&a.diff(&b)), b);
        }

        #[test]
        fn set_diff_applies(a in proptest::collection::btree_set(0i64..10, 0..6), b in proptest::collection::btree_set(0i64..10, 0..6)) {
            let a = Datum::Set(a.into_iter().map(Atom::Integer).collect());
            let b = Datum::Set(b.into_iter().map(Atom::Integer).collect());
            prop_assert_eq!(a.apply_diff(&a.diff(&b)), b);
        }
    }
}
