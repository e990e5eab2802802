//! A real guest (qemu/TCG, virtio-net on a tap qemu creates) on a port-security VM port
//! (attached-mac set with ovs-vsctl, as libvirt does): it pings its peer, changes its MAC from
//! inside (`ip link set eth0 address …`) and loses connectivity — the drops are counted as
//! `spoofed-mac` — then changes back and recovers (issue 9).

mod common;

use std::time::Duration;

use common::{bridge_config, have_ovs_vsctl, Daemon, Vm};
use testbed::{boot_guest, build_initramfs, guest_init, require_root, unique, wait_until};

const GUEST_MAC: &str = "52:54:00:12:34:57";

/// ping → MAC changed → ping → MAC back → ping, each result on the console.
fn init_script(peer_ip: &str) -> String {
    let ping = |tag: &str| {
        format!("if ping -c 3 -W 2 {peer_ip}; then echo RVS-{tag}-OK; else echo RVS-{tag}-FAIL; fi\n")
    };
    let set_mac = |mac: &str| {
        format!("ip link set eth0 down\nip link set eth0 address {mac}\nip link set eth0 up\nsleep 1\n")
    };
    guest_init(&format!(
        "ip link set eth0 up\nip addr add 198.18.0.50/24 dev eth0\n{}{}{}{}{}poweroff -f\n",
        ping("BEFORE"),
        set_mac("52:54:00:66:66:66"),
        ping("SPOOFED"),
        set_mac(GUEST_MAC),
        ping("AFTER"),
    ))
}

#[test]
fn guest_changing_its_mac_is_cut_off_until_it_changes_back() {
    if !require_root("guest_changing_its_mac") || !have_ovs_vsctl() {
        return;
    }
    let Some(assets) = testbed::require_vm_assets("guest_changing_its_mac") else {
        return;
    };
    let peer = Vm::new(1);
    let tap = unique("vnet");
    let d = Daemon::start(&bridge_config(&unique("br-mc"), &[(&peer.port, "tag = 10"), (&tap, "tag = 10")]));
    d.vsctl(&["set", "Interface", &tap, &format!("external_ids:attached-mac={GUEST_MAC}")]).expect("vsctl");
    let work = d.dir.join("vm");
    std::fs::create_dir_all(&work).unwrap();
    let initrd = build_initramfs(&assets, &work, &init_script(&peer.ip)).expect("initramfs");
    let console = work.join("console.log");
    let mut qemu = boot_guest(&assets, &initrd, &tap, GUEST_MAC, &console).expect("start qemu");
    // TCG boot plus three pings: bounded at two minutes.
    let done = wait_until(Duration::from_secs(120), || qemu.child_mut().try_wait().ok().flatten().is_some());
    let text = std::fs::read_to_string(&console).unwrap_or_default();
    assert!(done, "guest did not finish in time; console:\n{text}");
    for want in ["RVS-BEFORE-OK", "RVS-SPOOFED-FAIL", "RVS-AFTER-OK"] {
        assert!(text.contains(want), "{want} missing; console:\n{text}\n{}", d.log());
    }
    let drops = d.port(&tap).statistics.drops;
    assert!(drops.get("spoofed-mac").copied().unwrap_or(0) > 0, "not counted as spoofed-mac: {drops:?}");
}
