//! The pipeline end to end on crafted frames: VLAN rules, learning, flooding scope, hairpin.

use packet::{ethernet_frame, FrameSpec, MacAddr, VlanTag};
use switch::{
    egress_parts, Bridge, BridgeSettings, DropReason, Encap, Output, PortSpec, PortVlan, Verdict, VlanMode,
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
        FrameSpec { dst, src, vlan: vid.map(|v| VlanTag { pcp: 5, dei: false, vid: v }), ethertype: 0x88b5 };
    let n = ethernet_frame(&mut buf, &spec, &[0xab; 46]).unwrap();
    buf.truncate(n);
    buf
}

/// p0, p1: access 10; p2: access 20; p3: trunk all; p4: trunk 20; p5: native-untagged 10 + 20.
fn mixed_bridge() -> Bridge {
    Bridge::new(
        BridgeSettings::default(),
        vec![
            port("a10", PortVlan::access(10)),
            port("b10", PortVlan::access(10)),
            port("c20", PortVlan::access(20)),
            port("trunk", PortVlan::new(Some(VlanMode::Trunk), None, &[]).unwrap()),
            port("t20", PortVlan::new(Some(VlanMode::Trunk), None, &[20]).unwrap()),
            port("nat", PortVlan::new(Some(VlanMode::NativeUntagged), Some(10), &[20]).unwrap()),
        ],
    )
}

fn slots(out: &[Output]) -> Vec<usize> {
    out.iter().map(|o| o.slot).collect()
}

#[test]
fn broadcast_floods_only_its_vlan_and_never_back() {
    let mut br = mixed_bridge();
    let mut out = Vec::new();
    let v = br.process(0, &frame(MacAddr::BROADCAST, mac(1), None), 0, &mut out);
    assert_eq!(v, Verdict::Forward { vlan: 10, ingress_tagged: false, flooded: true });
    assert_eq!(slots(&out), vec![1, 3, 5], "VLAN 10 ports except ingress");
    assert_eq!(out[0].encap, Encap::Untagged);
    assert_eq!(out[1].encap, Encap::Tagged(10), "trunk gets VLAN 10 tagged (pcp 0: untagged ingress)");
    assert_eq!(out[2].encap, Encap::Untagged, "native-untagged: native VLAN leaves untagged");

    br.process(2, &frame(MacAddr::BROADCAST, mac(2), None), 0, &mut out);
    assert_eq!(slots(&out), vec![3, 4, 5], "VLAN 20 ports except ingress");
    assert!(out.iter().all(|o| o.encap == Encap::Tagged(20)));
}

#[test]
fn learned_unicast_goes_to_one_port_and_keeps_pcp() {
    let mut br = mixed_bridge();
    let mut out = Vec::new();
    br.process(0, &frame(MacAddr::BROADCAST, mac(1), None), 0, &mut out);
    let v = br.process(3, &frame(mac(1), mac(9), Some(10)), 1, &mut out);
    assert_eq!(v, Verdict::Forward { vlan: 10, ingress_tagged: true, flooded: false });
    assert_eq!(out, vec![Output { slot: 0, encap: Encap::Untagged }]);
    // And back: the reply to mac 9 is known on the trunk, tagged with VID 10.
    br.process(0, &frame(mac(9), mac(1), None), 2, &mut out);
    assert_eq!(out, vec![Output { slot: 3, encap: Encap::Tagged(10) }]);
    // The trunk's PCP is carried through when it forwards tagged→tagged.
    br.process(5, &frame(MacAddr::BROADCAST, mac(7), Some(20)), 3, &mut out);
    assert!(out
        .contains(&Output { slot: 3, encap: Encap::Tagged(VlanTag { pcp: 5, dei: false, vid: 20 }.tci()) }));
}

#[test]
fn same_mac_in_other_vlan_is_a_different_station() {
    let mut br = mixed_bridge();
    let mut out = Vec::new();
    br.process(0, &frame(MacAddr::BROADCAST, mac(1), None), 0, &mut out);
    // Unicast to mac 1 but on VLAN 20: unknown there, so flooded within VLAN 20 only.
    br.process(2, &frame(mac(1), mac(2), None), 1, &mut out);
    assert_eq!(slots(&out), vec![3, 4, 5]);
}

#[test]
fn hairpin_never() {
    let mut br = mixed_bridge();
    let mut out = Vec::new();
    br.process(0, &frame(MacAddr::BROADCAST, mac(1), None), 0, &mut out);
    br.process(0, &frame(MacAddr::BROADCAST, mac(2), None), 0, &mut out);
    let v = br.process(0, &frame(mac(2), mac(1), None), 1, &mut out);
    assert_eq!(v, Verdict::Drop(DropReason::DestinationOnIngress));
    assert!(out.is_empty());
}

#[test]
fn drops_are_counted_with_reasons() {
    let mut br = mixed_bridge();
    let mut out = Vec::new();
    assert_eq!(br.process(0, &[0u8; 13], 0, &mut out), Verdict::Drop(DropReason::Runt));
    let mut bad = frame(MacAddr::BROADCAST, mac(1), None);
    bad[6] |= 1;
    assert_eq!(br.process(0, &bad, 0, &mut out), Verdict::Drop(DropReason::MulticastSource));
    assert_eq!(
        br.process(0, &frame(MacAddr::BROADCAST, mac(1), Some(10)), 0, &mut out),
        Verdict::Drop(DropReason::VlanNotAllowed),
        "access port drops tagged frames"
    );
    assert_eq!(
        br.process(4, &frame(MacAddr::BROADCAST, mac(1), Some(10)), 0, &mut out),
        Verdict::Drop(DropReason::VlanNotAllowed),
        "trunk 20 drops VLAN 10"
    );
    assert_eq!(
        br.process(4, &frame(MacAddr::BROADCAST, mac(1), None), 0, &mut out),
        Verdict::Drop(DropReason::VlanNotAllowed),
        "trunk 20 drops untagged (VLAN 0)"
    );
    let stp = MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]);
    assert_eq!(
        br.process(0, &frame(stp, mac(1), None), 0, &mut out),
        Verdict::Drop(DropReason::ReservedMulticast)
    );
    let c0 = br.ports()[0].counters.snapshot();
    assert_eq!(c0.rx_packets, 4);
    assert_eq!(c0.drops.get("runt"), Some(&1));
    assert_eq!(c0.drops.get("multicast-source"), Some(&1));
    assert_eq!(c0.drops.get("vlan-not-allowed"), Some(&1));
    assert_eq!(c0.drops.get("reserved-multicast"), Some(&1));
    assert_eq!(br.ports()[4].counters.snapshot().total_drops(), 2);
    assert_eq!(br.mac_count(), 0, "nothing learned from dropped frames");
}

#[test]
fn reconfigure_keeps_unchanged_ports_and_forgets_changed_ones() {
    let mut br = mixed_bridge();
    let mut out = Vec::new();
    br.process(0, &frame(MacAddr::BROADCAST, mac(1), None), 0, &mut out);
    br.process(1, &frame(MacAddr::BROADCAST, mac(2), None), 0, &mut out);
    let mut ports: Vec<PortSpec> = br.ports().to_vec();
    ports.remove(0); // a10 gone
    ports[0].vlan = PortVlan::access(10); // b10 unchanged, now slot 0
    br.reconfigure(BridgeSettings::default(), ports);
    assert_eq!(br.fdb(0).len(), 1);
    assert_eq!(br.fdb(0)[0].port, "b10");
    br.process(2, &frame(mac(2), mac(3), None), 1, &mut out);
    assert_eq!(br.lookup(10, mac(2), 1).map(|p| p.name.as_str()), Some("b10"));

    let mut ports: Vec<PortSpec> = br.ports().to_vec();
    ports[0].vlan = PortVlan::access(30);
    br.reconfigure(BridgeSettings::default(), ports);
    assert!(br.lookup(10, mac(2), 1).is_none(), "VLAN change forgets the port addresses");
}

#[test]
fn aging_and_limit_through_the_bridge() {
    let settings = BridgeSettings { mac_aging_ms: 1000, mac_table_size: 2, forward_bpdu: false };
    let mut br = Bridge::new(settings, vec![port("p", PortVlan::access(1)), port("q", PortVlan::access(1))]);
    let mut out = Vec::new();
    for n in 1..=3 {
        br.process(0, &frame(MacAddr::BROADCAST, mac(n), None), u64::from(n), &mut out);
    }
    assert_eq!(br.mac_count(), 2);
    br.process(1, &frame(mac(1), mac(9), None), 10, &mut out);
    assert_eq!(slots(&out), vec![0], "evicted address is unknown → flooded (to the only other port)");
    assert!(br.lookup(1, mac(3), 500).is_some());
    assert_eq!(br.expire(5000), 2);
}

#[test]
fn egress_parts_push_and_pop() {
    let untagged = frame(mac(2), mac(1), None);
    let tagged = frame(mac(2), mac(1), Some(10));
    let join = |(p, n): ([&[u8]; 3], usize)| p[..n].concat();
    let none = Encap::Untagged.tag_bytes();
    assert_eq!(join(egress_parts(&untagged, false, Encap::Untagged, &none)), untagged);
    assert_eq!(join(egress_parts(&tagged, true, Encap::Untagged, &none)), untagged);
    let encap = Encap::Tagged(VlanTag { pcp: 5, dei: false, vid: 10 }.tci());
    assert_eq!(join(egress_parts(&untagged, false, encap, &encap.tag_bytes())), tagged);
    let encap = Encap::Tagged(20);
    let retagged = join(egress_parts(&tagged, true, encap, &encap.tag_bytes()));
    assert_eq!(&retagged[12..16], &[0x81, 0, 0, 20]);
    assert_eq!(retagged.len(), tagged.len());
}

proptest::proptest! {
    /// Any bytes from any port (nearly all untagged or runts): no panic, never back out the
    /// ingress port, every frame forwarded or counted as a drop. The VLAN oracle, on frames from
    /// a strategy, is `vlan_model.rs`.
    #[test]
    fn arbitrary_bytes_never_panic_and_drops_are_counted(
        frames in proptest::collection::vec((0usize..6, proptest::collection::vec(proptest::num::u8::ANY, 0..40)), 1..60)
    ) {
        let mut br = mixed_bridge();
        let mut out = Vec::new();
        for (now, (in_slot, bytes)) in frames.iter().enumerate() {
            let before = br.ports()[*in_slot].counters.snapshot().total_drops();
            match br.process(*in_slot, bytes, now as u64, &mut out) {
                Verdict::Drop(_) => {
                    proptest::prop_assert!(out.is_empty());
                    proptest::prop_assert_eq!(br.ports()[*in_slot].counters.snapshot().total_drops(), before + 1);
                }
                Verdict::Mirrored { .. } => proptest::prop_assert!(false, "mirrored with no mirrors"),
                Verdict::Forward { vlan, .. } => {
                    for o in &out {
                        proptest::prop_assert_ne!(o.slot, *in_slot);
                        proptest::prop_assert!(br.ports()[o.slot].vlan.egress_vid(vlan).is_some());
                    }
                }
            }
        }
    }
}
