//! `rvsctl zones` against a real rvswitchd: apply waits until the daemon reports the change live
//! (cur_cfg), the zone's bridge device and NIC uplink exist with the file's VLANs and alias,
//! a second apply sends nothing, removing the zone removes its devices, and a kill -9 of the
//! daemon right after the transaction was sent leaves the old or the new state, never a mix.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::Daemon;
use ctl::zones_cli::{self, Globals, ZonesCommand};
use ovsdb::client::Client;
use serde_json::{json, Value};
use testbed::{require_root, unique, wait_until, Veth};

struct Host {
    dir: tempfile::TempDir,
    intranet: String,
    internet: String,
    nic: String,
    _nic_cable: Veth,
}

impl Host {
    /// Unique bridge names, and a veth end standing in for the NIC (no real NIC is touched).
    fn new() -> Host {
        let (nic, peer) = (unique("nic"), unique("wire"));
        let cable = Veth::pair(&nic, &peer).expect("veth for the NIC stand-in");
        Host {
            dir: tempfile::tempdir().unwrap(),
            intranet: unique("bi"),
            internet: unique("bn"),
            nic,
            _nic_cable: cable,
        }
    }

    fn file(&self, name: &str, with_intranet: bool) -> std::path::PathBuf {
        let mut text = String::new();
        if with_intranet {
            text.push_str(&format!(
                "[[zone]]\nname = \"intranet\"\nbridge = \"{}\"\ndescription = \"Company LAN\"\nuplink = {{ nic = \"{}\" }}\n\
                 [[zone.portgroup]]\nname = \"vlan-10\"\nvlan = 10\ndefault = true\n[[zone.portgroup]]\nname = \"guest\"\nvlan = 20\n",
                self.intranet, self.nic
            ));
        }
        text.push_str(&format!("[[zone]]\nname = \"internet\"\nbridge = \"{}\"\n", self.internet));
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

fn globals(d: &Daemon) -> Globals {
    Globals { db: format!("unix:{}", d.db_socket().display()), json: false, timeout: 20 }
}

fn zones(d: &Daemon, cmd: ZonesCommand) -> zones_cli::Outcome {
    zones_cli::run(&cmd, &globals(d)).unwrap_or_else(|e| panic!("rvsctl zones failed: {e:#}\n{}", d.log()))
}

fn cfg(d: &Daemon) -> (i64, i64) {
    let mut c = Client::connect(&globals(d).db, Duration::from_secs(10)).unwrap();
    let r = c.transact("Open_vSwitch", &[json!({"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg", "cur_cfg"]})]).unwrap();
    (r[0]["rows"][0]["next_cfg"].as_i64().unwrap(), r[0]["rows"][0]["cur_cfg"].as_i64().unwrap())
}

fn exists(dev: &str) -> bool {
    std::path::Path::new(&format!("/sys/class/net/{dev}")).exists()
}

#[test]
fn apply_waits_for_the_daemon_and_is_idempotent_and_removal_removes_devices() {
    if !require_root("zones apply against rvswitchd") {
        return;
    }
    let h = Host::new();
    let d = Daemon::start("");
    let f = h.file("zones.toml", true);
    let plan = zones(&d, ZonesCommand::Plan { file: f.clone() });
    assert_eq!(plan.code, 2, "{}", plan.stdout);
    let out = zones(&d, ZonesCommand::Apply { file: f.clone(), no_wait: false });
    assert!(out.stdout.contains(&format!("+ bridge {} (zone intranet)", h.intranet)), "{}", out.stdout);
    // apply returned after cur_cfg caught up: the change is live now, no polling needed.
    let (next, cur) = cfg(&d);
    assert_eq!(cur, next, "apply returned before the daemon applied the change");
    assert!(exists(&h.intranet) && exists(&h.internet), "bridge devices missing\n{}", d.log());
    let alias = std::fs::read_to_string(format!("/sys/class/net/{}/ifalias", h.intranet)).unwrap();
    assert_eq!(alias.trim_end(), "Company LAN");
    let uplink = d.port(&h.nic);
    assert_eq!((uplink.vlan_mode.as_str(), uplink.trunks.clone()), ("trunk", vec![10, 20]), "{uplink:?}");

    let again = zones(&d, ZonesCommand::Apply { file: f.clone(), no_wait: false });
    assert!(again.stdout.starts_with("nothing to do"), "{}", again.stdout);
    assert_eq!(cfg(&d).0, next, "the second apply sent a transaction");

    let out = zones(&d, ZonesCommand::Apply { file: h.file("internet.toml", false), no_wait: false });
    assert!(
        out.stdout.contains(&format!("- bridge {} (zone intranet, with its ports)", h.intranet)),
        "{}",
        out.stdout
    );
    // cur_cfg says the daemon applied the change; the datapath thread closes the device after.
    let gone = wait_until(Duration::from_secs(10), || !exists(&h.intranet));
    assert!(gone, "the removed zone's bridge device is still there\n{}", d.log());
    assert!(exists(&h.nic), "the NIC itself must survive (only its port is removed)");
    assert_eq!(zones(&d, ZonesCommand::Verify).code, 0);
}

/// Sends a transaction without waiting for its reply (the daemon is killed right after).
fn send_only(d: &Daemon, ops: &[Value]) -> UnixStream {
    let mut s = UnixStream::connect(d.db_socket()).unwrap();
    let mut params = vec![json!("Open_vSwitch")];
    params.extend(ops.iter().cloned());
    s.write_all(json!({"method": "transact", "params": params, "id": 1}).to_string().as_bytes()).unwrap();
    s
}

fn plan_now(d: &Daemon, f: &std::path::Path) -> zones::plan::Plan {
    let model = zones_cli::load(f).unwrap();
    let mut c = Client::connect(&globals(d).db, Duration::from_secs(10)).unwrap();
    let live = zones_cli::read_live(&mut c).unwrap();
    zones::plan::plan(&zones::desired::desired(&model), &live, "test").unwrap()
}

#[test]
fn kill_9_during_apply_leaves_the_old_or_the_new_state() {
    if !require_root("zones kill -9 during apply") {
        return;
    }
    let h = Host::new();
    let mut d = Daemon::start("");
    let f = h.file("zones.toml", true);
    let mut outcomes = [0u32; 2];
    for round in 0..6 {
        let p = plan_now(&d, &f);
        assert!(!p.ops.is_empty(), "round {round}: the previous round must have left the old state");
        let changes = p.changes.clone();
        let _conn = send_only(&d, &p.ops);
        d.kill9();
        d.restart();
        let after = plan_now(&d, &f);
        if after.changes.is_empty() {
            outcomes[1] += 1; // the new state, whole
                              // Back to the old state for the next round.
            let back = zones(&d, ZonesCommand::Apply { file: h.file("none.toml", false), no_wait: false });
            assert_eq!(back.code, 0, "{}", back.stdout);
        } else {
            assert_eq!(after.changes, changes, "round {round}: a partial state survived the kill");
            outcomes[0] += 1;
        }
    }
    eprintln!("kill -9 rounds: {} left the old state, {} the new state", outcomes[0], outcomes[1]);
}

/// A `[[vm]]`'s `ips` reach the VM's port the way libvirt makes it: the port appears only when
/// the VM starts, with `external_ids:attached-mac`; rvswitchd finds the zone's addresses for
/// that MAC on the bridge and `rvsctl security show` lists them as `zones` bindings.
#[test]
fn vm_ips_from_the_zones_file_bind_the_port_libvirt_attaches() {
    if !require_root("zones vm ips") || !common::have_ovs_vsctl() {
        return;
    }
    let h = Host::new();
    let d = Daemon::start("");
    let mac = "52:54:00:00:09:01";
    let text = format!(
        "[[zone]]\nname = \"internet\"\nbridge = \"{}\"\n[[vm]]\nname = \"web\"\nzone = \"internet\"\nmac = \"{mac}\"\n\
         ips = [\"198.18.9.1\", \"2001:db8:9::/64\"]\n",
        h.internet
    );
    let f = h.dir.path().join("vm.toml");
    std::fs::write(&f, text).unwrap();
    let out = zones(&d, ZonesCommand::Apply { file: f, no_wait: false });
    assert_eq!(out.code, 0, "{}", out.stdout);
    // What libvirt runs when the VM starts (a veth end stands in for its tap).
    let (port, peer) = (unique("vnet"), unique("vpeer"));
    let _cable = Veth::pair(&port, &peer).expect("veth");
    let attached = format!("external_ids:attached-mac=\"{mac}\"");
    d.vsctl(&["add-port", &h.internet, &port, "--", "set", "Interface", &port, &attached]).expect("add-port");
    let bound = || {
        let sec = d.security(Some(&h.internet));
        let p = sec.bridges.iter().flat_map(|b| b.ports.clone()).find(|p| p.port == port);
        p.map(|p| p.bindings.iter().map(|b| (b.address.clone(), b.source)).collect::<Vec<_>>())
    };
    let want = vec![
        ("198.18.9.1/32".to_string(), ctl::protocol::BindingSource::Zones),
        ("2001:db8:9::/64".to_string(), ctl::protocol::BindingSource::Zones),
    ];
    let ok = wait_until(Duration::from_secs(10), || bound().as_ref() == Some(&want));
    assert!(ok, "bindings of {port}: {:?}\n{}", bound(), d.log());
}
