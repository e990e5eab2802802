//! A crash in kernel mode (`--datapath kernel`, issue 13): the fast path's maps and tc links are
//! pinned in bpffs, so while no rvswitchd runs the kernel keeps forwarding the flows already in
//! its flow map (the socket filter stays on the slow-path sockets the descriptor keeper holds,
//! and shares the maps — the decision slot too — with the pinned program), and the next daemon
//! adopts them. A port removed from the configuration while the daemon was down is never
//! forwarded to afterwards; `--datapath userspace` afterwards takes the programs and pins away.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{bridge_config, wait_ports_up, Daemon, Launch, Vm};
use fastpath::pins::PinDir;
use testbed::{require_root, unique, wait_until, BackgroundPing};

fn tx_packets(dev: &str) -> u64 {
    let path = format!("/sys/class/net/{dev}/statistics/tx_packets");
    std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// Whether process `pid` (our unreaped child) is still running, not a zombie.
fn alive(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().any(|l| l.starts_with("State:") && !l.contains("zombie"))
}

/// A pin directory of this test run alone, removed (programs detached) whatever happens.
struct Pins(PinDir);

impl Pins {
    fn new() -> Pins {
        Pins(PinDir::new(PathBuf::from("/sys/fs/bpf/rvswitch-test").join(unique("fpr"))))
    }

    fn arg(&self) -> String {
        format!("--bpf-pin-dir={}", self.0.root().display())
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = self.0.remove();
        let _ = std::fs::remove_dir(self.0.root().parent().expect("a parent"));
    }
}

#[test]
fn kill9_in_kernel_mode_keeps_cached_flows_forwarding_and_forgets_removed_ports() {
    if !require_root("kill9_in_kernel_mode_keeps_cached_flows_forwarding_and_forgets_removed_ports") {
        return;
    }
    let (a, b, c) = (Vm::new(1), Vm::new(2), Vm::new(3));
    let pins = Pins::new();
    let launch = Launch { args: vec!["--datapath=kernel".into(), pins.arg()], ..Launch::default() };
    let ports = [(a.port.as_str(), ""), (b.port.as_str(), ""), (c.port.as_str(), "")];
    let br = unique("br-fr");
    let mut d = Daemon::start_with(launch, &bridge_config(&br, &ports));
    wait_ports_up(&d, &[&a.port, &b.port, &c.port]);
    assert!(d.log().contains("kernel fast path loaded"), "log:\n{}", d.log());
    // Both directions learned: the a <-> b flow is in the kernel's flow map from here on.
    assert!(a.ping(&b, 3) && a.ping(&c, 3), "no traffic before the crash\n{}", d.log());
    assert!(pins.0.maps().join("fp_flows").exists(), "the flow map is not pinned");

    // 300 echo requests 10 ms apart, across a kill -9, a config change and a restart.
    let ping = BackgroundPing::counted(&a.ns, &b.ip, Duration::from_millis(10), 300, 60).expect("ping");
    std::thread::sleep(Duration::from_millis(500));
    d.kill9();
    // While no daemon runs, port c leaves the configuration.
    d.write_config(&bridge_config(&br, &ports[..2]));
    std::thread::sleep(Duration::from_secs(1));
    d.restart();
    let report = ping.finish();
    println!(
        "kernel mode, kill -9 + restart: {} of {} answered, {} duplicates, longest gap {:?}",
        report.received, report.transmitted, report.duplicates, report.longest_gap
    );
    assert_eq!(
        (report.transmitted, report.received, report.duplicates),
        (300, 300, 0),
        "a fast-pathed flow lost or duplicated frames across the crash\n{}",
        d.log()
    );

    wait_ports_up(&d, &[&a.port, &b.port]);
    let on_bridge = d.show().bridges.iter().flat_map(|br| &br.ports).any(|p| p.name == c.port);
    assert!(!on_bridge, "the removed port is still on the bridge: {:#?}", d.show());
    let before = tx_packets(&c.port);
    let _ = a.ns.exec(&["ping", "-c", "20", "-i", "0.05", "-W", "1", &c.ip]);
    let sent_to_c = tx_packets(&c.port) - before;
    // 20 echo requests to c's MAC (a still knows it): none may reach the removed port. A few
    // packets of the host's own (IPv6 autoconfiguration) are tolerated.
    assert!(sent_to_c < 10, "{sent_to_c} packets went to a port removed while rvswitchd was down");
    assert!(!pins.0.pinned_links().is_empty(), "the new daemon pinned no links");

    // Crash again, then come back in userspace: the programs and pins go.
    d.set_args(vec!["--datapath=userspace".into(), pins.arg()]);
    d.restart();
    assert!(!pins.0.exists(), "--datapath userspace left the pins at {}", pins.0.root().display());
    let gone = |dev: &str| fastpath::tcx_ingress_programs(dev).is_ok_and(|n| n == 0);
    // The kernel detaches an unpinned link from a work queue: bounded wait, not a timing.
    assert!(
        wait_until(Duration::from_secs(20), || gone(&a.port) && gone(&b.port) && gone(&c.port)),
        "programs left on the ports after --datapath userspace"
    );
    let after = a.ns.exec(&["ping", "-c", "10", "-i", "0.05", "-W", "1", &b.ip]);
    assert!(after.as_ref().is_ok_and(|t| !t.contains("DUP!")), "in userspace after the crash: {after:?}");
    assert!(d.stop(), "rvswitchd did not exit cleanly");
}

#[test]
fn a_clean_stop_takes_the_pinned_fast_path_out_of_the_kernel() {
    if !require_root("a_clean_stop_takes_the_pinned_fast_path_out_of_the_kernel") {
        return;
    }
    let (a, b) = (Vm::new(1), Vm::new(2));
    let pins = Pins::new();
    let launch = Launch { args: vec!["--datapath=kernel".into(), pins.arg()], ..Launch::default() };
    let ports = [(a.port.as_str(), ""), (b.port.as_str(), "")];
    let d = Daemon::start_with(launch, &bridge_config(&unique("br-fs"), &ports));
    wait_ports_up(&d, &[&a.port, &b.port]);
    assert!(a.ping(&b, 3), "no traffic\n{}", d.log());
    assert_eq!(pins.0.pinned_links().len(), 2, "one pinned link per port");
    let sent = std::time::Instant::now();
    assert!(d.stop(), "rvswitchd did not exit cleanly");
    println!("clean stop: SIGTERM -> exit {:?}", sent.elapsed());
    assert!(!pins.0.exists(), "a clean stop left the pins");
    let gone = |dev: &str| fastpath::tcx_ingress_programs(dev).is_ok_and(|n| n == 0);
    assert!(
        wait_until(Duration::from_secs(20), || gone(&a.port) && gone(&b.port)),
        "programs left on the ports after a clean stop"
    );
}

/// A supervisor that sends SIGTERM and SIGKILLs right after (a process guard, systemd with a
/// short `TimeoutStopSec`): the daemon unpins its fast path first thing on SIGTERM, so a SIGKILL
/// any time after the pins are gone leaves nothing in bpffs and no program on the devices (the
/// kernel releases links and maps with the dying process's descriptors). The window from the
/// signal to the pins being gone is printed, not asserted.
#[test]
fn sigkill_right_after_sigterm_leaves_no_pins_and_no_programs() {
    if !require_root("sigkill_right_after_sigterm_leaves_no_pins_and_no_programs") {
        return;
    }
    let (a, b) = (Vm::new(1), Vm::new(2));
    let pins = Pins::new();
    let launch = Launch { args: vec!["--datapath=kernel".into(), pins.arg()], ..Launch::default() };
    let ports = [(a.port.as_str(), ""), (b.port.as_str(), "")];
    let mut d = Daemon::start_with(launch, &bridge_config(&unique("br-fk"), &ports));
    wait_ports_up(&d, &[&a.port, &b.port]);
    assert!(a.ping(&b, 3), "no traffic\n{}", d.log());
    assert_eq!(pins.0.pinned_links().len(), 2, "one pinned link per port\n{}", d.log());
    let programs = |dev: &str| fastpath::tcx_ingress_programs(dev).unwrap_or(usize::MAX);
    assert!(programs(&a.port) >= 1 && programs(&b.port) >= 1, "no program attached before the stop");
    let flows = fastpath::pinned_map_id(&pins.0.maps().join("fp_flows")).expect("the pinned flow map");

    let sent = std::time::Instant::now();
    d.signal(libc::SIGTERM);
    // Polled every millisecond (bounded): the wait is the window being measured.
    let unpinned =
        testbed::wait_until_every(Duration::from_secs(20), Duration::from_millis(1), || !pins.0.exists());
    let window = sent.elapsed();
    let running = alive(d.pid());
    d.kill9();
    let own = d.log().lines().find(|l| l.contains("fast path unpinned")).map(str::to_string);
    println!(
        "SIGTERM -> pins gone: {window:?} (polled every 1 ms; daemon still running then: \
         {running}); SIGKILL followed; the daemon's own line: {own:?}"
    );
    assert!(unpinned, "the pins were still there 20 s after SIGTERM\n{}", d.log());
    assert!(!pins.0.exists(), "SIGKILL after the unpin left {}", pins.0.root().display());
    let gone = |dev: &str| programs(dev) == 0;
    // The kernel detaches an unpinned link from a work queue: a bounded wait, not a timing.
    assert!(
        wait_until(Duration::from_secs(20), || gone(&a.port) && gone(&b.port)),
        "programs left on the ports after SIGTERM + SIGKILL: {} / {}",
        programs(&a.port),
        programs(&b.port)
    );
    // Nor the maps: no program uses them any more (the keeper, told that the fast path was
    // unpinned, detached its socket filters; at the latest it ends after its 10 s grace).
    let killed = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(30), || !fastpath::map_exists(flows)),
        "the flow map (id {flows}) is still in the kernel 30 s after SIGKILL"
    );
    println!("SIGKILL -> flow map released by the kernel: {:?}", killed.elapsed());
}
