//! The seed's scenario end to end, with the real programs: a zones file applied by `rvsctl
//! zones apply`, Debian's libvirtd 9.0 (started by the test, stopped by PID), libvirt networks
//! defined from `rvsctl zones libvirt-xml` (each file accepted by virt-xml-validate), two qemu
//! (TCG) guests booted through libvirt on the generated `<interface>`s, `zones show` listing
//! both while they run and neither after, `zones verify` clean, and proof by capture:
//! the intranet VM (portgroup vlan-10) reaches the VLAN-10 host and nothing in the guest VLAN
//! (20) or the internet zone; the internet VM reaches only its zone. libvirt attaches each VM
//! with ovs-vsctl (no --db, so rvswitchd serves /var/run/openvswitch/db.sock) and removes the
//! ports again when the VM ends, by guest poweroff or `virsh destroy`.
//!
//! The intranet's NIC uplink is a veth trunking VLANs 10 and 20; the far end ("lan", the VPN
//! box's side) captures tagged frames. Every host, guest and VM-facing address is in
//! 198.18.0.0/24, so a frame that leaked into the wrong zone or VLAN would also be answered.

mod common;
mod libvirt;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{rvsctl_path, Daemon, Vm};
use libvirt::capture::{assert_captures, send_probe, Captures, Expect, Heard};
use libvirt::guest::{assert_reach, boot, wait_done, Guest};
use libvirt::validate;
use testbed::{require_root, run, socket_answers, vm_assets, wait_until, ChildGuard, HostLock, Libvirt};

/// Where libvirt's ovs-vsctl looks for the database (it passes no --db).
const OVS_DB: &str = "/var/run/openvswitch/db.sock";

const OFFICE: Guest = Guest {
    name: "office-desktop",
    zone: "intranet",
    bridge: "br-intranet",
    portgroup: Some("vlan-10"),
    mac: "52:54:00:10:00:01",
    ip: "198.18.0.50",
    tag: Some(10),
    targets: &[("198.18.0.1", true), ("198.18.0.2", false), ("198.18.0.3", false), ("198.18.0.60", false)],
    poweroff_from: "198.18.0.1",
};

const WEB: Guest = Guest {
    name: "web-browser",
    zone: "internet",
    bridge: "br-internet",
    portgroup: None,
    mac: "52:54:00:20:00:01",
    ip: "198.18.0.60",
    tag: None,
    targets: &[("198.18.0.3", true), ("198.18.0.1", false), ("198.18.0.2", false), ("198.18.0.50", false)],
    poweroff_from: "198.18.0.3",
};

const PROBE10: &str = "02:00:00:00:ee:10";
const PROBE20: &str = "02:00:00:00:ee:20";
const PROBE_INET: &str = "02:00:00:00:ee:01";

/// The hosts around the VMs (Vm::new(n): 198.18.0.n, MAC 02:00:00:00:00:0n): on VLAN 10 and
/// VLAN 20 of the intranet bridge, behind its NIC uplink, and in the internet zone.
struct Hosts {
    vlan10: Vm,
    vlan20: Vm,
    lan: Vm,
    internet: Vm,
}

/// Who must have heard whom, and with which tag.
fn expectations() -> Vec<Expect> {
    use Heard::{Nothing, Tagged, Untagged};
    let rows: [(&str, [Heard; 5]); 4] = [
        //           office        web       probe 10      probe 20      probe internet
        ("vlan10", [Untagged, Nothing, Untagged, Nothing, Nothing]),
        ("vlan20", [Nothing, Nothing, Nothing, Untagged, Nothing]),
        ("lan", [Tagged(10), Nothing, Tagged(10), Tagged(20), Nothing]),
        ("internet", [Nothing, Untagged, Nothing, Nothing, Untagged]),
    ];
    let sources =
        [(OFFICE.mac, true), (WEB.mac, true), (PROBE10, false), (PROBE20, false), (PROBE_INET, false)];
    rows.iter()
        .flat_map(|(at, wants)| {
            sources.iter().zip(wants).map(|(&(src, guest), &want)| Expect { at, src, want, guest })
        })
        .collect()
}

fn tools_present() -> bool {
    let mut missing = Libvirt::missing_tools();
    for t in ["ovs-vsctl", "virt-xml-validate", "/usr/bin/python3"] {
        if run("sh", &["-c", &format!("command -v {t}")]).is_err() {
            missing.push(t);
        }
    }
    if !rvsctl_path().exists() {
        missing.push("rvsctl beside rvswitchd (cargo build -p ctl; cargo test --workspace builds it)");
    }
    let assets = vm_assets().is_some();
    if missing.is_empty() && assets {
        return true;
    }
    let why = format!(
        "missing {missing:?}{} (.ci/run installs libvirt-daemon-system libvirt-clients libxml2-utils \
         openvswitch-switch qemu-system-x86 busybox-static python3 and runs scripts/vm-assets.sh)",
        if assets { "" } else { ", VM assets ($RVSWITCH_VM_ASSETS)" }
    );
    testbed::skip("libvirt_vms_in_two_zones_reach_only_their_own", &why)
}

fn vsctl(args: &[&str]) -> String {
    let db = format!("--db=unix:{OVS_DB}");
    let mut full = vec![db.as_str(), "--timeout=10"];
    full.extend_from_slice(args);
    run("ovs-vsctl", &full).unwrap_or_else(|e| panic!("{e}")).trim().to_owned()
}

/// `rvsctl --db unix:/var/run/openvswitch/db.sock ARGS`: (exit code, stdout); stderr on failure
/// goes into the panic message of the caller's assertion via `out`.
fn rvsctl(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(rvsctl_path())
        .args(["--db", &format!("unix:{OVS_DB}"), "--timeout", "15"])
        .args(args)
        .output()
        .expect("run rvsctl");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// The seed's host as a zones file: intranet (vlan-10 default, guest vlan-20, the NIC uplink
/// trunking both) and internet, and the two VMs.
fn zones_file(h: &Hosts) -> String {
    let vm = |g: &Guest| {
        let pg = g.portgroup.map(|p| format!("portgroup = \"{p}\"\n")).unwrap_or_default();
        format!("[[vm]]\nname = \"{}\"\nzone = \"{}\"\n{pg}mac = \"{}\"\n\n", g.name, g.zone, g.mac)
    };
    format!(
        "[naming]\nbridge = \"br-{{zone}}\"\n\n\
         [[zone]]\nname = \"intranet\"\ndescription = \"Company LAN (reached over VPN)\"\nuplink = {{ nic = \"{nic}\" }}\n\
         [[zone.portgroup]]\nname = \"vlan-10\"\nvlan = 10\ndefault = true\n\
         [[zone.portgroup]]\nname = \"guest\"\nvlan = 20\n\n\
         [[zone]]\nname = \"internet\"\ndescription = \"Public network\"\n\n{office}{web}",
        nic = h.lan.port,
        office = vm(&OFFICE),
        web = vm(&WEB),
    )
}

/// `zones apply` builds the bridges and the uplink in one transaction; a second `zones plan`
/// finds nothing to do. Returns the file's path.
fn apply_zones(h: &Hosts, work: &Path) -> PathBuf {
    std::fs::create_dir_all(work).unwrap();
    let file = work.join("zones.toml");
    std::fs::write(&file, zones_file(h)).unwrap();
    let f = file.to_str().unwrap();
    let (code, out) = rvsctl(&["zones", "apply", f]);
    assert_eq!(code, 0, "zones apply failed:\n{out}");
    let (code, out) = rvsctl(&["zones", "plan", f]);
    assert_eq!(code, 0, "zones plan after apply is not empty:\n{out}");
    file
}

/// `zones libvirt-xml --out DIR`: every generated network file passes virt-xml-validate (the
/// `<interface>` snippets are validated inside their domains when the guests boot).
fn libvirt_xml(zones: &Path, dir: &Path) {
    let (code, out) =
        rvsctl(&["zones", "libvirt-xml", zones.to_str().unwrap(), "--out", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "zones libvirt-xml failed:\n{out}");
    for zone in ["intranet", "internet"] {
        validate(&dir.join(format!("{zone}.network.xml")), "network");
    }
}

/// Hosts that are no part of the zones file: added by hand on the zones' bridges, as a user
/// would (zones apply leaves ports it did not create alone).
fn attach_hosts(h: &Hosts) {
    vsctl(&["add-port", "br-intranet", &h.vlan10.port, "tag=10"]);
    vsctl(&["add-port", "br-intranet", &h.vlan20.port, "tag=20"]);
    vsctl(&["add-port", "br-internet", &h.internet.port]);
}

/// `zones show --json`: the VMs attached to each zone right now, as (zone, view) pairs.
fn shown_vms() -> Vec<(String, serde_json::Value)> {
    let (code, out) = rvsctl(&["--json", "zones", "show"]);
    assert_eq!(code, 0, "zones show failed:\n{out}");
    let zones: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    zones
        .iter()
        .flat_map(|z| {
            let name = z["zone"].as_str().unwrap_or_default().to_owned();
            z["vms"].as_array().cloned().unwrap_or_default().into_iter().map(move |v| (name.clone(), v))
        })
        .collect()
}

/// `zones show` lists the guest in its zone: its MAC, libvirt's domain UUID as vm-id, its
/// portgroup, link up. Returns its port (vnetN).
fn assert_shown(lv: &Libvirt, g: &Guest, shown: &[(String, serde_json::Value)]) -> String {
    let uuid = lv.virsh(&["domuuid", g.name]).unwrap().trim().to_owned();
    let (zone, v) = shown
        .iter()
        .find(|(_, v)| v["mac"] == g.mac)
        .unwrap_or_else(|| panic!("zones show does not list {} ({}): {shown:#?}", g.name, g.mac));
    assert_eq!(zone, g.zone, "{}: shown in the wrong zone", g.name);
    assert_eq!(v["vm_id"], uuid.as_str(), "{}: vm-id is not the domain's UUID", g.name);
    assert_eq!(v["link_state"], "up", "{}: {v}", g.name);
    let want_pg = g.portgroup.map(serde_json::Value::from).unwrap_or(serde_json::Value::Null);
    assert_eq!(v["portgroup"], want_pg, "{}: portgroup", g.name);
    v["port"].as_str().expect("port name").to_owned()
}

/// The VM's port, found the way libvirt marks it (Interface external_ids:attached-mac), on the
/// right bridge with the portgroup's VLAN.
fn attached_port(g: &Guest) -> String {
    let cond = format!("external_ids:attached-mac=\"{}\"", g.mac);
    let name = vsctl(&["--bare", "--columns=name", "find", "Interface", &cond]);
    assert!(!name.is_empty() && !name.contains(char::is_whitespace), "{}: no single port: {name:?}", g.name);
    assert_eq!(vsctl(&["port-to-br", &name]), g.bridge, "{}: port {name} on the wrong bridge", g.name);
    let want_tag = g.tag.map(|t| t.to_string()).unwrap_or_else(|| "[]".into());
    assert_eq!(vsctl(&["get", "Port", &name, "tag"]), want_tag, "{}: port {name} VLAN", g.name);
    name
}

fn wait_shut_off(lv: &Libvirt, g: &Guest) {
    let off = wait_until(Duration::from_secs(60), || lv.domain_state(g.name).is_ok_and(|s| s == "shut off"));
    assert!(off, "{} did not shut off: {:?}\n{}", g.name, lv.domain_state(g.name), lv.logs());
}

/// libvirt ran `ovs-vsctl del-port` when the VM ended: no row, no device left.
fn assert_port_gone(g: &Guest, port: &str) {
    let cond = format!("external_ids:attached-mac=\"{}\"", g.mac);
    let gone = wait_until(Duration::from_secs(10), || {
        vsctl(&["--bare", "--columns=name", "find", "Interface", &cond]).is_empty()
    });
    assert!(gone, "{}: its Interface row is still in the database after shutdown", g.name);
    assert!(!vsctl(&["list-ports", g.bridge]).lines().any(|p| p == port), "{}: port {port} left", g.name);
    assert!(!Path::new(&format!("/sys/class/net/{port}")).exists(), "{}: tap {port} left", g.name);
}

fn http_server(host: &Vm, dir: &Path) -> ChildGuard {
    std::fs::create_dir_all(dir).unwrap();
    let dir = dir.to_str().unwrap();
    host.ns
        .spawn(&["/usr/bin/python3", "-m", "http.server", "8000", "--bind", &host.ip, "--directory", dir])
        .unwrap()
}

fn interface(xml_dir: &Path, g: &Guest) -> String {
    std::fs::read_to_string(xml_dir.join(format!("{}.interface.xml", g.name))).unwrap()
}

/// libvirtd up, and the zones' networks defined and started from the generated files.
fn start_libvirt(work: &Path, xml_dir: &Path, t0: Instant) -> Libvirt {
    let mut lv = Libvirt::start(&work.join("libvirt")).expect("libvirt");
    eprintln!("libvirtd up {:.1} s into the test", t0.elapsed().as_secs_f64());
    for zone in ["intranet", "internet"] {
        let file = xml_dir.join(format!("{zone}.network.xml"));
        lv.define_network(zone, &file).unwrap_or_else(|e| panic!("{e}\n{}", lv.logs()));
    }
    lv
}

/// With both VMs running: `zones show` lists them (and agrees with ovs-vsctl), `zones verify`
/// finds no join. Returns their ports (office, web).
fn check_attached(lv: &Libvirt) -> (String, String) {
    eprintln!("zones show:\n{}", rvsctl(&["zones", "show"]).1);
    let shown = shown_vms();
    let office_port = assert_shown(lv, &OFFICE, &shown);
    let web_port = assert_shown(lv, &WEB, &shown);
    assert_eq!(attached_port(&OFFICE), office_port);
    assert_eq!(attached_port(&WEB), web_port);
    let (code, matrix) = rvsctl(&["zones", "verify"]);
    eprintln!("zones verify (exit {code}):\n{matrix}");
    assert_eq!(code, 0, "zones verify finds a join with both VMs attached");
    (office_port, web_port)
}

/// The office VM ends itself (guest poweroff through ACPI), the web VM by `virsh destroy`;
/// either way libvirt removes its port, and `zones show` lists no VM any more.
fn shut_down(lv: &Libvirt, work: &Path, (office_port, web_port): (String, String)) {
    std::fs::write(work.join("www-office/poweroff"), "now\n").unwrap();
    wait_shut_off(lv, &OFFICE);
    lv.virsh(&["destroy", WEB.name]).unwrap();
    wait_shut_off(lv, &WEB);
    assert_port_gone(&OFFICE, &office_port);
    assert_port_gone(&WEB, &web_port);
    let left = shown_vms();
    assert!(left.is_empty(), "zones show still lists VMs after shutdown: {left:#?}");
}

#[test]
fn libvirt_vms_in_two_zones_reach_only_their_own() {
    if !require_root("libvirt_vms_in_two_zones_reach_only_their_own") || !tools_present() {
        return;
    }
    // First and dropped last: another test run on this host's db.sock (and libvirt's system
    // sockets) waits until this one is done.
    let _host = HostLock::ovs_db("libvirt_vms_in_two_zones_reach_only_their_own");
    let t0 = Instant::now();
    let assets = vm_assets().expect("checked above");
    assert!(
        !socket_answers(Path::new(OVS_DB)),
        "{OVS_DB} answers: another OVSDB server (a real ovsdb-server?) runs"
    );
    let hosts = Hosts { vlan10: Vm::new(1), vlan20: Vm::new(2), internet: Vm::new(3), lan: Vm::new(4) };
    // Declared before the libvirt guard, so it is dropped after it: libvirt's del-port for the
    // VMs it destroys still reaches the database.
    let d = Daemon::start_with_db_socket("", Path::new(OVS_DB));
    let work = d.dir.join("e2e");
    let zones = apply_zones(&hosts, &work);
    attach_hosts(&hosts);
    let xml_dir = work.join("xml");
    libvirt_xml(&zones, &xml_dir);
    let mut lv = start_libvirt(&work, &xml_dir, t0);
    let _www10 = http_server(&hosts.vlan10, &work.join("www-office"));
    let _www_inet = http_server(&hosts.internet, &work.join("www-web"));
    let h = &hosts;
    let captures = Captures::start(&[
        ("vlan10", &h.vlan10),
        ("vlan20", &h.vlan20),
        ("lan", &h.lan),
        ("internet", &h.internet),
    ]);
    let office = boot(&mut lv, &OFFICE, &interface(&xml_dir, &OFFICE), &assets, &work);
    let web = boot(&mut lv, &WEB, &interface(&xml_dir, &WEB), &assets, &work);
    wait_done(&[(&OFFICE, &office), (&WEB, &web)]);
    let ports = check_attached(&lv);
    // Sent now, so they have arrived long before the captures stop (after the shutdowns).
    send_probe("br-intranet", PROBE10, Some(10));
    send_probe("br-intranet", PROBE20, Some(20));
    send_probe("br-internet", PROBE_INET, None);
    shut_down(&lv, &work, ports);

    assert_captures(&captures.finish(), &expectations());
    assert_reach(&OFFICE, &office);
    assert_reach(&WEB, &web);
    eprintln!("libvirt end-to-end test took {:.1} s", t0.elapsed().as_secs_f64());
}
