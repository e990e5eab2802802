//! Debian's real `ovs-appctl` against rvswitchd's unixctl socket, found the way OvS's tools find
//! ovs-vswitchd (`-t ovs-vswitchd` → OVS_RUNDIR/ovs-vswitchd.pid → ovs-vswitchd.PID.ctl).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{bridge_config, pinging_pair, Daemon, Launch};
use ctl::client;
use ctl::protocol::Request;
use testbed::{require_program, require_root, unique, wait_until};

/// Runs `ovs-appctl -t ovs-vswitchd ARGS` with the daemon's directory as OVS_RUNDIR; (exit
/// code, stdout, stderr).
fn appctl(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("ovs-appctl")
        .env("OVS_RUNDIR", &d.dir)
        .args(["--timeout=10", "-t", "ovs-vswitchd"])
        .args(args)
        .output()
        .expect("run ovs-appctl");
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn ok(d: &Daemon, args: &[&str]) -> String {
    let (code, out, err) = appctl(d, args);
    assert_eq!(code, 0, "ovs-appctl {args:?}: {err}\nlog:\n{}", d.log());
    out
}

fn compat_daemon(config: &str) -> Daemon {
    Daemon::start_with(Launch { ovs_compat: true, ..Launch::default() }, config)
}

#[test]
fn ovs_appctl_fdb_show_flush_stats_and_dpif() {
    if !require_root("ovs_appctl_fdb")
        || !require_program("ovs-appctl tests", "ovs-appctl", "--version", "openvswitch-common")
    {
        return;
    }
    let br = unique("br-ap");
    let (a, b, d) = pinging_pair(&br, Launch { ovs_compat: true, ..Launch::default() });

    let text = ok(&d, &["fdb/show", &br]);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(" port  VLAN  MAC                Age"), "{text}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let ours = d.fdb(&br).entries;
    for vm in [&a, &b] {
        assert!(ours.iter().any(|e| e.mac == vm.mac.to_string() && e.vlan == 10), "{ours:?}");
    }
    assert_eq!(rows.len(), ours.len(), "ovs-appctl and rvsctl list different MACs:\n{text}\n{ours:?}");
    for e in &ours {
        let ofport = d.vsctl(&["get", "Interface", &e.port, "ofport"]).expect("ofport");
        let row = rows.iter().find(|r| r[2] == e.mac).unwrap_or_else(|| panic!("{} missing:\n{text}", e.mac));
        let port = if ofport == "65534" { "LOCAL".to_string() } else { ofport };
        assert_eq!((row[0], row[1]), (port.as_str(), e.vlan.to_string().as_str()), "{text}");
    }

    let stats = ok(&d, &["fdb/stats-show", &br]);
    assert!(
        stats.contains(&format!("Current/maximum MAC entries in the table: {}/8192", ours.len())),
        "{stats}"
    );
    assert!(stats.contains("Total number of learned MAC entries     : "), "{stats}");

    let dpif = ok(&d, &["dpif/show"]);
    assert!(dpif.contains(&format!("  {br}:")) && dpif.contains(&format!("    {} ", a.port)), "{dpif}");

    // The namespaces chatter (IPv6), so addresses may be learned again right after the flush:
    // let every entry grow at least a second old first; what the flush left would still be.
    assert!(wait_until(Duration::from_secs(5), || d.fdb(&br).entries.iter().all(|e| e.age >= 1)));
    assert_eq!(ok(&d, &["fdb/flush", &br]).trim(), "table successfully flushed");
    let left = d.fdb(&br).entries;
    assert!(left.iter().all(|e| e.age == 0), "flush left {left:?}");
    let (code, _, err) = appctl(&d, &["fdb/show", "br-nope"]);
    assert_eq!(code, 2, "an error reply makes ovs-appctl exit 2");
    assert!(err.contains("no such bridge"), "{err}");
    let (code, _, err) = appctl(&d, &["no/such-command"]);
    assert_eq!(code, 2);
    assert!(err.contains("is not a valid command"), "{err}");

    let list = ok(&d, &["list-commands"]);
    for cmd in ["fdb/show", "fdb/flush", "fdb/stats-show", "ofproto/trace", "vlog/set", "dpif/show", "exit"] {
        assert!(list.contains(cmd), "{cmd} not listed:\n{list}");
    }
    assert!(ok(&d, &["version"]).starts_with("rvswitchd (rvswitch) "));
}

/// How many times the daemon logged a control-socket request (a debug-level line).
fn control_debug_lines(d: &Daemon) -> usize {
    client::call_raw(&d.socket, &Request::Show, Duration::from_secs(5)).expect("show");
    d.log().matches("control request").count()
}

#[test]
fn ovs_appctl_vlog_set_changes_the_level_and_exit_stops_cleanly() {
    if !require_root("ovs_appctl_vlog")
        || !require_program("ovs-appctl tests", "ovs-appctl", "--version", "openvswitch-common")
    {
        return;
    }
    let d = compat_daemon(&bridge_config(&unique("br-ap"), &[]));
    let before = control_debug_lines(&d);
    assert!(before >= 1, "the test daemon starts at debug level; log:\n{}", d.log());
    ok(&d, &["vlog/set", "ANY:info"]);
    assert!(ok(&d, &["vlog/list"]).contains("vswitchd          INFO"));
    assert_eq!(control_debug_lines(&d), before, "a debug line was logged at level info");
    ok(&d, &["vlog/set", "vswitchd:console:dbg"]);
    assert!(ok(&d, &["vlog/list"]).contains("vswitchd           DBG"));
    assert_eq!(control_debug_lines(&d), before + 1, "debug logging did not come back");
    let (code, _, err) = appctl(&d, &["vlog/set", "vswitchd:loud"]);
    assert_eq!(code, 2, "{err}");

    let mut d = d;
    let pid = d.pid();
    assert_eq!(ok(&d, &["exit"]), "");
    let status = d.wait_exit(Duration::from_secs(10));
    assert_eq!(status.map(|s| s.success()), Some(true), "no clean exit after `exit`; log:\n{}", d.log());
    assert!(d.log().contains("rvswitchd stopped"), "not the clean shutdown path; log:\n{}", d.log());
    assert!(!d.dir.join(format!("ovs-vswitchd.{pid}.ctl")).exists(), "unixctl socket left behind");
}
