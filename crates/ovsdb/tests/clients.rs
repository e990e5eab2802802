//! ovsdb-client and ovsdb-tool against our server and our database file.

mod common;
use common::{ChildGuard, RawClient, TestServer};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn get_schema_equals_reference() {
    let s = TestServer::start();
    let mut c = RawClient::connect(&s.sock());
    let served = c.result("get_schema", json!(["Open_vSwitch"]), 1);
    let shipped: Value = serde_json::from_str(ovsdb::VSWITCH_SCHEMA).unwrap();
    assert_eq!(served, shipped);
    assert_eq!(c.result("list_dbs", json!([]), 2), json!(["Open_vSwitch", "_Server"]));
    let server = c.result("get_schema", json!(["_Server"]), 3);
    assert_eq!(server["version"], "1.2.0");
}

/// Where Debian's openvswitch-switch installs the schema ovs-vswitchd runs on.
const INSTALLED_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

#[test]
fn served_schema_equals_the_installed_ovs_schema() {
    let test = "served_schema_equals_the_installed_ovs_schema";
    if !testbed::require_file(test, INSTALLED_SCHEMA, "openvswitch-switch") {
        return;
    }
    let s = TestServer::start();
    let mut c = RawClient::connect(&s.sock());
    let served = c.result("get_schema", json!(["Open_vSwitch"]), 1);
    let installed: Value = serde_json::from_str(&std::fs::read_to_string(INSTALLED_SCHEMA).unwrap()).unwrap();
    eprintln!("served schema {} vs installed {}", served["version"], installed["version"]);
    assert_eq!(served, installed, "served schema differs from {INSTALLED_SCHEMA}");
}

#[test]
fn schema_as_ovs_tools_normalize_it() {
    if !common::have_ovs_clients() {
        return;
    }
    // ovsdb-client re-serializes what it parsed; ovsdb-tool create does the same
    // to the reference file. Both normalized forms must agree.
    let s = TestServer::start();
    let ours: Value = serde_json::from_str(&s.client(&["get-schema", "SOCK"]).unwrap()).unwrap();
    let f = s.dir.path().join("ref.db");
    let reference = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/vswitch.ovsschema");
    common::run("ovsdb-tool", &["create".into(), f.display().to_string(), reference.into()]).unwrap();
    let data = std::fs::read(&f).unwrap();
    let (recs, _) = ovsdb::storage::decode_all(&data);
    assert_eq!(ours, recs[0]);
    assert_eq!(s.client(&["get-schema-version", "SOCK"]).unwrap().trim(), "8.3.1");
}

#[test]
fn dump_transact_and_errors() {
    if !common::have_ovs_clients() {
        return;
    }
    let s = TestServer::start();
    s.ok(&["init"]);
    s.ok(&["add-br", "br0"]);
    let dump = s.client(&["dump", "SOCK"]).unwrap();
    assert!(dump.contains("Bridge table") && dump.contains("br0"), "{dump}");
    let ok = s
        .client(&[
            "transact",
            "SOCK",
            r#"["Open_vSwitch",{"op":"select","table":"Bridge","where":[],"columns":["name"]}]"#,
        ])
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(&ok).unwrap(), json!([{"rows": [{"name": "br0"}]}]));
    let err = s
        .client(&["transact", "SOCK", r#"["Open_vSwitch",{"op":"select","table":"Nope","where":[]}]"#])
        .unwrap();
    let v: Value = serde_json::from_str(&err).unwrap();
    assert_eq!(v[0]["error"], "unknown table");
    // Referential integrity: a root row pointing at a nonexistent bridge.
    let ri = s
        .client(&[
            "transact",
            "SOCK",
            r#"["Open_vSwitch",{"op":"update","table":"Open_vSwitch","where":[],"row":{"bridges":["uuid","11111111-2222-3333-4444-555555555555"]}}]"#,
        ])
        .unwrap();
    let v: Value = serde_json::from_str(&ri).unwrap();
    assert_eq!(v[0], json!({"count": 1}));
    assert_eq!(v[1]["error"], "referential integrity violation", "{v}");
    // Failed op followed by null for the op after it.
    let bad = s
        .client(&[
            "transact",
            "SOCK",
            r#"["Open_vSwitch",{"op":"insert","table":"Port","row":{"tag":5000}},{"op":"comment","comment":"x"}]"#,
        ])
        .unwrap();
    let v: Value = serde_json::from_str(&bad).unwrap();
    assert_eq!(v[0]["error"], "constraint violation");
    assert_eq!(v[1], Value::Null);
    // Nothing of the failed transactions was applied.
    assert_eq!(s.ok(&["list-br"]).trim(), "br0");
}

#[test]
fn monitor_sees_changes() {
    if !common::have_ovs_clients() {
        return;
    }
    // A short inactivity probe: the monitor idles for several intervals below and must have
    // answered the server's echo requests to still be connected.
    let probe = Duration::from_millis(200);
    let s =
        TestServer::with_limits(ovsdb::server::Limits { probe_interval: Some(probe), ..Default::default() });
    s.ok(&["init"]);
    s.ok(&["add-br", "br0"]);
    let mut mon = ChildGuard::spawn(
        Command::new("ovsdb-client")
            .args([
                "monitor",
                &format!("unix:{}", s.sock().display()),
                "Open_vSwitch",
                "Interface",
                "name",
                "ofport",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    assert!(mon.pid() > 0);
    let out = mon.0.as_mut().and_then(|c| c.stdout.take()).expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |pat: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
                if l.contains(pat) {
                    return l;
                }
            }
        }
        panic!("monitor never printed {pat}");
    };
    let l = wait_for("br0");
    assert!(l.contains("initial"), "{l}");
    std::thread::sleep(probe * 8);
    s.ok(&["add-port", "br0", "vnet7"]);
    let l = wait_for("vnet7");
    assert!(l.contains("insert"), "{l}");
    s.ok(&["set", "Interface", "vnet7", "ofport=7"]);
    let l = wait_for("new");
    assert!(l.contains('7'), "{l}");
    drop(mon); // killed by PID
}

#[test]
fn ovsdb_tool_reads_our_file() {
    if !common::have_ovs_clients() {
        return;
    }
    let mut s = TestServer::start();
    s.ok(&["init"]);
    s.ok(&["add-br", "br0", "--", "add-port", "br0", "p1", "tag=10"]);
    s.ok(&["set", "Interface", "p1", "external_ids:k=v"]);
    s.ok(&["del-port", "p1"]);
    s.ok(&["add-port", "br0", "p2", "trunks=1,2,3"]);
    s.stop();
    let f = s.db_file().display().to_string();
    assert_eq!(common::run("ovsdb-tool", &["db-version".into(), f.clone()]).unwrap().trim(), "8.3.1");
    assert_eq!(common::run("ovsdb-tool", &["db-name".into(), f.clone()]).unwrap().trim(), "Open_vSwitch");
    let log = common::run("ovsdb-tool", &["show-log".into(), f.clone()]).unwrap();
    assert!(log.contains("record 0") && log.contains("add-br br0"), "{log}");
    let q = common::run(
        "ovsdb-tool",
        &[
            "query".into(),
            f.clone(),
            r#"["Open_vSwitch",{"op":"select","table":"Port","where":[],"columns":["name","tag","trunks"]}]"#
                .into(),
        ],
    )
    .unwrap();
    let mut rows: Vec<Value> =
        serde_json::from_str::<Value>(&q).unwrap()[0]["rows"].as_array().unwrap().clone();
    rows.sort_by_key(|r| r["name"].to_string());
    assert_eq!(
        rows,
        vec![
            json!({"name": "br0", "tag": ["set", []], "trunks": ["set", []]}),
            json!({"name": "p2", "tag": ["set", []], "trunks": ["set", [1, 2, 3]]})
        ]
    );
    // ovsdb-tool can also compact our file, and we can read its output back.
    common::run("ovsdb-tool", &["compact".into(), f.clone()]).unwrap();
    s.restart();
    assert_eq!(s.ok(&["list-ports", "br0"]).trim(), "p2");
    assert_eq!(s.ok(&["get", "Port", "p2", "trunks"]).trim(), "[1, 2, 3]");
}
