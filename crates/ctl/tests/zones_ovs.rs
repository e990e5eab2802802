//! `rvsctl zones plan/apply/show/verify` against Debian's own ovsdb-server (a user of real
//! Open vSwitch can use zones too), with Debian's ovs-vsctl playing the user and libvirt.
//! No ovs-vswitchd runs, so cur_cfg never moves and apply runs with `--no-wait`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use testbed::{require_root, unique, wait_until, ChildGuard, Veth};

/// ovsdb-server on a fresh database in a temp dir; Drop kills it by PID.
struct OvsdbServer {
    _child: ChildGuard,
    dir: tempfile::TempDir,
}

fn have_ovs() -> bool {
    let ok = ["ovsdb-server", "ovsdb-tool", "ovs-vsctl"]
        .iter()
        .all(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()));
    ok || testbed::skip(
        "zones against Debian's ovsdb-server",
        "ovsdb-server/ovsdb-tool/ovs-vsctl not installed (.ci/run installs openvswitch-switch)",
    )
}

impl OvsdbServer {
    fn start() -> OvsdbServer {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("conf.db");
        let st = Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg("/usr/share/openvswitch/vswitch.ovsschema")
            .status()
            .unwrap();
        assert!(st.success(), "ovsdb-tool create");
        let child = Command::new("ovsdb-server")
            .arg(&db)
            .arg(format!("--remote=punix:{}", dir.path().join("db.sock").display()))
            .arg(format!("--unixctl={}", dir.path().join("ctl").display()))
            .arg(format!("--log-file={}", dir.path().join("log").display()))
            .arg("--no-chdir")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ovsdb-server");
        let s = OvsdbServer { _child: ChildGuard::new(child), dir };
        let sock = s.sock();
        assert!(
            wait_until(Duration::from_secs(10), || std::os::unix::net::UnixStream::connect(&sock).is_ok()),
            "ovsdb-server did not listen"
        );
        s.vsctl(&["init"]);
        s
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("db.sock")
    }

    fn vsctl(&self, args: &[&str]) -> String {
        let out = Command::new("ovs-vsctl")
            .arg(format!("--db=unix:{}", self.sock().display()))
            .args(["--no-wait", "--timeout=10"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "ovs-vsctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn rvsctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rvsctl"))
            .arg("--db")
            .arg(format!("unix:{}", self.sock().display()))
            .args(["--timeout", "10", "zones"])
            .args(args)
            .output()
            .unwrap()
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    fn next_cfg(&self) -> i64 {
        self.vsctl(&["get", "Open_vSwitch", ".", "next_cfg"]).parse().unwrap()
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The seed's two zones with bridge names unique to this test run, so that no device another
/// test (or engineer) created on this host collides with them.
struct Names {
    intranet: String,
    internet: String,
    nic: String,
}

impl Names {
    fn new() -> Names {
        Names { intranet: unique("bi"), internet: unique("bn"), nic: unique("nic") }
    }

    fn file(&self) -> String {
        let example =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/zones.toml"))
                .unwrap();
        example
            .replace(
                "name = \"intranet\"\n",
                &format!("name = \"intranet\"\nbridge = \"{}\"\n", self.intranet),
            )
            .replace(
                "name = \"internet\"\n",
                &format!("name = \"internet\"\nbridge = \"{}\"\n", self.internet),
            )
            .replace("nic = \"eth1\"", &format!("nic = \"{}\"", self.nic))
    }
}

#[test]
fn plan_apply_idempotent_and_exact_diff_on_debian_ovsdb_server() {
    if !have_ovs() {
        return;
    }
    let s = OvsdbServer::start();
    let n = Names::new();
    let f = s.file("zones.toml", &n.file());
    let plan = s.rvsctl(&["plan", &f]);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    assert!(text(&plan).contains(&format!("+ bridge {} (zone intranet)", n.intranet)), "{}", text(&plan));
    let apply = s.rvsctl(&["apply", "--no-wait", &f]);
    assert!(apply.status.success(), "{}", text(&apply));
    assert_eq!(s.next_cfg(), 1);
    let mut brs: Vec<String> = s.vsctl(&["list-br"]).lines().map(str::to_string).collect();
    brs.sort();
    let mut want = vec![n.intranet.clone(), n.internet.clone()];
    want.sort();
    assert_eq!(brs, want);
    assert_eq!(s.vsctl(&["get", "Port", &n.nic, "trunks"]), "[10, 20]");
    assert_eq!(s.vsctl(&["get", "Port", &n.nic, "vlan_mode"]), "trunk");
    assert_eq!(s.vsctl(&["get", "Bridge", &n.intranet, "external_ids:rvswitch-zone"]), "intranet");

    // Second apply: plans nothing and sends nothing (next_cfg would move with any transaction).
    let again = s.rvsctl(&["plan", &f]);
    assert_eq!(
        (again.status.code(), String::from_utf8_lossy(&again.stdout).trim()),
        (Some(0), "nothing to do")
    );
    let apply2 = s.rvsctl(&["apply", "--no-wait", &f]);
    assert!(apply2.status.success() && text(&apply2).starts_with("nothing to do"), "{}", text(&apply2));
    assert_eq!(s.next_cfg(), 1, "the second apply sent a transaction");

    // A changed file plans exactly the change.
    let f2 = s.file("changed.toml", &n.file().replace("vlan = 20", "vlan = 30"));
    let plan = s.rvsctl(&["--json", "plan", &f2]);
    assert_eq!(plan.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let actions: Vec<&str> =
        v["changes"].as_array().unwrap().iter().map(|c| c["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["set-marks", "set-vlans"], "{v:#}");
    assert_eq!(v["changes"][1]["to"]["trunks"], serde_json::json!([10, 30]));
    assert!(s.rvsctl(&["apply", "--no-wait", &f2]).status.success());
    assert_eq!(s.vsctl(&["get", "Port", &n.nic, "trunks"]), "[10, 30]");
}

#[test]
fn handmade_bridge_and_libvirt_vnet_port_survive_apply_and_zone_removal() {
    if !have_ovs() {
        return;
    }
    let s = OvsdbServer::start();
    let n = Names::new();
    let f = s.file("zones.toml", &n.file());
    assert!(s.rvsctl(&["apply", "--no-wait", &f]).status.success());
    let handmade = unique("hm");
    s.vsctl(&["add-br", &handmade]);
    // libvirt's own command line for an <interface type='network'> with portgroup vlan-10.
    s.vsctl(&[
        "--",
        "--may-exist",
        "add-port",
        &n.intranet,
        "vnet0",
        "tag=10",
        "--",
        "set",
        "Interface",
        "vnet0",
        "external_ids:attached-mac=\"52:54:00:10:00:01\"",
        "--",
        "set",
        "Interface",
        "vnet0",
        "external_ids:iface-id=\"5b2a0c3e-0000-4000-8000-000000000001\"",
        "--",
        "set",
        "Interface",
        "vnet0",
        "external_ids:iface-status=active",
        "--",
        "set",
        "Interface",
        "vnet0",
        "external_ids:vm-id=\"8c6f1d2e-0000-4000-8000-000000000002\"",
    ]);
    let plan = s.rvsctl(&["plan", &f]);
    assert_eq!(plan.status.code(), Some(0), "foreign rows are not changes: {}", text(&plan));
    let show = text(&s.rvsctl(&["show"]));
    assert!(show.contains("vm port vnet0  mac 52:54:00:10:00:01  vm-id 8c6f1d2e-0000-4000-8000-000000000002  portgroup vlan-10"), "{show}");
    // With the file, the VM is named by its MAC.
    let named = text(&s.rvsctl(&["show", &f]));
    assert!(named.contains("vm office-desktop  port vnet0  mac 52:54:00:10:00:01"), "{named}");

    // Remove the intranet zone: its uplink goes, the bridge stays (released) for vnet0.
    let only_internet = n
        .file()
        .split("[[zone]]\nname = \"internet\"")
        .nth(1)
        .map(|rest| format!("[[zone]]\nname = \"internet\"{rest}"))
        .unwrap();
    let only_internet = only_internet.split("[[vm]]").next().unwrap().to_string();
    let f3 = s.file("internet.toml", &only_internet);
    let apply = s.rvsctl(&["apply", "--no-wait", &f3]);
    assert!(apply.status.success(), "{}", text(&apply));
    assert!(
        text(&apply).contains(&format!("~ bridge {} released by zone intranet", n.intranet)),
        "{}",
        text(&apply)
    );
    let brs = s.vsctl(&["list-br"]);
    assert!(brs.contains(&handmade) && brs.contains(&n.intranet), "{brs}");
    assert_eq!(s.vsctl(&["list-ports", &n.intranet]), "vnet0");
    assert_eq!(s.vsctl(&["get", "Interface", "vnet0", "external_ids:attached-mac"]), "\"52:54:00:10:00:01\"");
    assert_eq!(s.rvsctl(&["plan", &f3]).status.code(), Some(0));
}

#[test]
fn a_bad_file_changes_nothing() {
    if !have_ovs() {
        return;
    }
    let s = OvsdbServer::start();
    let n = Names::new();
    let bad = n.file().replace("vlan = 20", "vlan = 10").replace("52:54:00:20:00:01", "ff:ff:ff:ff:ff:ff");
    let f = s.file("bad.toml", &bad);
    for args in [vec!["plan", f.as_str()], vec!["apply", "--no-wait", f.as_str()]] {
        let o = s.rvsctl(&args);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.contains("2 problem(s)")
                && e.contains("VLAN 10 is already portgroup")
                && e.contains("is not a unicast address"),
            "{e}"
        );
    }
    assert_eq!(s.vsctl(&["list-br"]), "");
    assert_eq!(s.next_cfg(), 0);
    // A foreign bridge with a zone's name is refused too, before anything is sent.
    s.vsctl(&["add-br", &n.intranet]);
    let o = s.rvsctl(&["apply", "--no-wait", &s.file("ok.toml", &n.file())]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("already exists and was not created by zones"), "{}", text(&o));
    assert_eq!(s.vsctl(&["list-br"]), n.intranet);
}

#[test]
fn verify_catches_a_veth_joining_two_zones_and_a_loop_joining_two_portgroups() {
    if !require_root("verify_catches_a_veth_joining_two_zones") || !have_ovs() {
        return;
    }
    let s = OvsdbServer::start();
    let n = Names::new();
    assert!(s.rvsctl(&["apply", "--no-wait", &s.file("z.toml", &n.file())]).status.success());
    let ok = s.rvsctl(&["verify"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(text(&ok).contains(&format!("port {} (uplink) carries vlan-10, guest", n.nic)), "{}", text(&ok));

    let (a, b) = (unique("ja"), unique("jb"));
    let _cable = Veth::pair(&a, &b).unwrap();
    s.vsctl(&["add-port", &n.intranet, &a, "tag=10"]);
    s.vsctl(&["add-port", &n.internet, &b]);
    let joined = s.rvsctl(&["verify"]);
    assert_eq!(joined.status.code(), Some(1), "{}", text(&joined));
    let t = text(&joined);
    assert!(t.contains("JOINED internet <-> intranet"), "{t}");
    let path = format!(
        "port {a} on {} (tag 10) —veth {a}↔{b}— port {b} on {} (trunk all VLANs)",
        n.intranet, n.internet
    );
    assert!(t.contains(&path), "{t}\nexpected the path {path}");
    s.vsctl(&["del-port", &b]);

    // A cable from VLAN 10 back into VLAN 20 of the same bridge joins the two portgroups.
    let (c, d) = (unique("jc"), unique("jd"));
    let _loop = Veth::pair(&c, &d).unwrap();
    s.vsctl(&["set", "Port", &a, "tag=20"]);
    s.vsctl(&["add-port", &n.intranet, &c, "tag=10"]);
    s.vsctl(&["add-port", &n.intranet, &d, "tag=20"]);
    let v = s.rvsctl(&["--json", "verify"]);
    assert_eq!(v.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(r["zone_joins"], serde_json::json!([]), "{r:#}");
    assert_eq!(r["portgroup_joins"][0]["a"], "intranet/vlan-10", "{r:#}");
    assert_eq!(r["portgroup_joins"][0]["b"], "intranet/guest", "{r:#}");
}

#[test]
fn a_nic_moves_between_zones_in_one_transaction_on_debian_ovsdb_server() {
    if !have_ovs() {
        return;
    }
    let s = OvsdbServer::start();
    let n = Names::new();
    let zone = |name: &str, br: &str, nic: bool| {
        let up = if nic { format!("uplink = {{ nic = \"{}\" }}\n", n.nic) } else { String::new() };
        format!("[[zone]]\nname = \"{name}\"\nbridge = \"{br}\"\n{up}")
    };
    let first = s.file("a.toml", &(zone("a", &n.intranet, true) + &zone("b", &n.internet, false)));
    let second = s.file("b.toml", &(zone("a", &n.intranet, false) + &zone("b", &n.internet, true)));
    assert!(s.rvsctl(&["apply", "--no-wait", &first]).status.success());
    let o = s.rvsctl(&["apply", "--no-wait", &second]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(s.vsctl(&["port-to-br", &n.nic]), n.internet);
    assert_eq!(s.next_cfg(), 2, "one transaction per apply");
}

/// A Linux bridge this test created; Drop deletes it.
struct LinuxBridge(String);

impl LinuxBridge {
    fn new(name: &str, members: &[&str]) -> LinuxBridge {
        testbed::run("ip", &["link", "add", name, "type", "bridge"]).unwrap();
        let b = LinuxBridge(name.into());
        for m in members {
            testbed::run("ip", &["link", "set", m, "master", name]).unwrap();
        }
        b
    }
}

impl Drop for LinuxBridge {
    fn drop(&mut self) {
        testbed::run_quiet_ok("ip", &["link", "del", &self.0]);
    }
}

#[test]
fn verify_sees_a_join_through_a_linux_bridge() {
    if !require_root("verify_sees_a_join_through_a_linux_bridge") || !have_ovs() {
        return;
    }
    let s = OvsdbServer::start();
    let n = Names::new();
    assert!(s.rvsctl(&["apply", "--no-wait", &s.file("z.toml", &n.file())]).status.success());
    let (a, a2, b, b2) = (unique("la"), unique("lb"), unique("lc"), unique("ld"));
    let _ca = Veth::pair(&a, &a2).unwrap();
    let _cb = Veth::pair(&b, &b2).unwrap();
    s.vsctl(&["add-port", &n.intranet, &a, "tag=20"]);
    s.vsctl(&["add-port", &n.internet, &b]);
    assert_eq!(s.rvsctl(&["verify"]).status.code(), Some(0), "two cables to nowhere are no join");
    let lbr = unique("lbr");
    let _lb = LinuxBridge::new(&lbr, &[&a2, &b2]);
    let v = s.rvsctl(&["verify"]);
    assert_eq!(v.status.code(), Some(1), "{}", text(&v));
    let t = text(&v);
    assert!(
        t.contains("JOINED internet <-> intranet") && t.contains("—linux-bridge+veth ") && t.contains(&lbr),
        "{t}"
    );
}
