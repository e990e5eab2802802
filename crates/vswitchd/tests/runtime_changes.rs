//! Changes to a running switch that no other test made: a port changing type and moving
//! between bridges, bridge settings changed through the database, a device deleted and
//! recreated faster than the 1 s monitoring pass, and a tap deleted from outside.

mod common;

use std::time::{Duration, Instant};

use common::{bridge_config, wait_ports_up, Daemon, Vm};
use testbed::{require_program, require_root, run, unique, wait_until, Netns};

/// ifindex of `name` in the root namespace, if it exists there.
fn ifindex_of(name: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex")).ok()?.trim().parse().ok()
}

fn assert_changed(changes: &[String], what: &str) {
    assert!(changes.iter().any(|c| c.contains(what)), "no change {what:?} in {changes:?}");
}

#[test]
fn port_changes_type_system_to_internal_and_back() {
    if !require_root("port_changes_type_system_to_internal_and_back") {
        return;
    }
    let (a, mut b) = (Vm::new(1), Vm::new(2));
    let br = unique("br");
    let cfg = |kind: &str| bridge_config(&br, &[(&a.port, ""), (&b.port, kind)]);
    let d = Daemon::start(&cfg(""));
    wait_ports_up(&d, &[&a.port, &b.port]);
    assert!(a.ping(&b, 2));

    // system → internal: free the name first (the VM's veth goes), then change the type. The
    // daemon creates the internal device; it becomes b's NIC.
    b.veth.delete().expect("delete veth");
    d.write_config(&cfg("type = \"internal\""));
    assert_changed(&d.reload().expect("reload to internal").changes, &format!("replaced port {}", b.port));
    wait_ports_up(&d, &[&b.port]);
    assert_eq!(d.port(&b.port).kind, "internal");
    assert!(ifindex_of(&b.port).is_some(), "internal device {} not created", b.port);
    // b's MAC moves along (a's neighbour cache still has it), as a VM keeps its MAC.
    run("ip", &["link", "set", &b.port, "address", &b.mac.to_string(), "netns", b.ns.name()]).unwrap();
    b.ns.addr_up(&b.port, &format!("{}/24", b.ip)).unwrap();
    assert!(a.ping(&b, 2), "no traffic through the port after it became internal");

    // internal → system: the daemon deletes its internal device (as ovs-vswitchd does), and a
    // veth of that name becomes the port.
    d.write_config(&cfg(""));
    assert_changed(&d.reload().expect("reload to system").changes, &format!("replaced port {}", b.port));
    let t = Instant::now();
    let gone = wait_until(Duration::from_secs(5), || b.ns.exec(&["ip", "link", "show", &b.port]).is_err());
    assert!(gone, "internal device {} still exists after the port became system", b.port);
    eprintln!("internal device removed {:?} after the reload returned", t.elapsed());
    b.recreate_link();
    wait_ports_up(&d, &[&b.port]);
    assert_eq!(d.port(&b.port).kind, "system");
    assert_eq!(d.port(&b.port).ifindex, ifindex_of(&b.port), "port not on the new veth");
    assert!(a.ping(&b, 2), "no traffic after the port became system again");
}

#[test]
fn port_moves_between_bridges_and_traffic_follows() {
    if !require_root("port_moves_between_bridges_and_traffic_follows") {
        return;
    }
    let (a, b, c) = (Vm::new(1), Vm::new(2), Vm::new(3));
    let (br1, br2) = (unique("br"), unique("br"));
    let cfg = |b_on_1: bool| {
        let (a, b, c) = ((a.port.as_str(), ""), (b.port.as_str(), ""), (c.port.as_str(), ""));
        let (on1, on2) = if b_on_1 { (vec![a, b], vec![c]) } else { (vec![a], vec![c, b]) };
        bridge_config(&br1, &on1) + &bridge_config(&br2, &on2)
    };
    let d = Daemon::start(&cfg(true));
    wait_ports_up(&d, &[&a.port, &b.port, &c.port]);
    assert!(b.ping(&a, 2) && !b.ping(&c, 1), "b should reach a only");
    assert!(d.fdb(&br1).entries.iter().any(|e| e.port == b.port), "b not learned on {br1}");

    for (b_on_1, here, there, bridge) in [(false, &c, &a, &br2), (true, &a, &c, &br1)] {
        d.write_config(&cfg(b_on_1));
        assert_changed(&d.reload().expect("reload").changes, &format!("replaced port {}", b.port));
        wait_ports_up(&d, &[&b.port]);
        let bridge_of_b = d.show().bridges.into_iter().find(|x| x.ports.iter().any(|p| p.name == b.port));
        assert_eq!(bridge_of_b.map(|x| x.name).as_ref(), Some(bridge));
        assert!(b.ping(here, 2), "b cannot reach {} after moving to {bridge}", here.ip);
        assert!(!b.ping(there, 1), "b still reaches {} on the bridge it left", there.ip);
        let old = if b_on_1 { &br2 } else { &br1 };
        assert!(
            d.fdb(old).entries.iter().all(|e| e.port != b.port && e.mac != b.mac.to_string()),
            "{old} still knows b: {:?}",
            d.fdb(old).entries
        );
    }
}

#[test]
fn bridge_settings_change_at_runtime() {
    if !require_root("bridge_settings_change_at_runtime")
        || !require_program(
            "bridge_settings_change_at_runtime",
            "ovs-vsctl",
            "--version",
            "openvswitch-switch",
        )
    {
        return;
    }
    let (a, b, c) = (Vm::new(1), Vm::new(2), Vm::new(3));
    let d = Daemon::start("");
    let br = unique("br");
    d.vsctl(&["add-br", &br]).unwrap();
    for vm in [&a, &b, &c] {
        d.vsctl(&["add-port", &br, &vm.port]).unwrap();
    }
    let bridge = |d: &Daemon| d.show().bridges.into_iter().find(|x| x.name == br).expect("bridge in show");
    let vm_macs = |d: &Daemon| {
        let macs = [a.mac.to_string(), b.mac.to_string(), c.mac.to_string()];
        d.fdb(&br).entries.iter().filter(|e| macs.contains(&e.mac)).count()
    };
    assert!(a.ping(&b, 1) && a.ping(&c, 1));
    assert_eq!(vm_macs(&d), 3, "{:?}", d.fdb(&br));

    // A smaller table takes effect at once: the oldest entries go, and learning stays in bounds.
    d.vsctl(&["set", "Bridge", &br, "other_config:mac-table-size=2"]).unwrap();
    assert_eq!(bridge(&d).mac_table_size, 2);
    assert!(d.fdb(&br).entries.len() <= 2, "{:?}", d.fdb(&br));
    assert!(a.ping(&b, 1) && a.ping(&c, 1) && b.ping(&c, 1), "forwarding broke with a 2-entry table");
    let entries = d.fdb(&br).entries;
    eprintln!("with mac-table-size=2 after traffic among 3 VMs: {} entries", entries.len());
    assert!(entries.len() <= 2, "{entries:?}");

    // Aging of 1 s: once the VMs are quiet, their addresses expire (under the default 300 s
    // they would stay).
    assert!(a.ping(&b, 1));
    assert!(vm_macs(&d) >= 2, "{:?}", d.fdb(&br));
    d.vsctl(&["set", "Bridge", &br, "other_config:mac-aging-time=1", "other_config:mac-table-size=100"])
        .unwrap();
    assert_eq!((bridge(&d).mac_aging_time, bridge(&d).mac_table_size), (1, 100));
    let t = Instant::now();
    let expired = wait_until(Duration::from_secs(10), || d.fdb(&br).entries.is_empty());
    eprintln!("with mac-aging-time=1: table empty after {:?}", t.elapsed());
    assert!(expired, "entries did not age out: {:?}", d.fdb(&br));

    // Removing the keys restores OvS's defaults (300 s, 8192 entries).
    d.vsctl(&["remove", "Bridge", &br, "other_config", "mac-aging-time", "mac-table-size"]).unwrap();
    assert_eq!((bridge(&d).mac_aging_time, bridge(&d).mac_table_size), (300, 8192));
    assert!(a.ping(&c, 1));
}

#[test]
fn device_recreated_before_the_monitor_pass() {
    if !require_root("device_recreated_before_the_monitor_pass") {
        return;
    }
    let (a, mut b) = (Vm::new(1), Vm::new(2));
    let d = Daemon::start(&bridge_config(&unique("br"), &[(&a.port, ""), (&b.port, "")]));
    wait_ports_up(&d, &[&a.port, &b.port]);
    assert!(a.ping(&b, 2));
    let old = d.port(&b.port).ifindex;

    // Delete and recreate at once: well inside one monitoring pass (1 s), so the daemon may
    // never see the name missing, only a different device behind it.
    let t = Instant::now();
    b.veth.delete().expect("delete veth");
    b.recreate_link();
    eprintln!("veth deleted and recreated in {:?}", t.elapsed());
    let new = ifindex_of(&b.port);
    assert_ne!(new, old, "the kernel reused the ifindex; the test cannot tell the devices apart");
    let t = Instant::now();
    let back = wait_until(Duration::from_secs(10), || a.ping(&b, 1));
    eprintln!("traffic back {:?} after the recreation", t.elapsed());
    assert!(back, "no traffic after the device was recreated: {:?}", d.port(&b.port));
    let on_new = wait_until(Duration::from_secs(5), || d.port(&b.port).ifindex == new);
    assert!(on_new, "port reports ifindex {:?}, device has {new:?}", d.port(&b.port).ifindex);
    assert!(d.port(&b.port).error.is_none());
}

#[test]
fn tap_deleted_from_outside_is_reopened() {
    if !require_root("tap_deleted_from_outside_is_reopened") {
        return;
    }
    let a = Vm::new(1);
    let tap = unique("tap");
    let d = Daemon::start(&bridge_config(&unique("br"), &[(&a.port, ""), (&tap, "type = \"tap\"")]));
    wait_ports_up(&d, &[&a.port, &tap]);
    let old = d.port(&tap).ifindex;
    let ns = Netns::new("tp").unwrap();
    // The same MAC each time: the VM's neighbour cache keeps the first one.
    let into_ns = || {
        run("ip", &["link", "set", &tap, "address", "02:00:00:00:00:05", "netns", ns.name()]).unwrap();
        ns.addr_up(&tap, "198.18.0.5/24").unwrap();
    };
    into_ns();
    assert!(a.ns.ping("198.18.0.5", 2), "VM cannot reach the tap");

    ns.exec(&["ip", "link", "del", &tap]).expect("delete the tap");
    let t = Instant::now();
    let back = wait_until(Duration::from_secs(10), || ifindex_of(&tap).is_some());
    eprintln!("tap recreated {:?} after `ip link del`", t.elapsed());
    assert!(back, "daemon did not recreate the deleted tap: {:?}\n{}", d.port(&tap), d.log());
    wait_ports_up(&d, &[&tap]);
    assert_ne!(d.port(&tap).ifindex, old, "port still reports the deleted device");
    assert_eq!(d.port(&tap).ifindex, ifindex_of(&tap));
    into_ns();
    assert!(a.ns.ping("198.18.0.5", 2), "no traffic through the reopened tap");
}
