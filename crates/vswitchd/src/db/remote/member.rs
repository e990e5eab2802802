//! Whether a cluster member may be used, from its `_Server` database's `Database` row (what
//! ovsdb-idl checks with `leader_only`): rvswitchd holds a lock, and locks live on the server a
//! client talks to, so every rvswitchd must talk to the leader for the lock to mean anything.

use serde_json::{json, Value};

use crate::db::datum::set_items;

/// What a member's `_Server.Database` row says about database `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Member {
    /// A standalone server, or the cluster's leader with a quorum: use it.
    Usable,
    /// A clustered member that is not the leader (the leader is elsewhere).
    NotLeader,
    /// A clustered member that has lost its cluster (no quorum, or still joining).
    Disconnected,
    /// The server does not hold the database.
    Missing,
}

/// The select (on `_Server`) whose result [`judge`] reads.
pub fn query(db: &str) -> Value {
    json!(["_Server", {"op": "select", "table": "Database", "where": [["name", "==", db]],
        "columns": ["name", "model", "connected", "leader"]}])
}

/// Judges the rows of [`query`]'s select (or of a monitor of that table).
pub fn judge<'a>(rows: impl IntoIterator<Item = &'a Value>, db: &str) -> Member {
    let Some(row) = rows.into_iter().find(|r| r["name"] == db) else { return Member::Missing };
    let flag = |c: &str| set_items(&row[c]).first().and_then(|v| v.as_bool());
    if row["model"] != "clustered" {
        return Member::Usable;
    }
    match (flag("connected"), flag("leader")) {
        (Some(true), Some(true)) => Member::Usable,
        (Some(true), _) => Member::NotLeader,
        _ => Member::Disconnected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connected_leader_or_a_standalone_server_is_used() {
        let row = |model: &str, connected: bool, leader: bool| json!({"name": "Open_vSwitch", "model": model, "connected": connected, "leader": leader});
        let db = "Open_vSwitch";
        assert_eq!(judge(&[row("standalone", true, true)], db), Member::Usable);
        assert_eq!(judge(&[row("clustered", true, true)], db), Member::Usable);
        assert_eq!(judge(&[row("clustered", true, false)], db), Member::NotLeader);
        assert_eq!(judge(&[row("clustered", false, true)], db), Member::Disconnected);
        assert_eq!(judge(&[json!({"name": "OVN_Northbound", "model": "clustered"})], db), Member::Missing);
        // Malformed flags are not taken for a yes.
        let odd = json!({"name": db, "model": "clustered", "connected": "yes", "leader": 1});
        assert_eq!(judge(&[odd], db), Member::Disconnected);
    }
}
