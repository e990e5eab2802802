//! The pipeline against an independent model of Open vSwitch's VLAN rules (README, "Config"):
//! ports get random VLAN configurations, frames come from a strategy (a small MAC pool, optional
//! 802.1Q or priority tag with a VID from a small set, several EtherTypes), and the model alone —
//! never the bridge's verdict — says which VLAN a frame belongs to, which ports it leaves on and
//! whether it leaves tagged. Every output is also rebuilt with `egress_parts` and parsed back, so
//! the bytes on the wire carry the VLAN the model expects.

use std::collections::HashMap;

use packet::{ethernet_frame, EthernetHeader, FrameSpec, MacAddr, VlanTag};
use proptest::prelude::*;
use switch::{
    egress_parts, Bridge, BridgeSettings, DropReason, Encap, PortSpec, PortVlan, Verdict, VlanMode,
};

/// VIDs frames carry: 0 is a priority tag, 100 is no port's tag (only all-VLAN trunks carry it).
const FRAME_VIDS: [u16; 5] = [0, 10, 20, 30, 100];
/// Access and native VLANs.
const PORT_TAGS: [u16; 3] = [10, 20, 30];
/// EtherTypes after the tag; 0x88a8 (802.1ad) is opaque to an 802.1Q bridge (README).
const ETHERTYPES: [u16; 5] = [0x0800, 0x0806, 0x86dd, 0x88b5, 0x88a8];

/// A port's VLAN configuration in OvS's columns; an empty trunk list means "all VLANs".
#[derive(Clone, Debug)]
enum Cfg {
    Access(u16),
    Trunk(Vec<u16>),
    NativeTagged(u16, Vec<u16>),
    NativeUntagged(u16, Vec<u16>),
}

impl Cfg {
    fn port_vlan(&self) -> PortVlan {
        let (mode, tag, trunks) = match self {
            Cfg::Access(t) => (VlanMode::Access, Some(*t), &[][..]),
            Cfg::Trunk(tr) => (VlanMode::Trunk, None, &tr[..]),
            Cfg::NativeTagged(t, tr) => (VlanMode::NativeTagged, Some(*t), &tr[..]),
            Cfg::NativeUntagged(t, tr) => (VlanMode::NativeUntagged, Some(*t), &tr[..]),
        };
        PortVlan::new(Some(mode), tag, trunks).expect("valid port config")
    }

    /// Whether `vlan` is in the trunk list (empty: all). Native modes always trunk their native
    /// VLAN and never VLAN 0.
    fn trunks(&self, vlan: u16) -> bool {
        match self {
            Cfg::Access(_) => false,
            Cfg::Trunk(tr) => tr.is_empty() || tr.contains(&vlan),
            Cfg::NativeTagged(t, tr) | Cfg::NativeUntagged(t, tr) => {
                vlan != 0 && (vlan == *t || tr.is_empty() || tr.contains(&vlan))
            }
        }
    }

    /// The VLAN a frame with VID `vid` (0: untagged or priority-tagged) belongs to on ingress.
    fn ingress(&self, vid: u16) -> Option<u16> {
        match self {
            Cfg::Access(t) => (vid == 0).then_some(*t),
            // Untagged on a trunk is VLAN 0.
            Cfg::Trunk(_) => self.trunks(vid).then_some(vid),
            Cfg::NativeTagged(t, _) | Cfg::NativeUntagged(t, _) if vid == 0 => Some(*t),
            _ => self.trunks(vid).then_some(vid),
        }
    }

    /// `None`: the port does not carry `vlan`; else whether the frame leaves tagged.
    fn egress_tagged(&self, vlan: u16) -> Option<bool> {
        match self {
            Cfg::Access(t) => (vlan == *t).then_some(false),
            Cfg::Trunk(_) => self.trunks(vlan).then_some(vlan != 0),
            Cfg::NativeTagged(..) => self.trunks(vlan).then_some(true),
            Cfg::NativeUntagged(t, _) => self.trunks(vlan).then_some(vlan != *t),
        }
    }
}

fn cfg_strategy() -> impl Strategy<Value = Cfg> {
    let tag = proptest::sample::select(&PORT_TAGS[..]);
    let trunks = proptest::sample::subsequence(&FRAME_VIDS[..], 0..=3);
    prop_oneof![
        tag.clone().prop_map(Cfg::Access),
        trunks.clone().prop_map(Cfg::Trunk),
        (tag.clone(), trunks.clone()).prop_map(|(t, tr)| Cfg::NativeTagged(t, tr)),
        (tag, trunks).prop_map(|(t, tr)| Cfg::NativeUntagged(t, tr)),
    ]
}

/// Unicast stations, then broadcast, an IPv4 multicast group and two 802.1D reserved addresses.
fn mac_pool() -> Vec<MacAddr> {
    let mut pool: Vec<MacAddr> = (1..=5).map(|n| MacAddr([0x52, 0x54, 0, 0, 0, n])).collect();
    pool.extend([
        MacAddr::BROADCAST,
        MacAddr([0x01, 0x00, 0x5e, 0, 0, 0xfb]),
        MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]),
        MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x0e]),
    ]);
    pool
}

const UNICAST: usize = 5;

/// One frame to inject: ingress port (an index, reduced modulo the port count), MAC pool
/// indices, optional tag, EtherType.
#[derive(Clone, Debug)]
struct Injected {
    port: usize,
    dst: usize,
    src: usize,
    tag: Option<VlanTag>,
    ethertype: u16,
}

fn injected_strategy() -> impl Strategy<Value = Injected> {
    let tag = (0u8..8, any::<bool>(), proptest::sample::select(&FRAME_VIDS[..]))
        .prop_map(|(pcp, dei, vid)| VlanTag { pcp, dei, vid });
    // Sources are mostly unicast; index UNICAST+1 (a group address) is an illegal source.
    let src = prop_oneof![9 => 0..UNICAST, 1 => Just(UNICAST + 1)];
    (
        0usize..8,
        0..mac_pool().len(),
        src,
        proptest::option::of(tag),
        proptest::sample::select(&ETHERTYPES[..]),
    )
        .prop_map(|(port, dst, src, tag, ethertype)| Injected { port, dst, src, tag, ethertype })
}

fn build(dst: MacAddr, src: MacAddr, tag: Option<VlanTag>, ethertype: u16) -> Vec<u8> {
    let mut buf = vec![0u8; 80];
    let spec = FrameSpec { dst, src, vlan: tag, ethertype };
    let n = ethernet_frame(&mut buf, &spec, &[0x5a; 50]).expect("frame fits");
    buf.truncate(n);
    buf
}

/// What the model expects of one frame.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Dropped for one of these reasons (several may apply; any one is counted).
    Drop(Vec<DropReason>),
    Forward {
        vlan: u16,
        flooded: bool,
        outputs: Vec<(usize, Encap)>,
    },
}

/// The model: OvS VLAN rules plus learning (the bridge's table is far larger than the pool and
/// nothing ages within a case, so a plain map is exact).
struct Model {
    ports: Vec<Cfg>,
    fdb: HashMap<(u16, MacAddr), usize>,
}

impl Model {
    fn expect(&mut self, in_port: usize, dst: MacAddr, src: MacAddr, tag: Option<VlanTag>) -> Expect {
        let vid = tag.map_or(0, |t| t.vid);
        let vlan = self.ports[in_port].ingress(vid);
        let reserved = dst.0[..5] == [0x01, 0x80, 0xc2, 0, 0] && dst.0[5] <= 0x0f;
        let mut reasons = Vec::new();
        if src.0[0] & 1 == 1 {
            reasons.push(DropReason::MulticastSource);
        }
        if vlan.is_none() {
            reasons.push(DropReason::VlanNotAllowed);
        }
        if reserved {
            reasons.push(DropReason::ReservedMulticast);
        }
        let Some(vlan) = vlan.filter(|_| reasons.is_empty()) else { return Expect::Drop(reasons) };
        self.fdb.insert((vlan, src), in_port);
        let known = if dst.0[0] & 1 == 1 { None } else { self.fdb.get(&(vlan, dst)).copied() };
        if known == Some(in_port) {
            return Expect::Drop(vec![DropReason::DestinationOnIngress]);
        }
        // PCP is carried from the ingress tag (a priority tag too); DEI is not.
        let pcp = tag.map_or(0, |t| t.pcp);
        let outputs = (0..self.ports.len())
            .filter(|p| *p != in_port && known.is_none_or(|k| k == *p))
            .filter_map(|p| {
                let tagged = self.ports[p].egress_tagged(vlan)?;
                let encap = if tagged {
                    Encap::Tagged(VlanTag { pcp, dei: false, vid: vlan }.tci())
                } else {
                    Encap::Untagged
                };
                Some((p, encap))
            })
            .collect();
        Expect::Forward { vlan, flooded: known.is_none(), outputs }
    }
}

/// The frame as it leaves with `encap`, parsed: its tag and everything after the tag.
fn on_the_wire(frame: &[u8], ingress_tagged: bool, encap: Encap) -> (Option<VlanTag>, Vec<u8>) {
    let tag = encap.tag_bytes();
    let (parts, n) = egress_parts(frame, ingress_tagged, encap, &tag);
    let out = parts[..n].concat();
    let h = EthernetHeader::parse(&out).expect("egress frame parses");
    (h.vlan, out[h.payload_offset - 2..].to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every frame is forwarded exactly to the ports the model picks, in the model's VLAN, with
    /// the model's encapsulation (also checked on the rebuilt bytes), or dropped for a reason
    /// the model gives and counted on its ingress port. No output on a port without the VLAN.
    #[test]
    fn bridge_matches_the_vlan_model(
        cfgs in proptest::collection::vec(cfg_strategy(), 2..=6),
        frames in proptest::collection::vec(injected_strategy(), 1..80),
    ) {
        let pool = mac_pool();
        let specs = cfgs
            .iter()
            .enumerate()
            .map(|(i, c)| PortSpec::new(format!("p{i}"), c.port_vlan()))
            .collect();
        let mut br = Bridge::new(BridgeSettings::default(), specs);
        let mut model = Model { ports: cfgs.clone(), fdb: HashMap::new() };
        let mut out = Vec::new();
        for (now, f) in frames.iter().enumerate() {
            let in_port = f.port % cfgs.len();
            let (dst, src) = (pool[f.dst], pool[f.src]);
            let frame = build(dst, src, f.tag, f.ethertype);
            let drops_before = br.ports()[in_port].counters.snapshot().total_drops();
            let verdict = br.process(in_port, &frame, now as u64, &mut out);
            let expect = model.expect(in_port, dst, src, f.tag);
            match (&expect, verdict) {
                (Expect::Drop(reasons), Verdict::Drop(r)) => {
                    prop_assert!(reasons.contains(&r), "dropped for {r:?}, model: {reasons:?}");
                    prop_assert!(out.is_empty());
                    let drops = br.ports()[in_port].counters.snapshot().total_drops();
                    prop_assert_eq!(drops, drops_before + 1, "drop not counted on the ingress port");
                }
                (Expect::Forward { vlan, flooded, outputs }, Verdict::Forward { vlan: v, ingress_tagged, flooded: fl }) => {
                    prop_assert_eq!((*vlan, *flooded, f.tag.is_some()), (v, fl, ingress_tagged));
                    let got: Vec<(usize, Encap)> = out.iter().map(|o| (o.slot, o.encap)).collect();
                    prop_assert_eq!(&got, outputs, "outputs of {:?} on {:?}", f, cfgs);
                    for &(slot, encap) in &got {
                        prop_assert!(cfgs[slot].egress_tagged(v).is_some(), "left on p{slot} without VLAN {v}");
                        let (tag, rest) = on_the_wire(&frame, ingress_tagged, encap);
                        let want_tag = match encap {
                            Encap::Untagged => None,
                            Encap::Tagged(_) => Some(VlanTag { pcp: f.tag.map_or(0, |t| t.pcp), dei: false, vid: v }),
                        };
                        prop_assert_eq!(tag, want_tag);
                        let (_, sent) = on_the_wire(&frame, ingress_tagged, Encap::Untagged);
                        prop_assert_eq!(&rest, &sent, "EtherType or payload changed");
                        prop_assert_eq!(u16::from_be_bytes([rest[0], rest[1]]), f.ethertype);
                    }
                }
                (want, got) => prop_assert!(false, "model {want:?}, bridge {got:?} for {f:?} on {cfgs:?}"),
            }
        }
    }
}

/// The model itself on the README's examples, so a wrong model cannot make the property vacuous.
#[test]
fn model_follows_the_readme() {
    let trunk_all = Cfg::Trunk(vec![]);
    assert_eq!(trunk_all.ingress(0), Some(0), "untagged frames on a trunk are VLAN 0");
    assert_eq!(trunk_all.egress_tagged(0), Some(false));
    assert_eq!(Cfg::Trunk(vec![10]).ingress(0), None);
    let native = Cfg::NativeUntagged(10, vec![20]);
    assert_eq!(native.ingress(0), Some(10), "priority-tagged or untagged → native VLAN");
    assert_eq!(native.egress_tagged(10), Some(false));
    assert_eq!(native.egress_tagged(20), Some(true));
    assert_eq!(native.egress_tagged(0), None, "native modes never carry VLAN 0");
    assert_eq!(Cfg::NativeTagged(10, vec![20]).egress_tagged(10), Some(true));
    assert_eq!(Cfg::Access(10).ingress(10), None, "access ports drop tagged frames");
    assert_eq!(Cfg::Access(10).ingress(0), Some(10));
}
