//! The kernel fast path inside rvswitchd (`--datapath kernel`): known unicast keeps flowing
//! while the daemon is frozen (SIGSTOP) — so the kernel, not the daemon, forwards it — each
//! frame arrives exactly once, a MAC that moves is re-learned from its first frame on the new
//! port, and the counters include what the kernel forwarded. The same scenario in userspace
//! mode stops with the daemon (the test can tell the two apart).

mod common;

use std::time::Duration;

use common::{bridge_config, wait_ports_up, Daemon, Launch, Vm};
use packet::MacAddr;
use testbed::{frame_capture, marked_frame, markers_in, require_root, send_frame, unique};

fn start(mode: &str, br: &str, vms: &[&Vm]) -> Daemon {
    let launch = Launch { args: vec![format!("--datapath={mode}")], ..Launch::default() };
    let ports: Vec<(&str, &str)> = vms.iter().map(|v| (v.port.as_str(), "")).collect();
    let d = Daemon::start_with(launch, &bridge_config(br, &ports));
    wait_ports_up(&d, &vms.iter().map(|v| v.port.as_str()).collect::<Vec<_>>());
    d
}

/// `ping` from `a` to `b`: (all answered, duplicates seen).
fn ping(a: &Vm, b: &Vm, count: u32) -> (bool, bool) {
    let n = count.to_string();
    let out = a.ns.exec(&["ping", "-c", &n, "-i", "0.2", "-W", "1", &b.ip]);
    match out {
        Ok(text) => (true, text.contains("DUP!") || text.contains("duplicates")),
        Err(e) => (false, e.to_string().contains("DUP!")),
    }
}

/// Frozen with SIGSTOP until dropped (SIGCONT), so a failing assertion cannot leave it stopped.
struct Frozen<'a>(&'a Daemon);

impl<'a> Frozen<'a> {
    fn new(d: &'a Daemon) -> Frozen<'a> {
        d.signal(libc::SIGSTOP);
        Frozen(d)
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        self.0.signal(libc::SIGCONT);
    }
}

#[test]
fn kernel_forwards_known_unicast_while_the_daemon_is_frozen() {
    if !require_root("kernel_forwards_known_unicast_while_the_daemon_is_frozen") {
        return;
    }
    let (a, b) = (Vm::new(1), Vm::new(2));
    let br = unique("br-fp");
    let d = start("kernel", &br, &[&a, &b]);
    assert!(d.log().contains("kernel fast path loaded"), "log:\n{}", d.log());
    assert_eq!(ping(&a, &b, 3), (true, false), "first ping (slow path learns both); log:\n{}", d.log());
    let before = d.port(&b.port).statistics;
    {
        let _frozen = Frozen::new(&d);
        assert_eq!(ping(&a, &b, 10), (true, false), "the kernel forwards, exactly once, without rvswitchd");
    }
    let after = d.port(&b.port).statistics;
    assert!(after.tx_packets >= before.tx_packets + 10, "kernel counts folded in: {before:?} → {after:?}");
    assert!(after.rx_packets >= before.rx_packets + 10, "{before:?} → {after:?}");
    // Those frames are the fast path's share (what --metrics exports as path="kernel").
    assert!(after.fast_rx_packets >= before.fast_rx_packets + 10, "{before:?} → {after:?}");
    assert!(d.stop(), "rvswitchd did not exit cleanly");
}

#[test]
fn userspace_mode_stops_with_the_daemon() {
    if !require_root("userspace_mode_stops_with_the_daemon") {
        return;
    }
    let (a, b) = (Vm::new(3), Vm::new(4));
    let d = start("userspace", &unique("br-fp"), &[&a, &b]);
    assert_eq!(ping(&a, &b, 3), (true, false));
    let _frozen = Frozen::new(&d);
    assert!(!ping(&a, &b, 2).0, "nothing forwards frames while the userspace switch is frozen");
}

fn frame(src: MacAddr, dst: MacAddr, marker: u32) -> Vec<u8> {
    marked_frame(src, dst, None, marker)
}

/// Markers of the test frames in `frames`.
fn markers(frames: &[Vec<u8>]) -> Vec<u32> {
    markers_in(frames).into_iter().map(|(m, _)| m).collect()
}

#[test]
fn each_frame_once_and_a_moved_mac_is_relearned_at_once() {
    if !require_root("each_frame_once_and_a_moved_mac_is_relearned_at_once") {
        return;
    }
    let (a, b, c) = (Vm::new(5), Vm::new(6), Vm::new(7));
    let d = start("kernel", &unique("br-fp"), &[&a, &b, &c]);
    let (mut ra, mut rb, mut rc) = (a.raw(), b.raw(), c.raw());
    // Learn a and b (the first frames are flooded by the slow path).
    send_frame(&mut ra, &frame(a.mac, b.mac, 0)).unwrap();
    send_frame(&mut rb, &frame(b.mac, a.mac, 0)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let _ = (
        frame_capture(&mut rb, Duration::from_millis(100), 64),
        frame_capture(&mut rc, Duration::from_millis(100), 64),
    );
    for m in 1..=50 {
        send_frame(&mut ra, &frame(a.mac, b.mac, m)).unwrap();
    }
    let at_b = markers(&frame_capture(&mut rb, Duration::from_millis(500), 200));
    assert_eq!(at_b, (1..=50).collect::<Vec<_>>(), "every frame once, in order");
    assert!(
        markers(&frame_capture(&mut rc, Duration::from_millis(200), 200)).is_empty(),
        "known unicast is not flooded"
    );

    // a's MAC shows up on c: its first frame there moves it, the next frame to it goes to c.
    send_frame(&mut rc, &frame(a.mac, b.mac, 100)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    send_frame(&mut rb, &frame(b.mac, a.mac, 101)).unwrap();
    assert_eq!(markers(&frame_capture(&mut rc, Duration::from_millis(300), 64)), vec![101], "{}", d.log());
    assert!(!markers(&frame_capture(&mut ra, Duration::from_millis(200), 64)).contains(&101));
}

#[test]
fn a_removed_port_keeps_no_kernel_entry() {
    if !require_root("a_removed_port_keeps_no_kernel_entry") {
        return;
    }
    let (a, b) = (Vm::new(8), Vm::new(9));
    let br = unique("br-fp");
    let d = start("kernel", &br, &[&a, &b]);
    let (mut ra, mut rb) = (a.raw(), b.raw());
    send_frame(&mut ra, &frame(a.mac, b.mac, 0)).unwrap();
    send_frame(&mut rb, &frame(b.mac, a.mac, 0)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let _ = frame_capture(&mut rb, Duration::from_millis(100), 64);
    {
        let _frozen = Frozen::new(&d);
        send_frame(&mut ra, &frame(a.mac, b.mac, 1)).unwrap();
        assert_eq!(markers(&frame_capture(&mut rb, Duration::from_millis(300), 64)), vec![1], "kernel path");
    }
    // b's port leaves the bridge (its veth stays): nothing may still redirect to it.
    d.write_config(&bridge_config(&br, &[(a.port.as_str(), "")]));
    d.reload().expect("reload");
    let _frozen = Frozen::new(&d);
    for m in 2..=6 {
        send_frame(&mut ra, &frame(a.mac, b.mac, m)).unwrap();
    }
    let stale = markers(&frame_capture(&mut rb, Duration::from_millis(300), 64));
    assert!(stale.is_empty(), "a stale entry still forwards to the removed port's device: {stale:?}");
}

#[test]
fn addresses_the_kernel_forwards_for_do_not_age_out() {
    if !require_root("addresses_the_kernel_forwards_for_do_not_age_out") {
        return;
    }
    let (a, b) = (Vm::new(10), Vm::new(11));
    let launch = Launch { args: vec!["--datapath=kernel".into()], ..Launch::default() };
    let ports = [(a.port.as_str(), ""), (b.port.as_str(), "")];
    let br = unique("br-fp");
    let config = bridge_config(&br, &ports).replacen("\n", "\nmac-aging-time = 3\n", 1);
    let d = Daemon::start_with(launch, &config);
    wait_ports_up(&d, &[&a.port, &b.port]);
    // Permanent neighbours: no ARP after the pings, which would re-teach the addresses through
    // the slow path and hide a missing refresh.
    for (vm, peer) in [(&a, &b), (&b, &a)] {
        let mac = peer.mac.to_string();
        vm.ns
            .exec(&["ip", "neigh", "replace", &peer.ip, "lladdr", &mac, "dev", "eth0", "nud", "permanent"])
            .unwrap();
    }
    assert_eq!(ping(&a, &b, 2), (true, false));
    {
        // Longer than the aging time, all of it forwarded by the kernel alone.
        let _frozen = Frozen::new(&d);
        assert_eq!(ping(&a, &b, 25), (true, false));
    }
    // Let the daemon tick (at least once a second) after it was frozen for > 3 s: the kernel's
    // stamps must refresh both addresses before aging would remove them.
    std::thread::sleep(Duration::from_millis(2500));
    let fdb = d.fdb(&br);
    for vm in [&a, &b] {
        assert!(fdb.entries.iter().any(|e| e.mac == vm.mac.to_string()), "{} aged out: {fdb:?}", vm.mac);
    }
}
