//! Events (issue 11) with a real daemon and namespace VMs: a station that moves to another
//! port, a spoofed frame on a port-secured VM port, and a port whose peer goes down each show
//! up in `rvsctl events` (text and --json), and a `rvsctl events --follow` started before the
//! port went down prints that event live.

mod common;

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{bridge_config, have_ovs_vsctl, have_rvsctl, rvsctl, rvsctl_path, wait_ports_up, Daemon, Vm};
use ctl::protocol::{Event, EventKind, EventsReply, Request};
use packet::MacAddr;
use testbed::frames::{eth, udp4};
use testbed::{require_root, send_frame, unique, wait_until, ChildGuard};

const WAIT: Duration = Duration::from_secs(10);

fn events(d: &Daemon) -> Vec<Event> {
    let req = Request::Events { from: 0, wait_ms: 0 };
    let r: EventsReply = ctl::client::call(&d.socket, &req, Duration::from_secs(5)).expect("events");
    r.events
}

fn has(d: &Daemon, f: impl Fn(&Event) -> bool) -> bool {
    wait_until(WAIT, || events(d).iter().any(&f))
}

/// `rvsctl events --follow`, its lines arriving on a channel (read by a thread, so every wait
/// on them is bounded).
fn follow(d: &Daemon) -> (ChildGuard, mpsc::Receiver<String>) {
    let mut child = Command::new(rvsctl_path())
        .arg("--socket")
        .arg(&d.socket)
        .args(["events", "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("rvsctl events --follow");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (ChildGuard::new(child), rx)
}

/// Waits (bounded) for a followed line containing every one of `words`.
fn followed(lines: &mpsc::Receiver<String>, words: &[&str]) -> Option<String> {
    let deadline = std::time::Instant::now() + WAIT;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(l) if words.iter().all(|w| l.contains(w)) => return Some(l),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// A broadcast UDP frame from (`src`, `ip`).
fn probe(src: MacAddr, ip: [u8; 4]) -> Vec<u8> {
    let spec = eth(MacAddr::BROADCAST, src, None);
    udp4(spec, Ipv4Addr::from(ip), Ipv4Addr::new(198, 18, 0, 2), (40000, 9), b"x")
}

/// `a`'s address learned on a's port, then seen on `c`'s: returns the event to expect.
fn cause_a_move(d: &Daemon, br: &str, a: &Vm, c: &Vm) -> impl Fn(&Event) -> bool {
    send_frame(&mut a.raw(), &probe(a.mac, [198, 18, 0, 1])).expect("inject from a");
    assert!(wait_until(WAIT, || d.fdb(br).entries.iter().any(|e| e.port == a.port)), "a learned");
    send_frame(&mut c.raw(), &probe(a.mac, [198, 18, 0, 1])).expect("inject a's MAC from c");
    let (to, from, mac) = (c.port.clone(), a.port.clone(), a.mac.to_string());
    move |e: &Event| {
        e.port == to
            && matches!(&e.kind, EventKind::MacMove { mac: m, from_port, vlan: 10 } if *m == mac && *from_port == from)
    }
}

/// `b`'s port made a VM port (attached-mac), then a frame claiming `fake` and 198.18.0.102
/// from it: returns the event to expect.
fn cause_a_spoof(d: &Daemon, b: &Vm, fake: MacAddr) -> impl Fn(&Event) -> bool {
    d.vsctl(&["set", "Interface", &b.port, &format!("external_ids:attached-mac={}", b.mac)]).expect("vsctl");
    let port = b.port.clone();
    let spoofed = move |e: &Event| {
        e.port == port
            && matches!(&e.kind, EventKind::SecurityDrop { reason, mac, ip: Some(ip), .. }
                if reason == "spoofed-mac" && *mac == fake.to_string() && ip == "198.18.0.102")
    };
    // The port's security applies once the database change reached the datapath: re-send
    // (bounded) until the drop is reported.
    let mut raw_b = b.raw();
    let seen = wait_until(WAIT, || {
        send_frame(&mut raw_b, &probe(fake, [198, 18, 0, 102])).expect("inject spoof");
        events(d).iter().any(&spoofed)
    });
    assert!(seen, "no security-drop event: {:?}\nlog:\n{}", events(d), d.log());
    spoofed
}

#[test]
fn moves_spoofs_and_link_downs_are_events_rvsctl_shows_and_follows() {
    let test = "moves_spoofs_and_link_downs_are_events";
    if !require_root(test) || !have_ovs_vsctl() || !have_rvsctl(test) {
        return;
    }
    let (a, b, c) = (Vm::new(1), Vm::new(2), Vm::new(3));
    let ports = [(a.port.as_str(), "tag = 10"), (b.port.as_str(), "tag = 10"), (c.port.as_str(), "tag = 10")];
    let br = unique("br-ev");
    let d = Daemon::start(&bridge_config(&br, &ports));
    wait_ports_up(&d, &[&a.port, &b.port, &c.port]);
    assert!(
        has(&d, |e| e.port == c.port && e.kind == EventKind::PortUp),
        "port-up at start: {:?}",
        events(&d)
    );

    let moved = cause_a_move(&d, &br, &a, &c);
    assert!(has(&d, &moved), "no mac-move event: {:?}\nlog:\n{}", events(&d), d.log());
    let fake = MacAddr([0x02, 0, 0, 0, 0, 0x66]);
    let spoofed = cause_a_spoof(&d, &b, fake);

    // A link down, followed live.
    let (_follower, lines) = follow(&d);
    c.ns.exec(&["ip", "link", "set", "eth0", "down"]).expect("peer down");
    let live = followed(&lines, &[&c.port, "port-down"]);
    assert!(live.is_some(), "--follow did not print the port-down: {:?}", events(&d));

    let text = rvsctl(&d, &["events"]);
    println!("rvsctl events:\n{text}");
    for want in [
        format!("{br} {} mac-move {} vlan 10 from {}", c.port, a.mac, a.port),
        format!("{br} {} security-drop spoofed-mac mac {fake} ip 198.18.0.102", b.port),
        format!("{br} {} port-down", c.port),
    ] {
        assert!(text.contains(&want), "rvsctl events lacks {want:?}:\n{text}");
    }
    let json: Vec<Event> = rvsctl(&d, &["--json", "events"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not an event: {l}: {e}")))
        .collect();
    assert_eq!(json, events(&d)[..json.len()], "--json prints the daemon's events one a line");
    assert!(json.iter().any(&moved) && json.iter().any(&spoofed));
    assert!(d.log().contains("port security dropped a frame"), "the drop is logged too");
}
