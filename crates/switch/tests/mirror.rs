//! Port mirroring through the pipeline: copies with the VLAN at the bridge, one per output
//! port, the output port reserved (nothing flooded or learned to it, its frames dropped), and
//! frames port security drops never mirrored.

use std::sync::Arc;

use packet::{ethernet_frame, FrameSpec, MacAddr, VlanTag};
use switch::{
    Bridge, BridgeSettings, DropReason, Encap, MirrorSpec, Output, PortSecurity, PortSpec, PortVlan,
    SecurityMode, Verdict, VlanMode,
};

fn mac(n: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 0, n])
}

fn frame(dst: MacAddr, src: MacAddr, vid: Option<u16>) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let spec =
        FrameSpec { dst, src, vlan: vid.map(|v| VlanTag { pcp: 3, dei: false, vid: v }), ethertype: 0x88b5 };
    let n = ethernet_frame(&mut buf, &spec, &[0xab; 46]).unwrap();
    buf.truncate(n);
    buf
}

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const TRUNK: usize = 3;
const MON: usize = 4;
const MON_ACCESS: usize = 5;

/// a, b: access 10; c: access 20; trunk: all VLANs; mon: a trunk; mon-access: access 99.
fn bridge(mirrors: Vec<MirrorSpec>) -> Bridge {
    let trunk = || PortVlan::new(Some(VlanMode::Trunk), None, &[]).unwrap();
    let mut br = Bridge::new(
        BridgeSettings::default(),
        vec![
            PortSpec::new("a", PortVlan::access(10)),
            PortSpec::new("b", PortVlan::access(10)),
            PortSpec::new("c", PortVlan::access(20)),
            PortSpec::new("trunk", trunk()),
            PortSpec::new("mon", trunk()),
            PortSpec::new("mon-access", PortVlan::access(99)),
        ],
    );
    br.set_mirrors(mirrors);
    br
}

fn to(output: usize) -> MirrorSpec {
    MirrorSpec { name: "m".into(), output: Some(output), ..MirrorSpec::default() }
}

fn copies(out: &[Output], slot: usize) -> Vec<Encap> {
    out.iter().filter(|o| o.slot == slot).map(|o| o.encap).collect()
}

#[test]
fn select_all_copies_once_with_the_bridge_vlan() {
    let all = MirrorSpec { select_all: true, ..to(MON) };
    let again = MirrorSpec { counters: Arc::default(), ..all.clone() };
    let mut br = bridge(vec![all, again, MirrorSpec { select_all: true, ..to(MON_ACCESS) }]);
    let mut out = Vec::new();
    let v = br.process(A, &frame(MacAddr::BROADCAST, mac(1), None), 0, &mut out);
    assert!(matches!(v, Verdict::Forward { vlan: 10, flooded: true, .. }));
    let tag10 = Encap::Tagged(VlanTag { pcp: 0, dei: false, vid: 10 }.tci());
    assert_eq!(copies(&out, MON), vec![tag10], "two mirrors to one port: one copy, tagged 10");
    assert_eq!(copies(&out, MON_ACCESS), vec![Encap::Untagged], "an access output gets it untagged");
    assert_eq!(copies(&out, B), vec![Encap::Untagged]);
    // A tagged VLAN 20 frame from the trunk keeps its PCP on the copy.
    br.process(TRUNK, &frame(mac(2), mac(3), Some(20)), 0, &mut out);
    let tag20 = Encap::Tagged(VlanTag { pcp: 3, dei: false, vid: 20 }.tci());
    assert_eq!(copies(&out, MON), vec![tag20]);
    let m = br.mirrors().specs();
    // 60 bytes untagged + a pushed tag, then a 64-byte tagged frame as it came.
    assert_eq!(m[0].counters.read(), (2, 64 + 64));
    assert_eq!(m[1].counters.read(), (2, 64 + 64), "the deduplicated mirror counts too");
    assert_eq!(m[2].counters.read().0, 2);
}

#[test]
fn output_port_is_reserved() {
    let mut br = bridge(vec![MirrorSpec { src: vec![A], ..to(MON) }]);
    let mut out = Vec::new();
    let v = br.process(MON, &frame(MacAddr::BROADCAST, mac(9), Some(10)), 0, &mut out);
    assert_eq!(v, Verdict::Drop(DropReason::MirrorOutput));
    assert_eq!(br.ports()[MON].counters.drops(DropReason::MirrorOutput), 1);
    assert!(br.lookup_slot(10, mac(9), 0).is_none(), "nothing learned on the output port");
    // Flooding from a port no mirror selects skips the output port.
    br.process(TRUNK, &frame(MacAddr::BROADCAST, mac(4), Some(10)), 0, &mut out);
    assert!(copies(&out, MON).is_empty());
    assert_eq!(copies(&out, A), vec![Encap::Untagged]);
}

#[test]
fn learned_on_the_output_port_before_is_forgotten() {
    let mut br = bridge(vec![]);
    let mut out = Vec::new();
    br.process(MON, &frame(MacAddr::BROADCAST, mac(9), Some(10)), 0, &mut out);
    assert_eq!(br.lookup_slot(10, mac(9), 0), Some(MON));
    br.set_mirrors(vec![MirrorSpec { src: vec![C], ..to(MON) }]);
    br.process(A, &frame(mac(9), mac(1), None), 0, &mut out);
    assert!(copies(&out, MON).is_empty(), "flooded to the others, not sent to the mirror port");
    assert_eq!(copies(&out, B).len(), 1);
}

#[test]
fn source_destination_and_vlan_selection() {
    let src = MirrorSpec { src: vec![A], ..to(MON) };
    let mut br = bridge(vec![src]);
    let mut out = Vec::new();
    br.process(A, &frame(MacAddr::BROADCAST, mac(1), None), 0, &mut out);
    br.process(B, &frame(mac(1), mac(2), None), 0, &mut out);
    assert!(copies(&out, MON).is_empty(), "b → a is not received on a");
    assert_eq!(copies(&out, A).len(), 1);
    br.process(A, &frame(mac(2), mac(1), None), 0, &mut out);
    assert_eq!(copies(&out, MON).len(), 1);

    let dst = MirrorSpec { dst: vec![A], vlans: vec![10], ..to(MON) };
    br.set_mirrors(vec![dst]);
    br.process(B, &frame(mac(1), mac(2), None), 0, &mut out);
    assert_eq!(copies(&out, MON).len(), 1, "sent to a");
    br.process(A, &frame(mac(2), mac(1), None), 0, &mut out);
    assert!(copies(&out, MON).is_empty(), "received on a is not sent to a");
    br.set_mirrors(vec![MirrorSpec { select_all: true, vlans: vec![20], ..to(MON) }]);
    br.process(B, &frame(mac(1), mac(2), None), 0, &mut out);
    assert!(copies(&out, MON).is_empty(), "VLAN 10 is not selected");
    br.process(C, &frame(MacAddr::BROADCAST, mac(5), None), 0, &mut out);
    assert_eq!(copies(&out, MON).len(), 1, "VLAN 20 is");
}

#[test]
fn security_drops_are_not_mirrored() {
    let trunk = PortVlan::new(Some(VlanMode::Trunk), None, &[]).unwrap();
    let vm = PortSecurity { mode: SecurityMode::Mac, macs: vec![mac(1)], ..PortSecurity::default() };
    let ports = vec![
        PortSpec { security: vm, ..PortSpec::new("vm", PortVlan::access(10)) },
        PortSpec::new("b", PortVlan::access(10)),
        PortSpec::new("mon", trunk),
    ];
    let mut br = Bridge::new(BridgeSettings::default(), ports);
    let counters = Arc::default();
    br.set_mirrors(vec![MirrorSpec { select_all: true, output: Some(2), counters, ..MirrorSpec::default() }]);
    let mut out = Vec::new();
    let v = br.process(0, &frame(MacAddr::BROADCAST, mac(66), None), 0, &mut out);
    assert_eq!(v, Verdict::Drop(DropReason::SpoofedMac));
    assert_eq!(br.mirrors().specs()[0].counters.read(), (0, 0));
    br.process(0, &frame(MacAddr::BROADCAST, mac(1), None), 0, &mut out);
    assert_eq!(copies(&out, 2).len(), 1);
}

#[test]
fn trace_shows_the_copies_and_leaves_mirror_counters_alone() {
    let mut br = bridge(vec![MirrorSpec { name: "m0".into(), src: vec![A], ..to(MON) }]);
    let t = br.trace(A, &frame(MacAddr::BROADCAST, mac(1), None), 0);
    let step = |stage| t.steps.iter().find(|s| s.stage == stage).cloned().unwrap_or_else(|| panic!("{t:#?}"));
    assert_eq!(step(switch::Stage::Mirror).rule, "selected by mirror(s) m0");
    assert_eq!(step(switch::Stage::Mirror).result, "one copy to mon");
    assert!(step(switch::Stage::Egress).result.contains("mirror output (reserved): mon"), "{t:#?}");
    assert!(t.outputs.iter().any(|o| o.port == "mon" && o.vid == Some(10)), "{t:#?}");
    assert_eq!(br.mirrors().specs()[0].counters.read(), (0, 0), "trace counted on the live mirror");
    let t = br.trace(B, &frame(MacAddr::BROADCAST, mac(2), None), 0);
    assert!(t.steps.iter().any(|s| s.result == "no mirror selects this frame"), "{t:#?}");
    let t = br.trace(MON, &frame(MacAddr::BROADCAST, mac(9), None), 0);
    assert!(matches!(t.verdict, switch::TraceVerdict::Drop { reason: DropReason::MirrorOutput }), "{t:#?}");
    let mut out = Vec::new();
    br.process(A, &frame(MacAddr::BROADCAST, mac(1), None), 0, &mut out);
    assert_eq!(br.mirrors().specs()[0].counters.read().0, 1);
}

#[test]
fn a_frame_to_its_own_port_is_dropped_but_still_mirrored_by_source() {
    // Two hosts behind the trunk (another switch): normal forwarding drops what one sends the
    // other, and a mirror of the trunk's traffic still sees it, as OvS's does.
    let by_source = MirrorSpec { src: vec![TRUNK], ..to(MON) };
    let by_destination = MirrorSpec { dst: vec![TRUNK], ..to(MON_ACCESS) };
    let mut br = bridge(vec![by_source, by_destination]);
    let mut out = Vec::new();
    br.process(TRUNK, &frame(MacAddr::BROADCAST, mac(7), Some(10)), 0, &mut out);
    let v = br.process(TRUNK, &frame(mac(7), mac(8), Some(10)), 1, &mut out);
    assert_eq!(
        v,
        Verdict::Mirrored { reason: DropReason::DestinationOnIngress, vlan: 10, ingress_tagged: true }
    );
    let tag10 = Encap::Tagged(VlanTag { pcp: 3, dei: false, vid: 10 }.tci());
    assert_eq!(
        out,
        vec![Output { slot: MON, encap: tag10 }],
        "only the copy; the destination mirror sees no output"
    );
    assert_eq!(br.ports()[TRUNK].counters.drops(DropReason::DestinationOnIngress), 1);
    assert_eq!(br.mirrors().specs()[0].counters.read(), (2, 64 + 64));
    assert_eq!(br.mirrors().specs()[1].counters.read(), (0, 0));

    let t = br.trace(TRUNK, &frame(mac(7), mac(8), Some(10)), 2);
    assert_eq!(t.summary(), "drop: destination-on-ingress");
    assert_eq!(t.outputs.iter().map(|o| o.port.as_str()).collect::<Vec<_>>(), ["mon"]);
    let mirror = t.steps.last().expect("steps");
    assert_eq!(
        (mirror.rule.as_str(), mirror.result.as_str()),
        ("selected by mirror(s) m", "one copy to mon")
    );

    // Without a mirror that selects it, it stays a plain drop with nothing to send.
    let mut plain = bridge(vec![MirrorSpec { dst: vec![TRUNK], ..to(MON) }]);
    plain.process(TRUNK, &frame(MacAddr::BROADCAST, mac(7), Some(10)), 0, &mut out);
    let v = plain.process(TRUNK, &frame(mac(7), mac(8), Some(10)), 1, &mut out);
    assert_eq!(v, Verdict::Drop(DropReason::DestinationOnIngress));
    assert!(out.is_empty());
}
