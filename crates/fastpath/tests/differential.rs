//! One decision, two executors: random port configs, learning histories and probe frames go
//! through the pure pipeline (`switch::Bridge`) and, with the flow map mirrored exactly as
//! rvswitchd mirrors it, through the loaded tc program (`BPF_PROG_TEST_RUN`). Whenever the
//! kernel forwards, the pipeline forwards the same frame to the same single port with the same
//! tag and learns nothing new; whenever the pipeline's decision is cacheable (known unicast to
//! one port from a source already learned on the ingress port) the kernel forwards it.

mod common;

use fastpath::maps::PORT_STANDALONE;
use fastpath::mirror::{KernelPort, Mirror};
use fastpath::{FastPath, PortConf, TestRun};
use packet::{ethernet_frame, FrameSpec, MacAddr, VlanTag};
use proptest::prelude::*;
use switch::{Bridge, BridgeSettings, Encap, PortSpec, PortVlan, Verdict, VlanMode};
use testbed::{unique, Veth};

const PORTS: usize = 4;
const BRIDGE: u32 = 1;
const CASES: u32 = 1000;
const TC_ACT_OK: u32 = 0;
const TC_ACT_REDIRECT: u32 = 7;

#[derive(Clone, Debug)]
struct Probe {
    port: usize,
    src: u8,
    dst: u8,
    /// None: untagged; Some((pcp, dei, vid)), vid 0 = priority tag.
    tag: Option<(u8, bool, u16)>,
}

fn mac(i: u8) -> MacAddr {
    // Index 7 is the broadcast address, 6 a multicast group: both never cached.
    match i {
        7 => MacAddr::BROADCAST,
        6 => MacAddr([0x01, 0, 0x5e, 0, 0, 1]),
        _ => MacAddr([2, 0, 0, 0, 0xd1, i]),
    }
}

fn frame(p: &Probe) -> Vec<u8> {
    let vlan = p.tag.map(|(pcp, dei, vid)| VlanTag { pcp, dei, vid });
    let spec = FrameSpec { dst: mac(p.dst), src: mac(p.src), vlan, ethertype: 0x88b5 };
    let mut buf = vec![0u8; 128];
    let n = ethernet_frame(&mut buf, &spec, &[0x5a; 46]).unwrap();
    buf.truncate(n);
    buf
}

fn port_vlan() -> impl Strategy<Value = PortVlan> {
    (0usize..4, 1u16..3, proptest::collection::vec(1u16..4, 0..3)).prop_map(|(m, tag, trunks)| {
        let mode = [VlanMode::Access, VlanMode::Trunk, VlanMode::NativeTagged, VlanMode::NativeUntagged][m];
        let trunks = if mode == VlanMode::Access { vec![] } else { trunks };
        let tag = (mode != VlanMode::Trunk).then_some(tag);
        PortVlan::new(Some(mode), tag, &trunks).expect("valid by construction")
    })
}

fn probe() -> impl Strategy<Value = Probe> {
    // Mostly a few unicast MACs and VLANs 1-2, so histories often learn what probes use.
    let tag = proptest::option::of((0u8..8, any::<bool>(), prop_oneof![4 => 1u16..3, 1 => 0u16..5]));
    let mac = || prop_oneof![6 => 0u8..3, 1 => 3u8..8];
    (0..PORTS, mac(), mac(), tag).prop_map(|(port, src, dst, tag)| Probe { port, src, dst, tag })
}

struct Rig {
    fp: FastPath,
    ifindex: Vec<u32>,
    _links: Vec<Veth>,
}

impl Rig {
    fn new() -> Option<Rig> {
        let fp = common::load("pipeline_and_kernel_agree")?;
        let mut links = Vec::new();
        let mut ifindex = Vec::new();
        for _ in 0..PORTS {
            let v = Veth::pair(&unique("fd"), &unique("fd")).expect("veth pair");
            ifindex.push(netdev::interface_info(v.host_if()).unwrap().unwrap().ifindex);
            links.push(v);
        }
        Some(Rig { fp, ifindex, _links: links })
    }

    /// Runs one case; Err describes a disagreement.
    /// Runs one case: whether the kernel forwarded, or what disagreed.
    fn case(&mut self, vlans: &[PortVlan], history: &[Probe], p: &Probe) -> Result<bool, String> {
        for k in self.fp.flow_keys() {
            self.fp.remove_flow(&k);
        }
        let ports: Vec<PortSpec> =
            vlans.iter().enumerate().map(|(i, v)| PortSpec::new(format!("p{i}"), v.clone())).collect();
        for (i, v) in vlans.iter().enumerate() {
            self.fp.set_port(self.ifindex[i], &PortConf::new(BRIDGE, v, PORT_STANDALONE)).unwrap();
        }
        let mut bridge = Bridge::new(BridgeSettings::default(), ports);
        let mut mirror = Mirror::default();
        let mut outs = Vec::new();
        for (t, h) in history.iter().enumerate() {
            let f = frame(h);
            bridge.process(h.port, &f, t as u64, &mut outs);
            let port = KernelPort { bridge: BRIDGE, ifindex: self.ifindex[h.port], vlan: &vlans[h.port] };
            let here = |vlan, m| bridge.lookup_slot(vlan, m, t as u64) == Some(h.port);
            if let Some(op) = mirror.observe(port, &f, here) {
                self.fp.apply(op).unwrap();
            }
        }
        let now = history.len() as u64;
        let f = frame(p);
        let _ = self.fp.take_last().unwrap();
        let run = TestRun::run(self.fp.tc_program(), &f, self.ifindex[p.port]).map_err(|e| e.to_string())?;
        let last = self.fp.take_last().unwrap();

        let vlan = vlans[p.port].ingress_vlan(p.tag.map(|t| t.2));
        let src_here = vlan.is_some_and(|v| bridge.lookup_slot(v, mac(p.src), now) == Some(p.port));
        let verdict = bridge.process(p.port, &f, now, &mut outs);
        let unicast = matches!(verdict, Verdict::Forward { flooded: false, .. }) && outs.len() == 1;
        let cacheable = src_here && unicast;
        match run.retval {
            TC_ACT_REDIRECT => {
                let [d] = last.as_slice() else {
                    return Err(format!("redirect without one decision: {last:?}"));
                };
                if !cacheable {
                    return Err(format!(
                        "kernel forwarded what the pipeline did not cache: {verdict:?} {outs:?}"
                    ));
                }
                let o = outs[0];
                let encap = if d.out_tagged != 0 { Encap::Tagged(d.out_tci) } else { Encap::Untagged };
                if self.ifindex[o.slot] != d.out_ifindex || o.encap != encap {
                    return Err(format!("pipeline {o:?}, kernel {d:?}"));
                }
                Ok(true)
            }
            TC_ACT_OK if !cacheable => Ok(false),
            TC_ACT_OK => {
                Err(format!("the kernel sent a cacheable frame to the slow path: {verdict:?} {outs:?}"))
            }
            other => Err(format!("unexpected tc verdict {other}")),
        }
    }
}

#[test]
fn pipeline_and_kernel_agree() {
    let Some(rig) = Rig::new() else { return };
    let rig = std::cell::RefCell::new(rig);
    let forwarded = std::cell::Cell::new(0u32);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = (
        proptest::collection::vec(port_vlan(), PORTS),
        proptest::collection::vec(probe(), 0..16),
        probe(),
        proptest::option::of((any::<usize>(), any::<usize>())),
    );
    runner
        .run(&strategy, |(vlans, history, mut p, reuse)| {
            // Half the probes replay a learned sender towards another learned address.
            if let (Some((i, j)), false) = (reuse, history.is_empty()) {
                let (a, b) = (&history[i % history.len()], &history[j % history.len()]);
                p = Probe { port: a.port, src: a.src, dst: b.src, tag: a.tag };
            }
            let fwd = rig.borrow_mut().case(&vlans, &history, &p).map_err(TestCaseError::fail)?;
            forwarded.set(forwarded.get() + u32::from(fwd));
            Ok(())
        })
        .unwrap();
    // The property must have exercised the fast path, not only the slow one (about one case in
    // twenty forwards; none at all would mean the kernel never caches).
    eprintln!("cases the kernel forwarded: {} of {CASES}", forwarded.get());
    assert!(forwarded.get() > 0, "the kernel forwarded no case at all");
}
