//! Restarts without an outage (issue 14): the descriptor keeper holds the devices while the
//! daemon is killed (-9) or upgraded in place (SIGUSR2, same PID), the next process adopts them,
//! forwarding resumes, taps rvswitchd created keep existing (same ifindex: a VM on one keeps its
//! device), and nothing acknowledged is lost. The outage is printed, not asserted (that is the
//! benchmark's job); a plain SIGTERM still closes everything.

mod common;

use std::time::Duration;

use common::{bridge_config, wait_ports_up, Daemon, Vm};
use testbed::{require_root, unique, wait_until, BackgroundPing};

fn ifindex(dev: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{dev}/ifindex")).ok()?.trim().parse().ok()
}

struct Setup {
    d: Daemon,
    a: Vm,
    b: Vm,
    tap: String,
}

fn setup() -> Setup {
    let (a, b) = (Vm::new(1), Vm::new(2));
    let tap = unique("vt");
    let tap_extra = "type = \"tap\"";
    let config = bridge_config(&unique("br-rs"), &[(&a.port, ""), (&b.port, ""), (&tap, tap_extra)]);
    let d = Daemon::start(&config);
    wait_ports_up(&d, &[&a.port, &b.port, &tap]);
    assert!(a.ping(&b, 3), "no traffic before the restart\n{}", d.log());
    Setup { d, a, b, tap }
}

/// Runs `restart` while a ping flows; returns the longest gap between replies.
fn outage_across(s: &mut Setup, what: &str, restart: impl FnOnce(&mut Daemon)) -> Duration {
    let tap_before = ifindex(&s.tap).expect("tap exists");
    let ping = BackgroundPing::start(&s.a.ns, &s.b.ip, Duration::from_millis(5), 4).expect("ping");
    std::thread::sleep(Duration::from_secs(1));
    restart(&mut s.d);
    let report = ping.finish();
    assert!(report.replies.len() > 100, "{what}: only {} replies\n{}", report.replies.len(), s.d.log());
    assert!(s.a.ping(&s.b, 3), "{what}: no traffic after the restart\n{}", s.d.log());
    assert_eq!(ifindex(&s.tap), Some(tap_before), "{what}: the tap rvswitchd created was recreated or lost");
    println!("{what}: longest gap between ping replies (every 5 ms): {:?}", report.longest_gap);
    report.longest_gap
}

#[derive(Debug, Default)]
struct Probes {
    /// connect(2) failed: no socket, or nobody listening.
    refused: usize,
    /// Connected, but the connection closed before the answer (the old process stopping).
    dropped: usize,
    answered: usize,
}

/// Connects to the OVSDB socket over and over (bounded: until `stop`, at most 20 000 tries),
/// asking `list_dbs` each time.
fn probe_connects(db: &std::path::Path, stop: &std::sync::atomic::AtomicBool) -> Probes {
    use std::io::{Read, Write};
    let mut p = Probes::default();
    for _ in 0..20_000 {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let Ok(mut c) = std::os::unix::net::UnixStream::connect(db) else {
            p.refused += 1;
            continue;
        };
        let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
        let mut buf = [0u8; 256];
        let ok = c.write_all(br#"{"method":"list_dbs","params":[],"id":1}"#).is_ok()
            && c.read(&mut buf).is_ok_and(|n| n > 0 && buf[..n].windows(12).any(|w| w == b"Open_vSwitch"));
        if ok {
            p.answered += 1;
        } else {
            p.dropped += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    p
}

#[test]
fn kill9_and_restart_keeps_devices_and_resumes_forwarding() {
    if !require_root("kill9_and_restart_keeps_devices_and_resumes_forwarding") {
        return;
    }
    let vsctl = testbed::require_program("kill9 restart", "ovs-vsctl", "--version", "openvswitch-switch");
    let mut s = setup();
    let acked = unique("br-ac");
    if vsctl {
        s.d.vsctl(&["add-br", &acked]).expect("add-br");
    }
    let before = s.d.log().matches("adopted the device").count();
    outage_across(&mut s, "kill -9 + restart", |d| d.restart());
    if vsctl {
        let bridges = s.d.vsctl(&["list-br"]).expect("list-br");
        assert!(bridges.lines().any(|b| b == acked), "an acknowledged bridge was lost: {bridges}");
    }
    let log = s.d.log();
    // The three configured ports (the acked bridge's internal port too, if it was added).
    let adopted = log.matches("adopted the device").count() - before;
    assert!(adopted >= 3, "not every port was adopted ({adopted}):\n{log}");
    // A second crash right after the first: the devices are still kept.
    outage_across(&mut s, "second kill -9 + restart", |d| d.restart());
}

#[test]
fn upgrade_in_place_keeps_pid_devices_and_forwarding() {
    if !require_root("upgrade_in_place_keeps_pid_devices_and_forwarding") {
        return;
    }
    let mut s = setup();
    let pid = s.d.pid();
    // Clients connecting all through the upgrade: the database socket must never be missing.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let (db, stop) = (s.d.db_socket(), stop.clone());
        std::thread::spawn(move || probe_connects(&db, &stop))
    };
    outage_across(&mut s, "upgrade (SIGUSR2)", |d| {
        d.signal(libc::SIGUSR2);
        let handed_over =
            wait_until(Duration::from_secs(10), || d.log().matches("rvswitchd running").count() >= 2);
        assert!(handed_over, "the upgraded process did not come up\n{}", d.log());
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let probes = prober.join().expect("prober");
    println!("OVSDB clients during the upgrade: {probes:?}");
    assert_eq!(probes.refused, 0, "the database socket was missing during the upgrade: {probes:?}");
    assert!(probes.answered > 0, "{probes:?}");
    assert_eq!(s.d.pid(), pid, "an in-place upgrade keeps the PID");
    assert!(s.d.log().contains("adopted the device"), "{}", s.d.log());
}

#[test]
fn sigterm_still_closes_the_devices_rvswitchd_created() {
    if !require_root("sigterm_still_closes_the_devices_rvswitchd_created") {
        return;
    }
    let s = setup();
    let tap = s.tap.clone();
    assert!(s.d.stop(), "clean exit");
    // The keeper closes its copies when told to; the tap goes with the last one.
    assert!(
        wait_until(Duration::from_secs(5), || ifindex(&tap).is_none()),
        "tap {tap} survived a plain stop"
    );
}
