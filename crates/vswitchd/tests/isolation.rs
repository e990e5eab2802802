//! Real traffic between namespace "VMs": one bridge, VLAN isolation on one bridge, and isolation
//! between bridges. Isolation is asserted on captured frames, not only on ping failing.

mod common;

use std::time::Duration;

use common::{bridge_config, wait_ports_up, Daemon, Vm};
use packet::{EthernetHeader, MacAddr, VlanTag};
use testbed::{frame_capture, marked_frame, require_root, send_frame, unique, wait_until, ETHERTYPE_TEST};

/// Builds a frame from `src` carrying `marker` so captures can tell test frames apart.
fn marked(dst: MacAddr, src: MacAddr, vid: Option<u16>, marker: u32) -> Vec<u8> {
    marked_frame(src, dst, vid.map(|v| VlanTag::vid(v).unwrap()), marker)
}

/// Every frame that (a) has one of `macs` as source, or (b) carries a test marker.
fn foreign(frames: &[Vec<u8>], macs: &[MacAddr]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| EthernetHeader::parse(f).ok().map(|h| (h, f)))
        .filter(|(h, f)| {
            macs.contains(&h.src) || (h.ethertype == ETHERTYPE_TEST && f.len() >= h.payload_offset + 4)
        })
        .map(|(h, _)| format!("{} → {} vlan {:?} type {:#06x}", h.src, h.dst, h.vlan, h.ethertype))
        .collect()
}

/// Captures on `raw` and checks the switch's tx counter of `port` agrees with what arrived:
/// every frame the switch counted as sent is seen, and every frame seen was counted. The counter
/// is bumped just after the send returns, so a frame can reach the capture a moment before it is
/// counted; and the stations' own background traffic (a delayed ARP probe, the internal port's
/// IPv6 chatter) may arrive at any time. Hence two counter readings around a second capture:
/// counted-by-the-first-reading ≤ seen-in-total, and seen-in-the-first-window ≤
/// counted-by-the-second-reading.
fn capture_matching_counter(
    d: &Daemon,
    port: &str,
    raw: &mut netdev::SystemPort,
    before: u64,
) -> Vec<Vec<u8>> {
    let mut frames = frame_capture(raw, Duration::from_millis(500), 1000);
    let first = frames.len() as u64;
    let sent_early = d.port(port).statistics.tx_packets - before;
    frames.extend(frame_capture(raw, Duration::from_millis(300), 1000));
    // Frames the kernel fast path sent are counted when the forwarding thread folds its
    // counters in, which a loaded machine may delay past the capture: wait (bounded) for the
    // counter to catch up with what was seen.
    let mut sent_late = 0;
    wait_until(Duration::from_secs(5), || {
        sent_late = d.port(port).statistics.tx_packets - before;
        first <= sent_late
    });
    assert!(
        sent_early <= frames.len() as u64 && first <= sent_late,
        "switch counted {sent_early}..{sent_late} frames sent to {port}, capture saw {first}..{}",
        frames.len()
    );
    frames
}

/// The burst a misbehaving switch would leak: broadcast, multicast, unknown unicast, unicast to
/// a station of the other segment, and a tagged frame for the other segment's VLAN.
fn leak_burst(from: &Vm, other_segment: &Vm) {
    let mut raw = from.raw();
    let frames = [
        marked(MacAddr::BROADCAST, from.mac, None, 1),
        marked(MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]), from.mac, None, 2),
        marked(MacAddr([0x02, 0, 0, 0, 0, 0x99]), from.mac, None, 3),
        marked(other_segment.mac, from.mac, None, 4),
        marked(MacAddr::BROADCAST, from.mac, Some(20), 5),
        marked(MacAddr::BROADCAST, from.mac, Some(10), 6),
    ];
    for f in &frames {
        send_frame(&mut raw, f).expect("inject");
    }
    // Plus real IP traffic across the boundary (ARP broadcasts for the other side's address).
    assert!(!from.ping(other_segment, 2), "ping crossed the boundary");
}

/// Frames one capture received.
type Frames = Vec<Vec<u8>>;

/// Sends [`leak_burst`] from `a` (aimed at `c` on the other segment) and returns what `b` (same
/// segment as `a`), `c` and `e` (other segment) received; `c`'s capture is checked against the
/// switch's tx counter of its port.
fn burst_and_capture(d: &Daemon, a: &Vm, b: &Vm, c: &Vm, e: &Vm) -> (Frames, Frames, Frames) {
    let (mut cap_b, mut cap_c, mut cap_e) = (b.raw(), c.raw(), e.raw());
    let before_c = d.port(&c.port).statistics.tx_packets;
    leak_burst(a, c);
    let at_b = frame_capture(&mut cap_b, Duration::from_millis(500), 1000);
    let at_c = capture_matching_counter(d, &c.port, &mut cap_c, before_c);
    let at_e = frame_capture(&mut cap_e, Duration::from_millis(500), 1000);
    (at_b, at_c, at_e)
}

#[test]
fn two_vms_on_one_bridge_ping() {
    if !require_root("two_vms_on_one_bridge_ping") {
        return;
    }
    let (a, b) = (Vm::new(1), Vm::new(2));
    let br = unique("br-t1");
    let d = Daemon::start(&bridge_config(&br, &[(&a.port, ""), (&b.port, "")]));
    wait_ports_up(&d, &[&a.port, &b.port]);
    assert!(a.ping(&b, 3), "a cannot reach b; log:\n{}", d.log());
    assert!(b.ping(&a, 3));
    let fdb = d.fdb(&br);
    for vm in [&a, &b] {
        let e = fdb.entries.iter().find(|e| e.mac == vm.mac.to_string()).expect("learned");
        assert_eq!(e.port, vm.port);
    }
    let pa = d.port(&a.port);
    assert!(pa.statistics.rx_packets >= 3 && pa.statistics.tx_packets >= 3, "{pa:?}");
    assert!(d.stop(), "rvswitchd did not exit cleanly on SIGTERM");
}

#[test]
fn access_vlans_on_one_bridge_are_isolated() {
    if !require_root("access_vlans_on_one_bridge_are_isolated") {
        return;
    }
    let (a, b, c, e) = (Vm::new(1), Vm::new(2), Vm::new(3), Vm::new(4));
    let d = Daemon::start(&bridge_config(
        &unique("br-t2"),
        &[(&a.port, "tag = 10"), (&b.port, "tag = 10"), (&c.port, "tag = 20"), (&e.port, "tag = 20")],
    ));
    wait_ports_up(&d, &[&a.port, &b.port, &c.port, &e.port]);
    assert!(a.ping(&b, 2), "same VLAN must work");
    assert!(c.ping(&e, 2), "same VLAN must work");

    let (at_b, at_c, at_e) = burst_and_capture(&d, &a, &b, &c, &e);
    let vlan10 = [a.mac, b.mac];
    assert!(foreign(&at_c, &vlan10).is_empty(), "leaked into VLAN 20 (c): {:?}", foreign(&at_c, &vlan10));
    assert!(foreign(&at_e, &vlan10).is_empty(), "leaked into VLAN 20 (e): {:?}", foreign(&at_e, &vlan10));
    // Positive control: the same capture does see VLAN 10's flood at b (untagged ones only; the
    // tagged ones are dropped at a's access port and counted).
    let seen_b = foreign(&at_b, &[a.mac]);
    assert!(seen_b.len() >= 3, "b should see a's broadcast/multicast/unknown unicast: {seen_b:?}");
    assert!(d.port(&a.port).statistics.drops.get("vlan-not-allowed").copied().unwrap_or(0) >= 2);
}

#[test]
fn separate_bridges_are_isolated() {
    if !require_root("separate_bridges_are_isolated") {
        return;
    }
    let (a, b, c, e) = (Vm::new(1), Vm::new(2), Vm::new(3), Vm::new(4));
    let (br_a, br_b) = (unique("br-t3"), unique("br-t3"));
    let config = bridge_config(&br_a, &[(&a.port, ""), (&b.port, "")])
        + &bridge_config(&br_b, &[(&c.port, ""), (&e.port, "")]);
    let d = Daemon::start(&config);
    wait_ports_up(&d, &[&a.port, &b.port, &c.port, &e.port]);
    assert!(a.ping(&b, 2));
    assert!(c.ping(&e, 2));
    let (at_b, at_c, at_e) = burst_and_capture(&d, &a, &b, &c, &e);
    let br1 = [a.mac, b.mac];
    assert!(foreign(&at_c, &br1).is_empty(), "leaked across bridges: {:?}", foreign(&at_c, &br1));
    assert!(foreign(&at_e, &br1).is_empty(), "leaked across bridges: {:?}", foreign(&at_e, &br1));
    // On a trunk-all bridge even the tagged frames flood to b, tags intact.
    let seen_b = foreign(&at_b, &[a.mac]);
    assert!(seen_b.len() >= 5, "b should see a's flood incl. tagged frames: {seen_b:?}");
    assert!(d.fdb(&br_b).entries.iter().all(|e| e.mac != a.mac.to_string()), "a learned on the other bridge");
}
