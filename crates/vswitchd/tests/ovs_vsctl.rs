//! The real Debian `ovs-vsctl` drives rvswitchd through its embedded OVSDB server: bridges and
//! ports appear in the datapath, VLAN changes take effect, status comes back (ofport,
//! link_state, error, statistics), and ovs-vsctl's wait for `cur_cfg` returns once the change is
//! live. Also libvirt's exact command lines, and crash safety under concurrent transactions.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, Vm};
use serde_json::{json, Value};
use testbed::{require_root, wait_until};

/// Runs ovs-vsctl against the daemon's database; waits for cur_cfg like a user's call does.
fn vsctl(d: &Daemon, args: &[&str]) -> Result<String, String> {
    let db = format!("--db=unix:{}", d.db_socket().display());
    let out = Command::new("ovs-vsctl")
        .arg(&db)
        .arg("--timeout=10")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!("ovs-vsctl {args:?}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

#[test]
fn ovs_vsctl_builds_and_changes_the_switch() {
    if !require_root("ovs_vsctl_builds_and_changes_the_switch") || !common::have_ovs_vsctl() {
        return;
    }
    let (a, b) = (Vm::new(1), Vm::new(2));
    let d = Daemon::start("");
    vsctl(&d, &["add-br", "br-v1"]).unwrap();
    vsctl(&d, &["add-port", "br-v1", &a.port, "tag=10"]).unwrap();
    // ovs-vsctl returned after waiting for cur_cfg: the port is already live.
    vsctl(&d, &["add-port", "br-v1", &b.port, "tag=10"]).unwrap();
    assert!(a.ping(&b, 2), "no traffic after ovs-vsctl add-port\n{}", d.log());

    assert_eq!(vsctl(&d, &["list-br"]).unwrap(), "br-v1");
    assert_eq!(vsctl(&d, &["iface-to-br", &a.port]).unwrap(), "br-v1");
    assert_eq!(vsctl(&d, &["get", "Interface", &a.port, "link_state"]).unwrap(), "up");
    let ofport: i64 = vsctl(&d, &["get", "Interface", &a.port, "ofport"]).unwrap().parse().unwrap();
    assert!((1..65279).contains(&ofport), "ofport {ofport}");
    assert_eq!(vsctl(&d, &["get", "Interface", "br-v1", "ofport"]).unwrap(), "65534");
    let mac = vsctl(&d, &["get", "Interface", &a.port, "mac_in_use"]).unwrap();
    assert_eq!(mac.len(), 19, "mac_in_use {mac}");
    let show = vsctl(&d, &["show"]).unwrap();
    assert!(show.contains("Bridge br-v1") && show.contains("tag: 10"), "{show}");
    let dpid = vsctl(&d, &["get", "Bridge", "br-v1", "datapath_id"]).unwrap();
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
        .args(["--timeout=10", "add-port", "br-v1", "nosuchdev0"])
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
    vsctl(&d, &["del-br", "br-v1"]).unwrap();
    assert!(d.show().bridges.is_empty());
}

#[test]
fn libvirt_attach_and_detach_lines() {
    if !require_root("libvirt_attach_and_detach_lines") || !common::have_ovs_vsctl() {
        return;
    }
    let (vm, peer) = (Vm::new(1), Vm::new(2));
    let d = Daemon::start(&common::bridge_config("br-intranet", &[(&peer.port, "tag = 10")]));
    common::wait_ports_up(&d, &[&peer.port]);
    let p = vm.port.as_str();
    // The exact line libvirt 9.0 runs when a VM with <virtualport type='openvswitch'/> starts
    // (only the device name differs; --db points at this test's daemon).
    let attach = common::libvirt_attach("br-intranet", p);
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
        "br-intranet",
        p,
        "tag=10",
        "--",
        "set",
        "Interface",
        p,
        "external-ids:attached-mac=\"52:54:00:12:34:56\"",
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

#[test]
fn acknowledged_transactions_survive_kill_9() {
    if !require_root("acknowledged_transactions_survive_kill_9") {
        return;
    }
    let (a, b) = (Vm::new(1), Vm::new(2));
    let mut d = Daemon::start(&common::bridge_config("br-k9", &[(&a.port, "tag = 7"), (&b.port, "tag = 7")]));
    common::wait_ports_up(&d, &[&a.port, &b.port]);
    assert!(a.ping(&b, 3));
    let db = d.db_socket();

    // 4 clients × up to 250 transactions; the daemon is killed part-way through.
    let acked: Vec<Vec<String>> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let db = db.clone();
                s.spawn(move || {
                    let mut done = Vec::new();
                    let Ok(mut stream) = UnixStream::connect(&db) else { return done };
                    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    for i in 0..250u64 {
                        let key = format!("k{c}-{i}");
                        let ops = json!(["Open_vSwitch", {"op": "mutate", "table": "Open_vSwitch", "where": [],
                            "mutations": [["external_ids", "insert", ["map", [[key, "1"]]]]]}]);
                        match rpc(&mut stream, i, "transact", ops) {
                            Some(r) if r[0].get("error").is_none() => done.push(key),
                            _ => break,
                        }
                    }
                    done
                })
            })
            .collect();
        // Let some commit, then kill -9 in the middle.
        wait_until(Duration::from_secs(10), || {
            Command::new("ovsdb-client")
                .args(["transact", &format!("unix:{}", db.display()), r#"["Open_vSwitch",{"op":"select","table":"Open_vSwitch","where":[],"columns":["external_ids"]}]"#])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).matches("\"k").count() > 100)
                || d.pid() == 0
        });
        d.kill9();
        clients.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let total: usize = acked.iter().map(Vec::len).sum();
    assert!(total > 0 && total < 1000, "kill did not land mid-load ({total} acknowledged)");

    d.restart();
    common::wait_ports_up(&d, &[&a.port, &b.port]);
    assert!(a.ping(&b, 2), "datapath not restored after kill -9");
    let mut stream = UnixStream::connect(d.db_socket()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let r = rpc(&mut stream, 1, "transact", json!(["Open_vSwitch", {"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["external_ids"]}])).unwrap();
    let ids = r[0]["rows"][0]["external_ids"].to_string();
    let lost: Vec<&String> = acked.iter().flatten().filter(|k| !ids.contains(&format!("\"{k}\""))).collect();
    assert!(
        lost.is_empty(),
        "{} of {total} acknowledged transactions lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

#[test]
fn ovsdb_client_sees_the_daemon_write_ofport() {
    if !require_root("ovsdb_client_sees_the_daemon_write_ofport") || !common::have_ovs_vsctl() {
        return;
    }
    use std::io::Read;
    let a = Vm::new(1);
    let d = Daemon::start("");
    vsctl(&d, &["add-br", "br-mon"]).unwrap();
    let db = format!("unix:{}", d.db_socket().display());
    let child = Command::new("ovsdb-client")
        .args(["monitor", &db, "Open_vSwitch", "Interface", "name", "ofport"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = testbed::ChildGuard::new(child);
    let mut out = guard.child_mut().stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        // Reads until the monitor is killed (EOF), bounded by the 1 MiB buffer.
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0;
        while n < buf.len() {
            match out.read(&mut buf[n..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    std::thread::sleep(Duration::from_millis(300));
    vsctl(&d, &["add-port", "br-mon", &a.port]).unwrap();
    let ofport = vsctl(&d, &["get", "Interface", &a.port, "ofport"]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(guard); // kills the monitor by PID; the reader sees EOF
    let text = reader.join().unwrap();
    let line =
        text.lines().find(|l| l.contains(&a.port) && l.contains(&format!(" {ofport}"))).map(str::to_string);
    assert!(line.is_some(), "monitor never showed {} with ofport {ofport}:\n{text}", a.port);
}

#[test]
fn config_file_and_ovs_vsctl_share_one_database() {
    if !require_root("config_file_and_ovs_vsctl_share_one_database") || !common::have_ovs_vsctl() {
        return;
    }
    let (a, b, c) = (Vm::new(1), Vm::new(2), Vm::new(3));
    let file_cfg = common::bridge_config("br-file", &[(&a.port, "tag = 10"), (&b.port, "tag = 10")]);
    let d = Daemon::start(&file_cfg);
    common::wait_ports_up(&d, &[&a.port, &b.port]);
    // The file's bridge is in the database, as ovs-vsctl sees it.
    assert_eq!(vsctl(&d, &["list-br"]).unwrap(), "br-file");
    assert_eq!(vsctl(&d, &["get", "Port", &a.port, "tag"]).unwrap(), "10");
    let mut ports: Vec<String> =
        vsctl(&d, &["list-ports", "br-file"]).unwrap().lines().map(str::to_string).collect();
    ports.sort();
    let mut want = vec![a.port.clone(), b.port.clone()];
    want.sort();
    assert_eq!(ports, want);

    // A bridge made with ovs-vsctl lives beside it.
    vsctl(&d, &["add-br", "br-cli"]).unwrap();
    vsctl(&d, &["add-port", "br-cli", &c.port]).unwrap();
    // Someone changes a file port by hand; a reload puts the file's view back.
    vsctl(&d, &["set", "Port", &b.port, "tag=20"]).unwrap();
    assert!(!a.ping(&b, 1));
    d.reload().expect("reload");
    assert_eq!(vsctl(&d, &["get", "Port", &b.port, "tag"]).unwrap(), "10");
    assert!(a.ping(&b, 3), "reload did not restore the file's VLAN");

    // Dropping a port and then the whole bridge from the file removes them; br-cli stays.
    d.write_config(&common::bridge_config("br-file", &[(&a.port, "tag = 10")]));
    d.reload().expect("reload without b");
    assert_eq!(vsctl(&d, &["list-ports", "br-file"]).unwrap(), a.port);
    assert!(vsctl(&d, &["get", "Interface", &b.port, "name"]).is_err(), "b's rows were not collected");
    d.write_config("");
    d.reload().expect("reload empty");
    assert_eq!(vsctl(&d, &["list-br"]).unwrap(), "br-cli");
    assert_eq!(vsctl(&d, &["list-ports", "br-cli"]).unwrap(), c.port);
    let show = d.show();
    assert_eq!(show.bridges.len(), 1);
    assert_eq!(show.bridges[0].name, "br-cli");
}
