//! `rvsctl topology` against a real rvswitchd whose bridges `rvsctl zones apply` made, with a
//! VM port attached the way libvirt does: the picture names the zones, their NIC uplink and the
//! VM, every port, and a port whose peer went down shows as down. The DOT parses with
//! Graphviz, the SVG with xmllint.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{have_ovs_vsctl, have_rvsctl, libvirt_attach, rvsctl_path, wait_ports_up, Daemon, Vm};
use ctl::topology::Topology;
use ctl::zones_cli::{self, Globals, ZonesCommand};
use testbed::{require_program, require_root, unique, wait_until, Veth};

fn topology(d: &Daemon, format: &str) -> String {
    let db = format!("unix:{}", d.db_socket().display());
    let out = Command::new(rvsctl_path())
        .arg("--socket")
        .arg(&d.socket)
        .args(["--db", &db, "topology", "--format", format])
        .output()
        .expect("rvsctl topology");
    assert!(out.status.success(), "rvsctl topology: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `tool args` accepts `input` on stdin; its stderr if not.
fn accepts(tool: &str, args: &[&str], input: &str) -> Result<(), String> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child.stdin.take().map(|mut i| i.write_all(input.as_bytes())).transpose().map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    out.status.success().then_some(()).ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn zones_uplinks_vms_and_every_port_are_in_the_picture() {
    let test = "topology of a zoned daemon";
    if !require_root(test)
        || !have_ovs_vsctl()
        || !have_rvsctl(test)
        || !require_program(test, "dot", "-V", "graphviz")
        || !require_program(test, "xmllint", "--version", "libxml2-utils")
    {
        return;
    }
    let (nic, wire) = (unique("nic"), unique("wire"));
    let _cable = Veth::pair(&nic, &wire).expect("veth for the NIC stand-in");
    let (intranet, internet) = (unique("bi"), unique("bn"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("zones.toml");
    std::fs::write(
        &file,
        format!(
            "[[zone]]\nname = \"intranet\"\nbridge = \"{intranet}\"\ndescription = \"Company LAN\"\n\
             uplink = {{ nic = \"{nic}\" }}\n[[zone.portgroup]]\nname = \"vlan-10\"\nvlan = 10\ndefault = true\n\
             [[zone]]\nname = \"internet\"\nbridge = \"{internet}\"\n"
        ),
    )
    .unwrap();
    let d = Daemon::start("");
    let g = Globals { db: format!("unix:{}", d.db_socket().display()), json: false, timeout: 20 };
    zones_cli::run(&ZonesCommand::Apply { file: file.clone(), no_wait: false }, &g).expect("zones apply");
    let vm = Vm::new(1);
    let attach = libvirt_attach(&intranet, &vm.port, &vm.mac.to_string());
    d.vsctl(&attach.iter().map(String::as_str).collect::<Vec<_>>()).expect("libvirt-style attach");
    wait_ports_up(&d, &[&vm.port, &nic]);

    let json: Topology = serde_json::from_str(&topology(&d, "json")).expect("json topology");
    let br = json.bridges.iter().find(|b| b.name == intranet).expect("the intranet bridge");
    assert_eq!((br.zone.as_deref(), br.description.as_deref()), (Some("intranet"), Some("Company LAN")));
    let port = |name: &str| br.ports.iter().find(|p| p.status.name == name).expect("port");
    assert_eq!(port(&nic).role.as_deref(), Some("uplink"));
    assert_eq!(port(&vm.port).mac, Some(vm.mac.to_string()));
    assert!(port(&vm.port).vm.is_some(), "vm-id from libvirt's external_ids");

    vm.ns.exec(&["ip", "link", "set", "eth0", "down"]).expect("peer down");
    assert!(wait_until(Duration::from_secs(10), || d.port(&vm.port).link_state == "down"));
    let dot = topology(&d, "dot");
    accepts("dot", &["-Tsvg"], &dot).unwrap_or_else(|e| panic!("dot rejects the DOT: {e}\n{dot}"));
    let svg = topology(&d, "svg");
    accepts("xmllint", &["--noout", "-"], &svg).unwrap_or_else(|e| panic!("xmllint rejects the SVG: {e}"));
    // Graphviz writes '-' in text as the character reference "&#45;".
    let svg = svg.replace("&#45;", "-");
    let ports: Vec<String> = d.show().bridges.iter().flat_map(|b| &b.ports).map(|p| p.name.clone()).collect();
    assert!(ports.len() >= 4, "two internal ports, the uplink, the VM: {ports:?}");
    for name in &ports {
        assert!(svg.contains(&format!("{name} (")), "the SVG does not name port {name}:\n{svg}");
    }
    for want in [
        format!("zone intranet — bridge {intranet}"),
        format!("zone internet — bridge {internet}"),
        format!("uplink {nic} (system)"),
        format!("VM {}", port(&vm.port).vm.clone().unwrap_or_default()),
        vm.mac.to_string(),
        "link down".to_string(),
    ] {
        assert!(svg.contains(&want), "the SVG lacks {want:?}:\n{svg}");
    }
}
