//! The real Debian `ovs-vsctl` drives rvswitchd through its embedded OVSDB server: bridges and
//! ports appear in the datapath, VLAN changes take effect, status comes back (ofport,
//! link_state, error, statistics), and ovs-vsctl's wait for `cur_cfg` returns once the change is
//! live. Also libvirt's exact command lines, and crash safety under concurrent transactions.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, Vm};
use serde_json::{json, Value};
use testbed::{require_root, unique, wait_until};

/// Runs ovs-vsctl against the daemon's database; waits for cur_cfg like a user's call does.
fn vsctl(d: &Daemon, args: &[&str]) -> Result<String, String> {
    d.vsctl(args)
}

#[test]
fn ovs_vsctl_builds_and_changes_the_switch() {
    if !require_root("ovs_vsctl_builds_and_changes_the_switch") || !common::have_ovs_vsctl() {
        return;
    }
    let (a, b) = (Vm::new(1), Vm::new(2));
    let d = Daemon::start("");
    // Unique: the bridge's internal port is a link in the host namespace, which a parallel run
    // of this test (another engineer's, another CI job's) would also create.
    let br = unique("brv");
    let br = br.as_str();
    vsctl(&d, &["add-br", br]).unwrap();
    vsctl(&d, &["add-port", br, &a.port, "tag=10"]).unwrap();
    // ovs-vsctl returned after waiting for cur_cfg: the port is already live.
    vsctl(&d, &["add-port", br, &b.port, "tag=10"]).unwrap();
    assert!(a.ping(&b, 2), "no traffic after ovs-vsctl add-port\n{}", d.log());

    assert_eq!(vsctl(&d, &["list-br"]).unwrap(), br);
    assert_eq!(vsctl(&d, &["iface-to-br", &a.port]).unwrap(), br);
    assert_eq!(vsctl(&d, &["get", "Interface", &a.port, "link_state"]).unwrap(), "up");
    let ofport: i64 = vsctl(&d, &["get", "Interface", &a.port, "ofport"]).unwrap().parse().unwrap();
    assert!((1..65279).contains(&ofport), "ofport {ofport}");
    assert_eq!(vsctl(&d, &["get", "Interface", br, "ofport"]).unwrap(), "65534");
    let mac = vsctl(&d, &["get", "Interface", &a.port, "mac_in_use"]).unwrap();
    assert_eq!(mac.len(), 19, "mac_in_use {mac}");
    let show = vsctl(&d, &["show"]).unwrap();
    assert!(show.contains(&format!("Bridge {br}")) && show.contains("tag: 10"), "{show}");
    let dpid = vsctl(&d, &["get", "Bridge", br, "datapath_id"]).unwrap();
    assert_eq!(dpid.trim_matches('"').len(), 16, "datapath_id {dpid}");

    // VLAN change through the database takes effect on the datapath.
    vsctl(&d, &["set", "Port", &b.port, "tag=20"]).unwrap();
    assert!(!a.ping(&b, 1), "VLAN 10 reached VLAN 20");
    assert_eq!(d.port(&b.port).tag, Some(20));
    vsctl(&d, &["set", "Port", &b.port, "tag=10"]).unwrap();
    assert!(a.ping(&b, 3));

    // A device that does not exist: ovs-vsctl succeeds but warns with the error ovs-vswitchd
    // writes (exactly as with OvS), and ofport is -1.
    let out = Command::new("ovs-vsctl")
        .arg(format!("--db=unix:{}", d.db_socket().display()))
        .args(["--timeout=10", "add-port", br, "nosuchdev0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    assert!(
        err.contains("Error detected while setting up 'nosuchdev0': could not open network device nosuchdev0 (No such device)"),
        "{err}"
    );
    assert_eq!(vsctl(&d, &["get", "Interface", "nosuchdev0", "ofport"]).unwrap(), "-1");

    // Statistics appear (written every 5 s).
    let ok = wait_until(Duration::from_secs(12), || {
        vsctl(&d, &["get", "Interface", &a.port, "statistics:rx_packets"])
            .is_ok_and(|v| v.parse::<u64>().is_ok_and(|n| n > 0))
    });
    assert!(ok, "no statistics: {:?}", vsctl(&d, &["get", "Interface", &a.port, "statistics"]));

    vsctl(&d, &["del-port", &b.port]).unwrap();
    assert!(!a.ping(&b, 1));
    assert!(d.show().bridges[0].ports.iter().all(|p| p.name != b.port));
    vsctl(&d, &["del-br", br]).unwrap();
    assert!(d.show().bridges.is_empty());
}

#[test]
fn libvirt_attach_and_detach_lines() {
    if !require_root("libvirt_attach_and_detach_lines") || !common::have_ovs_vsctl() {
        return;
    }
    let (vm, peer) = (Vm::new(1), Vm::new(2));
    let br = unique("br-in");
    let d = Daemon::start(&common::bridge_config(&br, &[(&peer.port, "tag = 10")]));
    common::wait_ports_up(&d, &[&peer.port]);
    let p = vm.port.as_str();
    // The exact line libvirt 9.0 runs when a VM with <virtualport type='openvswitch'/> starts
    // (only the device name and MAC differ; --db points at this test's daemon). The MAC is the
    // VM's own, as libvirt's is: with port security on by default, any other is a spoof.
    let attach = common::libvirt_attach(&br, p, &vm.mac.to_string());
    let attached_mac = format!("external-ids:attached-mac=\"{}\"", vm.mac);
    let attach: Vec<&str> = attach.iter().map(String::as_str).collect();
    let t = Instant::now();
    vsctl(&d, &attach).unwrap();
    eprintln!("attach took {:?}", t.elapsed());
    assert!(vm.ping(&peer, 2), "VM not switched on VLAN 10 after libvirt's attach");
    assert_eq!(vsctl(&d, &["get", "Interface", p, "external-ids:iface-status"]).unwrap(), "active");
    // libvirt polls this for domain interface stats.
    let stats = vsctl(&d, &["get", "Interface", p, "statistics"]).unwrap();
    assert!(stats.starts_with('{'), "{stats}");
    // The same attach again (VM restart without a clean stop) is harmless.
    vsctl(&d, &attach).unwrap();
    vsctl(&d, &["--", "--if-exists", "del-port", p]).unwrap();
    assert!(!vm.ping(&peer, 1));
    vsctl(&d, &["--", "--if-exists", "del-port", p]).unwrap();
    // The older form (del-port then add-port in one transaction), as in the OVSDB issue.
    let replace = [
        "--",
        "--if-exists",
        "del-port",
        p,
        "--",
        "add-port",
        &br,
        p,
        "tag=10",
        "--",
        "set",
        "Interface",
        p,
        attached_mac.as_str(),
        "--",
        "set",
        "Interface",
        p,
        "external-ids:iface-status=active",
    ];
    vsctl(&d, &replace).unwrap();
    vsctl(&d, &replace).unwrap();
    assert!(vm.ping(&peer, 3), "not switched after del-port + add-port");
    vsctl(&d, &["--", "--if-exists", "del-port", p]).unwrap();
    // The config-file bridge and its port are untouched by all this.
    assert!(d.show().bridges[0].ports.iter().any(|x| x.name == peer.port));
}

/// One RFC 7047 request on a fresh connection; returns the reply's `result`.
fn rpc(stream: &mut UnixStream, id: u64, method: &str, params: Value) -> Option<Value> {
    let msg = json!({"id": id, "method": method, "params": params});
    stream.write_all(msg.to_string().as_bytes()).ok()?;
    let mut values = serde_json::Deserializer::from_reader(&*stream).into_iter::<Value>();
    // Skip notifications; bounded by the read timeout set on the stream.
    for _ in 0..100 {
        let v = values.next()?.ok()?;
        if v["id"] == json!(id) {
            return v.get("result").cloned();
        }
    }
    None
}

/// Acknowledgements counted across clients before the kill.
const ACKS_BEFORE_KILL: usize = 200;
/// Most transactions one client sends: far more than the kill lets through, so every client is
/// still sending when the daemon dies (and the loop is bounded however the kill goes).
const MAX_TXNS_PER_CLIENT: u64 = 20_000;

/// What one client saw: the keys whose transaction was acknowledged, and the key of the
/// transaction in flight when the connection broke (sent, never answered).
#[derive(Default)]
struct ClientLog {
    acked: Vec<String>,
    in_flight: Option<String>,
}

/// Inserts `k{client}-{i}` into the root row's external_ids, one transaction each, until the
/// connection breaks; bumps `acks` after each acknowledgement.
fn transact_until_killed(db: &std::path::Path, client: usize, acks: &AtomicUsize) -> ClientLog {
    let mut log = ClientLog::default();
    let Ok(mut stream) = UnixStream::connect(db) else { return log };
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for i in 0..MAX_TXNS_PER_CLIENT {
        let key = format!("k{client}-{i}");
        let ops = json!(["Open_vSwitch", {"op": "mutate", "table": "Open_vSwitch", "where": [],
            "mutations": [["external_ids", "insert", ["map", [[key, "1"]]]]]}]);
        match rpc(&mut stream, i, "transact", ops) {
            Some(r) if r[0].get("error").is_none() => {
                log.acked.push(key);
                acks.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                log.in_flight = Some(key);
                break;
            }
        }
    }
    log
}

#[test]
fn acknowledged_transactions_survive_kill_9() {
    if !require_root("acknowledged_transactions_survive_kill_9") {
        return;
    }
    let (a, b) = (Vm::new(1), Vm::new(2));
    let mut d = Daemon::start(&common::bridge_config(
        &unique("br-k9"),
        &[(&a.port, "tag = 7"), (&b.port, "tag = 7")],
    ));
    common::wait_ports_up(&d, &[&a.port, &b.port]);
    assert!(a.ping(&b, 3));
    let db = d.db_socket();

    // 4 clients transact until the daemon dies; it is killed once the clients have counted
    // ACKS_BEFORE_KILL acknowledgements, so the kill always lands while they are sending.
    let acks = AtomicUsize::new(0);
    let logs: Vec<ClientLog> = std::thread::scope(|s| {
        let (db, acks) = (&db, &acks);
        let clients: Vec<_> = (0..4).map(|c| s.spawn(move || transact_until_killed(db, c, acks))).collect();
        let enough = wait_until(Duration::from_secs(60), || acks.load(Ordering::Relaxed) >= ACKS_BEFORE_KILL);
        d.kill9();
        assert!(enough, "only {} acknowledgements in 60 s", acks.load(Ordering::Relaxed));
        clients.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let total: usize = logs.iter().map(|l| l.acked.len()).sum();
    let in_flight: Vec<&String> = logs.iter().filter_map(|l| l.in_flight.as_ref()).collect();
    assert_eq!(in_flight.len(), logs.len(), "a client stopped before the kill (all must still be sending)");

    d.restart();
    common::wait_ports_up(&d, &[&a.port, &b.port]);
    assert!(a.ping(&b, 2), "datapath not restored after kill -9");
    let mut stream = UnixStream::connect(d.db_socket()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let select = json!(["Open_vSwitch", {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["external_ids"]}]);
    let r = rpc(&mut stream, 1, "transact", select).unwrap();
    let ids = r[0]["rows"][0]["external_ids"].to_string();
    let present = |k: &String| ids.contains(&format!("\"{k}\""));
    let lost: Vec<&String> = logs.iter().flat_map(|l| &l.acked).filter(|k| !present(k)).collect();
    let unacked_kept = in_flight.iter().filter(|k| present(k)).count();
    eprintln!(
        "kill -9 after {ACKS_BEFORE_KILL}+ acks: {total} acknowledged, {} lost; of {} in flight, {unacked_kept} committed",
        lost.len(),
        in_flight.len()
    );
    assert!(
        lost.is_empty(),
        "{} of {total} acknowledged transactions lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

/// One `(action, name, ofport)` per row of an `ovsdb-client --format=json monitor` line (columns
/// `name ofport`): action is "initial", "insert", "delete", "old" or "new".
fn monitor_rows(line: &str) -> Vec<(String, Value, Value)> {
    let Ok(v) = serde_json::from_str::<Value>(line) else { return Vec::new() };
    let rows = v["data"].as_array().cloned().unwrap_or_default();
    rows.iter().map(|r| (r[1].as_str().unwrap_or("").to_string(), r[2].clone(), r[3].clone())).collect()
}

#[test]
fn ovsdb_client_sees_the_daemon_write_ofport() {
    if !require_root("ovsdb_client_sees_the_daemon_write_ofport") || !common::have_ovs_vsctl() {
        return;
    }
    use std::io::BufRead;
    let a = Vm::new(1);
    let d = Daemon::start("");
    let br = unique("br-mo");
    vsctl(&d, &["add-br", &br]).unwrap();
    let db = format!("unix:{}", d.db_socket().display());
    let child = Command::new("ovsdb-client")
        .args(["--format=json", "monitor", &db, "Open_vSwitch", "Interface", "name", "ofport"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = testbed::ChildGuard::new(child);
    let out = guard.child_mut().stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    // Forwards the monitor's lines until it is killed (EOF); ovsdb-client flushes each update.
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The initial dump (the bridge's own interface) first, so everything after it is an update.
    let initial = lines.recv_timeout(Duration::from_secs(10)).expect("monitor printed no initial dump");
    let rows = monitor_rows(&initial);
    assert!(
        !rows.is_empty() && rows.iter().all(|(action, ..)| action == "initial"),
        "first monitor output is not the initial dump: {initial}"
    );
    assert!(rows.iter().all(|(_, name, _)| name != &json!(a.port)), "port already there: {initial}");

    vsctl(&d, &["add-port", &br, &a.port]).unwrap();
    let ofport: i64 = vsctl(&d, &["get", "Interface", &a.port, "ofport"]).unwrap().parse().unwrap();
    assert!(ofport > 0, "ofport {ofport}");
    // The update that carries it: an insert with ofport already set, or a modify whose new row
    // has it. Bounded by count and by the per-line wait.
    let mut updates = Vec::new();
    let mut seen = false;
    for _ in 0..20 {
        let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) else { break };
        seen = monitor_rows(&line).iter().any(|(action, name, port)| {
            (action == "insert" || action == "new") && name == &json!(a.port) && port == &json!(ofport)
        });
        updates.push(line);
        if seen {
            break;
        }
    }
    eprintln!("{} monitor update(s) until ofport {ofport} of {} was seen", updates.len(), a.port);
    drop(guard); // kills the monitor by PID; the reader sees EOF
    reader.join().unwrap();
    assert!(seen, "no monitor update showed {} with ofport {ofport}:\n{}", a.port, updates.join("\n"));
}

#[test]
fn config_file_and_ovs_vsctl_share_one_database() {
    if !require_root("config_file_and_ovs_vsctl_share_one_database") || !common::have_ovs_vsctl() {
        return;
    }
    let (a, b, c) = (Vm::new(1), Vm::new(2), Vm::new(3));
    let (file_br, cli_br) = (unique("br-fi"), unique("br-cl"));
    let file_cfg = common::bridge_config(&file_br, &[(&a.port, "tag = 10"), (&b.port, "tag = 10")]);
    let d = Daemon::start(&file_cfg);
    common::wait_ports_up(&d, &[&a.port, &b.port]);
    // The file's bridge is in the database, as ovs-vsctl sees it.
    assert_eq!(vsctl(&d, &["list-br"]).unwrap(), file_br);
    assert_eq!(vsctl(&d, &["get", "Port", &a.port, "tag"]).unwrap(), "10");
    let mut ports: Vec<String> =
        vsctl(&d, &["list-ports", &file_br]).unwrap().lines().map(str::to_string).collect();
    ports.sort();
    let mut want = vec![a.port.clone(), b.port.clone()];
    want.sort();
    assert_eq!(ports, want);

    // A bridge made with ovs-vsctl lives beside it.
    vsctl(&d, &["add-br", &cli_br]).unwrap();
    vsctl(&d, &["add-port", &cli_br, &c.port]).unwrap();
    // Someone changes a file port by hand; a reload puts the file's view back.
    vsctl(&d, &["set", "Port", &b.port, "tag=20"]).unwrap();
    assert!(!a.ping(&b, 1));
    d.reload().expect("reload");
    assert_eq!(vsctl(&d, &["get", "Port", &b.port, "tag"]).unwrap(), "10");
    assert!(a.ping(&b, 3), "reload did not restore the file's VLAN");

    // Dropping a port and then the whole bridge from the file removes them; the ovs-vsctl bridge stays.
    d.write_config(&common::bridge_config(&file_br, &[(&a.port, "tag = 10")]));
    d.reload().expect("reload without b");
    assert_eq!(vsctl(&d, &["list-ports", &file_br]).unwrap(), a.port);
    assert!(vsctl(&d, &["get", "Interface", &b.port, "name"]).is_err(), "b's rows were not collected");
    d.write_config("");
    d.reload().expect("reload empty");
    assert_eq!(vsctl(&d, &["list-br"]).unwrap(), cli_br);
    assert_eq!(vsctl(&d, &["list-ports", &cli_br]).unwrap(), c.port);
    let show = d.show();
    assert_eq!(show.bridges.len(), 1);
    assert_eq!(show.bridges[0].name, cli_br);
}
