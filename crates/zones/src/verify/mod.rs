//! A proof of isolation from the live database (not from the zones file): is there any
//! layer-2 path between two zones, or between two portgroups of one zone?
//!
//! The graph's nodes are *segments* — a (bridge, VLAN) pair, the unit a frame is bound to at
//! ingress. A frame never leaves its segment inside a bridge, so edges exist only where a wire
//! connects two ports: a veth pair (host facts the caller passes in) or a patch port pair (from
//! the database). An edge joins segment (B1, v) to (B2, v') when B1's port sends VLAN v onto the
//! wire with a VID that B2's port accepts as v' — the same `PortVlan` ingress/egress rules the
//! switch itself forwards by, so the proof and the data path cannot disagree on VLAN semantics.
//! A path found by breadth-first search is reported with the objects that make it.
//!
//! Tunnel ports are wires too: every VXLAN/Geneve interface with the same type, VNI and UDP
//! port is one medium (whatever the peers do with a VNI, it is one segment across hosts), so a
//! VNI shared by two zones — on this host, or towards the same peers — is a join.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::Serialize;
use switch::{PortVlan, VlanMode};

use crate::desired::decode_portgroups;
use crate::live::{LiveBridge, LiveDb, LivePort, PORTGROUPS_KEY, ROLE_KEY};

mod vpn;
pub use vpn::{VpnEscape, VpnReach};

/// Two network devices that are one wire (veth peers), as the host reports them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DevicePair {
    /// One end.
    pub a: String,
    /// The other end.
    pub b: String,
    /// What kind of pair (`veth`, `patch`).
    pub kind: String,
}

/// A layer-2 path between two zones or two portgroups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Join {
    /// `zone` or `zone/portgroup`.
    pub a: String,
    /// `zone` or `zone/portgroup`.
    pub b: String,
    /// The objects along the path, in order.
    pub path: Vec<String>,
}

/// A port that carries several VLANs of one zone (a trunk or NIC uplink): expected, not a join.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrunkNote {
    /// Zone.
    pub zone: String,
    /// Port name.
    pub port: String,
    /// `uplink`, `internal` or `other`.
    pub role: String,
    /// The portgroups it carries.
    pub portgroups: Vec<String>,
}

/// The verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Zones found in the database, sorted.
    pub zones: Vec<String>,
    /// Portgroups per zone (same order as `zones`).
    pub portgroups: Vec<Vec<String>>,
    /// Joined zone pairs.
    pub zone_joins: Vec<Join>,
    /// Joined portgroup pairs inside a zone.
    pub portgroup_joins: Vec<Join>,
    /// Trunks carrying several VLANs of one zone.
    pub trunks: Vec<TrunkNote>,
    /// Exits of VPN zones beside their tunnel.
    pub vpn_escapes: Vec<VpnEscape>,
    /// Per VPN zone bridge: which ports its VLANs reach (only VM ports and the gateway when
    /// `vpn_escapes` names none of it).
    pub vpn_zones: Vec<VpnReach>,
}

impl Report {
    /// True if any two zones or portgroups are joined, or a VPN zone has another way out.
    pub fn joined(&self) -> bool {
        !self.zone_joins.is_empty() || !self.portgroup_joins.is_empty() || !self.vpn_escapes.is_empty()
    }
}

type Seg = (usize, u16);

struct Graph<'a> {
    live: &'a LiveDb,
    vlans: BTreeSet<u16>,
    edges: HashMap<Seg, Vec<(Seg, String)>>,
}

/// The VLAN behaviour of a port as the switch resolves it; None if the switch refuses it
/// (such a port forwards nothing). Like ovs-vswitchd, an access port ignores `trunks`.
pub(crate) fn port_vlan(p: &LivePort) -> Option<PortVlan> {
    let mode = match p.vlan_mode.as_deref() {
        Some(m) => Some(m.parse::<VlanMode>().ok()?),
        None => None,
    };
    let access = mode == Some(VlanMode::Access) || (mode.is_none() && p.tag.is_some());
    PortVlan::new(mode, p.tag, if access { &[] } else { &p.trunks }).ok()
}

fn describe(b: &LiveBridge, p: &LivePort) -> String {
    let vlan = match port_vlan(p) {
        None => "refused VLAN config".to_string(),
        Some(v) if v.mode() == VlanMode::Access => format!("tag {}", v.tag().unwrap_or(0)),
        Some(v) if p.trunks.is_empty() => format!("{} all VLANs", v.mode()),
        Some(v) => format!("{} {:?}", v.mode(), p.trunks),
    };
    format!("port {} on {} ({vlan})", p.name, b.name)
}

impl<'a> Graph<'a> {
    fn new(live: &'a LiveDb) -> Graph<'a> {
        let mut vlans: BTreeSet<u16> = [0].into();
        for (b, p) in live.ports() {
            vlans.extend(p.tag);
            vlans.extend(p.trunks.iter().copied());
            vlans.extend(zone_portgroups(b).iter().map(|(_, v)| *v));
        }
        Graph { live, vlans, edges: HashMap::new() }
    }

    /// Edges for one wire between interfaces `x` and `y`.
    fn wire(&mut self, x: &str, y: &str, kind: &str, at: &HashMap<&str, (usize, &'a LivePort)>) {
        let (Some(&(bx, px)), Some(&(by, py))) = (at.get(x), at.get(y)) else { return };
        let (Some(vx), Some(vy)) = (port_vlan(px), port_vlan(py)) else { return };
        let via = format!(
            "{} —{kind}— {}",
            describe(&self.live.bridges[bx], px),
            describe(&self.live.bridges[by], py)
        );
        let vlans: Vec<u16> = self.vlans.iter().copied().collect();
        for v in vlans {
            for (from, to, out, inp) in [(bx, by, &vx, &vy), (by, bx, &vy, &vx)] {
                if let Some(v2) = out.egress_vid(v).and_then(|vid| inp.ingress_vlan(Some(vid))) {
                    self.edges.entry((from, v)).or_default().push(((to, v2), via.clone()));
                    self.edges.entry((to, v2)).or_default().push(((from, v), via.clone()));
                }
            }
        }
    }

    /// Shortest path (as edge descriptions) from any of `from` to a segment satisfying `goal`.
    fn path(&self, from: &[Seg], goal: impl Fn(Seg) -> bool) -> Option<Vec<String>> {
        let mut prev: HashMap<Seg, Option<(Seg, &str)>> = from.iter().map(|s| (*s, None)).collect();
        let mut queue: VecDeque<Seg> = from.iter().copied().collect();
        while let Some(s) = queue.pop_front() {
            if goal(s) {
                let mut path = Vec::new();
                let mut cur = s;
                while let Some(Some((p, via))) = prev.get(&cur) {
                    path.push(via.to_string());
                    cur = *p;
                }
                path.reverse();
                path.dedup();
                return Some(path);
            }
            for (next, via) in self.edges.get(&s).into_iter().flatten() {
                if !prev.contains_key(next) {
                    prev.insert(*next, Some((s, via)));
                    queue.push_back(*next);
                }
            }
        }
        None
    }
}

/// Network devices joined into one layer-2 medium by device pairs and shared Linux bridges.
struct Component {
    members: BTreeSet<String>,
    kinds: BTreeSet<String>,
}

impl Component {
    /// `veth a↔b` for a plain pair; the kinds and every member for a longer chain.
    fn label(&self, x: &str, y: &str) -> String {
        let kinds: Vec<&str> = self.kinds.iter().map(String::as_str).collect();
        if self.members.len() == 2 {
            return format!("{} {x}↔{y}", kinds.join("+"));
        }
        let all: Vec<&str> = self.members.iter().map(String::as_str).collect();
        format!("{} {x}↔{y} through {}", kinds.join("+"), all.join(", "))
    }
}

/// Connected components of the device graph (union-find over the pairs' ends).
fn components(wires: &[(String, String, String)]) -> Vec<Component> {
    fn root(parent: &HashMap<String, String>, n: &str) -> String {
        let mut cur = n.to_string();
        // Bounded: every step moves to a parent set earlier, and there are finitely many names.
        for _ in 0..=parent.len() {
            match parent.get(&cur) {
                Some(p) if *p != cur => cur = p.clone(),
                _ => break,
            }
        }
        cur
    }
    let mut parent: HashMap<String, String> = HashMap::new();
    for (a, b, _) in wires {
        let (ra, rb) = (root(&parent, a), root(&parent, b));
        parent.entry(ra.clone()).or_insert_with(|| ra.clone());
        parent.entry(rb.clone()).or_insert_with(|| rb.clone());
        if ra != rb {
            parent.insert(ra, rb);
        }
    }
    let mut groups: HashMap<String, Component> = HashMap::new();
    for (a, b, kind) in wires {
        let r = root(&parent, a);
        let c =
            groups.entry(r).or_insert_with(|| Component { members: BTreeSet::new(), kinds: BTreeSet::new() });
        c.members.extend([a.clone(), b.clone()]);
        c.kinds.insert(kind.clone());
    }
    let mut out: Vec<Component> = groups.into_values().collect();
    out.sort_by(|x, y| x.members.cmp(&y.members));
    out
}

pub(crate) fn zone_portgroups(b: &LiveBridge) -> Vec<(String, u16)> {
    if b.zone().is_none() {
        return Vec::new();
    }
    b.external_ids.get(PORTGROUPS_KEY).map(|s| decode_portgroups(s)).unwrap_or_default()
}

/// The tunnel interfaces of `live` as wires: all of one (type, VNI, UDP port) joined.
fn tunnel_wires(live: &LiveDb) -> Vec<(String, String, String)> {
    let mut media: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for (_, p) in live.ports() {
        for i in &p.interfaces {
            let port = match i.kind.as_str() {
                "vxlan" => "4789",
                "geneve" => "6081",
                _ => continue,
            };
            let key = i.options.get("key").cloned().unwrap_or_else(|| "0".into());
            let port = i.options.get("dst_port").map_or(port, String::as_str).to_string();
            media.entry((i.kind.clone(), key, port)).or_default().push(i.name.clone());
        }
    }
    let mut wires = Vec::new();
    for ((kind, vni, _), names) in media {
        let Some((first, rest)) = names.split_first() else { continue };
        for other in rest {
            wires.push((first.clone(), other.clone(), format!("{kind} VNI {vni}")));
        }
    }
    wires
}

/// Computes the isolation report from the live rows and the host's device pairs.
pub fn verify(live: &LiveDb, pairs: &[DevicePair]) -> Report {
    let mut at: HashMap<&str, (usize, &LivePort)> = HashMap::new();
    let mut wires: Vec<(String, String, String)> =
        pairs.iter().map(|p| (p.a.clone(), p.b.clone(), p.kind.clone())).collect();
    for (bi, b) in live.bridges.iter().enumerate() {
        for p in &b.ports {
            for i in &p.interfaces {
                at.insert(i.name.as_str(), (bi, p));
                if let (true, Some(peer)) = (i.kind == "patch", i.options.get("peer")) {
                    if i.name < *peer {
                        wires.push((i.name.clone(), peer.clone(), "patch".into()));
                    }
                }
            }
        }
    }
    wires.extend(tunnel_wires(live));
    let mut g = Graph::new(live);
    for c in components(&wires) {
        let ports: Vec<&String> = c.members.iter().filter(|m| at.contains_key(m.as_str())).collect();
        for (i, x) in ports.iter().enumerate() {
            for y in &ports[i + 1..] {
                g.wire(x, y, &c.label(x, y), &at);
            }
        }
    }
    let mut r = Report::default();
    let zones: BTreeSet<&str> = live.bridges.iter().filter_map(|b| b.zone()).collect();
    r.zones = zones.iter().map(|z| z.to_string()).collect();
    for z in &r.zones {
        let pgs: BTreeSet<String> = live
            .bridges
            .iter()
            .filter(|b| b.zone() == Some(z))
            .flat_map(|b| zone_portgroups(b).into_iter().map(|(n, _)| n))
            .collect();
        r.portgroups.push(pgs.into_iter().collect());
    }
    zone_joins(&g, &mut r);
    portgroup_joins(&g, &mut r);
    r.trunks = trunks(live);
    (r.vpn_zones, r.vpn_escapes) = vpn::check(live);
    r
}

fn zone_segments(g: &Graph, zone: &str) -> Vec<Seg> {
    let bridges = g.live.bridges.iter().enumerate().filter(|(_, b)| b.zone() == Some(zone));
    bridges.flat_map(|(bi, _)| g.vlans.iter().map(move |v| (bi, *v))).collect()
}

fn zone_joins(g: &Graph, r: &mut Report) {
    for (i, a) in r.zones.iter().enumerate() {
        for b in &r.zones[i + 1..] {
            let goal = |(bi, _): Seg| g.live.bridges[bi].zone() == Some(b.as_str());
            if let Some(path) = g.path(&zone_segments(g, a), goal) {
                r.zone_joins.push(Join { a: a.clone(), b: b.clone(), path });
            }
        }
    }
}

fn portgroup_joins(g: &Graph, r: &mut Report) {
    for z in &r.zones {
        let mut segs: Vec<(String, Vec<Seg>)> = Vec::new();
        for (bi, b) in g.live.bridges.iter().enumerate().filter(|(_, b)| b.zone() == Some(z)) {
            for (name, vlan) in zone_portgroups(b) {
                match segs.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, s)) => s.push((bi, vlan)),
                    None => segs.push((name, vec![(bi, vlan)])),
                }
            }
        }
        for (i, (pa, sa)) in segs.iter().enumerate() {
            for (pb, sb) in &segs[i + 1..] {
                let shared = sa.iter().find(|s| sb.contains(s));
                let path = match shared {
                    Some((bi, v)) => {
                        Some(vec![format!("bridge {} VLAN {v} is both portgroups", g.live.bridges[*bi].name)])
                    }
                    None => g.path(sa, |s| sb.contains(&s)),
                };
                if let Some(path) = path {
                    r.portgroup_joins.push(Join { a: format!("{z}/{pa}"), b: format!("{z}/{pb}"), path });
                }
            }
        }
    }
}

fn trunks(live: &LiveDb) -> Vec<TrunkNote> {
    let mut out = Vec::new();
    for (b, p) in live.ports() {
        let (Some(zone), Some(v)) = (b.zone(), port_vlan(p)) else { continue };
        let carried: Vec<String> = zone_portgroups(b)
            .into_iter()
            .filter(|(_, vl)| v.egress_vid(*vl).is_some())
            .map(|(n, _)| n)
            .collect();
        if carried.len() >= 2 {
            let role = p.zone().and(p.external_ids.get(ROLE_KEY)).cloned().unwrap_or_else(|| "other".into());
            out.push(TrunkNote { zone: zone.into(), port: p.name.clone(), role, portgroups: carried });
        }
    }
    out
}

/// The report as text: a zone matrix, a portgroup matrix per zone, the paths, the trunks.
pub fn render(r: &Report) -> String {
    let mut s = String::from("Zones (layer-2 paths between zones, from the live database):\n");
    let joined = |a: &str, b: &str, joins: &[Join]| {
        joins.iter().any(|j| (j.a == a && j.b == b) || (j.a == b && j.b == a))
    };
    s.push_str(&matrix(&r.zones, |a, b| joined(a, b, &r.zone_joins)));
    for (z, pgs) in r.zones.iter().zip(&r.portgroups) {
        if pgs.len() >= 2 {
            s.push_str(&format!("\nPortgroups of zone {z}:\n"));
            s.push_str(&matrix(pgs, |a, b| {
                joined(&format!("{z}/{a}"), &format!("{z}/{b}"), &r.portgroup_joins)
            }));
        }
    }
    for j in r.zone_joins.iter().chain(&r.portgroup_joins) {
        s.push_str(&format!("\nJOINED {} <-> {}:\n", j.a, j.b));
        for step in &j.path {
            s.push_str(&format!("    {step}\n"));
        }
    }
    if !r.trunks.is_empty() {
        s.push_str("\nTrunks carrying several VLANs of one zone (not a join):\n");
        for t in &r.trunks {
            s.push_str(&format!(
                "    zone {}: port {} ({}) carries {}\n",
                t.zone,
                t.port,
                t.role,
                t.portgroups.join(", ")
            ));
        }
    }
    s.push_str(&vpn::render(r));
    s.push_str(if r.joined() { "\nverdict: JOINED\n" } else { "\nverdict: isolated\n" });
    s
}

fn matrix(names: &[String], joined: impl Fn(&str, &str) -> bool) -> String {
    let w = names.iter().map(String::len).max().unwrap_or(0).max(8);
    let mut s = format!("  {:w$}", "");
    for n in names {
        s.push_str(&format!("  {n:w$}"));
    }
    s.truncate(s.trim_end().len());
    s.push('\n');
    for a in names {
        s.push_str(&format!("  {a:w$}"));
        for b in names {
            let cell = if a == b {
                "-"
            } else if joined(a, b) {
                "JOINED"
            } else {
                "isolated"
            };
            s.push_str(&format!("  {cell:w$}"));
        }
        s.truncate(s.trim_end().len());
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::fixture::{bridge, db, port};
    use crate::live::ZONE_KEY;

    const Z: &str = ZONE_KEY;

    fn intranet(extra: Vec<LivePort>) -> LiveBridge {
        let mut ports = vec![
            port("br-intranet", None, &[], None, &[(Z, "intranet"), (ROLE_KEY, "internal")]),
            port("eth1", None, &[10, 20], Some("trunk"), &[(Z, "intranet"), (ROLE_KEY, "uplink")]),
            port("vnet0", Some(10), &[], None, &[]),
        ];
        ports.extend(extra);
        bridge("br-intranet", &[(Z, "intranet"), (PORTGROUPS_KEY, "vlan-10=10,guest=20")], ports)
    }

    fn internet(extra: Vec<LivePort>) -> LiveBridge {
        let mut ports =
            vec![port("br-internet", None, &[], None, &[(Z, "internet"), (ROLE_KEY, "internal")])];
        ports.extend(extra);
        bridge("br-internet", &[(Z, "internet")], ports)
    }

    fn veth(a: &str, b: &str) -> DevicePair {
        DevicePair { a: a.into(), b: b.into(), kind: "veth".into() }
    }

    #[test]
    fn separate_bridges_are_isolated_and_the_uplink_is_a_trunk_note() {
        let r = verify(&db(vec![intranet(vec![]), internet(vec![])]), &[]);
        assert!(!r.joined(), "{r:#?}");
        assert_eq!(r.zones, ["internet", "intranet"]);
        let notes: Vec<(&str, &str)> = r.trunks.iter().map(|t| (t.port.as_str(), t.role.as_str())).collect();
        assert_eq!(notes, [("br-intranet", "internal"), ("eth1", "uplink")]);
        let text = render(&r);
        assert!(text.contains("verdict: isolated") && text.contains("Portgroups of zone intranet"), "{text}");
    }

    #[test]
    fn a_veth_between_two_zone_bridges_joins_them() {
        let live = db(vec![
            intranet(vec![port("va", Some(10), &[], None, &[])]),
            internet(vec![port("vb", None, &[], None, &[])]),
        ]);
        let r = verify(&live, &[veth("va", "vb")]);
        assert_eq!(r.zone_joins.len(), 1, "{r:#?}");
        assert_eq!(
            r.zone_joins[0].path,
            ["port va on br-intranet (tag 10) —veth va↔vb— port vb on br-internet (trunk all VLANs)"]
        );
        assert!(render(&r).contains("JOINED internet <-> intranet"));
    }

    #[test]
    fn a_veth_whose_vlans_do_not_meet_is_no_join() {
        // A trunk of VLAN 30 sends only tagged VID 30, which an access port drops; the access
        // port sends untagged, which a trunk without VLAN 0 in its list drops.
        let live = db(vec![
            intranet(vec![port("va", None, &[30], Some("trunk"), &[])]),
            internet(vec![port("vb", Some(5), &[], None, &[])]),
        ]);
        assert!(
            verify(&live, &[veth("va", "vb")]).zone_joins.is_empty(),
            "tagged 30 is dropped by an access port"
        );
    }

    #[test]
    fn a_loop_inside_one_bridge_joins_two_portgroups() {
        let live = db(vec![
            intranet(vec![port("l1", Some(10), &[], None, &[]), port("l2", Some(20), &[], None, &[])]),
            internet(vec![]),
        ]);
        let r = verify(&live, &[veth("l1", "l2")]);
        assert!(r.zone_joins.is_empty());
        assert_eq!(r.portgroup_joins.len(), 1, "{r:#?}");
        assert_eq!(
            (r.portgroup_joins[0].a.as_str(), r.portgroup_joins[0].b.as_str()),
            ("intranet/vlan-10", "intranet/guest")
        );
    }

    #[test]
    fn a_path_through_a_foreign_bridge_is_found_with_every_hop() {
        let live = db(vec![
            intranet(vec![port("a1", Some(20), &[], None, &[])]),
            internet(vec![port("c2", None, &[], None, &[])]),
            bridge(
                "handmade",
                &[],
                vec![port("b1", Some(7), &[], None, &[]), port("b2", Some(7), &[], None, &[])],
            ),
        ]);
        let r = verify(&live, &[veth("a1", "b1"), veth("b2", "c2")]);
        assert_eq!(r.zone_joins.len(), 1, "{r:#?}");
        assert_eq!(r.zone_joins[0].path.len(), 2, "{:#?}", r.zone_joins[0].path);
    }

    #[test]
    fn patch_ports_are_wires_too() {
        let mut pa = port("pa", None, &[], None, &[]);
        pa.interfaces[0].kind = "patch".into();
        pa.interfaces[0].options.insert("peer".into(), "pb".into());
        let mut pb = port("pb", None, &[], None, &[]);
        pb.interfaces[0].kind = "patch".into();
        pb.interfaces[0].options.insert("peer".into(), "pa".into());
        let r = verify(&db(vec![intranet(vec![pa]), internet(vec![pb])]), &[]);
        assert_eq!(r.zone_joins.len(), 1, "{r:#?}");
        assert!(r.zone_joins[0].path[0].contains("—patch pa↔pb—"), "{:?}", r.zone_joins[0].path);
    }

    #[test]
    fn a_linux_bridge_between_two_veths_is_a_wire() {
        // va (OVS, intranet) ↔ va2 [docker0] vb2 ↔ vb (OVS, internet)
        let live = db(vec![
            intranet(vec![port("va", Some(10), &[], None, &[])]),
            internet(vec![port("vb", None, &[], None, &[])]),
        ]);
        let lb = |m: &str| DevicePair { a: m.into(), b: "docker0".into(), kind: "linux-bridge".into() };
        let r = verify(&live, &[veth("va", "va2"), veth("vb", "vb2"), lb("va2"), lb("vb2")]);
        assert_eq!(r.zone_joins.len(), 1, "{r:#?}");
        let p = &r.zone_joins[0].path[0];
        assert!(p.contains("—linux-bridge+veth va↔vb through docker0, va, va2, vb, vb2—"), "{p}");
        // Without the bridge membership the two cables lead nowhere.
        assert!(!verify(&live, &[veth("va", "va2"), veth("vb", "vb2")]).joined());
    }

    #[test]
    fn two_portgroups_on_one_vlan_are_joined() {
        let b = bridge("br-x", &[(Z, "x"), (PORTGROUPS_KEY, "a=10,b=10")], vec![]);
        let r = verify(&db(vec![b]), &[]);
        assert_eq!(r.portgroup_joins[0].path, ["bridge br-x VLAN 10 is both portgroups"]);
    }

    fn tunnel(name: &str, tag: u16, zone: &str, vni: &str) -> LivePort {
        let mut p = port(name, Some(tag), &[], None, &[(Z, zone), (ROLE_KEY, "tunnel")]);
        p.interfaces[0].kind = "vxlan".into();
        p.interfaces[0].options =
            [("remote_ip".to_string(), "198.51.100.2".to_string()), ("key".into(), vni.into())].into();
        p
    }

    #[test]
    fn a_vni_shared_by_two_zones_is_a_join() {
        let live = db(vec![
            intranet(vec![tunnel("vx-intra-1", 10, "intranet", "100")]),
            internet(vec![tunnel("vx-inet-1", 0, "internet", "100")]),
        ]);
        let r = verify(&live, &[]);
        assert_eq!(r.zone_joins.len(), 1, "{r:#?}");
        assert!(
            r.zone_joins[0].path[0].contains("vxlan VNI 100 vx-inet-1↔vx-intra-1"),
            "{:?}",
            r.zone_joins[0].path
        );
        let apart = db(vec![
            intranet(vec![tunnel("vx-intra-1", 10, "intranet", "100")]),
            internet(vec![tunnel("vx-inet-1", 0, "internet", "200")]),
        ]);
        assert!(!verify(&apart, &[]).joined(), "different VNIs stay apart");
    }

    #[test]
    fn one_vni_for_two_portgroups_joins_them() {
        let live = db(vec![intranet(vec![
            tunnel("vx-a", 10, "intranet", "100"),
            tunnel("vx-b", 20, "intranet", "100"),
        ])]);
        let r = verify(&live, &[]);
        assert_eq!(r.portgroup_joins.len(), 1, "{r:#?}");
        assert!(r.portgroup_joins[0].path[0].contains("vxlan VNI 100"), "{:?}", r.portgroup_joins[0].path);
    }
}
