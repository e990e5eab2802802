//! Reading and writing OVSDB datum JSON (RFC 7047 §5.1): `["set", [...]]`, `["map", [[k, v]...]]`,
//! `["uuid", "..."]`, and a bare atom for a one-element set. Malformed values read as empty —
//! the database already validated them against the schema.

use serde_json::{json, Value};

/// The elements of a set datum (a bare atom is a one-element set).
pub fn set_items(v: &Value) -> Vec<&Value> {
    match v.as_array().map(|a| a.as_slice()) {
        Some([tag, Value::Array(items)]) if tag == "set" => items.iter().collect(),
        Some([tag, _]) if tag == "uuid" || tag == "named-uuid" => vec![v],
        Some(_) => Vec::new(),
        None if v.is_null() => Vec::new(),
        None => vec![v],
    }
}

/// The UUID string of a `["uuid", "..."]` atom.
pub fn uuid(v: &Value) -> Option<&str> {
    match v.as_array().map(|a| a.as_slice()) {
        Some([tag, Value::String(u)]) if tag == "uuid" => Some(u),
        _ => None,
    }
}

/// UUIDs in a set-of-uuid column.
pub fn uuids(v: &Value) -> Vec<String> {
    set_items(v).into_iter().filter_map(uuid).map(str::to_string).collect()
}

/// An optional integer column (a set of zero or one integer).
pub fn opt_int(v: &Value) -> Option<i64> {
    set_items(v).first().and_then(|x| x.as_i64())
}

/// An optional string column.
pub fn opt_str(v: &Value) -> Option<&str> {
    set_items(v).first().and_then(|x| x.as_str())
}

/// A set of integers.
pub fn ints(v: &Value) -> Vec<i64> {
    set_items(v).into_iter().filter_map(Value::as_i64).collect()
}

/// The pairs of a string→string map.
pub fn string_map(v: &Value) -> Vec<(String, String)> {
    match v.as_array().map(|a| a.as_slice()) {
        Some([tag, Value::Array(pairs)]) if tag == "map" => pairs
            .iter()
            .filter_map(|p| match p.as_array().map(|a| a.as_slice()) {
                Some([Value::String(k), Value::String(v)]) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Builds a set datum.
pub fn set(items: impl IntoIterator<Item = Value>) -> Value {
    json!(["set", items.into_iter().collect::<Vec<_>>()])
}

/// Builds a map datum.
pub fn map<K: Into<Value>, V: Into<Value>>(pairs: impl IntoIterator<Item = (K, V)>) -> Value {
    json!(["map", pairs.into_iter().map(|(k, v)| json!([k.into(), v.into()])).collect::<Vec<_>>()])
}

/// `["uuid", u]`.
pub fn uuid_ref(u: &str) -> Value {
    json!(["uuid", u])
}

/// A `where` clause matching one row.
pub fn by_uuid(u: &str) -> Value {
    json!([["_uuid", "==", uuid_ref(u)]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sets_maps_and_atoms() {
        assert_eq!(set_items(&json!(["set", [1, 2]])).len(), 2);
        assert_eq!(opt_int(&json!(10)), Some(10));
        assert_eq!(opt_int(&json!(["set", []])), None);
        assert_eq!(uuids(&json!(["uuid", "a"])), vec!["a"]);
        assert_eq!(uuids(&json!(["set", [["uuid", "a"], ["uuid", "b"]]])), vec!["a", "b"]);
        assert_eq!(string_map(&json!(["map", [["k", "v"]]])), vec![("k".into(), "v".into())]);
        assert_eq!(opt_str(&json!("access")), Some("access"));
        assert!(string_map(&json!("garbage")).is_empty());
    }
}
