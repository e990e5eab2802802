//! The real Debian ovs-vsctl (and libvirt's exact command lines) against our server.

mod common;
use common::TestServer;

#[test]
fn bridge_and_port_lifecycle() {
    if !common::have_ovs_clients() {
        return;
    }
    let s = TestServer::start();
    s.ok(&["init"]);
    s.ok(&["add-br", "br0"]);
    assert_eq!(s.ok(&["list-br"]).trim(), "br0");
    assert!(s.vsctl(&["br-exists", "br0"]).is_ok());
    assert!(s.vsctl(&["br-exists", "nope"]).is_err());
    s.ok(&["add-port", "br0", "p1", "tag=10"]);
    assert_eq!(s.ok(&["list-ports", "br0"]).trim(), "p1");
    assert_eq!(s.ok(&["iface-to-br", "p1"]).trim(), "br0");
    assert_eq!(s.ok(&["get", "Port", "p1", "tag"]).trim(), "10");
    s.ok(&["set", "Port", "p1", "trunks=10,20"]);
    assert_eq!(s.ok(&["get", "Port", "p1", "trunks"]).trim(), "[10, 20]");
    s.ok(&["set", "Port", "p1", "vlan_mode=native-untagged"]);
    assert_eq!(s.ok(&["get", "Port", "p1", "vlan_mode"]).trim(), "native-untagged");
    // Adding again fails; --may-exist makes it a no-op.
    assert!(s.vsctl(&["add-port", "br0", "p1"]).is_err());
    s.ok(&["--may-exist", "add-port", "br0", "p1"]);
    // Constraint from the schema: tag is 0..4095.
    let e = s.vsctl(&["set", "Port", "p1", "tag=5000"]).unwrap_err();
    assert!(e.contains("constraint violation") || e.contains("4095"), "{e}");
    let show = s.ok(&["show"]);
    assert!(show.contains("Bridge br0") && show.contains("Port p1") && show.contains("tag: 10"), "{show}");
    assert!(show.contains("trunks: [10, 20]"), "{show}");
    s.ok(&["del-port", "br0", "p1"]);
    assert_eq!(s.ok(&["list-ports", "br0"]).trim(), "");
    assert!(s.vsctl(&["del-port", "br0", "p1"]).is_err());
    s.ok(&["--if-exists", "del-port", "p1"]);
    // Garbage collection removed the Port and Interface rows.
    assert!(!s.ok(&["list", "Interface"]).contains("name                : p1"));
    s.ok(&["del-br", "br0"]);
    assert_eq!(s.ok(&["list-br"]).trim(), "");
    assert_eq!(s.ok(&["list", "Port"]).trim(), "");
}

#[test]
fn column_commands_on_maps() {
    if !common::have_ovs_clients() {
        return;
    }
    let s = TestServer::start();
    s.ok(&["init"]);
    s.ok(&["add-br", "br0", "--", "add-port", "br0", "eth1"]);
    s.ok(&["set", "Interface", "eth1", "external_ids:a=1", "external_ids:b=2", "other_config:x=y"]);
    assert_eq!(s.ok(&["get", "Interface", "eth1", "external_ids:a"]).trim(), "\"1\"");
    assert_eq!(s.ok(&["get", "Interface", "eth1", "external_ids"]).trim(), "{a=\"1\", b=\"2\"}");
    let found = s.ok(&["--bare", "--columns=name", "find", "Interface", "external_ids:b=2"]);
    assert_eq!(found.trim(), "eth1");
    s.ok(&["remove", "Interface", "eth1", "external_ids", "a"]);
    assert_eq!(s.ok(&["get", "Interface", "eth1", "external_ids"]).trim(), "{b=\"2\"}");
    s.ok(&["add", "Interface", "eth1", "external_ids", "c=3"]);
    s.ok(&["clear", "Interface", "eth1", "external_ids"]);
    assert_eq!(s.ok(&["get", "Interface", "eth1", "external_ids"]).trim(), "{}");
    assert_eq!(s.ok(&["get", "Interface", "eth1", "other_config"]).trim(), "{x=y}");
    let listed = s.ok(&["list", "Interface", "eth1"]);
    assert!(listed.contains("other_config        : {x=y}"), "{listed}");
    assert!(s.vsctl(&["get", "Interface", "eth1", "no_such_column"]).is_err());
    assert!(s.vsctl(&["get", "Interface", "nope", "name"]).is_err());
    s.ok(&["--if-exists", "get", "Interface", "nope", "name"]);
}

#[test]
fn libvirt_attach_and_detach_lines() {
    if !common::have_ovs_clients() {
        return;
    }
    let s = TestServer::start();
    s.ok(&["init"]);
    s.ok(&["add-br", "br-intranet"]);
    let lines = common::libvirt_lines();
    assert_eq!(lines.len(), 6);
    for line in &lines {
        let argv = common::shell_split(line);
        let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        s.ok(&args);
        if line.contains("add-port") {
            let port = argv.iter().position(|a| a == "add-port").map(|i| argv[i + 2].clone()).unwrap();
            assert_eq!(s.ok(&["list-ports", "br-intranet"]).trim(), port);
            let ids = s.ok(&["get", "Interface", &port, "external_ids"]);
            assert!(ids.contains("iface-status=active") && ids.contains("attached-mac="), "{ids}");
            // Running libvirt's attach twice (--may-exist) must also succeed.
            s.ok(&args);
            match port.as_str() {
                "vnet0" => assert_eq!(s.ok(&["get", "Port", "vnet0", "tag"]).trim(), "10"),
                "vnet1" => assert_eq!(s.ok(&["get", "Port", "vnet1", "trunks"]).trim(), "[10, 20]"),
                "vnet2" => {
                    assert_eq!(s.ok(&["get", "Port", "vnet2", "vlan_mode"]).trim(), "native-untagged");
                    assert_eq!(s.ok(&["get", "Port", "vnet2", "tag"]).trim(), "42");
                    assert_eq!(s.ok(&["get", "Port", "vnet2", "trunks"]).trim(), "[42, 43]");
                }
                other => panic!("unexpected port {other}"),
            }
        } else {
            assert_eq!(s.ok(&["list-ports", "br-intranet"]).trim(), "");
            assert_eq!(s.ok(&["list", "Interface"]).matches("name                :").count(), 1);
        }
    }
}
