//! Raw JSON-RPC: method coverage, notification shapes and hostile input.

mod common;
use common::{RawClient, TestServer};
use ovsdb::server::Limits;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn init(c: &mut RawClient) -> String {
    let r = c.result(
        "transact",
        json!(["Open_vSwitch", {"op": "insert", "table": "Open_vSwitch", "row": {}}]),
        900,
    );
    r[0]["uuid"][1].as_str().unwrap().to_string()
}

fn add_bridge(c: &mut RawClient, ovs: &str, name: &str, id: u64) -> Value {
    c.result(
        "transact",
        json!(["Open_vSwitch",
            {"op": "insert", "table": "Bridge", "uuid-name": "b", "row": {"name": name}},
            {"op": "mutate", "table": "Open_vSwitch", "where": [["_uuid", "==", ["uuid", ovs]]],
             "mutations": [["bridges", "insert", ["set", [["named-uuid", "b"]]]]]}]),
        id,
    )
}

#[test]
fn echo_and_unknown_method() {
    let s = TestServer::start();
    let mut c = RawClient::connect(&s.sock());
    assert_eq!(c.result("echo", json!(["hi", 1]), 1), json!(["hi", 1]));
    let r = c.call("frobnicate", json!([]), 2);
    assert_eq!(r["error"]["error"], "unknown method");
    let r = c.call("get_schema", json!(["NoDb"]), 3);
    assert_eq!(r["error"]["error"], "unknown database");
    let r = c.call("transact", json!("notarray"), 4);
    assert!(r["error"].is_object());
}

#[test]
fn server_database_and_monitor_cond_since() {
    let s = TestServer::start();
    let mut c = RawClient::connect(&s.sock());
    // What ovs-vsctl does first.
    let r = c.result(
        "monitor_cond",
        json!(["_Server", ["monid", "_Server"], {"Database": [{"columns": ["name", "model", "connected", "leader", "schema", "cid", "index"]}]}]),
        1,
    );
    let rows: Vec<&Value> = r["Database"].as_object().unwrap().values().collect();
    let ovs = rows.iter().find(|v| v["initial"]["name"] == "Open_vSwitch").expect("Open_vSwitch row");
    assert_eq!(ovs["initial"]["model"], "standalone");
    assert_eq!(ovs["initial"]["connected"], true);
    assert_eq!(ovs["initial"]["leader"], true);
    let schema: Value = serde_json::from_str(ovs["initial"]["schema"].as_str().unwrap()).unwrap();
    assert_eq!(schema["version"], "8.3.1");
    let uuid = init(&mut c);
    let r = c.result(
        "monitor_cond_since",
        json!(["Open_vSwitch", ["monid", "Open_vSwitch"], {"Open_vSwitch": [{"columns": ["bridges", "cur_cfg"]}], "Bridge": [{"columns": ["name"]}]}, "00000000-0000-0000-0000-000000000000"]),
        2,
    );
    assert_eq!(r[0], false);
    let last = r[1].as_str().unwrap().to_string();
    // Defaults are omitted from update2/3 rows.
    assert_eq!(r[2], json!({"Open_vSwitch": {uuid.clone(): {"initial": {}}}}));
    add_bridge(&mut c, &uuid, "br0", 3);
    let n = c.notification("update3");
    assert_eq!(n["params"][0], json!(["monid", "Open_vSwitch"]));
    let p = &n["params"][2];
    let bridge = p["Bridge"].as_object().unwrap();
    let (bu, b) = bridge.iter().next().unwrap();
    assert_eq!(b, &json!({"insert": {"name": "br0"}}));
    assert_eq!(p["Open_vSwitch"][&uuid], json!({"modify": {"bridges": ["uuid", bu]}}));
    // A second client catches up from the old txn id: found = true.
    let mut c2 = RawClient::connect(&s.sock());
    let r = c2.result(
        "monitor_cond_since",
        json!(["Open_vSwitch", "m", {"Bridge": [{"columns": ["name"]}]}, last]),
        1,
    );
    assert_eq!(r[0], true);
    assert_eq!(r[2]["Bridge"][bu], json!({"insert": {"name": "br0"}}));
    // Removing the reference garbage-collects the bridge: delete.
    c.result(
        "transact",
        json!(["Open_vSwitch", {"op": "update", "table": "Open_vSwitch", "where": [], "row": {"bridges": ["set", []]}}]),
        4,
    );
    let n = c.notification("update3");
    assert_eq!(n["params"][2]["Bridge"][bu], json!({"delete": null}));
}

#[test]
fn monitor_v1_and_conditions() {
    let s = TestServer::start();
    let mut c = RawClient::connect(&s.sock());
    let ovs = init(&mut c);
    let r = c.result(
        "monitor",
        json!(["Open_vSwitch", "v1", {"Bridge": {"columns": ["name", "stp_enable"]}}]),
        1,
    );
    assert_eq!(r, json!({}));
    let r = c.result(
        "monitor_cond",
        json!(["Open_vSwitch", "v2", {"Bridge": [{"columns": ["name"], "where": [["name", "==", "br1"]]}]}]),
        2,
    );
    assert_eq!(r, json!({}));
    add_bridge(&mut c, &ovs, "br0", 3);
    let n = c.notification("update");
    let (_, row) = n["params"][1]["Bridge"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(row, &json!({"new": {"name": "br0", "stp_enable": false}}));
    add_bridge(&mut c, &ovs, "br1", 4);
    let n2 = c.notification("update2");
    let (_, row) = n2["params"][1]["Bridge"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(row, &json!({"insert": {"name": "br1"}}));
    c.result("transact", json!(["Open_vSwitch", {"op": "update", "table": "Bridge", "where": [["name", "==", "br0"]], "row": {"stp_enable": true}}]), 5);
    let n = c.notification("update");
    let (_, row) = n["params"][1]["Bridge"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(row, &json!({"old": {"stp_enable": false}, "new": {"name": "br0", "stp_enable": true}}));
    // Widen the condition: br0 now enters the monitor as an insert.
    let r = c.call("monitor_cond_change", json!(["v2", "v2b", {"Bridge": [{"where": [true]}]}]), 6);
    assert!(r["error"].is_null(), "{r}");
    let n = c.notification("update2");
    assert_eq!(n["params"][0], "v2b");
    assert_eq!(n["params"][1]["Bridge"].as_object().unwrap().len(), 1);
    assert_eq!(c.result("monitor_cancel", json!(["v1"]), 7), json!({}));
    assert_eq!(c.call("monitor_cancel", json!(["v1"]), 8)["error"]["error"], "unknown monitor");
}

#[test]
fn locks_and_assert() {
    let s = TestServer::start();
    let mut a = RawClient::connect(&s.sock());
    let mut b = RawClient::connect(&s.sock());
    assert_eq!(a.result("lock", json!(["ovs_vswitchd"]), 1), json!({"locked": true}));
    assert_eq!(b.result("lock", json!(["ovs_vswitchd"]), 1), json!({"locked": false}));
    let assert_op = json!(["Open_vSwitch", {"op": "assert", "lock": "ovs_vswitchd"}]);
    assert_eq!(a.result("transact", assert_op.clone(), 2), json!([{}]));
    assert_eq!(b.result("transact", assert_op.clone(), 2)[0]["error"], "not owner");
    assert_eq!(a.result("unlock", json!(["ovs_vswitchd"]), 3), json!({}));
    assert_eq!(b.notification("locked")["params"], json!(["ovs_vswitchd"]));
    assert_eq!(a.result("steal", json!(["ovs_vswitchd"]), 4), json!({"locked": true}));
    assert_eq!(b.notification("stolen")["params"], json!(["ovs_vswitchd"]));
    assert_eq!(b.result("transact", assert_op, 5)[0]["error"], "not owner");
    // Closing the owner hands the lock on.
    let mut c = RawClient::connect(&s.sock());
    assert_eq!(c.result("lock", json!(["ovs_vswitchd"]), 1), json!({"locked": false}));
    drop(a);
    assert_eq!(c.notification("locked")["params"], json!(["ovs_vswitchd"]));
}

#[test]
fn wait_blocks_until_change_and_cancel() {
    let s = TestServer::start();
    let mut c = RawClient::connect(&s.sock());
    let ovs = init(&mut c);
    let wait = |until: &str, timeout: u64| {
        json!(["Open_vSwitch", {"op": "wait", "table": "Open_vSwitch", "where": [["_uuid", "==", ["uuid", ovs]]],
            "columns": ["cur_cfg"], "until": until, "rows": [{"cur_cfg": 0}], "timeout": timeout}])
    };
    assert_eq!(c.result("transact", wait("==", 0), 1), json!([{}]));
    assert_eq!(c.result("transact", wait("!=", 0), 2)[0]["error"], "timed out");
    let t0 = Instant::now();
    assert_eq!(c.result("transact", wait("!=", 300), 3)[0]["error"], "timed out");
    assert!(t0.elapsed() >= Duration::from_millis(250));
    // A blocked wait completes when another client makes it true.
    c.send(&json!({"method": "transact", "params": wait("!=", 10_000), "id": 4}));
    let mut d = RawClient::connect(&s.sock());
    std::thread::sleep(Duration::from_millis(100));
    d.result("transact", json!(["Open_vSwitch", {"op": "update", "table": "Open_vSwitch", "where": [], "row": {"cur_cfg": 5}}]), 1);
    let r = c.recv().unwrap();
    assert_eq!((r["id"].clone(), r["result"].clone()), (json!(4), json!([{}])));
    // Cancel a wait that would never finish.
    let forever = json!(["Open_vSwitch", {"op": "wait", "table": "Open_vSwitch", "where": [], "columns": ["cur_cfg"], "until": "==", "rows": []}]);
    c.send(&json!({"method": "transact", "params": forever, "id": 5}));
    std::thread::sleep(Duration::from_millis(50));
    c.send(&json!({"method": "cancel", "params": [5], "id": null}));
    let r = c.recv().unwrap();
    assert_eq!(r["id"], 5);
    assert_eq!(r["error"]["error"], "canceled");
    assert_eq!(c.result("echo", json!([]), 6), json!([]));
    // Stats: six transactions were answered (the canceled one was not); the timed-out wait of
    // 300 ms and the blocked one count what their clients waited.
    let st = s.handle().stats();
    assert_eq!(st.transactions, 6, "{st:?}");
    assert!(st.latency_sum_us >= 300_000, "{st:?}");
    let fast = st.latency_le.iter().find(|(b, _)| *b == 100_000).map(|(_, n)| *n);
    assert!(fast.is_some_and(|n| n <= 5), "the 300 ms wait is not in a 100 ms bucket: {st:?}");
}

#[test]
fn bad_input_gets_errors_not_crashes() {
    let s = TestServer::start();
    let mut c = RawClient::connect(&s.sock());
    let ovs = init(&mut c);
    let cases = [
        (
            json!(["Open_vSwitch", {"op": "select", "table": "Bridge", "where": [], "columns": ["nope"]}]),
            "unknown column",
        ),
        (json!(["Open_vSwitch", {"op": "insert", "table": "Bridge", "row": {"name": 5}}]), "syntax error"),
        (json!(["Open_vSwitch", {"op": "insert", "table": "Nope", "row": {}}]), "unknown table"),
        (json!(["Open_vSwitch", {"op": "frob"}]), "unknown operation"),
        (json!(["Open_vSwitch", 17]), "syntax error"),
        (
            json!(["Open_vSwitch", {"op": "update", "table": "Bridge", "where": [], "row": {"name": "x"}}]),
            "constraint violation",
        ),
        (
            json!(["Open_vSwitch", {"op": "insert", "table": "Open_vSwitch", "row": {}}]),
            "constraint violation",
        ),
        (json!(["Open_vSwitch", {"op": "abort"}]), "aborted"),
        (
            json!(["Open_vSwitch", {"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": [["next_cfg", "/=", 0]]}]),
            "domain error",
        ),
        (
            json!(["Open_vSwitch", {"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": [["next_cfg", "+=", i64::MAX]], }, {"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": [["next_cfg", "+=", i64::MAX]]}]),
            "range error",
        ),
        (
            json!(["Open_vSwitch", {"op": "insert", "table": "Port", "row": {"interfaces": ["uuid", "not-a-uuid"]}}]),
            "syntax error",
        ),
        (
            json!(["Open_vSwitch", {"op": "insert", "table": "Bridge", "uuid-name": "a", "row": {"name": "a"}}, {"op": "insert", "table": "Bridge", "uuid-name": "a", "row": {"name": "b"}}]),
            "duplicate uuid-name",
        ),
    ];
    for (i, (txn, want)) in cases.iter().enumerate() {
        let r = c.result("transact", txn.clone(), 100 + i as u64);
        let errs: Vec<&Value> = r.as_array().unwrap().iter().filter(|x| x.get("error").is_some()).collect();
        assert_eq!(errs.len(), 1, "{txn} → {r}");
        assert_eq!(errs[0]["error"], *want, "{txn} → {r}");
    }
    // Index uniqueness (Bridge.name) is a commit-time constraint violation.
    add_bridge(&mut c, &ovs, "dup", 200);
    let r = c.result(
        "transact",
        json!(["Open_vSwitch",
            {"op": "insert", "table": "Bridge", "uuid-name": "b", "row": {"name": "dup"}},
            {"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": [["bridges", "insert", ["named-uuid", "b"]]]}]),
        201,
    );
    assert_eq!(r.as_array().unwrap().len(), 3, "{r}");
    assert_eq!(r[2]["error"], "constraint violation");
    // Malformed JSON: error reply, then the connection is closed.
    c.send_raw(b"{\"method\": \"echo\", \"params\": [}, \"id\": 1}").unwrap();
    let r = c.recv().unwrap();
    assert_eq!(r["error"]["error"], "syntax error");
    assert!(c.recv().is_none(), "connection should be closed");
    // Garbage between messages closes too.
    let mut g = RawClient::connect(&s.sock());
    g.send_raw(b"hello").unwrap();
    assert_eq!(g.recv().unwrap()["error"]["error"], "syntax error");
    // Others are unaffected.
    let mut d = RawClient::connect(&s.sock());
    assert_eq!(d.result("echo", json!([1]), 1), json!([1]));
}

#[test]
fn huge_message_is_refused() {
    let s = TestServer::start();
    let mut c = RawClient::connect(&s.sock());
    // 100 MB in one "line": the server answers with an error and closes after 64 MiB.
    let mut big = Vec::with_capacity(100 << 20);
    big.extend_from_slice(b"{\"method\":\"echo\",\"id\":1,\"params\":[\"");
    big.resize(100 << 20, b'a');
    let sock = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut sock = sock;
        let _ = sock.write_all(&big); // fails with EPIPE once the server closes
    });
    let r = c.recv().expect("error reply before close");
    assert_eq!(r["error"]["error"], "syntax error");
    assert!(r["error"]["details"].as_str().unwrap().contains("exceeds"));
    let _ = writer.join();
    let mut d = RawClient::connect(&s.sock());
    assert_eq!(d.result("echo", json!([2]), 1), json!([2]));
}

#[test]
fn client_that_never_reads_is_dropped() {
    let s = TestServer::with_limits(Limits { max_output: 256 << 10, ..Limits::default() });
    let mut w = RawClient::connect(&s.sock());
    let ovs = init(&mut w);
    let mut lazy = RawClient::connect(&s.sock());
    lazy.result("monitor", json!(["Open_vSwitch", 1, {"Open_vSwitch": {}}]), 1);
    // The lazy client now never reads while the writer produces ~ many MB of updates.
    let blob = "x".repeat(8 << 10);
    let t0 = Instant::now();
    for i in 0..600u64 {
        let r = w.result(
            "transact",
            json!(["Open_vSwitch", {"op": "update", "table": "Open_vSwitch", "where": [["_uuid", "==", ["uuid", ovs]]],
                "row": {"external_ids": ["map", [["k", format!("{blob}{i}")]]]}}]),
            10 + i,
        );
        assert_eq!(r, json!([{"count": 1}]));
    }
    assert!(t0.elapsed() < Duration::from_secs(30), "writer was slowed down by the lazy client");
    // The lazy client was disconnected: after draining the socket it sees EOF.
    let deadline = Instant::now() + Duration::from_secs(10);
    while lazy.recv().is_some() {
        assert!(Instant::now() < deadline, "lazy client still connected");
    }
    assert!(s.handle().connections() <= 1, "lazy connection not closed");
}
