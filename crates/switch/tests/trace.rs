//! `Bridge::trace`: it says what `process` does, and it changes nothing.

use packet::{ethernet_frame, FrameSpec, MacAddr, VlanTag};
use proptest::prelude::*;
use switch::{
    Bridge, BridgeSettings, DropReason, Encap, Output, PortSpec, PortVlan, Stage, TraceVerdict, Verdict,
    VlanMode,
};

fn port(name: &str, vlan: PortVlan) -> PortSpec {
    PortSpec::new(name, vlan)
}

fn mac(n: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 0, n])
}

fn frame(dst: MacAddr, src: MacAddr, vid: Option<u16>) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let spec =
        FrameSpec { dst, src, vlan: vid.map(|v| VlanTag { pcp: 3, dei: false, vid: v }), ethertype: 0x0800 };
    let n = ethernet_frame(&mut buf, &spec, &[0; 46]).unwrap();
    buf.truncate(n);
    buf
}

/// a10, b10: access 10; c20: access 20; trunk: all VLANs.
fn bridge() -> Bridge {
    Bridge::new(
        BridgeSettings::default(),
        vec![
            port("a10", PortVlan::access(10)),
            port("b10", PortVlan::access(10)),
            port("c20", PortVlan::access(20)),
            port("trunk", PortVlan::new(Some(VlanMode::Trunk), None, &[]).unwrap()),
        ],
    )
}

fn result(t: &switch::Trace, stage: Stage) -> String {
    t.steps.iter().find(|s| s.stage == stage).map(|s| s.result.clone()).unwrap_or_default()
}

#[test]
fn unicast_between_access_ports_after_learning() {
    let mut br = bridge();
    let mut out = Vec::new();
    br.process(1, &frame(MacAddr::BROADCAST, mac(2), None), 0, &mut out); // b10 learns mac 2
    let t = br.trace(0, &frame(mac(2), mac(1), None), 10);
    assert_eq!(t.verdict, TraceVerdict::Forward { vlan: 10, flooded: false });
    assert_eq!(t.outputs.len(), 1);
    assert_eq!((t.outputs[0].port.as_str(), t.outputs[0].vid), ("b10", None));
    assert!(result(&t, Stage::Lookup).contains("hit: learned on b10"), "{t:#?}");
    assert!(result(&t, Stage::Learn).contains("would learn"), "{t:#?}");
    assert_eq!(br.lookup(10, mac(1), 10).map(|p| p.name.as_str()), None, "trace learned a MAC");
    assert_eq!(br.ports()[0].counters.snapshot().rx_packets, 0, "trace counted on the live port");
}

#[test]
fn flood_lists_vlan_ports_and_tags_the_trunk() {
    let br = bridge();
    let t = br.trace(0, &frame(MacAddr::BROADCAST, mac(1), None), 0);
    assert_eq!(t.verdict, TraceVerdict::Forward { vlan: 10, flooded: true });
    let outs: Vec<(&str, Option<u16>)> = t.outputs.iter().map(|o| (o.port.as_str(), o.vid)).collect();
    assert_eq!(outs, vec![("b10", None), ("trunk", Some(10))]);
    assert!(result(&t, Stage::Egress).contains("not in VLAN 10: c20"), "{t:#?}");
    assert_eq!(t.summary(), "forward to b10, trunk (flood in VLAN 10)");
}

#[test]
fn cross_vlan_attempt_is_a_vlan_drop() {
    let br = bridge();
    // A frame tagged for VLAN 20 on an access port of VLAN 10.
    let t = br.trace(0, &frame(mac(3), mac(1), Some(20)), 0);
    assert_eq!(t.verdict, TraceVerdict::Drop { reason: DropReason::VlanNotAllowed });
    assert!(t.outputs.is_empty());
    assert!(result(&t, Stage::IngressVlan).contains("not accepted"), "{t:#?}");
    assert_eq!(t.summary(), "drop: vlan-not-allowed");
    assert_eq!(br.ports()[0].counters.drops(DropReason::VlanNotAllowed), 0, "trace counted a drop");
}

#[test]
fn a_station_moving_is_reported_as_a_move() {
    let mut br = bridge();
    let mut out = Vec::new();
    br.process(1, &frame(MacAddr::BROADCAST, mac(2), None), 0, &mut out);
    let t = br.trace(0, &frame(MacAddr::BROADCAST, mac(2), None), 5);
    assert!(result(&t, Stage::Learn).contains("would move 52:54:00:00:00:02 from b10 to a10"), "{t:#?}");
    assert_eq!(br.mac_stats().moved, 0);
}

#[test]
fn runts_and_multicast_sources_stop_early() {
    let br = bridge();
    let t = br.trace(0, &[0u8; 10], 0);
    assert_eq!(t.verdict, TraceVerdict::Drop { reason: DropReason::Runt });
    assert_eq!(t.steps.len(), 1);
    let t = br.trace(0, &frame(mac(1), MacAddr([1, 0, 0, 0, 0, 1]), None), 0);
    assert_eq!(t.verdict, TraceVerdict::Drop { reason: DropReason::MulticastSource });
    assert_eq!(t.steps.last().unwrap().stage, Stage::Source);
}

fn encap_vid(e: Encap) -> Option<u16> {
    match e {
        Encap::Untagged => None,
        Encap::Tagged(tci) => Some(tci & 0x0fff),
    }
}

proptest! {
    /// Differential: on any learned state and any frame, trace's verdict and outputs are those of
    /// `process` on the same state, and trace leaves the state as it was.
    #[test]
    fn trace_equals_process(
        history in proptest::collection::vec((0usize..4, 0u8..6, 0u8..6, proptest::option::of(0u16..25)), 0..20),
        (in_slot, dst, src, vid) in (0usize..5, 0u8..7, 0u8..7, proptest::option::of(0u16..25)),
    ) {
        let mut br = bridge();
        let mut out: Vec<Output> = Vec::new();
        let addr = |n: u8| if n == 6 { MacAddr::BROADCAST } else { mac(n) };
        for (i, (slot, d, s, v)) in history.into_iter().enumerate() {
            br.process(slot, &frame(addr(d), addr(s), v), i as u64, &mut out);
        }
        let f = frame(addr(dst), addr(src), vid);
        let fdb_before = br.fdb(100);
        let t = br.trace(in_slot, &f, 100);
        prop_assert_eq!(&br.fdb(100), &fdb_before);
        let v = br.process(in_slot, &f, 100, &mut out);
        let expected = match v {
            Verdict::Drop(reason) | Verdict::Mirrored { reason, .. } => TraceVerdict::Drop { reason },
            Verdict::Forward { vlan, flooded, .. } => TraceVerdict::Forward { vlan, flooded },
        };
        prop_assert_eq!(t.verdict, expected);
        let got: Vec<(usize, Option<u16>)> = t.outputs.iter().map(|o| (o.slot, o.vid)).collect();
        let want: Vec<(usize, Option<u16>)> = out.iter().map(|o| (o.slot, encap_vid(o.encap))).collect();
        prop_assert_eq!(got, want);
    }
}

/// A VM port's frames get a port-security step: passed, or the drop reason.
#[test]
fn port_security_step_shows_the_verdict_and_reason() {
    let vm = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
    let mut sec = switch::PortSecurity::vm(vm);
    sec.ips = switch::parse_allowed_ips("198.18.0.1").unwrap();
    let ports = vec![
        PortSpec { security: sec, ..PortSpec::new("vm", PortVlan::access(10)) },
        PortSpec::new("other", PortVlan::access(10)),
    ];
    let br = Bridge::new(BridgeSettings::default(), ports);
    let step = |t: &switch::Trace| t.steps.iter().find(|s| s.stage == Stage::PortSecurity).cloned();
    let mut buf = vec![0u8; 128];
    let spec = FrameSpec { dst: MacAddr::BROADCAST, src: vm, vlan: None, ethertype: 0 };
    let n =
        packet::ipv4_udp(&mut buf, &spec, [198, 18, 0, 1], [198, 18, 0, 255], (5000, 5001), &[0; 8]).unwrap();
    let own = br.trace(0, &buf[..n], 0);
    let st = step(&own).expect("a port-security step");
    assert!(st.rule.contains("port security on on vm") && st.result == "passed", "{own:#?}");
    let spoofed = br.trace(0, &frame(MacAddr::BROADCAST, mac(9), None), 0);
    assert_eq!(spoofed.verdict, TraceVerdict::Drop { reason: DropReason::SpoofedMac });
    assert_eq!(step(&spoofed).map(|s| s.result), Some("spoofed-mac: dropped".to_string()), "{spoofed:#?}");
    let plain = br.trace(1, &frame(MacAddr::BROADCAST, mac(9), None), 0);
    assert!(step(&plain).is_none(), "ports without security get no step");
}
