//! The `_Server` database that ovsdb-server exposes and that ovs-vsctl and
//! the OvS IDL read first (monitor_cond on `Database`) to learn each database's
//! model, leadership and schema.

use crate::database::Database;
use crate::schema::{DatabaseSchema, SERVER_SCHEMA};
use serde_json::json;
use std::sync::Arc;

/// Builds `_Server` with one `Database` row per served database (including
/// `_Server` itself), as a standalone, connected leader.
pub fn build(dbs: &[&Database]) -> Result<Arc<Database>, crate::Error> {
    let schema = DatabaseSchema::parse_str(SERVER_SCHEMA)?;
    let server_schema_json = schema.json.to_string();
    let db = Database::in_memory_read_only(schema);
    let mut rows: Vec<(String, String)> =
        dbs.iter().map(|d| (d.name().to_string(), d.schema().json.to_string())).collect();
    rows.push(("_Server".to_string(), server_schema_json));
    let mut ops = Vec::new();
    for (name, schema) in rows {
        ops.push(json!({"op": "insert", "table": "Database", "row": {
            "name": name, "model": "standalone", "connected": true, "leader": true, "schema": schema,
        }}));
    }
    let res = db.populate(json!(ops));
    if let Some(e) = res.as_array().and_then(|a| a.iter().find(|r| r.get("error").is_some())) {
        return Err(crate::Error::Schema(format!("building _Server failed: {e}")));
    }
    Ok(db)
}
