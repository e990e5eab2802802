//! The leak hunt (issue 9): VMs A and C on VLAN 10, B on VLAN 20, a trunk T (10, 20). A is a
//! libvirt-style VM port (`external_ids:attached-mac` set with ovs-vsctl) bound to 198.18.0.1
//! by a DHCPACK the switch snoops from T; C is bound by `other_config:allowed-ips`. A sends
//! legitimate traffic and hostile kinds; captures on B, C and T say where each kind arrived.
//! Required: nothing reaches B, nothing reaches T outside VLAN 10, no abuse reaches C or T, and
//! every legitimate kind reaches C. The same hunt with A's port security off must find the
//! abuses port security stops (the proof that the hunt can see one).
//!
//! Load must not decide the verdict: A's frames go out paced by what the switch and the
//! captures have taken (`pace`); frames the kernel dropped before the switch read them are
//! reported and resent, never counted as blocked; and a run that lost frames between the
//! switch and a capture, where a leak could hide, is refused rather than passed.

mod common;
#[path = "leak_hunt/kinds.rs"]
mod kinds;
#[path = "leak_hunt/pace.rs"]
mod pace;
#[path = "leak_hunt/tally.rs"]
mod tally;

use std::sync::atomic::AtomicUsize;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{bridge_config, have_ovs_vsctl, wait_ports_up, Daemon, Vm};
use kinds::{ip, kinds, Expect, Kind, FLOOD};
use netdev::Netdev;
use pace::{Injector, Losses, Ports};
use packet::{dhcp, MacAddr};
use tally::{print_table, verdict, SentFrames, Tally};
use testbed::frames::{dhcp as dhcp_msg, eth, udp4};
use testbed::{frame_capture_counted, require_root, send_frame, unique, wait_until};

/// Longest a capture runs: far beyond a paced hunt on a loaded machine (a minute), and
/// checked: a capture that stopped before the injection ended refuses the run.
const CAPTURE_LIMIT: Duration = Duration::from_secs(300);
/// How long the captures go on after the last frame was accounted for.
const GRACE: Duration = Duration::from_millis(800);

/// The daemon and the four VMs (the daemon first, so it stops before their links go).
struct Bed {
    d: Daemon,
    a: Vm,
    b: Vm,
    c: Vm,
    t: Vm,
}

/// ovs-vsctl as libvirt runs it on VM start, plus C's allowed address.
fn configure(d: &Daemon, a: &Vm, b: &Vm, c: &Vm) {
    for vm in [a, b, c] {
        let mac = format!("external_ids:attached-mac={}", vm.mac);
        d.vsctl(&["set", "Interface", &vm.port, &mac]).expect("set attached-mac");
    }
    d.vsctl(&["set", "Interface", &c.port, "other_config:allowed-ips=198.18.0.3,2001:db8::3"])
        .expect("allowed-ips");
}

/// The DHCP server behind the trunk leases 198.18.0.1 to A; the switch snoops the ACK.
fn lease_to_a(t: &Vm, a: &Vm) {
    let ack = dhcp_msg(dhcp::OP_REPLY, dhcp::ACK, a.mac, ip(1), Some(3600));
    let f = udp4(eth(a.mac, MacAddr([2, 0, 0, 0, 0, 0xfe]), Some(10)), ip(254), ip(1), (67, 68), &ack);
    send_frame(&mut t.raw(), &f).expect("inject ACK");
}

/// The bed, configured; `a_security` is A's `other_config:port-security` if given.
fn bed(a_security: Option<&str>) -> Bed {
    let (a, b, c, t) = (Vm::new(1), Vm::new(2), Vm::new(3), Vm::new(4));
    let trunk = "vlan_mode = \"trunk\"\ntrunks = [10, 20]";
    let d = Daemon::start(&bridge_config(
        &unique("brh"),
        &[(&a.port, "tag = 10"), (&b.port, "tag = 20"), (&c.port, "tag = 10"), (&t.port, trunk)],
    ));
    wait_ports_up(&d, &[&a.port, &b.port, &c.port, &t.port]);
    configure(&d, &a, &b, &c);
    if let Some(mode) = a_security {
        let key = format!("other_config:port-security={mode}");
        d.vsctl(&["set", "Interface", &a.port, &key]).expect("port-security");
    }
    lease_to_a(&t, &a);
    assert!(a.ping(&c, 2), "A (bound by snooping) must still reach C; log:\n{}", d.log());
    Bed { d, a, b, c, t }
}

/// What a hunt found.
struct Hunt {
    kinds: Vec<Kind>,
    tally: Vec<Tally>,
    losses: Losses,
}

/// Sends every kind from A, paced, while B, C and T capture; tallies where each kind arrived.
fn hunt(bed: &Bed) -> Hunt {
    let kinds = kinds(bed.a.mac, bed.b.mac, bed.c.mac);
    let mut tally = vec![Tally::default(); kinds.len()];
    let done: OnceLock<Instant> = OnceLock::new();
    let stop = || done.get().is_some_and(|t| t.elapsed() > GRACE);
    let seen = [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)];
    let mut caps = [bed.b.raw(), bed.c.raw(), bed.t.raw()];
    let mut tx = bed.a.raw();
    let (captured, mut losses) = std::thread::scope(|s| {
        let handles: Vec<_> = caps
            .iter_mut()
            .zip(&seen)
            .map(|(cap, n)| {
                let (stop, done) = (&stop, &done);
                // Whether `done` was set when it returned: the capture covered the whole hunt.
                s.spawn(move || {
                    (frame_capture_counted(cap, CAPTURE_LIMIT, 400_000, stop, n), done.get().is_some())
                })
            })
            .collect();
        let outs = [bed.b.port.as_str(), &bed.c.port, &bed.t.port];
        let seen = [&seen[0], &seen[1], &seen[2]];
        let mut inj = Injector::new(Ports { daemon: &bed.d, a: &bed.a.port, outs, seen });
        for (k, kind) in kinds.iter().enumerate() {
            tally[k].delivery = inj.inject(&mut tx, &kind.frames);
        }
        let losses = inj.finish();
        done.set(Instant::now()).ok();
        (handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>(), losses)
    });
    for (i, cap) in caps.iter_mut().enumerate() {
        losses.outputs[i] += cap.take_kernel_drops();
    }
    assert!(captured.iter().all(|(_, whole)| *whole), "a capture ended before the hunt did");
    SentFrames::new(&kinds).count(&mut tally, &captured[0].0, &captured[1].0, &captured[2].0);
    print_table(&kinds, &tally);
    println!("lost: {losses:?}");
    Hunt { kinds, tally, losses }
}

impl Hunt {
    /// Refuses a run whose captures may have missed a frame: a leak could hide there.
    fn assert_conclusive(&self) {
        assert_eq!(
            self.losses.outputs, [0; 3],
            "frames for B, C, T lost between the switch and the captures: inconclusive"
        );
        let sent: u64 = self.tally.iter().map(|t| t.delivery.sent).sum();
        assert!(sent > u64::from(FLOOD), "the injections did not go out ({sent} sent)");
    }

    fn lost(&self) -> u64 {
        self.losses.queue_full + self.losses.unaccounted
    }

    /// The flood's frames the switch read, at least (losses may be ascribed to a neighbour).
    fn flood_read_at_least(&self) -> u64 {
        let flood = self.kinds.iter().position(|k| k.name.contains("MAC flood")).expect("flood kind");
        self.tally[flood].delivery.sent.saturating_sub(self.lost())
    }
}

#[test]
fn leak_hunt_with_port_security() {
    if !require_root("leak_hunt_with_port_security") || !have_ovs_vsctl() {
        return;
    }
    let bed = bed(None);
    let h = hunt(&bed);
    h.assert_conclusive();
    let v = verdict(&h.kinds, &h.tally);
    assert!(v.hostile_tried >= 25, "only {} hostile kinds were injected", v.hostile_tried);
    assert!(v.cross_vlan.is_empty() && v.abuses.is_empty() && v.legit_missing.is_empty(), "{v:#?}");
    check_counters(&bed.d, &bed.a, h.flood_read_at_least());
}

/// The hunt can fail: with A's port security off, exactly the kinds port security stops reach
/// C (and VLAN isolation still holds).
#[test]
fn leak_hunt_without_port_security_finds_the_abuses() {
    if !require_root("leak_hunt_without_port_security_finds_the_abuses") || !have_ovs_vsctl() {
        return;
    }
    let bed = bed(Some("off"));
    let h = hunt(&bed);
    h.assert_conclusive();
    let v = verdict(&h.kinds, &h.tally);
    assert!(v.cross_vlan.is_empty() && v.legit_missing.is_empty(), "{v:#?}");
    let guarded = |k: &&Kind| k.expect == Expect::Guarded;
    let tried: Vec<_> = h
        .kinds
        .iter()
        .zip(&h.tally)
        .filter(|(k, t)| guarded(k) && t.delivery.read() > 0)
        .map(|(k, _)| k.name)
        .collect();
    assert!(tried.len() >= 15, "only {} guarded kinds were tried: {tried:?}", tried.len());
    let missed: Vec<_> = tried.iter().filter(|n| !v.abuses.contains(n)).collect();
    assert!(missed.is_empty(), "without port security these should have reached C: {missed:?}");
    let others: Vec<_> =
        h.kinds.iter().filter(|k| !guarded(k) && v.abuses.contains(&k.name)).map(|k| k.name).collect();
    assert!(others.is_empty(), "blocked by the VLAN rules, port security or not: {others:?}");
    let drops = bed.d.port(&bed.a.port).statistics.drops;
    assert!(!drops.contains_key("spoofed-mac"), "port security was off on A: {drops:?}");
}

/// Every port-security reason was counted on A, in `rvsctl show` and in Interface statistics.
fn check_counters(d: &Daemon, a: &Vm, flood_read: u64) {
    let reasons =
        ["spoofed-mac", "spoofed-arp", "spoofed-ip", "spoofed-nd", "rogue-dhcp", "rogue-ra", "hidden-tag"];
    let drops = d.port(&a.port).statistics.drops;
    println!("drops on A: {drops:?}");
    for r in reasons {
        assert!(drops.get(r).copied().unwrap_or(0) > 0, "no {r} drops on A: {drops:?}");
    }
    assert!(drops["spoofed-mac"] >= flood_read, "the flood ({flood_read} read) is counted: {drops:?}");
    let key = "statistics:drop_spoofed-mac";
    let written = wait_until(Duration::from_secs(15), || {
        d.vsctl(&["get", "Interface", &a.port, key]).is_ok_and(|v| v.parse::<u64>().is_ok_and(|n| n > 0))
    });
    assert!(
        written,
        "Interface statistics lack drop_spoofed-mac: {:?}",
        d.vsctl(&["list", "Interface", &a.port])
    );
}
