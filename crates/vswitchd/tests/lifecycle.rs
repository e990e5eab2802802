//! Changing a running switch: reload while traffic flows, bad configs, SIGHUP, ports whose
//! device vanishes and comes back, and the port types rvswitchd creates itself (tap, internal).

mod common;

use std::time::Duration;

use common::{bridge_config, wait_ports_up, Daemon, Vm};
use testbed::{require_root, run, unique, wait_until, Netns};

#[test]
fn removing_and_readding_a_port_does_not_disturb_others() {
    if !require_root("removing_and_readding_a_port_does_not_disturb_others") {
        return;
    }
    let (a, b, c) = (Vm::new(1), Vm::new(2), Vm::new(3));
    let br = unique("br-l1");
    let with_c = bridge_config(&br, &[(&a.port, "tag = 10"), (&b.port, "tag = 10"), (&c.port, "tag = 10")]);
    let without_c = bridge_config(&br, &[(&a.port, "tag = 10"), (&b.port, "tag = 10")]);
    let d = Daemon::start(&with_c);
    wait_ports_up(&d, &[&a.port, &b.port, &c.port]);
    assert!(a.ping(&b, 3) && a.ping(&c, 3));

    let ping_out = std::thread::scope(|s| {
        // 80 pings, 25 ms apart (2 s), while the config changes twice underneath them.
        let pinger = s.spawn(|| a.ns.exec(&["ping", "-c", "80", "-i", "0.025", "-W", "1", &b.ip]));
        std::thread::sleep(Duration::from_millis(400));
        d.write_config(&without_c);
        let r = d.reload().expect("reload without c");
        assert!(r.changes.iter().any(|l| l.contains(&format!("removed port {}", c.port))), "{:?}", r.changes);
        std::thread::sleep(Duration::from_millis(400));
        d.write_config(&with_c);
        let r = d.reload().expect("reload with c");
        assert!(r.changes.iter().any(|l| l.contains(&format!("added port {}", c.port))), "{:?}", r.changes);
        pinger.join().expect("ping thread")
    });
    let out = ping_out.expect("ping a→b failed during reconfiguration");
    assert!(out.contains(" 0% packet loss"), "flows on other ports were disturbed:\n{out}");
    wait_ports_up(&d, &[&c.port]);
    assert!(a.ping(&c, 2), "re-added port does not forward");
    assert_eq!(d.reload().expect("no-op reload").changes, Vec::<String>::new());
}

#[test]
fn bad_config_is_rejected_and_running_config_stays() {
    if !require_root("bad_config_is_rejected_and_running_config_stays") {
        return;
    }
    let (a, b) = (Vm::new(1), Vm::new(2));
    let br = unique("br-l2");
    let good = bridge_config(&br, &[(&a.port, "tag = 10"), (&b.port, "tag = 10")]);
    let d = Daemon::start(&good);
    wait_ports_up(&d, &[&a.port, &b.port]);
    let before = d.show();
    let names = |s: &ctl::protocol::ShowReply| -> Vec<(String, String, Option<u16>)> {
        s.bridges
            .iter()
            .flat_map(|b| &b.ports)
            .map(|p| (p.name.clone(), p.vlan_mode.clone(), p.tag))
            .collect()
    };

    // Line 6 is `tag = 4096`.
    let bad = format!(
        "[[bridge]]\nname = \"{br}\"\n[[bridge.port]]\nname = \"{}\"\ntype = \"system\"\ntag = 4096\n",
        a.port
    );
    d.write_config(&bad);
    let err = d.reload().expect_err("bad config accepted").to_string();
    let where_ = format!("{}:6:", d.config.display());
    assert!(
        err.contains(&where_) && err.contains("4096"),
        "error should name file:line and the value: {err}"
    );
    // SIGHUP with the same bad file: also refused (a second refusal line appears: the first
    // came from `rvsctl reload` above), and the daemon stays up on the old config.
    let refusals = |d: &Daemon| d.log().matches("reload refused").count();
    let before_hup = refusals(&d);
    assert_eq!(before_hup, 1, "reload's refusal not logged once:\n{}", d.log());
    d.signal(libc::SIGHUP);
    let refused = wait_until(Duration::from_secs(5), || refusals(&d) > before_hup);
    assert!(refused, "SIGHUP with a bad file was not refused:\n{}", d.log());
    let hup_line = d.log().lines().rfind(|l| l.contains("reload refused")).unwrap_or("").to_string();
    eprintln!("SIGHUP refusal: {hup_line}");
    assert!(
        hup_line.contains(&where_) && hup_line.contains("4096"),
        "SIGHUP refusal lacks file:line: {hup_line}"
    );
    assert_eq!(names(&before), names(&d.show()), "running config changed by SIGHUP with a bad file");
    let unknown_key = format!("[[bridge]]\nname = \"{br}\"\nbogus = 1\n");
    for garbage in ["[[bridge]\nname=", &unknown_key, "\u{0}\u{1}binary"] {
        d.write_config(garbage);
        assert!(d.reload().is_err(), "accepted {garbage:?}");
    }
    let after = d.show();
    assert_eq!(names(&before), names(&after), "running config changed");
    assert!(a.ping(&b, 2), "forwarding broke after rejected reloads");
    assert_eq!(refusals(&d), before_hup + 1 + 3, "each refused reload is logged once");
}

#[test]
fn sighup_applies_a_new_config() {
    if !require_root("sighup_applies_a_new_config") {
        return;
    }
    let (a, b) = (Vm::new(1), Vm::new(2));
    let br = unique("br-l3");
    let d = Daemon::start(&bridge_config(&br, &[(&a.port, "")]));
    wait_ports_up(&d, &[&a.port]);
    assert!(!a.ping(&b, 1));
    d.write_config(&bridge_config(&br, &[(&a.port, ""), (&b.port, "")]));
    d.signal(libc::SIGHUP);
    wait_ports_up(&d, &[&b.port]);
    assert!(a.ping(&b, 2));
}

#[test]
fn vanished_device_marks_port_down_and_recovers() {
    if !require_root("vanished_device_marks_port_down_and_recovers") {
        return;
    }
    let (a, mut b) = (Vm::new(1), Vm::new(2));
    let d = Daemon::start(&bridge_config(&unique("br-l4"), &[(&a.port, ""), (&b.port, "")]));
    wait_ports_up(&d, &[&a.port, &b.port]);
    assert!(a.ping(&b, 3));

    b.veth.delete().expect("delete veth");
    let down = wait_until(Duration::from_secs(5), || {
        let p = d.port(&b.port);
        p.link_state == "down" && p.error.as_deref().is_some_and(|e| e.contains("No such device"))
    });
    assert!(down, "port not marked down: {:?}", d.port(&b.port));
    assert_eq!(
        d.port(&b.port).error.unwrap(),
        format!("could not open network device {} (No such device)", b.port),
        "same message as ovs-vswitchd"
    );
    assert!(!a.ping(&b, 1));

    b.recreate_link();
    wait_ports_up(&d, &[&b.port]);
    assert!(d.port(&b.port).error.is_none());
    assert!(a.ping(&b, 2), "port did not recover after its device came back");
    assert!(d.stop(), "daemon did not exit cleanly");
}

#[test]
fn tap_and_internal_ports_are_created_by_the_daemon() {
    if !require_root("tap_and_internal_ports_are_created_by_the_daemon") {
        return;
    }
    let a = Vm::new(1);
    let bridge = unique("br");
    let tap = unique("tap");
    let d = Daemon::start(&bridge_config(&bridge, &[(&a.port, ""), (&tap, "type = \"tap\"")]));
    wait_ports_up(&d, &[&a.port, &tap, &bridge]);
    assert_eq!(d.port(&bridge).kind, "internal");
    assert_eq!(d.port(&tap).kind, "tap");
    // Both devices exist; move each into a namespace of its own so it acts as a VM NIC / host
    // leg there (the daemon keeps its fd across the move).
    let (tap_ns, host_ns) = (Netns::new("tp").unwrap(), Netns::new("hs").unwrap());
    run("ip", &["link", "set", &tap, "netns", tap_ns.name()]).unwrap();
    run("ip", &["link", "set", &bridge, "netns", host_ns.name()]).unwrap();
    tap_ns.addr_up(&tap, "198.18.0.5/24").unwrap();
    host_ns.addr_up(&bridge, "198.18.0.6/24").unwrap();
    assert!(a.ns.ping("198.18.0.5", 2), "VM cannot reach the tap port");
    assert!(a.ns.ping("198.18.0.6", 2), "VM cannot reach the internal port");
    assert!(tap_ns.ping("198.18.0.6", 2));

    // Removing the tap from the config closes it, and the device disappears.
    d.write_config(&bridge_config(&bridge, &[(&a.port, "")]));
    d.reload().unwrap();
    let gone = wait_until(Duration::from_secs(5), || tap_ns.exec(&["ip", "link", "show", &tap]).is_err());
    assert!(gone, "tap still exists after its port was removed");
    assert!(d.stop());
    let gone = wait_until(Duration::from_secs(5), || host_ns.exec(&["ip", "link", "show", &bridge]).is_err());
    assert!(gone, "internal port outlived the daemon");
}

#[test]
fn control_socket_is_private_and_survives_bad_clients() {
    if !require_root("control_socket_is_private_and_survives_bad_clients") {
        return;
    }
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;

    let d = Daemon::start(&bridge_config(&unique("br-l6"), &[]));
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket mode {mode:o}");

    let ask = |line: &[u8]| -> String {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(line);
        let mut reply = String::new();
        let _ = BufReader::new(&s).read_line(&mut reply);
        reply
    };
    for bad in
        [&b"not json\n"[..], b"{\"cmd\":\"format-disk\"}\n", b"{\"cmd\":\"fdb-show\"}\n", b"\xff\xfe\n"]
    {
        let reply = ask(bad);
        assert!(reply.contains("\"ok\":false") && reply.contains("bad request"), "{bad:?} → {reply}");
    }
    let reply = ask(b"{\"cmd\":\"fdb-show\",\"bridge\":\"nope\"}\n");
    assert!(reply.contains("no bridge named nope"), "{reply}");
    // A 2 MiB line is refused (error or disconnect), not buffered without bound.
    let mut huge = vec![b'x'; 2 << 20];
    huge.push(b'\n');
    let reply = ask(&huge);
    assert!(reply.is_empty() || reply.contains("longer than"), "{reply}");
    // Clients that connect and say nothing do not block others.
    let idle: Vec<UnixStream> = (0..8).map(|_| UnixStream::connect(&d.socket).unwrap()).collect();
    assert_eq!(d.show().bridges.len(), 1, "daemon stopped serving");
    drop(idle);
    assert!(d.stop());
}

/// The soft open-file limit of process `pid` (from /proc/PID/limits).
fn soft_nofile(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("open files line");
    line.split_whitespace().nth(3).and_then(|v| v.parse().ok()).expect("soft limit")
}

#[test]
fn open_file_limit_is_raised_to_the_hard_limit() {
    if !require_root("open_file_limit_is_raised_to_the_hard_limit") {
        return;
    }
    // Every system port takes one socket per receive queue plus one to send: the usual soft
    // limit of 1024 would cap a switch at a few hundred ports. Start it with a low soft limit.
    let hard = "8192";
    let a = Vm::new(1);
    let limit = format!("--nofile=256:{hard}");
    let d = Daemon::start_under(
        &["prlimit", &limit, "--"],
        &bridge_config(&unique("br-fd"), &[(&a.port, "tag = 10")]),
    );
    wait_ports_up(&d, &[&a.port]);
    assert_eq!(soft_nofile(d.pid()).to_string(), hard, "rvswitchd kept the soft limit it was started with");
}

#[test]
fn sigterm_ends_the_daemon_after_its_socket_directory_is_removed() {
    if !require_root("sigterm_ends_the_daemon_after_its_socket_directory_is_removed") {
        return;
    }
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let d = Daemon::start(&bridge_config(&unique("br-l7"), &[]));
    // OVSDB clients at the time, one of them mid-message, must not hold the exit up either.
    let _idle = UnixStream::connect(d.db_socket()).unwrap();
    let mut half = UnixStream::connect(d.db_socket()).unwrap();
    half.write_all(b"{\"method\":\"echo\",\"par").unwrap();
    // What a removed /run/rvswitch (or a test's temp dir) does: both sockets gone by path.
    std::fs::remove_dir_all(&d.dir).unwrap();
    assert!(d.stop(), "rvswitchd did not exit cleanly within 10 s of SIGTERM");
}
