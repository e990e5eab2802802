//! Per-client bounds on the event loop: OvS's inactivity probe, the half-sent-message bound,
//! making room at the connection limit, and blocked waits woken by in-process commits.

mod common;
use common::{RawClient, TestServer};
use ovsdb::server::Limits;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Reads raw messages until EOF (None) or until `stop` says so; bounded by the read timeout.
fn read_until(s: &mut UnixStream, mut stop: impl FnMut(&Value) -> bool) -> Option<Value> {
    let mut splitter = ovsdb::jsonrpc::Splitter::new(1 << 20);
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("read (timed out?)");
        if n == 0 {
            return None;
        }
        let mut msgs = Vec::new();
        splitter.feed(&buf[..n], &mut |m| msgs.push(m)).expect("framing");
        for m in msgs {
            let v: Value = serde_json::from_slice(&m).expect("json");
            if stop(&v) {
                return Some(v);
            }
        }
    }
}

fn raw(s: &TestServer) -> UnixStream {
    let c = UnixStream::connect(s.sock()).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    c
}

#[test]
fn silent_client_is_probed_then_dropped_but_one_that_answers_stays() {
    let limits = Limits { probe_interval: Some(Duration::from_millis(300)), ..Limits::default() };
    let s = TestServer::with_limits(limits);
    let mut silent = raw(&s);
    let mut polite = raw(&s);
    let answering = std::thread::spawn(move || {
        // Answers three probes, then checks it is still served.
        for _ in 0..3 {
            let probe = read_until(&mut polite, |v| v["method"] == "echo").expect("probe");
            let reply = json!({"id": probe["id"], "result": [], "error": null});
            polite.write_all(reply.to_string().as_bytes()).unwrap();
        }
        polite
            .write_all(json!({"method": "echo", "params": ["still"], "id": 7}).to_string().as_bytes())
            .unwrap();
        read_until(&mut polite, |v| v["id"] == 7)
    });
    let probe = read_until(&mut silent, |v| v.get("method").is_some()).expect("a probe before EOF");
    assert_eq!(probe, json!({"method": "echo", "params": [], "id": "echo"}));
    assert!(read_until(&mut silent, |_| false).is_none(), "the silent client must be disconnected");
    let reply = answering.join().unwrap().expect("the answering client is still served");
    assert_eq!(reply["result"], json!(["still"]));
}

#[test]
fn client_that_trickles_a_message_is_dropped() {
    let limits =
        Limits { probe_interval: None, stall_timeout: Duration::from_millis(500), ..Limits::default() };
    let s = TestServer::with_limits(limits);
    let mut c = raw(&s);
    c.write_all(b"{\"method\":\"echo\",\"params\":[\"").unwrap();
    // One byte every 50 ms keeps the socket busy but never ends the message; bounded at 10 s.
    let mut dropped = false;
    for _ in 0..200 {
        std::thread::sleep(Duration::from_millis(50));
        if c.write_all(b"a").is_err() {
            dropped = true;
            break;
        }
    }
    if !dropped {
        c.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut b = [0u8; 64];
        dropped = matches!(c.read(&mut b), Ok(0));
    }
    assert!(dropped, "a message trickled for 10 s was not cut off");
    // Others are served.
    let mut d = RawClient::connect(&s.sock());
    assert_eq!(d.result("echo", json!([1]), 1), json!([1]));
}

#[test]
fn at_the_connection_limit_the_longest_idle_client_makes_room() {
    let s = TestServer::with_limits(Limits { max_connections: 10, ..Limits::default() });
    let mut oldest = raw(&s);
    let mut idle: Vec<UnixStream> = (0..9).map(|_| raw(&s)).collect();
    // Wait (bounded) until all ten are accepted, so "oldest" really is the longest idle.
    for _ in 0..1000 {
        if s.handle().connections() == 10 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(s.handle().connections(), 10);
    // The others have said something since; `oldest` never has.
    for c in idle.iter_mut() {
        c.write_all(json!({"method": "echo", "params": [], "id": 1}).to_string().as_bytes()).unwrap();
        assert!(read_until(c, |v| v["id"] == 1).is_some());
    }
    let mut newcomer = RawClient::connect(&s.sock());
    assert_eq!(newcomer.result("echo", json!(["in"]), 1), json!(["in"]));
    assert!(read_until(&mut oldest, |_| false).is_none(), "the longest-idle client was kept");
    assert!(s.handle().connections() <= 10);
}

#[test]
fn blocked_wait_is_released_by_an_in_process_commit() {
    let s = TestServer::start();
    let mut c = RawClient::connect(&s.sock());
    c.result("transact", json!(["Open_vSwitch", {"op": "insert", "table": "Open_vSwitch", "row": {}}]), 1);
    let wait = json!(["Open_vSwitch", {"op": "wait", "table": "Open_vSwitch", "where": [], "columns": ["cur_cfg"],
        "until": "!=", "rows": [{"cur_cfg": 0}], "timeout": 20_000}]);
    c.send(&json!({"method": "transact", "params": wait, "id": 2}));
    // The daemon's own session commits from another thread, not through the loop.
    let db = s.handle().database().clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        db.session()
            .transact(json!([{"op": "update", "table": "Open_vSwitch", "where": [], "row": {"cur_cfg": 3}}]))
    });
    assert_eq!(writer.join().unwrap(), json!([{"count": 1}]));
    let r = c.recv().expect("reply to the wait");
    assert_eq!((r["id"].clone(), r["result"].clone()), (json!(2), json!([{}])));
}

#[test]
fn blocked_waits_are_bounded_per_client_and_ids_are_unique() {
    let s = TestServer::start();
    let mut c = RawClient::connect(&s.sock());
    c.result("transact", json!(["Open_vSwitch", {"op": "insert", "table": "Open_vSwitch", "row": {}}]), 1);
    let forever = json!(["Open_vSwitch", {"op": "wait", "table": "Open_vSwitch", "where": [], "columns": ["cur_cfg"],
        "until": "==", "rows": []}]);
    for id in 100..164 {
        c.send(&json!({"method": "transact", "params": forever, "id": id}));
    }
    // The 65th is refused, and so is an id that is still waiting.
    let r = c.call("transact", forever.clone(), 164);
    assert_eq!(r["error"]["error"], "resources exhausted", "{r}");
    c.send(&json!({"method": "cancel", "params": [100], "id": null}));
    assert_eq!(c.recv().expect("canceled")["error"]["error"], "canceled");
    let r = c.call("transact", forever.clone(), 101);
    assert_eq!(r["error"]["error"], "duplicate request ID", "{r}");
    // The freed slot takes a new one; the client is still served.
    c.send(&json!({"method": "transact", "params": forever, "id": 200}));
    assert_eq!(c.result("echo", json!(["ok"]), 300), json!(["ok"]));
}
