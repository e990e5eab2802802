//! What clients of a switch service rely on (issue 14): a ready root row the instant the OVSDB
//! socket exists (OpenStack's ovsdbapp), statistics in the first read after add-port (libvirt's
//! `virsh domifstat`), "acknowledged" meaning "applied" when a name is deleted and added again
//! under load, and SIGTERM ending the daemon in bounded time whatever happened to its sockets.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, Vm};
use testbed::{require_program, require_root, unique, wait_until};

/// ovsdbapp, the client os-vif and Neutron use: connect, add a bridge and two ports in one
/// transaction, wait for ofport. Run with Debian's python (the one that has python3-ovsdbapp).
const OVSDBAPP_SCRIPT: &str = r#"
import sys, time
from ovsdbapp.backend.ovs_idl import connection
from ovsdbapp.schema.open_vswitch import impl_idl
sock, br, p1, p2 = sys.argv[1:5]
idl = connection.OvsdbIdl.from_server("unix:" + sock, "Open_vSwitch")
api = impl_idl.OvsdbIdl(connection.Connection(idl=idl, timeout=10))
with api.transaction(check_error=True) as txn:
    txn.add(api.add_br(br))
    for p in (p1, p2):
        txn.add(api.add_port(br, p))
        txn.add(api.db_set("Interface", p, ("type", "internal")))
deadline = time.time() + 10
while time.time() < deadline:
    ofports = [api.db_get("Interface", p, "ofport").execute(check_error=True) for p in (p1, p2)]
    if all(isinstance(o, int) and o > 0 for o in ofports):
        print("ofports", *ofports)
        sys.exit(0)
    time.sleep(0.05)
print("no ofport written back:", ofports)
sys.exit(1)
"#;

#[test]
fn ovsdbapp_connects_the_instant_the_socket_exists() {
    let test = "ovsdbapp_connects_the_instant_the_socket_exists";
    if !require_root(test)
        || !require_program(test, "/usr/bin/python3", "-cimport ovsdbapp", "python3-ovsdbapp")
    {
        return;
    }
    let d = Daemon::start_fresh();
    let sock = d.db_socket();
    assert!(wait_until(Duration::from_secs(10), || sock.exists()), "no OVSDB socket\n{}", d.log());
    let (br, p1, p2) = (unique("bra"), unique("pa"), unique("pb"));
    let out = Command::new("/usr/bin/python3")
        .args(["-c", OVSDBAPP_SCRIPT])
        .arg(&sock)
        .args([&br, &p1, &p2])
        .output()
        .expect("run python3");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "ovsdbapp failed:\n{text}\n--- log ---\n{}", d.log());
    println!("ovsdbapp: {}", text.trim());
}

#[test]
fn statistics_are_there_in_the_first_read_after_add_port() {
    let test = "statistics_are_there_in_the_first_read_after_add_port";
    if !require_root(test) || !common::have_ovs_vsctl() {
        return;
    }
    let d = Daemon::start("");
    let vm = Vm::new(1);
    let br = unique("br-st");
    d.vsctl(&["add-br", &br]).unwrap();
    d.vsctl(&["add-port", &br, &vm.port]).unwrap();
    let stats = d.vsctl(&["get", "Interface", &vm.port, "statistics"]).unwrap();
    assert!(stats.contains("rx_packets=") && stats.contains("tx_packets="), "first read: {stats}");
    // The internal port that add-br made, too.
    let stats = d.vsctl(&["get", "Interface", &br, "statistics"]).unwrap();
    assert!(stats.contains("rx_packets="), "bridge port: {stats}");
}

/// Deleting a port or bridge and adding one of the same name must never meet the old device
/// (TUNSETIFF: EBUSY) while frames keep the forwarding thread busy.
#[test]
fn same_name_delete_and_add_under_load_never_reports_an_error() {
    let test = "same_name_delete_and_add_under_load_never_reports_an_error";
    if !require_root(test) || !common::have_ovs_vsctl() {
        return;
    }
    let d = Daemon::start("");
    let (a, b) = (Vm::new(1), Vm::new(2));
    let br = unique("brl");
    let add_bridge = |d: &Daemon| {
        d.vsctl(&["add-br", &br, "--", "add-port", &br, &a.port, "--", "add-port", &br, &b.port]).unwrap();
    };
    add_bridge(&d);
    assert!(a.ping(&b, 3), "no traffic before the loop");
    // Bounded load: a flood ping for at most 60 s (it is killed by its guard at the end).
    let _flood = a.ns.spawn(&["ping", "-f", "-q", "-w", "60", &b.ip]).expect("flood ping");
    let internal = unique("int");
    let mut warnings = Vec::new();
    let mut check = |what: &str, r: Result<(String, String), String>| match r {
        Ok((_, err)) if err.is_empty() => {}
        Ok((_, err)) => warnings.push(format!("{what}: {err}")),
        Err(e) => warnings.push(format!("{what}: {e}")),
    };
    for round in 0..5 {
        check("del-br", d.vsctl_output(&["del-br", &br]));
        check("add-br", d.vsctl_output(&["add-br", &br]));
        check("add-ports", d.vsctl_output(&["add-port", &br, &a.port, "--", "add-port", &br, &b.port]));
        check("del-br -- add-br", d.vsctl_output(&["del-br", &br, "--", "add-br", &br]));
        check("add-ports again", d.vsctl_output(&["add-port", &br, &a.port, "--", "add-port", &br, &b.port]));
        let add_internal = ["add-port", &br, &internal, "--", "set", "Interface", &internal, "type=internal"];
        check("add internal", d.vsctl_output(&add_internal));
        check("del-port", d.vsctl_output(&["del-port", &internal]));
        check("add internal again", d.vsctl_output(&add_internal));
        check("del-port again", d.vsctl_output(&["del-port", &internal]));
        let error = d.vsctl(&["get", "Interface", &br, "error"]).unwrap_or_default();
        assert!(error.is_empty() || error == "[]", "round {round}: bridge port error {error}");
    }
    assert!(warnings.is_empty(), "ovs-vsctl reported:\n{}\n--- log ---\n{}", warnings.join("\n"), d.log());
    assert!(a.ping(&b, 3), "no traffic after the loop");
}

#[test]
fn sigterm_ends_the_daemon_after_its_socket_directory_is_removed() {
    let test = "sigterm_ends_the_daemon_after_its_socket_directory_is_removed";
    if !require_root(test) {
        return;
    }
    let mut d = Daemon::start("");
    // What a test's temp dir cleanup or a wiped /run/rvswitch does to a running daemon.
    std::fs::remove_dir_all(&d.dir).expect("remove the socket directory");
    let started = Instant::now();
    let status = d.terminate(Duration::from_secs(15));
    assert!(status.is_some(), "rvswitchd still running 15 s after SIGTERM");
    println!("exited {:?} after SIGTERM in {:?}", status, started.elapsed());
}

#[test]
fn sigterm_during_startup_ends_the_daemon() {
    let test = "sigterm_during_startup_ends_the_daemon";
    if !require_root(test) {
        return;
    }
    for delay_ms in [0u64, 2, 10, 30, 100] {
        let mut d = Daemon::start_fresh();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let started = Instant::now();
        let status = d.terminate(Duration::from_secs(15));
        assert!(status.is_some(), "SIGTERM {delay_ms} ms after start: still running after 15 s\n{}", d.log());
        println!("SIGTERM {delay_ms} ms after start: exited {status:?} in {:?}", started.elapsed());
    }
}
