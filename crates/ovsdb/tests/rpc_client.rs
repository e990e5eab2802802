//! The blocking client (`ovsdb::client`) against the embedded server, over unix and TCP, and
//! against a scripted fake server for echo requests and timeouts.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::time::Duration;

use common::TestServer;
use ovsdb::client::{Client, ClientError};
use ovsdb::server::{Limits, SchemaSource, Server, ServerConfig};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(10);

fn remote(s: &TestServer) -> String {
    format!("unix:{}", s.sock().display())
}

#[test]
fn lists_gets_schema_echoes_and_transacts() {
    let s = TestServer::start();
    let mut c = Client::connect(&remote(&s), T).unwrap();
    assert!(c.list_dbs().unwrap().contains(&"Open_vSwitch".to_string()));
    assert_eq!(c.get_schema("Open_vSwitch").unwrap()["name"], "Open_vSwitch");
    c.echo().unwrap();
    let r = c
        .transact("Open_vSwitch", &[json!({"op": "insert", "table": "Open_vSwitch", "row": {"next_cfg": 3}})])
        .unwrap();
    assert!(r[0]["uuid"][1].is_string(), "{r:?}");
    let r =
        c.transact("Open_vSwitch", &[json!({"op": "select", "table": "Open_vSwitch", "where": []})]).unwrap();
    assert_eq!(r[0]["rows"][0]["next_cfg"], 3);
}

#[test]
fn a_failing_operation_is_a_typed_error_and_nothing_commits() {
    let s = TestServer::start();
    let mut c = Client::connect(&remote(&s), T).unwrap();
    let ops = [
        json!({"op": "insert", "table": "Open_vSwitch", "row": {}}),
        json!({"op": "wait", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg"], "until": "==", "rows": [{"next_cfg": 99}], "timeout": 0}),
    ];
    match c.transact("Open_vSwitch", &ops) {
        Err(ClientError::Transaction { index: 1, error }) => assert_eq!(error.error, "timed out"),
        other => panic!("expected a failure at op 1, got {other:?}"),
    }
    let r =
        c.transact("Open_vSwitch", &[json!({"op": "select", "table": "Open_vSwitch", "where": []})]).unwrap();
    assert_eq!(r[0]["rows"], json!([]), "the insert before the failing wait must not have committed");
    assert!(matches!(c.call("no_such_method", json!([])), Err(ClientError::Rpc { .. })));
}

#[test]
fn works_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let h = Server::start(ServerConfig {
        schema: SchemaSource::Vswitch,
        db_file: dir.path().join("conf.db"),
        unix_socket: dir.path().join("db.sock"),
        socket_mode: 0o600,
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        limits: Limits::default(),
    })
    .unwrap();
    let addr = h.tcp_addr().expect("tcp listener");
    let mut c = Client::connect(&format!("tcp:{addr}"), T).unwrap();
    c.echo().unwrap();
    h.shutdown();
}

#[test]
fn waits_for_cur_cfg_through_a_monitor() {
    let s = TestServer::start();
    let mut c = Client::connect(&remote(&s), T).unwrap();
    let r = c
        .transact(
            "Open_vSwitch",
            &[json!({"op": "insert", "table": "Open_vSwitch", "row": {"next_cfg": 1, "cur_cfg": 0}})],
        )
        .unwrap();
    let uuid = r[0]["uuid"].clone();
    let sock = remote(&s);
    // Plays ovs-vswitchd: marks the configuration applied once the waiter is monitoring.
    let daemon = std::thread::spawn(move || {
        let mut d = Client::connect(&sock, T).unwrap();
        d.monitor("Open_vSwitch", json!("d"), json!({"Open_vSwitch": {"columns": ["next_cfg"]}})).unwrap();
        d.transact("Open_vSwitch", &[json!({"op": "update", "table": "Open_vSwitch", "where": [["_uuid", "==", uuid]], "row": {"cur_cfg": 1}})])
            .unwrap();
    });
    assert_eq!(c.wait_cur_cfg("Open_vSwitch", 1).unwrap(), 1);
    daemon.join().unwrap();
    // Already reached: returns from the initial contents.
    assert_eq!(c.wait_cur_cfg("Open_vSwitch", 0).unwrap(), 1);
}

/// A fake server: runs `script` on the first accepted connection.
fn fake(
    script: impl FnOnce(std::os::unix::net::UnixStream) + Send + 'static,
) -> (tempfile::TempDir, String, std::thread::JoinHandle<()>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.sock");
    let l = UnixListener::bind(&path).unwrap();
    let h = std::thread::spawn(move || script(l.accept().unwrap().0));
    (dir, format!("unix:{}", path.display()), h)
}

fn read_msg(s: &mut std::os::unix::net::UnixStream) -> Value {
    let mut split = ovsdb::jsonrpc::Splitter::new(1 << 20);
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "client hung up");
        let mut out = Vec::new();
        split.feed(&buf[..n], &mut |m| out.push(m)).unwrap();
        if let Some(m) = out.first() {
            return serde_json::from_slice(m).unwrap();
        }
    }
}

#[test]
fn answers_the_servers_echo_requests_while_waiting() {
    let (_dir, remote, h) = fake(|mut s| {
        s.set_read_timeout(Some(T)).unwrap();
        let req = read_msg(&mut s);
        s.write_all(br#"{"method":"echo","params":["probe"],"id":"e1"}{"method":"update","params":["m",{}],"id":null}"#).unwrap();
        let echo = read_msg(&mut s);
        assert_eq!(echo, json!({"id": "e1", "result": ["probe"], "error": null}));
        let reply = json!({"id": req["id"], "result": ["Open_vSwitch"], "error": null});
        s.write_all(reply.to_string().as_bytes()).unwrap();
    });
    let mut c = Client::connect(&remote, T).unwrap();
    assert_eq!(c.list_dbs().unwrap(), ["Open_vSwitch"]);
    h.join().unwrap();
    assert_eq!(c.next_notification().unwrap()["method"], "update");
}

#[test]
fn a_silent_server_is_a_timeout_and_a_closed_one_an_error() {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let (_dir, remote, h) = fake(move |mut s| {
        let _ = read_msg(&mut s);
        let _ = wait.recv(); // stays silent until the client has timed out
    });
    let mut c = Client::connect(&remote, Duration::from_millis(100)).unwrap();
    assert!(matches!(c.echo(), Err(ClientError::Timeout(_))));
    done.send(()).unwrap();
    h.join().unwrap();
    assert!(matches!(c.echo(), Err(ClientError::Closed | ClientError::Io(_))));
    let (_dir2, remote2, h2) = fake(|mut s| {
        let _ = read_msg(&mut s);
        s.write_all(b"not json").unwrap();
    });
    let mut c = Client::connect(&remote2, T).unwrap();
    assert!(matches!(c.echo(), Err(ClientError::Frame(_))));
    h2.join().unwrap();
    assert!(matches!(Client::connect("unix:/nonexistent/x.sock", T), Err(ClientError::Connect { .. })));
}
