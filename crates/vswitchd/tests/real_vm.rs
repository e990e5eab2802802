//! A real VM on the switch: qemu (TCG) boots Debian's cloud kernel with a busybox initramfs and a
//! virtio-net NIC on a tap that *qemu* creates (`vnetN`, as under libvirt). rvswitchd attaches
//! that tap as a system port when it appears; the guest pings a namespace "VM" on the same VLAN
//! and downloads 8 MiB from it over TCP (offloaded super-frames into a virtio-net guest).
//!
//! Needs qemu-system-x86, busybox-static and the kernel + modules that scripts/vm-assets.sh puts
//! in $RVSWITCH_VM_ASSETS (.ci/run does all of this).

mod common;

use std::time::Duration;

use common::{bridge_config, Daemon, Vm};
use testbed::{boot_guest, build_initramfs, guest_init, require_root, unique, wait_until};

/// The guest's /init: configure, ping, download, report on the console, power off.
fn init_script(peer_ip: &str) -> String {
    guest_init(&format!(
        "ip link set eth0 up\nip addr add 198.18.0.50/24 dev eth0\n\
         if ping -c 3 -W 3 {peer_ip}; then echo RVS-PING-OK; else echo RVS-PING-FAIL; fi\n\
         n=$(wget -q -O - http://{peer_ip}:8000/blob | wc -c)\necho RVS-TCP-BYTES=$n\npoweroff -f\n"
    ))
}

#[test]
fn qemu_guest_on_its_own_tap_is_switched() {
    if !require_root("qemu_guest_on_its_own_tap_is_switched") {
        return;
    }
    let Some(assets) = testbed::require_vm_assets("qemu_guest_on_its_own_tap_is_switched") else {
        return;
    };
    let peer = Vm::new(1);
    let tap = unique("vnet");
    // The tap does not exist yet: the port starts down and comes up when qemu creates it.
    let d = Daemon::start(&bridge_config(&unique("br-vm"), &[(&peer.port, "tag = 10"), (&tap, "tag = 10")]));
    let work = d.dir.join("vm");
    std::fs::create_dir_all(&work).unwrap();
    let initrd = build_initramfs(&assets, &work, &init_script(&peer.ip)).expect("initramfs");

    // The peer serves 8 MiB over HTTP from inside its namespace.
    std::fs::write(work.join("blob"), vec![0x5a; 8 << 20]).unwrap();
    let _http = peer
        .ns
        .spawn(&[
            "python3",
            "-m",
            "http.server",
            "8000",
            "--bind",
            &peer.ip,
            "--directory",
            work.to_str().unwrap(),
        ])
        .unwrap();

    let console = work.join("console.log");
    let mut qemu = boot_guest(&assets, &initrd, &tap, "52:54:00:12:34:56", &console).expect("start qemu");
    // TCG boot plus the test: bounded at two minutes.
    let done = wait_until(Duration::from_secs(120), || qemu.child_mut().try_wait().ok().flatten().is_some());
    let text = std::fs::read_to_string(&console).unwrap_or_default();
    assert!(done, "guest did not finish in time; console:\n{text}");
    assert!(
        text.contains("RVS-PING-OK"),
        "guest could not ping the peer on VLAN 10; console:\n{text}\n{}",
        d.log()
    );
    let bytes: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("RVS-TCP-BYTES="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert_eq!(bytes, 8 << 20, "TCP download into the guest incomplete; console:\n{text}");
    let st = d.port(&tap).statistics;
    assert!(st.tx_packets > 0 && st.rx_packets > 0, "{st:?}");
}
