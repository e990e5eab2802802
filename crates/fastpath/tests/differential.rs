//! One decision, two executors: random port configs, learning histories and probe frames go
//! through the pure pipeline (`switch::Bridge`) and, with the flow map mirrored exactly as
//! rvswitchd mirrors it, through the loaded tc program (`BPF_PROG_TEST_RUN`). Whenever the
//! kernel forwards, the pipeline forwards the same frame to the same single port with the same
//! tag and learns nothing new; whenever the pipeline's decision is cacheable (known unicast to
//! one port from a source already learned on the ingress port) the kernel forwards it.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use fastpath::binds::{until_ns, BindMirror};
use fastpath::maps::PORT_STANDALONE;
use fastpath::mirror::{KernelPort, Mirror};
use fastpath::{Binding, FastPath, PortConf, TestRun};
use packet::{FrameSpec, MacAddr, VlanTag};
use proptest::prelude::*;
use switch::{
    parse_allowed_ips, Bridge, BridgeSettings, Encap, PortSecurity, PortSpec, PortVlan, SecurityMode,
    Verdict, VlanMode,
};
use testbed::frames;
use testbed::{unique, Veth};

const PORTS: usize = 4;
const BRIDGE: u32 = 1;
const CASES: u32 = 3000;
const TC_ACT_OK: u32 = 0;
const TC_ACT_REDIRECT: u32 = 7;

/// Source and destination addresses probes use: bound or not, and the ones port security
/// treats specially (unspecified, multicast, broadcast).
const IPS: [Ipv4Addr; 6] = [
    Ipv4Addr::new(198, 18, 0, 1),
    Ipv4Addr::new(198, 18, 0, 2),
    Ipv4Addr::new(198, 18, 1, 3),
    Ipv4Addr::UNSPECIFIED,
    Ipv4Addr::new(224, 0, 0, 1),
    Ipv4Addr::BROADCAST,
];
const ALLOWED: [&str; 4] = ["198.18.0.1", "198.18.0.0/24", "198.18.1.3/32", "0.0.0.0/0"];
const UDP_PORTS: [u16; 4] = [1000, 67, 68, 53];
/// Probe times after the history: now, or past the short leases (60 s) but within MAC aging.
const JUMPS_MS: [u64; 2] = [0, 120_000];

#[derive(Clone, Debug)]
enum Kind {
    /// An EtherType with filler payload (0x0800 and 0x0806 then are malformed).
    Raw(u16),
    Udp {
        src: usize,
        dst: usize,
        ports: (u16, u16),
        later_fragment: bool,
    },
    Arp {
        sender: usize,
    },
    Ipv6,
    /// A DHCPACK leasing `IPS[ip]` to `mac(client)` for `secs`.
    DhcpAck {
        client: u8,
        ip: usize,
        secs: u32,
    },
    /// A DHCPv6 REPLY to `mac(dst)` leasing it 2001:db8::1:<dst> for `secs` (0: ends it).
    Dhcpv6Reply {
        secs: u32,
    },
}

#[derive(Clone, Debug)]
struct Probe {
    port: usize,
    src: u8,
    dst: u8,
    /// None: untagged; Some((pcp, dei, vid)), vid 0 = priority tag.
    tag: Option<(u8, bool, u16)>,
    kind: Kind,
}

/// A port's security in a case: off, or (`mode`, its MAC index, allowed-ips, trusted).
type Sec = Option<(SecurityMode, u8, Vec<usize>, bool)>;

fn security(sec: &Sec) -> PortSecurity {
    let Some((mode, m, allowed, trusted)) = sec else { return PortSecurity::off() };
    let ips = allowed.iter().map(|i| ALLOWED[*i]).collect::<Vec<_>>().join(",");
    PortSecurity {
        mode: *mode,
        ips: parse_allowed_ips(&ips).expect("valid constants"),
        trusted: *trusted,
        ..PortSecurity::vm(mac(*m))
    }
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
    let spec = FrameSpec { dst: mac(p.dst), src: mac(p.src), vlan, ethertype: 0 };
    let v6 = |last| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last);
    match p.kind {
        Kind::Raw(ethertype) => frames::raw(spec, ethertype, &[0x5a; 46]),
        Kind::Udp { src, dst, ports, later_fragment } => {
            let mut f = frames::udp4(spec, IPS[src], IPS[dst], ports, &[0x5a; 18]);
            if later_fragment {
                let off = if vlan.is_some() { 18 } else { 14 };
                f[off + 7] = 1; // fragment offset 8 bytes
            }
            f
        }
        Kind::Arp { sender } => frames::arp(spec, 1, (mac(p.src), IPS[sender]), IPS[0]),
        Kind::Ipv6 => frames::udp6(spec, v6(1), v6(2), (1000, 1000)),
        Kind::DhcpAck { client, ip, secs } => {
            let msg =
                frames::dhcp(packet::dhcp::OP_REPLY, packet::dhcp::ACK, mac(client), IPS[ip], Some(secs));
            frames::udp4(spec, IPS[1], IPS[ip], (67, 68), &msg)
        }
        Kind::Dhcpv6Reply { secs } => {
            let leased = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, u16::from(p.dst));
            let msg = frames::dhcpv6(packet::dhcpv6::REPLY, &[(leased, secs)]);
            frames::udp6_data(spec, v6(1), v6(2), (547, 546), &msg)
        }
    }
}

fn kind() -> impl Strategy<Value = Kind> {
    let ports = (0usize..4, 0usize..4).prop_map(|(a, b)| (UDP_PORTS[a], UDP_PORTS[b]));
    let ethertype = prop_oneof![Just(0x88b5u16), Just(0x0800), Just(0x0806), Just(0x86dd), Just(0x9100)];
    prop_oneof![
        2 => ethertype.prop_map(Kind::Raw),
        4 => (prop_oneof![3 => 0usize..3, 1 => 3usize..6], 0usize..6, ports, proptest::bool::weighted(0.1))
            .prop_map(|(src, dst, ports, later_fragment)| Kind::Udp { src, dst, ports, later_fragment }),
        1 => (0usize..6).prop_map(|sender| Kind::Arp { sender }),
        1 => Just(Kind::Ipv6),
        1 => (0u8..3, 0usize..3, prop_oneof![Just(60u32), Just(3600)])
            .prop_map(|(client, ip, secs)| Kind::DhcpAck { client, ip, secs }),
        1 => prop_oneof![Just(0u32), Just(60), Just(3600)].prop_map(|secs| Kind::Dhcpv6Reply { secs }),
    ]
}

/// A port's VLAN rules and security; a secured port is mostly an access port (the one kind
/// the program mirrors) and mostly has an address to be bound to.
fn port_cfg() -> impl Strategy<Value = (PortVlan, Sec)> {
    let mode = prop_oneof![Just(SecurityMode::Mac), Just(SecurityMode::On)];
    let allowed = proptest::collection::vec(0usize..4, 0..3);
    let sec = proptest::option::weighted(0.5, (mode, 0u8..3, allowed, proptest::bool::weighted(0.2)));
    (port_vlan(), sec, 1u16..3, proptest::bool::weighted(0.8)).prop_map(|(vlan, sec, tag, access)| {
        let vlan = if sec.is_some() && access { PortVlan::access(tag) } else { vlan };
        (vlan, sec)
    })
}

/// Most frames a secured port sends come from its own MAC (else it would learn nothing).
fn own_sources(cfg: &[(PortVlan, Sec)], frames: &mut [Probe]) {
    for f in frames {
        if let Some((_, m, _, _)) = &cfg[f.port].1 {
            if (f.src + f.dst) % 5 != 0 {
                f.src = *m;
            }
        }
    }
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
    (0..PORTS, mac(), mac(), tag, kind()).prop_map(|(port, src, dst, tag, kind)| Probe {
        port,
        src,
        dst,
        tag,
        kind,
    })
}

struct Rig {
    fp: FastPath,
    binds: BindMirror,
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
        Some(Rig { fp, binds: BindMirror::default(), ifindex, _links: links })
    }

    /// Runs one case at `jump` ms after its history: whether the kernel forwarded, or what
    /// disagreed.
    fn case(
        &mut self,
        cfg: &[(PortVlan, Sec)],
        history: &[Probe],
        p: &Probe,
        jump: u64,
    ) -> Result<bool, String> {
        for k in self.fp.flow_keys() {
            self.fp.remove_flow(&k);
        }
        let ports: Vec<PortSpec> = cfg
            .iter()
            .enumerate()
            .map(|(i, (v, sec))| PortSpec {
                security: security(sec),
                ..PortSpec::new(format!("p{i}"), v.clone())
            })
            .collect();
        for (i, spec) in ports.iter().enumerate() {
            let conf = PortConf::secured(BRIDGE, &spec.vlan, PORT_STANDALONE, &spec.security);
            self.fp.set_port(self.ifindex[i], &conf).unwrap();
        }
        let mut bridge = Bridge::new(BridgeSettings::default(), ports);
        let mut mirror = Mirror::default();
        let mut outs = Vec::new();
        for (t, h) in history.iter().enumerate() {
            let f = frame(h);
            bridge.process(h.port, &f, t as u64, &mut outs);
            let port = KernelPort { bridge: BRIDGE, ifindex: self.ifindex[h.port], vlan: &cfg[h.port].0 };
            let here = |vlan, m| bridge.lookup_slot(vlan, m, t as u64) == Some(h.port);
            if let Some(op) = mirror.observe(port, &f, here) {
                self.fp.apply(op).unwrap();
            }
        }
        let now = history.len() as u64 + jump;
        bridge.expire(now);
        self.write_bindings(&bridge, now);
        let f = frame(p);
        let _ = self.fp.take_last().unwrap();
        let run = TestRun::run(self.fp.tc_program(), &f, self.ifindex[p.port]).map_err(|e| e.to_string())?;
        let last = self.fp.take_last().unwrap();

        let vlan = cfg[p.port].0.ingress_vlan(p.tag.map(|t| t.2));
        let src_here = vlan.is_some_and(|v| bridge.lookup_slot(v, mac(p.src), now) == Some(p.port));
        let must = must_fast_path(&bridge, p, now);
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
                if snooped(p) {
                    return Err(format!("kernel forwarded a DHCP answer snooping must see: {:?}", p.kind));
                }
                let o = outs[0];
                let encap = if d.out_tagged != 0 { Encap::Tagged(d.out_tci) } else { Encap::Untagged };
                if self.ifindex[o.slot] != d.out_ifindex || o.encap != encap {
                    return Err(format!("pipeline {o:?}, kernel {d:?}"));
                }
                Ok(true)
            }
            TC_ACT_OK if !(cacheable && must) => Ok(false),
            TC_ACT_OK => {
                Err(format!("the kernel sent a cacheable frame to the slow path: {verdict:?} {outs:?}"))
            }
            other => Err(format!("unexpected tc verdict {other}")),
        }
    }

    /// The bindings map as rvswitchd writes it at `now`.
    fn write_bindings(&mut self, bridge: &Bridge, now: u64) {
        let kernel_now = fastpath::kernel_now_ns();
        let mut want = HashMap::new();
        for slot in 0..PORTS {
            for (prefix, until) in bridge.v4_bindings(slot, now) {
                let b = Binding::new(self.ifindex[slot], &prefix).expect("IPv4 only");
                want.insert(b, until_ns(until, now, kernel_now));
            }
        }
        for op in self.binds.update(want) {
            self.fp.apply_binding(op).unwrap();
        }
    }
}

/// A DHCP server's answer to a client: DHCP snooping learns from it, so only the pipeline may
/// forward it (a unicast one the kernel forwarded would never bind).
fn snooped(p: &Probe) -> bool {
    match p.kind {
        Kind::DhcpAck { .. } | Kind::Dhcpv6Reply { .. } => true,
        Kind::Udp { ports, later_fragment, .. } => later_fragment || ports.1 == 68,
        _ => false,
    }
}

/// Whether a cacheable probe is one the program must fast-path, not merely may: from an
/// unsecured port anything but DHCP (v4 to a client, DHCPv6 either way); from a secured port (which the program
/// mirrors only as an access port with one MAC) a frame of its MAC that is not IP/ARP (`mac`)
/// or unicast IPv4 without DHCP from a source bound to the port (`on`).
fn must_fast_path(bridge: &Bridge, p: &Probe, now: u64) -> bool {
    let spec = &bridge.ports()[p.port];
    let dhcp = |ports: (u16, u16)| [ports.0, ports.1].iter().any(|x| *x == 67 || *x == 68);
    let sec = &spec.security;
    if sec.mode == SecurityMode::Off {
        return match p.kind {
            Kind::Udp { ports, later_fragment, .. } => !later_fragment && ports.1 != 68,
            Kind::DhcpAck { .. } | Kind::Dhcpv6Reply { .. } => false,
            _ => true,
        };
    }
    if spec.vlan.mode() != VlanMode::Access || sec.macs.len() != 1 {
        return false;
    }
    match (sec.mode, &p.kind) {
        (SecurityMode::Mac, Kind::Raw(0x9100)) => false,
        (SecurityMode::Mac, Kind::Udp { ports, later_fragment, .. }) => !later_fragment && ports.1 != 68,
        (SecurityMode::Mac, Kind::DhcpAck { .. } | Kind::Dhcpv6Reply { .. }) => false,
        (SecurityMode::Mac, _) => true,
        (SecurityMode::On, Kind::Udp { src, ports, later_fragment: false, .. }) => {
            let ip = IpAddr::V4(IPS[*src]);
            *src < 3
                && !dhcp(*ports)
                && bridge.v4_bindings(p.port, now).iter().any(|(prefix, _)| prefix.contains(ip))
        }
        _ => false,
    }
}

#[test]
fn pipeline_and_kernel_agree() {
    let Some(rig) = Rig::new() else { return };
    let rig = std::cell::RefCell::new(rig);
    let forwarded = std::cell::Cell::new((0u32, 0u32));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = (
        proptest::collection::vec(port_cfg(), PORTS),
        proptest::collection::vec(probe(), 0..16),
        probe(),
        proptest::option::of((any::<usize>(), any::<usize>())),
        proptest::sample::select(JUMPS_MS.to_vec()),
    );
    runner
        .run(&strategy, |(cfg, mut history, mut p, reuse, jump)| {
            // Every port first says hello (from its own MAC if secured), so that most
            // destinations are known: the cases worth comparing are the cacheable ones.
            let hello = (0..PORTS).map(|port| Probe {
                port,
                src: [3, 4, 5, 0][port],
                dst: 7,
                tag: None,
                kind: Kind::Raw(0x88b5),
            });
            let mut history: Vec<Probe> = hello.chain(history.drain(..)).collect();
            own_sources(&cfg, &mut history);
            own_sources(&cfg, std::slice::from_mut(&mut p));
            // Half the probes replay a learned sender towards another learned address.
            if let (Some((i, j)), false) = (reuse, history.is_empty()) {
                let a = &history[i % history.len()];
                // Towards an address learned on another port, when there is one.
                let others: Vec<&Probe> = history.iter().filter(|h| h.port != a.port).collect();
                let b =
                    if others.is_empty() { &history[j % history.len()] } else { others[j % others.len()] };
                p = Probe { port: a.port, src: a.src, dst: b.src, tag: a.tag, kind: p.kind };
            }
            let fwd = rig.borrow_mut().case(&cfg, &history, &p, jump).map_err(TestCaseError::fail)?;
            let secured = cfg[p.port].1.is_some();
            let (all, sec) = forwarded.get();
            forwarded.set((all + u32::from(fwd), sec + u32::from(fwd && secured)));
            Ok(())
        })
        .unwrap();
    // The property must have exercised the fast path, not only the slow one, for secured ports
    // too (none at all would mean the kernel never caches).
    let (all, sec) = forwarded.get();
    eprintln!("cases the kernel forwarded: {all} of {CASES}, {sec} from secured ports");
    assert!(all > 0, "the kernel forwarded no case at all");
    assert!(sec > 0, "the kernel forwarded nothing from a secured port");
}
