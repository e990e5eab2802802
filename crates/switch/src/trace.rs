//! `trace`: the pipeline explaining one frame, without changing anything.
//!
//! The verdict is not re-derived: [`Bridge::trace`] runs [`Bridge::process`] itself on a copy of
//! the bridge whose counters are detached, so what trace prints is by construction what the
//! datapath would do (one decision, one executor). The steps around it only *read* the rules the
//! pipeline consulted — the port's VLAN rule, the MAC table before and after, the egress rule of
//! each port — to say which one decided.

use std::fmt::Write;
use std::sync::Arc;

use packet::{EthernetHeader, MacAddr};
use serde::{Deserialize, Serialize};

use crate::{
    Bridge, DropReason, Encap, MacStats, Millis, MirrorSpec, Output, PortSpec, PortVlan, Verdict, VlanMode,
};

/// The pipeline stage a step belongs to, in pipeline order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Parse,
    Source,
    IngressVlan,
    ReservedMulticast,
    /// The port-security checks of a VM port (issue 9).
    PortSecurity,
    Learn,
    Lookup,
    Egress,
    /// Port mirroring: which mirrors copy the frame where, or the output port's own drop.
    Mirror,
    /// A drop the stages above do not explain themselves.
    Verdict,
}

/// One step: which rule was consulted and what it gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceStep {
    pub stage: Stage,
    pub rule: String,
    pub result: String,
}

/// One copy the frame would be sent as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceOutput {
    pub port: String,
    /// The port's slot on the bridge (for the shell that knows which slots have devices).
    pub slot: usize,
    /// The VID on the wire, `None` = untagged.
    pub vid: Option<u16>,
    pub pcp: u8,
    /// Whether the port has a device to send on; filled in by the datapath (true when unknown).
    pub attached: bool,
}

/// The pipeline's verdict, as [`Bridge::process`] returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum TraceVerdict {
    Forward { vlan: u16, flooded: bool },
    Drop { reason: DropReason },
}

/// A frame's way through the pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub in_port: String,
    /// Whether the frame carried an 802.1Q tag on ingress (with this VID).
    pub ingress_vid: Option<u16>,
    /// The ingress tag's priority (0 when untagged).
    pub ingress_pcp: u8,
    pub steps: Vec<TraceStep>,
    pub outputs: Vec<TraceOutput>,
    pub verdict: TraceVerdict,
    /// Which executor would carry it out. Only the userspace pipeline exists today; the kernel
    /// fast path will report itself here once it caches decisions.
    pub path: String,
}

impl Trace {
    /// One line: `forward to a, b (flood in VLAN 10)`, `drop: vlan-not-allowed`, ...
    pub fn summary(&self) -> String {
        match self.verdict {
            TraceVerdict::Drop { reason } => format!("drop: {}", reason.as_str()),
            TraceVerdict::Forward { .. } if self.outputs.is_empty() => {
                "drop: no other port carries this VLAN".to_string()
            }
            TraceVerdict::Forward { vlan, flooded } => {
                let ports: Vec<&str> = self.outputs.iter().map(|o| o.port.as_str()).collect();
                let how = if flooded { "flood" } else { "learned port" };
                format!("forward to {} ({how} in VLAN {vlan})", ports.join(", "))
            }
        }
    }
}

impl Bridge {
    /// Explains what [`Bridge::process`] does with `frame` arriving on `in_slot` at `now`. Changes
    /// nothing: no address is learned, no counter moves.
    pub fn trace(&self, in_slot: usize, frame: &[u8], now: Millis) -> Trace {
        let mut copy = self.detached();
        let before = copy.mac_stats();
        let mut outs = Vec::new();
        let verdict = copy.process(in_slot, frame, now, &mut outs);
        let ctx = Ctx { orig: self, copy: &copy, in_slot, now, before, after: copy.mac_stats() };
        let eth = EthernetHeader::parse(frame).ok();
        let pcp = eth.and_then(|e| e.vlan).map_or(0, |t| t.pcp);
        Trace {
            in_port: self.ports().get(in_slot).map_or_else(|| format!("slot {in_slot}"), |p| p.name.clone()),
            ingress_vid: eth.and_then(|e| e.vlan).map(|t| t.vid),
            ingress_pcp: pcp,
            steps: ctx.steps(eth, verdict, &outs),
            outputs: outs.iter().map(|o| ctx.output(o, pcp)).collect(),
            verdict: match verdict {
                Verdict::Drop(reason) | Verdict::Mirrored { reason, .. } => TraceVerdict::Drop { reason },
                Verdict::Forward { vlan, flooded, .. } => TraceVerdict::Forward { vlan, flooded },
            },
            path: "userspace".to_string(),
        }
    }

    /// A copy with the same ports and MAC table but counters of its own, so running the
    /// pipeline on it leaves the live counters alone.
    fn detached(&self) -> Bridge {
        let mut copy = self.clone();
        let ports = self.ports().iter().map(|p| PortSpec { counters: Arc::default(), ..p.clone() }).collect();
        // Same names and VLAN rules: reconfigure keeps every learned address.
        copy.reconfigure(self.settings().clone(), ports);
        let mirrors =
            self.mirrors().specs().iter().map(|m| MirrorSpec { counters: Arc::default(), ..m.clone() });
        copy.set_mirrors(mirrors.collect());
        copy
    }
}

/// What the explanation reads: the bridge before (`orig`) and after (`copy`) the decision.
struct Ctx<'a> {
    orig: &'a Bridge,
    copy: &'a Bridge,
    in_slot: usize,
    now: Millis,
    before: MacStats,
    after: MacStats,
}

/// `mode on, MAC 52:54:00:00:00:01, 2 configured addresses` — what the checks held the frame to.
fn security_rule(port: &PortSpec) -> String {
    let sec = &port.security;
    let macs: Vec<String> = sec.macs.iter().map(|m| m.to_string()).collect();
    let trusted = if sec.trusted { ", trusted" } else { "" };
    format!(
        "port security {} on {}: MAC {}, {} configured addresses{trusted}",
        sec.mode,
        port.name,
        macs.join(" "),
        sec.ips.len()
    )
}

fn step(stage: Stage, rule: impl Into<String>, result: impl Into<String>) -> TraceStep {
    TraceStep { stage, rule: rule.into(), result: result.into() }
}

impl Ctx<'_> {
    fn steps(&self, eth: Option<EthernetHeader>, verdict: Verdict, outs: &[Output]) -> Vec<TraceStep> {
        let drop = verdict.drop_reason();
        let Some(port) = self.orig.ports().get(self.in_slot) else {
            return vec![step(Stage::Parse, "ingress port", "no such port on this bridge")];
        };
        let Some(eth) = eth else {
            let (plain, tagged) =
                (packet::ETHERNET_HEADER_LEN, packet::ETHERNET_HEADER_LEN + packet::VLAN_TAG_LEN);
            let rule = format!("Ethernet header ({plain} bytes, {tagged} tagged)");
            return vec![step(Stage::Parse, rule, "runt: dropped")];
        };
        let mut steps = vec![step(Stage::Parse, "Ethernet header", describe(&eth))];
        if drop == Some(DropReason::MulticastSource) {
            steps.push(step(Stage::Source, "a source MAC must be unicast", "group bit set: dropped"));
            return steps;
        }
        if drop == Some(DropReason::MirrorOutput) {
            let rule = format!("port {} is a mirror's output port, reserved for mirroring", port.name);
            steps.push(step(Stage::Mirror, rule, "frames received on it are dropped"));
            return steps;
        }
        let vid = eth.vlan.map(|t| t.vid);
        let vlan = port.vlan.ingress_vlan(vid);
        steps.push(step(Stage::IngressVlan, vlan_rule(port), ingress_result(vid, vlan)));
        let Some(vlan) = vlan else { return steps };
        match drop {
            Some(DropReason::ReservedMulticast) => {
                let rule = "802.1D reserved link-local destination (01:80:c2:00:00:0x), forward-bpdu=false";
                steps.push(step(Stage::ReservedMulticast, rule, "not forwarded: dropped"));
                return steps;
            }
            Some(r) if r.is_port_security() => {
                steps.push(step(
                    Stage::PortSecurity,
                    security_rule(port),
                    format!("{}: dropped", r.as_str()),
                ));
                return steps;
            }
            // Only a learned destination on the ingress port drops after learning; any other
            // reason (one a later pipeline stage adds) stops here, before a learn it never did.
            Some(r) if r != DropReason::DestinationOnIngress => {
                steps.push(step(Stage::Verdict, "pipeline", format!("dropped: {}", r.as_str())));
                return steps;
            }
            _ => {}
        }
        if port.security.checks_l2() {
            steps.push(step(Stage::PortSecurity, security_rule(port), "passed"));
        }
        steps.push(self.learn_step(vlan, eth.src, port));
        steps.push(self.lookup_step(vlan, eth.dst, drop));
        if drop.is_none() {
            steps.push(self.egress_step(vlan, outs));
        }
        // Mirrors still see a frame dropped for a destination on its own port.
        steps.extend(self.mirror_step(vlan, outs));
        steps
    }

    /// Which mirrors select the frame and where their copies go (none: the bridge has no
    /// mirrors).
    fn mirror_step(&self, vlan: u16, outs: &[Output]) -> Option<TraceStep> {
        let mirrors = self.copy.mirrors();
        if mirrors.is_empty() {
            return None;
        }
        let normal = outs.iter().map(|o| o.slot).filter(|s| !mirrors.is_output(*s));
        let mask = mirrors.select(self.in_slot, vlan, normal);
        let names: Vec<&str> = (0..mirrors.specs().len())
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| mirrors.specs()[i].name.as_str())
            .collect();
        if names.is_empty() {
            return Some(step(Stage::Mirror, "bridge mirrors", "no mirror selects this frame"));
        }
        let ports = self.copy.ports();
        let to: Vec<&str> =
            mirrors.outputs(mask).filter_map(|s| ports.get(s)).map(|p| p.name.as_str()).collect();
        let rule = format!("selected by mirror(s) {}", names.join(", "));
        Some(step(Stage::Mirror, rule, format!("one copy to {}", to.join(", "))))
    }

    fn learn_step(&self, vlan: u16, src: MacAddr, port: &PortSpec) -> TraceStep {
        let rule = format!("(VLAN {vlan}, {src}) seen on {}", port.name);
        let result = if self.after.moved > self.before.moved {
            let was = self.orig.lookup(vlan, src, self.now).map_or("another port", |p| p.name.as_str());
            format!("would move {src} from {was} to {}", port.name)
        } else if self.after.learned > self.before.learned {
            let mut s = format!("would learn {src} on {} in VLAN {vlan}", port.name);
            if self.after.evicted > self.before.evicted {
                let _ = write!(s, " (table full at {}: evicts the least recently seen)", self.after.limit);
            }
            s
        } else {
            format!("already known on {}: would refresh its age", port.name)
        };
        step(Stage::Learn, rule, result)
    }

    fn lookup_step(&self, vlan: u16, dst: MacAddr, drop: Option<DropReason>) -> TraceStep {
        let rule = format!("(VLAN {vlan}, {dst}) in the MAC table");
        if dst.is_multicast() {
            let what = if dst.is_broadcast() { "broadcast" } else { "multicast" };
            return step(Stage::Lookup, rule, format!("{what} destination: flood in VLAN {vlan}"));
        }
        // The copy's table after the decision is what the lookup saw: processing only learned
        // the source (and an eviction that learning caused shows here as the miss it caused).
        match self.copy.lookup(vlan, dst, self.now) {
            Some(p) if drop == Some(DropReason::DestinationOnIngress) => {
                step(Stage::Lookup, rule, format!("hit: learned on the ingress port {}: dropped", p.name))
            }
            Some(p) => step(Stage::Lookup, rule, format!("hit: learned on {}", p.name)),
            None => step(Stage::Lookup, rule, format!("miss: unknown unicast, flood in VLAN {vlan}")),
        }
    }

    fn egress_step(&self, vlan: u16, outs: &[Output]) -> TraceStep {
        let rule = format!("ports other than the ingress that carry VLAN {vlan}");
        let skipped: Vec<&str> = self
            .orig
            .ports()
            .iter()
            .enumerate()
            .filter(|(s, p)| *s != self.in_slot && p.vlan.egress_vid(vlan).is_none())
            .map(|(_, p)| p.name.as_str())
            .collect();
        let mirrors = self.copy.mirrors();
        let reserved: Vec<&str> = self
            .orig
            .ports()
            .iter()
            .enumerate()
            .filter(|(s, _)| *s != self.in_slot && mirrors.is_output(*s))
            .map(|(_, p)| p.name.as_str())
            .collect();
        let normal = outs.iter().filter(|o| !mirrors.is_output(o.slot)).count();
        let mut result = match normal {
            0 => "no port to send to".to_string(),
            n => format!("{n} output(s)"),
        };
        if !skipped.is_empty() {
            let _ = write!(result, "; not in VLAN {vlan}: {}", skipped.join(", "));
        }
        if !reserved.is_empty() {
            let _ = write!(result, "; mirror output (reserved): {}", reserved.join(", "));
        }
        step(Stage::Egress, rule, result)
    }

    fn output(&self, o: &Output, pcp: u8) -> TraceOutput {
        let port = self.orig.ports().get(o.slot).map_or_else(String::new, |p| p.name.clone());
        let (vid, pcp) = match o.encap {
            Encap::Untagged => (None, pcp),
            Encap::Tagged(tci) => {
                let tag = packet::VlanTag::from_tci(tci);
                (Some(tag.vid), tag.pcp)
            }
        };
        TraceOutput { port, slot: o.slot, vid, pcp, attached: true }
    }
}

fn describe(eth: &EthernetHeader) -> String {
    let tag = eth
        .vlan
        .map_or_else(|| "untagged".to_string(), |t| format!("dl_vlan={} dl_vlan_pcp={}", t.vid, t.pcp));
    format!("dl_src={} dl_dst={} {tag} dl_type=0x{:04x}", eth.src, eth.dst, eth.ethertype)
}

/// The port's VLAN configuration in OvS's column names.
fn vlan_rule(port: &PortSpec) -> String {
    let v: &PortVlan = &port.vlan;
    let mut s = format!("port {}: vlan_mode={}", port.name, v.mode());
    if let Some(tag) = v.tag() {
        let _ = write!(s, " tag={tag}");
    }
    if v.mode() != VlanMode::Access {
        let trunks: Vec<String> = v.trunks().iter().map(|t| t.to_string()).collect();
        if v.trunks_all() {
            s.push_str(" trunks=all");
        } else {
            let _ = write!(s, " trunks={}", trunks.join(","));
        }
    }
    s
}

fn ingress_result(vid: Option<u16>, vlan: Option<u16>) -> String {
    let frame = match vid {
        None | Some(0) => "untagged frame".to_string(),
        Some(v) => format!("frame tagged VID {v}"),
    };
    match vlan {
        Some(vlan) => format!("{frame}: in VLAN {vlan}"),
        None => format!("{frame}: not accepted on this port: dropped (vlan-not-allowed)"),
    }
}
