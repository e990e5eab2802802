//! One bridge's pipeline: ingress VLAN check → port security → learn → lookup → egress VLAN.

use std::sync::Arc;

use packet::{EthernetHeader, MacAddr, VlanTag, VLAN_TAG_LEN};

use crate::events::EventQueue;
use crate::mirror::{MirrorSpec, Mirrors};
use crate::security::{self, Bindings, IpPrefix, LeaseEntry, Policy, PortSecurity};
use crate::{
    DropReason, FdbEntry, MacStats, MacTable, Millis, PortCounters, PortVlan, SwitchEvent, VlanMode,
};

/// Bridge-wide knobs (OvS `other_config:mac-aging-time`, `mac-table-size`, `forward-bpdu`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeSettings {
    pub mac_aging_ms: Millis,
    pub mac_table_size: usize,
    pub forward_bpdu: bool,
}

impl Default for BridgeSettings {
    fn default() -> Self {
        BridgeSettings { mac_aging_ms: 300_000, mac_table_size: 8192, forward_bpdu: false }
    }
}

/// A port as the pipeline sees it. Its index in the bridge's port list is its *slot*.
#[derive(Clone, Debug)]
pub struct PortSpec {
    pub name: String,
    pub vlan: PortVlan,
    pub security: PortSecurity,
    pub counters: Arc<PortCounters>,
}

impl PortSpec {
    /// A port with fresh counters and port security off (trusted): what every port was before
    /// port security, and what uplinks and tests that check the VLAN rules alone want.
    pub fn new(name: impl Into<String>, vlan: PortVlan) -> PortSpec {
        PortSpec { name: name.into(), vlan, security: PortSecurity::default(), counters: Arc::default() }
    }
}

/// How a frame leaves a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encap {
    Untagged,
    /// With an 802.1Q tag carrying this TCI.
    Tagged(u16),
}

/// One copy of the frame to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Output {
    pub slot: usize,
    pub encap: Encap,
}

/// What the caller must do with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Drop it; the reason is already counted on the ingress port.
    Drop(DropReason),
    /// Send the copies listed in `out` (possibly none: nobody else on that VLAN).
    Forward {
        vlan: u16,
        /// Whether the frame arrived with an 802.1Q tag (the caller needs it to rebuild headers).
        ingress_tagged: bool,
        /// Flooded (broadcast, multicast or unknown unicast) rather than sent to a learned port.
        flooded: bool,
    },
    /// Normal forwarding dropped it for `reason` (already counted), but mirrors selected it:
    /// send only the copies in `out`. OvS mirrors what arrives on a selected port whatever
    /// normal forwarding then does with it, so a monitor sees two hosts that share the port.
    Mirrored { reason: DropReason, vlan: u16, ingress_tagged: bool },
}

impl Verdict {
    /// Whether `out` holds copies to send, and if so, whether the frame arrived tagged.
    pub fn sends(self) -> Option<bool> {
        match self {
            Verdict::Forward { ingress_tagged, .. } | Verdict::Mirrored { ingress_tagged, .. } => {
                Some(ingress_tagged)
            }
            Verdict::Drop(_) => None,
        }
    }

    /// The drop reason normal forwarding gave it (also for a frame only mirrors get).
    pub fn drop_reason(self) -> Option<DropReason> {
        match self {
            Verdict::Drop(reason) | Verdict::Mirrored { reason, .. } => Some(reason),
            Verdict::Forward { .. } => None,
        }
    }
}

/// The pipeline state of one bridge: its ports and its MAC table. `Clone` is for `trace`, which
/// runs [`Bridge::process`] itself on a copy (see trace.rs).
#[derive(Clone, Debug)]
pub struct Bridge {
    settings: BridgeSettings,
    ports: Vec<PortSpec>,
    macs: MacTable,
    bindings: Bindings,
    events: EventQueue,
    /// Port security compiled per slot; rebuilt with `ports`.
    policies: Vec<Policy>,
    /// Port mirroring by slot; cleared by [`Bridge::reconfigure`] (slots change), set with
    /// [`Bridge::set_mirrors`].
    mirrors: Mirrors,
}

impl Bridge {
    pub fn new(settings: BridgeSettings, ports: Vec<PortSpec>) -> Bridge {
        let macs = MacTable::new(settings.mac_table_size, settings.mac_aging_ms);
        let mut bindings = Bindings::default();
        bindings.rebuild(&ports);
        let mut events = EventQueue::default();
        events.reset_ports(ports.len());
        let policies = security::compile(&ports);
        Bridge { settings, ports, macs, bindings, events, policies, mirrors: Mirrors::default() }
    }

    /// Replaces the bridge's mirrors (slots as in the current port list). Addresses learned on a
    /// port that is now a mirror's output are forgotten: nothing but copies may go there.
    pub fn set_mirrors(&mut self, specs: Vec<MirrorSpec>) {
        self.mirrors = Mirrors::new(specs, self.ports.len());
        for slot in (0..self.ports.len()).filter(|&s| self.mirrors.is_output(s)) {
            self.macs.flush_port(slot as u32);
        }
    }

    pub fn mirrors(&self) -> &Mirrors {
        &self.mirrors
    }

    pub fn ports(&self) -> &[PortSpec] {
        &self.ports
    }

    pub fn settings(&self) -> &BridgeSettings {
        &self.settings
    }

    /// Applies a new port list. Addresses learned on ports that still exist with the same VLAN
    /// and security settings survive (renumbered to their new slots); the rest are forgotten,
    /// as OvS does when a port is removed or its VLAN configuration changes.
    pub fn reconfigure(&mut self, settings: BridgeSettings, ports: Vec<PortSpec>) {
        let map: Vec<Option<usize>> = self
            .ports
            .iter()
            .map(|old| {
                // A port whose security changed forgets what it learned: MACs it may no longer
                // use (learned before port security was turned on) must not keep drawing traffic.
                let same = |new: &PortSpec| {
                    new.name == old.name && new.vlan == old.vlan && new.security == old.security
                };
                ports.iter().position(same)
            })
            .collect();
        self.macs.retain_ports(|slot| map.get(slot as usize).copied().flatten().is_some());
        self.macs.remap_ports(|slot| map[slot as usize].unwrap_or(usize::MAX) as u32);
        self.macs.set_limits(settings.mac_table_size, settings.mac_aging_ms);
        self.settings = settings;
        self.bindings.rebuild(&ports);
        self.events.reset_ports(ports.len());
        self.policies = security::compile(&ports);
        self.ports = ports;
        self.mirrors = Mirrors::default();
    }

    /// Hands the events recorded since the last call to `f`, oldest first (call after each
    /// batch); returns how many were lost because more than [`crate::MAX_PENDING_EVENTS`]
    /// piled up.
    pub fn drain_events(&mut self, f: impl FnMut(SwitchEvent)) -> u64 {
        self.events.drain(f)
    }

    /// Forgets addresses learned on `slot` (its device went away).
    pub fn flush_port(&mut self, slot: usize) {
        self.macs.flush_port(slot as u32);
    }

    /// Ages out stale addresses and ended DHCP leases; call now and then (not per frame).
    pub fn expire(&mut self, now: Millis) -> usize {
        self.bindings.expire(now);
        self.macs.expire(now)
    }

    /// The IPv4 prefixes port `slot` may send from, each with the time it stops holding
    /// (`Millis::MAX`: configured). Empty for a port without layer-3 checks.
    pub fn v4_bindings(&self, slot: usize, now: Millis) -> Vec<(IpPrefix, Millis)> {
        let Some(p) = self.ports.get(slot).filter(|p| p.security.checks_l3()) else { return Vec::new() };
        self.bindings.v4_of(&p.security, now)
    }

    /// Bumped whenever DHCP snooping or expiry changed a lease (see [`Bridge::v4_bindings`]).
    pub fn bindings_generation(&self) -> u64 {
        self.bindings.generation()
    }

    /// The DHCP and DHCPv6 leases snooped so far that have not ended at `now`.
    pub fn leases(&self, now: Millis) -> Vec<LeaseEntry> {
        self.bindings.leases(now)
    }

    /// Every port's security settings and bindings at `now`, for `rvsctl security show`.
    pub fn security_report(&self, now: Millis) -> Vec<security::PortSecurityEntry> {
        security::report(&self.ports, &self.bindings.leases(now))
    }

    pub fn mac_count(&self) -> usize {
        self.macs.len()
    }

    pub fn mac_stats(&self) -> MacStats {
        self.macs.stats()
    }

    /// The learned addresses, oldest first.
    pub fn fdb(&self, now: Millis) -> Vec<FdbEntry> {
        self.macs
            .entries(now)
            .into_iter()
            .map(|(vlan, mac, slot, age_ms)| FdbEntry {
                port: self.ports.get(slot as usize).map(|p| p.name.clone()).unwrap_or_default(),
                vlan,
                mac: mac.to_string(),
                age: age_ms / 1000,
            })
            .collect()
    }

    /// Decides one frame that arrived on port `in_slot`. Outputs are appended to `out` (cleared
    /// first), so a caller reusing one Vec allocates nothing per frame. Counts rx and drops on the
    /// ingress port.
    pub fn process(&mut self, in_slot: usize, frame: &[u8], now: Millis, out: &mut Vec<Output>) -> Verdict {
        out.clear();
        let Some(in_port) = self.ports.get(in_slot) else {
            return Verdict::Drop(DropReason::VlanNotAllowed);
        };
        in_port.counters.count_rx(frame.len());
        let drop = |reason| {
            in_port.counters.count_drop(reason, 1);
            Verdict::Drop(reason)
        };
        if self.mirrors.is_output(in_slot) {
            return drop(DropReason::MirrorOutput);
        }
        let Ok(eth) = EthernetHeader::parse(frame) else {
            return drop(DropReason::Runt);
        };
        if eth.src.is_multicast() {
            return drop(DropReason::MulticastSource);
        }
        let Some(vlan) = in_port.vlan.ingress_vlan(eth.vlan.map(|t| t.vid)) else {
            return drop(DropReason::VlanNotAllowed);
        };
        if eth.dst.is_reserved_link_local() && !self.settings.forward_bpdu {
            return drop(DropReason::ReservedMulticast);
        }
        let seen = security::Seen { eth: &eth, frame, vlan, now };
        if let Err(reason) =
            security::gate(&mut self.bindings, &self.policies, &self.ports, &self.macs, in_slot, &seen)
        {
            self.events.security_drop(in_slot, reason, &eth, frame, now);
            return drop(reason);
        }
        if let Some(from) = self.macs.learn(vlan, eth.src, in_slot as u32, now) {
            self.events.mac_moved(vlan, eth.src, from as usize, in_slot, now);
        }
        let pcp = eth.vlan.map(|t| t.pcp).unwrap_or(0);
        let ingress_tagged = eth.vlan.is_some();
        let known = if eth.dst.is_multicast() { None } else { self.macs.lookup(vlan, eth.dst, now) };
        let known = known.map(|s| s as usize).filter(|&s| !self.mirrors.is_output(s));
        if known == Some(in_slot) {
            return self.mirror_only(in_slot, vlan, pcp, frame.len(), ingress_tagged, out);
        }
        self.outputs(in_slot, known, vlan, pcp, out);
        if !self.mirrors.is_empty() {
            self.mirror(in_slot, vlan, pcp, frame.len(), ingress_tagged, out);
        }
        Verdict::Forward { vlan, ingress_tagged, flooded: known.is_none() }
    }

    /// A frame whose destination was learned on its own ingress port: normal forwarding drops
    /// it, and only the mirrors that select it by its source port (or all) get a copy.
    fn mirror_only(
        &self,
        in_slot: usize,
        vlan: u16,
        pcp: u8,
        len: usize,
        tagged: bool,
        out: &mut Vec<Output>,
    ) -> Verdict {
        let reason = DropReason::DestinationOnIngress;
        if let Some(p) = self.ports.get(in_slot) {
            p.counters.count_drop(reason, 1);
        }
        if !self.mirrors.is_empty() {
            self.mirror(in_slot, vlan, pcp, len, tagged, out);
        }
        if out.is_empty() {
            Verdict::Drop(reason)
        } else {
            Verdict::Mirrored { reason, vlan, ingress_tagged: tagged }
        }
    }

    /// The normal outputs: the learned port, or every other port carrying `vlan` but mirror
    /// outputs (flood).
    fn outputs(&self, in_slot: usize, known: Option<usize>, vlan: u16, pcp: u8, out: &mut Vec<Output>) {
        if let Some(slot) = known {
            if let Some(encap) = self.ports.get(slot).and_then(|p| egress(p, vlan, pcp)) {
                out.push(Output { slot, encap });
            }
            return;
        }
        for (slot, port) in self.ports.iter().enumerate() {
            if slot == in_slot || self.mirrors.is_output(slot) {
                continue;
            }
            if let Some(encap) = egress(port, vlan, pcp) {
                out.push(Output { slot, encap });
            }
        }
    }

    /// Appends one copy per output port of the mirrors that select this frame, with the VLAN
    /// it has at the bridge (see [`mirror_encap`]), and counts them on the mirrors.
    fn mirror(&self, in_slot: usize, vlan: u16, pcp: u8, len: usize, tagged: bool, out: &mut Vec<Output>) {
        let mask = self.mirrors.select(in_slot, vlan, out.iter().map(|o| o.slot));
        if mask == 0 {
            return;
        }
        for slot in self.mirrors.outputs(mask) {
            if let Some(port) = self.ports.get(slot) {
                out.push(Output { slot, encap: mirror_encap(&port.vlan, vlan, pcp) });
            }
        }
        let ports = &self.ports;
        self.mirrors.count(mask, |slot| {
            let pushed = ports.get(slot).is_some_and(|p| mirror_encap(&p.vlan, vlan, pcp).is_tagged());
            match (tagged, pushed) {
                (false, true) => len + VLAN_TAG_LEN,
                (true, false) => len.saturating_sub(VLAN_TAG_LEN),
                _ => len,
            }
        });
    }

    /// Marks `mac` as seen on `slot` at `now`, as a frame from it would: the kernel fast path
    /// forwarded such frames without the pipeline seeing them, and learning must not age out
    /// an address that is in use.
    pub fn refresh(&mut self, vlan: u16, mac: MacAddr, slot: usize, now: Millis) {
        let _ = self.macs.learn(vlan, mac, slot as u32, now);
    }

    /// The slot a MAC was learned on (the kernel fast path mirrors exactly these).
    pub fn lookup_slot(&self, vlan: u16, mac: MacAddr, now: Millis) -> Option<usize> {
        self.macs.lookup(vlan, mac, now).map(|s| s as usize)
    }

    /// The port a MAC was learned on, for `trace`.
    pub fn lookup(&self, vlan: u16, mac: MacAddr, now: Millis) -> Option<&PortSpec> {
        self.macs.lookup(vlan, mac, now).and_then(|s| self.ports.get(s as usize))
    }
}

/// How a mirror copy leaves its output port, as OvS sends it (its `output_vlan_to_vid`): an
/// access port, or a native-untagged port in its own VLAN, gets it untagged; any other gets it
/// tagged with the frame's VLAN at the bridge (VLAN 0: untagged), whether or not the port's
/// `trunks` list that VLAN — a mirror port sees every VLAN its mirrors select.
fn mirror_encap(port: &PortVlan, vlan: u16, pcp: u8) -> Encap {
    let untagged = match port.mode() {
        VlanMode::Access => true,
        VlanMode::NativeUntagged => port.tag() == Some(vlan),
        VlanMode::Trunk | VlanMode::NativeTagged => false,
    };
    if untagged || vlan == 0 {
        Encap::Untagged
    } else {
        Encap::Tagged(VlanTag { pcp, dei: false, vid: vlan }.tci())
    }
}

fn egress(port: &PortSpec, vlan: u16, pcp: u8) -> Option<Encap> {
    port.vlan.egress_vid(vlan).map(|vid| {
        if vid == 0 {
            Encap::Untagged
        } else {
            Encap::Tagged(VlanTag { pcp, dei: false, vid }.tci())
        }
    })
}

impl Encap {
    pub fn is_tagged(&self) -> bool {
        matches!(self, Encap::Tagged(_))
    }

    /// The 802.1Q bytes this encapsulation pushes (all zero for `Untagged`, which pushes none).
    pub fn tag_bytes(&self) -> [u8; VLAN_TAG_LEN] {
        match self {
            Encap::Untagged => [0; VLAN_TAG_LEN],
            Encap::Tagged(tci) => VlanTag::from_tci(*tci).to_bytes(),
        }
    }
}

/// The pieces of the frame as it must leave: up to three slices (MACs, tag, rest) pointing into
/// the ingress buffer and `tag` (from [`Encap::tag_bytes`]), so pushing or popping a tag copies
/// nothing. Returns the slices and how many of them are used. The byte layout is packet's
/// ([`packet::vlan::retag_parts`]).
pub fn egress_parts<'a>(
    frame: &'a [u8],
    ingress_tagged: bool,
    encap: Encap,
    tag: &'a [u8; VLAN_TAG_LEN],
) -> ([&'a [u8]; 3], usize) {
    packet::vlan::retag_parts(frame, ingress_tagged, encap.is_tagged().then_some(tag))
}
