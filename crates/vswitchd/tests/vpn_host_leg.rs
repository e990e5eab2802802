//! A VPN zone's frames never reach the host's IP stack, not even its VMs' broadcasts (issue
//! 10): `zones apply` puts the zone bridge's internal port on the host-only VLAN 4095, which no
//! other port of the zone carries. A capture on that internal device (in the host namespace)
//! while the zone's VM leases its address by DHCP, ARPs and pings the office through the
//! wireguard-go tunnel sees none of the VM's frames, and `zones verify` proves the zone's VLAN
//! reaches only the VM and the gateway. The control: with the internal port made a trunk of all
//! VLANs by hand (what `zones apply` did before), verify reports the way out and the same
//! capture does see the VM's broadcasts; a second `zones apply` repairs it.

mod common;

use std::time::Duration;

use common::office::*;
use common::wg_office::*;
use common::{wait_ports_up, Daemon};
use ctl::zones_cli::ZonesCommand;
use packet::MacAddr;
use testbed::{require_program, unique, Netns};

const VM_MAC: &str = "52:54:00:50:00:21";

/// What the VM does that a host leg would hear: DHCP (broadcast DISCOVER/REQUEST), gratuitous
/// and plain ARP broadcasts, and a ping through the tunnel (ARP for the gateway first).
fn vm_broadcasts(vm: &Netns, script: &str) -> bool {
    let _ = vm.exec(&["ip", "addr", "flush", "dev", "eth0"]);
    let _ = vm.exec(&["ip", "neigh", "flush", "dev", "eth0"]);
    let lease =
        vm.exec(&["busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "10", "-T", "1", "-s", script]);
    assert!(lease.is_ok(), "no DHCP lease: {lease:?}");
    let _ = vm.exec(&["busybox", "arping", "-c", "3", "-w", "3", "-I", "eth0", GATEWAY]);
    vm.ping(OFFICE_HOST, 3)
}

#[test]
fn a_vpn_zones_broadcasts_never_reach_the_hosts_internal_port() {
    let test = "a_vpn_zones_broadcasts_never_reach_the_hosts_internal_port";
    if !have_tools(test) || !require_program(test, "busybox", "--help", "busybox-static") {
        return;
    }
    let s = setup();
    let _server = OfficeServer::start(&s.office.office, s.server_conf.clone());
    let (vm, _vm_link, vm_port) = dhcp_vm(VM_MAC);
    let (zone, bridge) = (unique("z"), unique("brh"));
    let file = s._dir.path().join("zones.toml");
    std::fs::write(&file, vpn_zones_file(&zone, &bridge, &s.our_conf, "")).unwrap();
    let d = Daemon::start("");
    let db = format!("unix:{}", d.db_socket().display());
    let apply = || zones_cmd(&db, ZonesCommand::Apply { file: file.clone(), no_wait: false });
    let out = apply();
    assert_eq!(out.code, 0, "{}", out.stdout);
    d.vsctl(&["add-port", &bridge, &vm_port, "tag=10"]).expect("VM port");
    d.vsctl(&["set", "Interface", &vm_port, &format!("external_ids:attached-mac={VM_MAC}")]).unwrap();
    wait_ports_up(&d, &[&vm_port, &bridge]);
    let gw = zones::vpn_port_name(&zone);
    assert!(wait_vpn_state(&d, &gw, "up", Duration::from_secs(20)), "{:?}\n{}", d.port(&gw), d.log());
    assert_eq!(d.port(&bridge).tag, Some(switch::HOST_ONLY_VID), "{:?}", d.port(&bridge));

    let verified = zones_cmd(&db, ZonesCommand::Verify);
    assert_eq!(verified.code, 0, "{}", verified.stdout);
    let proof = format!(
        "VPN zone {zone}: VLAN 10 on {bridge} reaches only its gateway port {gw} and VM ports ({vm_port})"
    );
    assert!(verified.stdout.contains(&proof), "{}", verified.stdout);

    let script = write_file(s._dir.path(), "udhcpc.sh", UDHCPC_SCRIPT, 0o755).display().to_string();
    let mac: MacAddr = VM_MAC.parse().unwrap();
    let mut reached = false;
    let (from_vm, all) =
        heard_while(&bridge, mac, Duration::from_secs(90), || reached = vm_broadcasts(&vm, &script));
    eprintln!("host leg, internal port on VLAN 4095: {from_vm} of the VM's frames among {all} captured");
    assert!(reached, "the VM must still reach the office: {:?}\n{}", d.port(&gw), d.log());
    assert_eq!(from_vm, 0, "the VM's frames reached the host's IP stack through {bridge}");

    // Control: the internal port as a trunk of all VLANs, as zones apply used to make it.
    d.vsctl(&["clear", "Port", &bridge, "tag", "vlan_mode", "trunks"]).expect("clear VLANs");
    let leaky = zones_cmd(&db, ZonesCommand::Verify);
    assert_eq!(leaky.code, 1, "{}", leaky.stdout);
    let way_out = format!("internal port (the host's IP stack) carrying VLAN 10 {bridge}");
    assert!(leaky.stdout.contains(&way_out), "{}", leaky.stdout);
    let (from_vm, all) =
        heard_while(&bridge, mac, Duration::from_secs(90), || reached = vm_broadcasts(&vm, &script));
    eprintln!(
        "host leg, internal port trunking all VLANs: {from_vm} of the VM's frames among {all} captured"
    );
    assert!(from_vm > 0, "the capture must hear the VM through a trunk-all internal port");

    let out = apply();
    assert!(out.stdout.contains(&format!("~ port {bridge} (zone {zone})")), "{}", out.stdout);
    assert_eq!(zones_cmd(&db, ZonesCommand::Verify).code, 0);
    assert_eq!(d.port(&bridge).tag, Some(switch::HOST_ONLY_VID));
}
