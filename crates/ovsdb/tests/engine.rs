//! The in-process API and the transaction engine's semantics, plus the file log.

use ovsdb::{Database, DatabaseSchema, MonitorVersion, VSWITCH_SCHEMA};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn db() -> Arc<Database> {
    Database::in_memory(DatabaseSchema::parse_str(VSWITCH_SCHEMA).unwrap())
}

fn init(db: &Database) -> String {
    let r = db.transact(json!([{"op": "insert", "table": "Open_vSwitch", "row": {}}]));
    r[0]["uuid"][1].as_str().unwrap().to_string()
}

fn add_port(db: &Database, bridge: &str, port: &str) -> Value {
    db.transact(json!([
        {"op": "insert", "table": "Interface", "uuid-name": "i", "row": {"name": port}},
        {"op": "insert", "table": "Port", "uuid-name": "p", "row": {"name": port, "interfaces": ["named-uuid", "i"]}},
        {"op": "mutate", "table": "Bridge", "where": [["name", "==", bridge]], "mutations": [["ports", "insert", ["set", [["named-uuid", "p"]]]]]}
    ]))
}

fn add_bridge(db: &Database, name: &str) -> Value {
    db.transact(json!(["Open_vSwitch",
        {"op": "insert", "table": "Bridge", "uuid-name": "b", "row": {"name": name}},
        {"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": [["bridges", "insert", ["named-uuid", "b"]]]}]))
}

fn count(db: &Database, table: &str) -> usize {
    db.transact(json!([{"op": "select", "table": table, "where": []}]))[0]["rows"].as_array().unwrap().len()
}

#[test]
fn garbage_collection_and_weak_refs() {
    let db = db();
    init(&db);
    add_bridge(&db, "br0");
    add_port(&db, "br0", "p1");
    add_port(&db, "br0", "p2");
    assert_eq!((count(&db, "Port"), count(&db, "Interface")), (2, 2));
    // A mirror refers weakly to p1.
    let r = db.transact(json!([
        {"op": "select", "table": "Port", "where": [["name", "==", "p1"]], "columns": ["_uuid"]}]));
    let p1 = r[0]["rows"][0]["_uuid"].clone();
    let r = db.transact(json!([
        {"op": "insert", "table": "Mirror", "uuid-name": "m", "row": {"name": "m", "select_src_port": p1.clone()}},
        {"op": "mutate", "table": "Bridge", "where": [], "mutations": [["mirrors", "insert", ["named-uuid", "m"]]]}]));
    assert!(r[1]["count"] == 1, "{r}");
    // Removing p1 from Bridge.ports deletes Port and Interface and the weak ref.
    let r = db.transact(
        json!([{"op": "mutate", "table": "Bridge", "where": [], "mutations": [["ports", "delete", p1]]}]),
    );
    assert_eq!(r, json!([{"count": 1}]));
    assert_eq!((count(&db, "Port"), count(&db, "Interface")), (1, 1));
    let m = db
        .transact(json!([{"op": "select", "table": "Mirror", "where": [], "columns": ["select_src_port"]}]));
    assert_eq!(m[0]["rows"][0]["select_src_port"], json!(["set", []]));
    // Deleting a strongly referenced row directly is refused.
    let r = db.transact(json!([{"op": "delete", "table": "Interface", "where": []}]));
    assert_eq!(r[1]["error"], "referential integrity violation", "{r}");
    assert_eq!(count(&db, "Interface"), 1);
    // Non-root rows nobody refers to vanish at commit.
    db.transact(json!([{"op": "insert", "table": "Port", "row": {"name": "orphan"}}]));
    assert_eq!(count(&db, "Port"), 1);
    // Dropping the bridge collects everything under it.
    db.transact(
        json!([{"op": "update", "table": "Open_vSwitch", "where": [], "row": {"bridges": ["set", []]}}]),
    );
    assert_eq!(
        (count(&db, "Bridge"), count(&db, "Port"), count(&db, "Interface"), count(&db, "Mirror")),
        (0, 0, 0, 0)
    );
}

#[test]
fn mutators() {
    let db = db();
    init(&db);
    let m = |muts: Value| {
        db.transact(json!([{"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": muts}]))
    };
    let get = |c: &str| {
        db.transact(json!([{"op": "select", "table": "Open_vSwitch", "where": [], "columns": [c]}]))[0]
            ["rows"][0][c]
            .clone()
    };
    m(json!([
        ["next_cfg", "+=", 10],
        ["next_cfg", "*=", 3],
        ["next_cfg", "-=", 2],
        ["next_cfg", "/=", 4],
        ["next_cfg", "%=", 4]
    ]));
    assert_eq!(get("next_cfg"), json!(3));
    m(json!([
        ["external_ids", "insert", ["map", [["a", "1"], ["b", "2"]]]],
        ["external_ids", "insert", ["map", [["a", "9"]]]]
    ]));
    assert_eq!(get("external_ids"), json!(["map", [["a", "1"], ["b", "2"]]]));
    m(json!([["external_ids", "delete", ["map", [["a", "9"], ["b", "2"]]]]]));
    assert_eq!(get("external_ids"), json!(["map", [["a", "1"]]]));
    m(json!([
        ["external_ids", "delete", ["set", ["a"]]],
        ["iface_types", "insert", ["set", ["x", "y"]]],
        ["iface_types", "delete", "x"]
    ]));
    assert_eq!(get("external_ids"), json!(["map", []]));
    assert_eq!(get("iface_types"), json!("y"));
    let r = m(json!([["cur_cfg", "%=", 0]]));
    assert_eq!(r[0]["error"], "domain error");
    let r = m(json!([["ovs_version", "+=", 1]]));
    assert!(r[0]["error"].is_string());
}

#[test]
fn conditions_select_and_explicit_uuid() {
    let db = db();
    init(&db);
    let u = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    let r = db.transact(json!([
        {"op": "insert", "table": "Bridge", "uuid": u, "row": {"name": "b1", "flood_vlans": ["set", [1, 2, 3]]}},
        {"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": [["bridges", "insert", ["uuid", u]]]}]));
    assert_eq!(r[0], json!({"uuid": ["uuid", u]}));
    let sel = |w: Value| {
        db.transact(json!([{"op": "select", "table": "Bridge", "where": w, "columns": ["name"]}]))[0]["rows"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(sel(json!([["flood_vlans", "includes", ["set", [1, 3]]]])), 1);
    assert_eq!(sel(json!([["flood_vlans", "excludes", 4]])), 1);
    assert_eq!(sel(json!([["flood_vlans", "excludes", 2]])), 0);
    assert_eq!(sel(json!([["name", "!=", "b1"]])), 0);
    assert_eq!(sel(json!([["_uuid", "==", ["uuid", u]]])), 1);
    let r = db.transact(json!([{"op": "select", "table": "Open_vSwitch", "where": [["next_cfg", "<", 1], ["next_cfg", ">=", 0]], "columns": ["next_cfg"]}]));
    assert_eq!(r[0]["rows"].as_array().unwrap().len(), 1);
    let r = db.transact(json!([{"op": "select", "table": "Bridge", "where": [["name", "<", "x"]]}]));
    assert_eq!(r[0]["error"], "syntax error");
    // Duplicate explicit uuid.
    let r = db.transact(json!([{"op": "insert", "table": "Bridge", "uuid": u, "row": {"name": "b2"}}]));
    assert_eq!(r[0]["error"], "duplicate uuid");
}

#[test]
fn sessions_monitors_and_locks_in_process() {
    let db = db();
    let ovs = init(&db);
    let s1 = db.session();
    let s2 = db.session();
    assert!(s1.lock("ovs_vswitchd").unwrap());
    assert!(!s2.lock("ovs_vswitchd").unwrap());
    let init = s1
        .monitor(MonitorVersion::V2, json!("m"), &json!({"Open_vSwitch": {"columns": ["cur_cfg"]}}))
        .unwrap();
    assert_eq!(init, json!({"Open_vSwitch": {ovs.clone(): {"initial": {}}}}));
    let r = s1.transact(json!([
        {"op": "update", "table": "Open_vSwitch", "where": [], "row": {"cur_cfg": 7}},
        {"op": "assert", "lock": "ovs_vswitchd"}]));
    assert_eq!(r, json!([{"count": 1}, {}]));
    let n = s1.notifications().recv_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!(
        n,
        json!({"id": null, "method": "update2", "params": ["m", {"Open_vSwitch": {ovs: {"modify": {"cur_cfg": 7}}}}]})
    );
    let r = s2.transact(json!([{"op": "assert", "lock": "ovs_vswitchd"}]));
    assert_eq!(r[0]["error"], "not owner");
    drop(s1);
    let n = s2.notifications().recv_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!(n["method"], "locked");
    assert_eq!(s2.transact(json!([{"op": "assert", "lock": "ovs_vswitchd"}])), json!([{}]));
}

#[test]
fn log_survives_restart_and_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conf.db");
    let schema = || DatabaseSchema::parse_str(VSWITCH_SCHEMA).unwrap();
    {
        let db = Database::open(schema(), &path).unwrap();
        init(&db);
        add_bridge(&db, "br0");
        add_port(&db, "br0", "p1");
        db.transact(json!([{"op": "update", "table": "Interface", "where": [], "row": {"external_ids": ["map", [["a", "b"]]], "link_state": "up"}}]));
    }
    let good_len = std::fs::metadata(&path).unwrap().len();
    {
        let db = Database::open(schema(), &path).unwrap();
        assert_eq!(count(&db, "Port"), 1); // p1 (add_bridge makes no local port)
        let r = db.transact(json!([{"op": "select", "table": "Interface", "where": [], "columns": ["external_ids", "link_state"]}]));
        // Ephemeral columns are not persisted.
        assert_eq!(
            r[0]["rows"][0],
            json!({"external_ids": ["map", [["a", "b"]]], "link_state": ["set", []]})
        );
        add_port(&db, "br0", "p2");
    }
    // Simulate a crash in the middle of the last append: cut the file.
    let full = std::fs::metadata(&path).unwrap().len();
    assert!(full > good_len);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(full - 7).unwrap();
    drop(f);
    let db = Database::open(schema(), &path).unwrap();
    assert_eq!(count(&db, "Port"), 1, "torn record dropped, acknowledged ones kept");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len, "file truncated to last good record");
    add_port(&db, "br0", "p3");
    drop(db);
    let db = Database::open(schema(), &path).unwrap();
    assert_eq!(count(&db, "Port"), 2);
    // Garbage in the middle of a file that is not ours at all is an error, not a panic.
    std::fs::write(dir.path().join("junk.db"), b"not an ovsdb file").unwrap();
    assert!(Database::open(schema(), &dir.path().join("junk.db")).is_err());
}

#[test]
fn compaction_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conf.db");
    let schema = || DatabaseSchema::parse_str(VSWITCH_SCHEMA).unwrap();
    let db = Database::open(schema(), &path).unwrap();
    db.set_compact_threshold(64 << 10);
    init(&db);
    add_bridge(&db, "br0");
    for i in 0..400 {
        db.transact(json!([{"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": [["next_cfg", "+=", 1]]},
            {"op": "update", "table": "Bridge", "where": [], "row": {"external_ids": ["map", [["n", format!("{i}")]]]}}]));
    }
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 120 << 10, "log was never compacted ({size} bytes)");
    let data = std::fs::read(&path).unwrap();
    let (recs, used) = ovsdb::storage::decode_all(&data);
    assert_eq!(used, data.len());
    assert!(recs.len() < 400);
    drop(db);
    let db = Database::open(schema(), &path).unwrap();
    let r =
        db.transact(json!([{"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg"]}]));
    assert_eq!(r[0]["rows"][0]["next_cfg"], 400);
    let r =
        db.transact(json!([{"op": "select", "table": "Bridge", "where": [], "columns": ["external_ids"]}]));
    assert_eq!(r[0]["rows"][0]["external_ids"], json!(["map", [["n", "399"]]]));
}
