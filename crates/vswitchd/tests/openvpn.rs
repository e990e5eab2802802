//! A zone's VPN egress through a tun device that another VPN client holds (`options:tun`),
//! against Debian's real OpenVPN: the office namespace runs `openvpn` as the server (static
//! key, tun mode), the host runs an `openvpn` client whose tun device is the zone's uplink.
//! An intranet VM reaches the office LAN host with its own address (routed mode); the kill
//! switch holds when the server dies (the client's `--ping-restart` closes its tun), when the
//! client dies (the tun is deleted) and across an rvswitchd restart while the tun is gone:
//! nothing of the zone appears anywhere else, the drops are counted `vpn-down`, and traffic
//! resumes on the re-created device (same name, new ifindex).

mod common;

use std::time::Duration;

use common::office::*;
use common::openvpn::*;
use common::{bridge_config, wait_ports_up, Daemon};
use testbed::{unique, wait_until, BackgroundPing, Netns, Veth};

/// While the tun is gone the VM keeps pinging: the drops grow as `vpn-down`, and nothing of the
/// zone shows on the WAN link, the host's leg or the other zone.
fn check_kill_switch(d: &Daemon, port: &str, office: &Office, bridge: &str, other: &Netns, what: &str) {
    assert!(wait_vpn_state(d, port, "down", Duration::from_secs(30)), "{what}: {:?}", d.port(port));
    let before = vpn_down_drops(d, port);
    let caught = capture_leaks(office, bridge, other, Duration::from_secs(6));
    let after = vpn_down_drops(d, port);
    caught.assert_no_zone_packets();
    assert!(after > before, "{what}: ping ran on, so vpn-down drops must grow: {before} → {after}");
    eprintln!(
        "kill switch ({what}): {} frames on the WAN link, {} on the host's leg, {} in the other zone, none of the zone's; vpn-down {before} → {after}",
        caught.wan.len(),
        caught.host_leg.len(),
        caught.other_zone.len()
    );
}

/// Back up: the device is there again (a new ifindex), rvswitch reopened it, the VM pings.
fn check_resumed(d: &Daemon, port: &str, vm: &Netns, dev: &str, files: &Files, what: &str) {
    assert!(wait_until(Duration::from_secs(30), || device_up(dev)), "{what}: no tun\n{}", files.logs());
    assert!(
        wait_vpn_state(d, port, "up", Duration::from_secs(20)),
        "{what}: {:?}\n{}",
        d.port(port),
        d.log()
    );
    assert!(vm.ping(OFFICE_HOST, 3), "{what}: no traffic after the tunnel returned\n{}", files.logs());
}

#[test]
fn a_tun_uplink_carries_the_zone_through_openvpn_and_the_kill_switch_holds() {
    if !have_tools("a_tun_uplink_carries_the_zone_through_openvpn_and_the_kill_switch_holds") {
        return;
    }
    let office = office();
    let files = files();
    let tun_ips = (SERVER_TUN_IP, CLIENT_TUN_IP);
    let mut server = OpenVpn::server(&office.office, &files.key, &files.log("server.log"), tun_ips);
    let dev = unique("tun");
    let client_log = files.log("client.log");
    let mut client = OpenVpn::client(&dev, &files.key, &office.office_wan, &files.up, &client_log, None);
    assert!(wait_until(Duration::from_secs(20), || device_up(&dev)), "client tun not up\n{}", files.logs());

    let (vm, _vm_link, vm_port) = intranet_vm();
    let other = Netns::new("inet").expect("other zone netns");
    let other_port = unique("q");
    let _other_link = Veth::to_ns(&other_port, &other, "eth0", Some("198.18.70.2/24"), None).unwrap();
    // The intranet bridge comes from ovs-vsctl alone: the config file is authoritative for
    // the bridges it names, and this one must keep its VPN port across the restart below.
    let (bridge, other_bridge) = (unique("bri"), unique("brx"));
    let mut d = Daemon::start(&bridge_config(&other_bridge, &[(&other_port, "tag = 20")]));
    let port = unique("vpn");
    add_zone_bridge(&d, &bridge, &vm_port, &port, &dev, &[]);
    wait_ports_up(&d, &[&vm_port, &other_port]);
    assert!(wait_vpn_state(&d, &port, "up", Duration::from_secs(20)), "{:?}\n{}", d.port(&port), d.log());

    // Routed: the office host sees the VM's own address.
    assert!(vm.ping(OFFICE_HOST, 3), "ping through OpenVPN failed: {:?}\n{}", d.port(&port), files.logs());
    let ping = vm.exec(&["ping", "-c", "50", "-i", "0.1", "-W", "2", OFFICE_HOST]).unwrap_or_default();
    let loss = ping.lines().find(|l| l.contains("packet loss")).unwrap_or("").to_string();
    let (bps, peer) = iperf(&vm, &office.lan, OFFICE_HOST);
    eprintln!("OpenVPN tun uplink: ping {loss}; iperf3 TCP VM → office host {:.1} Mb/s", bps / 1e6);
    assert!(bps > 0.0, "no TCP throughput");
    assert_eq!(peer, VM_IP, "the office host sees the VM's own address");
    let st = vpn_status(&d, &port);
    assert_eq!(st.endpoint, dev);
    assert!(st.rx_bytes > 0 && st.tx_bytes > 0, "{st:?}");
    let (db_status, _) = d.vsctl_output(&["get", "Interface", &port, "status"]).unwrap();
    assert!(db_status.contains("vpn_state=up"), "Interface status: {db_status}");

    // 1. The server dies mid-ping: the client gives up its tun; nothing leaks.
    let bg = BackgroundPing::start(&vm, OFFICE_HOST, Duration::from_millis(100), 60).expect("ping");
    server.kill();
    assert!(
        wait_until(Duration::from_secs(20), || !device_exists(&dev)),
        "client kept its tun\n{}",
        files.logs()
    );
    check_kill_switch(&d, &port, &office, &bridge, &other, "server killed");
    drop(bg);
    server.launch();
    check_resumed(&d, &port, &vm, &dev, &files, "server back");

    // 2. The client dies: its tun is deleted with it.
    let bg = BackgroundPing::start(&vm, OFFICE_HOST, Duration::from_millis(100), 60).expect("ping");
    client.kill();
    assert!(wait_until(Duration::from_secs(10), || !device_exists(&dev)), "tun outlived its client");
    check_kill_switch(&d, &port, &office, &bridge, &other, "client killed");
    drop(bg);

    // 3. rvswitchd restarts while the tun is gone: the zone stays closed.
    d.restart();
    wait_ports_up(&d, &[&vm_port, &other_port]);
    let has_port = || d.show().bridges.iter().flat_map(|b| &b.ports).any(|p| p.name == port);
    assert!(
        wait_until(Duration::from_secs(20), has_port),
        "VPN port not back after the restart\n{}",
        d.log()
    );
    let bg = BackgroundPing::start(&vm, OFFICE_HOST, Duration::from_millis(100), 60).expect("ping");
    check_kill_switch(&d, &port, &office, &bridge, &other, "rvswitchd restarted without the tun");
    drop(bg);
    client.launch();
    check_resumed(&d, &port, &vm, &dev, &files, "client back after the restart");
}

/// NAT mode (`options:nat=true`): the VMs leave as the tun's address, which the office sees.
#[test]
fn nat_mode_through_openvpn_shows_the_office_the_tun_address() {
    if !have_tools("nat_mode_through_openvpn_shows_the_office_the_tun_address") {
        return;
    }
    // Bound whole: each part lives as long as the test.
    let z = nat_zone(&[]);
    let (office, vm, ours) = (&z.office, &z.vm, &z.ours);
    let (bps, peer) = iperf(vm, &office.lan, OFFICE_HOST);
    eprintln!("OpenVPN tun uplink, NAT: iperf3 TCP VM → office host {:.1} Mb/s as {peer}", bps / 1e6);
    assert!(bps > 0.0, "no TCP throughput");
    assert_eq!(&peer, ours, "the office host sees the tun's address");
}
