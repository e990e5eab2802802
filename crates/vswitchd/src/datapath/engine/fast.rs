//! The forwarding thread's side of the kernel fast path: it attaches the program to system
//! ports' devices, mirrors what the pipeline learned into the flow map (through the pure
//! [`Mirror`]), prunes what the pipeline forgot, and folds the kernel's counters and last-seen
//! stamps back into the pipeline on the tick. Only this thread writes the maps.
//!
//! Taps rvswitchd holds itself (type tap, internal) stay on the userspace path: their frames
//! reach us through the tap fd, not through a device the program could sit on.

use std::collections::HashMap;

use fastpath::binds::{until_ns, BindMirror};
use fastpath::maps::{flow_val, Counters, PortConf};
use fastpath::mirror::{KernelPort, Mirror, Op};
use fastpath::{Binding, FastPath, FlowKey, FlowVal};
use netdev::{Netdev, RxBatch};
use packet::MacAddr;
use switch::PortVlan;
use tracing::{debug, info, warn};

use super::BridgeRt;

pub(super) struct Fast {
    fp: FastPath,
    mirror: Mirror,
    /// The served ports' IPv4 bindings as written to the kernel.
    binds: BindMirror,
    /// The bridges' lease generations (summed) when the bindings were last written.
    binds_gen: u64,
    /// Bridge name → the id the maps use; stable across topology changes.
    bridge_ids: HashMap<String, u32>,
    /// Counter readings already added to the ports' counters, per ifindex.
    counted: HashMap<u32, Counters>,
    /// A digest of the port configs as written, so an unchanged port costs no map write (the
    /// configs themselves are 528 bytes each: 1.1 MB at 1000 ports).
    confs: HashMap<u32, u64>,
    /// Ticks so far: which slice of the last-seen stamps this tick reads.
    round: u64,
    /// Flow entries a previous daemon left in the pinned map, by egress device, until
    /// [`Fast::settle`]: they keep forwarding meanwhile, unless their port's new config
    /// contradicts them.
    adopted: HashMap<u32, Vec<(FlowKey, FlowVal)>>,
}

/// Changes whenever a lease changes on any bridge.
fn lease_generation(bridges: &[BridgeRt]) -> u64 {
    bridges.iter().fold(0u64, |g, b| g.wrapping_add(b.bridge.bindings_generation()))
}

/// Into how many slices the stamps are read, one per tick: every entry is read at least three
/// times per (shortest) aging time, so an address in use is refreshed before it would age out.
fn stamp_slices(bridges: &[BridgeRt]) -> u64 {
    let aging_s = bridges.iter().map(|b| b.bridge.settings().mac_aging_ms / 1000).min().unwrap_or(300);
    (aging_s / 3).clamp(1, 100)
}

/// A 64-bit digest of a port config (SipHash with fixed keys: the same config, the same digest).
fn digest(conf: &PortConf) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(conf)
}

/// Whether a flow entry fits its egress port's config: keyed by the port's own bridge, and
/// leaving with the VID the port's VLAN rules give that VLAN.
fn fits(k: &FlowKey, v: &FlowVal, bridge: u32, vlan: &PortVlan) -> bool {
    k.bridge == bridge && flow_val(vlan, k.vlan, v.ifindex).is_some_and(|want| want.vid == v.vid)
}

/// A bridge's id in the maps, the same in every daemon (a restarted one adopts entries keyed by
/// it): a hash of the name, probing past ids other bridges have. Entries are only ever adopted
/// where they [fit](fits) the port's current bridge, so even a differently resolved collision
/// cannot carry an entry across bridges.
fn stable_id(name: &str, taken: &HashMap<String, u32>) -> u32 {
    let h = name.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    let mut id = h.max(1);
    while taken.values().any(|&t| t == id) {
        id = id.wrapping_add(1).max(1);
    }
    id
}

impl Fast {
    pub fn new(fp: FastPath) -> Fast {
        let mut adopted: HashMap<u32, Vec<(FlowKey, FlowVal)>> = HashMap::new();
        if fp.pins().is_some() {
            for (k, v) in fp.flow_entries() {
                adopted.entry(v.ifindex).or_default().push((k, v));
            }
        }
        if !adopted.is_empty() {
            info!(devices = adopted.len(), "fast path: adopting the flow entries of a previous rvswitchd");
        }
        Fast {
            adopted,
            fp,
            mirror: Mirror::default(),
            binds: BindMirror::default(),
            binds_gen: 0,
            bridge_ids: HashMap::new(),
            counted: HashMap::new(),
            confs: HashMap::new(),
            round: 0,
        }
    }

    /// See [`FastPath::retire`].
    pub fn retire(&mut self) {
        self.fp.retire();
    }

    fn bridge_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.bridge_ids.get(name) {
            return id;
        }
        let id = stable_id(name, &self.bridge_ids);
        self.bridge_ids.insert(name.to_string(), id);
        id
    }

    fn apply(&mut self, ops: impl IntoIterator<Item = Op>) {
        for op in ops {
            if let Err(e) = self.fp.apply(op) {
                debug!("fast path: {e}");
            }
        }
    }

    /// A device handed to the datapath: the decision filter on its receive sockets, the
    /// program on its device. The ifindex when the fast path serves it from now on.
    pub fn adopt(&mut self, dev: &dyn Netdev) -> Option<u32> {
        let ifindex = match dev.attach_rx_filter(self.fp.socket_filter()) {
            Ok(Some(i)) => i,
            Ok(None) => return None,
            Err(e) => {
                warn!(port = dev.name(), "fast path off for this port: {e}");
                return None;
            }
        };
        match self.fp.attach(dev.name(), ifindex) {
            Ok(()) => Some(ifindex),
            Err(e) => {
                // The filter alone decides nothing: without a port config it keeps every frame.
                warn!(port = dev.name(), "fast path off for this port: {e}");
                None
            }
        }
    }

    /// The device `ifindex` left the datapath: no config, no program, no entry points at it.
    pub fn release(&mut self, ifindex: u32) {
        self.release_many(&[ifindex]);
    }

    /// [`Fast::release`] for many devices: one pass over the entries, links dropped in parallel
    /// (removing 1000 ports with 100k entries is not 1000 passes and 1000 serial RCU waits).
    fn release_many(&mut self, ifindexes: &[u32]) {
        if ifindexes.is_empty() {
            return;
        }
        self.fp.detach_many(ifindexes);
        for ifindex in ifindexes {
            self.counted.remove(ifindex);
            self.confs.remove(ifindex);
        }
        let gone: std::collections::HashSet<u32> = ifindexes.iter().copied().collect();
        let ops = self.mirror.retain(|_, v| !gone.contains(&v.ifindex));
        self.apply(ops);
        for op in self.binds.forget(|i| gone.contains(&i)) {
            let _ = self.fp.apply_binding(op);
        }
    }

    /// Writes the program's config for the port of bridge `bridge` with VLAN rules `vlan` and
    /// device `ifindex`, when it changed (adding 1000 ports one by one stays linear).
    /// A secured port's config carries its one allowed MAC and how much the program checks
    /// (see [`fastpath::maps::guard`]); the IPv4 sources it may use are in the bindings map.
    pub fn configure(&mut self, bridge: &str, spec: &switch::PortSpec, ifindex: u32) {
        let id = self.bridge_id(bridge);
        let conf = PortConf::secured(id, &spec.vlan, 0, &spec.security);
        let digest = digest(&conf);
        if self.confs.get(&ifindex) == Some(&digest) {
            return;
        }
        self.drop_unfit_adopted(id, &spec.vlan, ifindex);
        match self.fp.set_port(ifindex, &conf) {
            Ok(()) => {
                self.confs.insert(ifindex, digest);
            }
            Err(e) => warn!(ifindex, "fast path: {e}"),
        }
        self.counted.entry(ifindex).or_insert_with(|| self.fp.counters(ifindex));
    }

    /// Before a port's config is (re)written: adopted entries to it that the new config
    /// contradicts go now, not at [`Fast::settle`] (a port moved to another bridge while no
    /// daemon ran must not be reachable from its old bridge's entries).
    fn drop_unfit_adopted(&mut self, bridge: u32, vlan: &PortVlan, ifindex: u32) {
        let Some(entries) = self.adopted.get_mut(&ifindex) else { return };
        let (fp, mirror) = (&mut self.fp, &self.mirror);
        entries.retain(|(k, v)| {
            let keep = mirror.contains(k) || fits(k, v, bridge, vlan);
            if !keep {
                fp.remove_flow(k);
            }
            keep
        });
    }

    /// Once the first configuration is in place: each entry a previous daemon left is adopted
    /// (learned into the MAC table, mirrored) where its port serves it and the pipeline knows
    /// nothing newer, else removed; programs, configs and counters of devices no port has any
    /// more go too. Only then is the kernel state this daemon's alone.
    pub fn settle(&mut self, bridges: &mut [BridgeRt], now: u64) {
        let mut homes: HashMap<u32, (usize, usize)> = HashMap::new();
        for (b, br) in bridges.iter().enumerate() {
            for (s, kif) in br.kifs.iter().enumerate() {
                homes.extend(kif.map(|i| (i, (b, s))));
            }
        }
        let (mut kept, mut dropped) = (0usize, 0usize);
        for (ifindex, entries) in std::mem::take(&mut self.adopted) {
            for (k, v) in entries {
                if self.mirror.contains(&k) {
                    continue; // the pipeline wrote a newer entry since
                }
                let home = homes.get(&ifindex).copied().filter(|&(b, s)| {
                    let br = &bridges[b];
                    let fresh = br.bridge.lookup_slot(k.vlan, MacAddr(k.mac), now).is_none_or(|at| at == s);
                    let id = self.bridge_ids.get(&br.name).copied().unwrap_or(0);
                    fresh && fits(&k, &v, id, &br.bridge.ports()[s].vlan)
                });
                match home {
                    Some((b, s)) => {
                        bridges[b].bridge.refresh(k.vlan, MacAddr(k.mac), s, now);
                        self.mirror.adopt(k, v);
                        kept += 1;
                    }
                    None => {
                        self.fp.remove_flow(&k);
                        dropped += 1;
                    }
                }
            }
        }
        self.fp.forget_unserved();
        if kept + dropped > 0 {
            info!(kept, dropped, "fast path: settled the flow entries of a previous rvswitchd");
        }
    }

    /// After any change of ports: every served port's config written, programs on devices no
    /// port has any more detached, and entries the pipeline no longer backs removed.
    pub fn sync(&mut self, bridges: &[BridgeRt], now: u64) {
        let live: HashMap<u32, (&str, &switch::PortSpec)> = bridges
            .iter()
            .flat_map(|br| {
                let ports = br.bridge.ports().iter().zip(&br.kifs);
                ports.filter_map(|(spec, kif)| Some(((*kif)?, (br.name.as_str(), spec))))
            })
            .collect();
        let gone: Vec<u32> = self.counted.keys().copied().filter(|i| !live.contains_key(i)).collect();
        self.release_many(&gone);
        // Entries go before configs change: a port that moved to another bridge must not be
        // reachable from its old bridge's entries for even one frame after its new config.
        self.prune(bridges, now);
        self.write_bindings(bridges, now);
        for (ifindex, (bridge, spec)) in live {
            self.configure(bridge, spec, ifindex);
        }
    }

    /// Removes every entry the pipeline's MAC table no longer backs exactly (aged, evicted,
    /// moved to another port, the port reconfigured or without a fast-path device).
    fn prune(&mut self, bridges: &[BridgeRt], now: u64) {
        let by_id: HashMap<u32, &BridgeRt> =
            bridges.iter().filter_map(|b| Some((*self.bridge_ids.get(&b.name)?, b))).collect();
        let ops = self.mirror.retain(|k, v| {
            let Some(br) = by_id.get(&k.bridge) else { return false };
            let Some(slot) = br.bridge.lookup_slot(k.vlan, MacAddr(k.mac), now) else { return false };
            let spec = &br.bridge.ports()[slot];
            br.kifs.get(slot).copied().flatten() == Some(v.ifindex)
                && flow_val(&spec.vlan, k.vlan, v.ifindex).is_some_and(|want| want.vid == v.vid)
        });
        self.apply(ops);
    }

    /// Copies the served ports' IPv4 bindings to the kernel when DHCP snooping or expiry
    /// changed a lease since the last copy; call after every batch and on the tick. A lease
    /// the pipeline dropped (DHCPNAK, an address moved to another client) is out of the
    /// kernel's map before the next batch is received.
    pub fn bindings_changed(&mut self, bridges: &[BridgeRt], now: u64) {
        if lease_generation(bridges) != self.binds_gen {
            self.write_bindings(bridges, now);
        }
    }

    /// Makes the kernel's bindings map exactly the served ports' bindings now.
    pub fn write_bindings(&mut self, bridges: &[BridgeRt], now: u64) {
        self.binds_gen = lease_generation(bridges);
        let kernel_now = fastpath::kernel_now_ns();
        let mut want = HashMap::new();
        for br in bridges {
            for (slot, kif) in br.kifs.iter().enumerate() {
                let Some(ifindex) = *kif else { continue };
                for (prefix, until) in br.bridge.v4_bindings(slot, now) {
                    if let Some(b) = Binding::new(ifindex, &prefix) {
                        want.insert(b, until_ns(until, now, kernel_now));
                    }
                }
            }
        }
        for op in self.binds.update(want) {
            if let Err(e) = self.fp.apply_binding(op) {
                warn!("fast path: {e}");
            }
        }
    }

    /// After the pipeline decided `n` frames from `slot` (device `ifindex`): mirror the sources
    /// it learned there.
    pub fn observe(&mut self, br: &BridgeRt, slot: usize, ifindex: u32, rx: &RxBatch, n: usize, now: u64) {
        let Some(&bridge) = self.bridge_ids.get(&br.name) else { return };
        let vlan = &br.bridge.ports()[slot].vlan;
        let port = KernelPort { bridge, ifindex, vlan };
        for i in 0..n {
            let here = |vlan, mac| br.bridge.lookup_slot(vlan, mac, now) == Some(slot);
            if let Some(op) = self.mirror.observe(port, rx.frame(i), here) {
                self.apply([op]);
            }
        }
    }

    /// After the pipeline decided `n` frames from `slot`, a port the fast path does not serve:
    /// sources that moved here from a served port lose their entries at once.
    pub fn observe_slow_port(&mut self, br: &BridgeRt, slot: usize, rx: &RxBatch, n: usize) {
        if self.mirror.is_empty() {
            return;
        }
        let Some(&bridge) = self.bridge_ids.get(&br.name) else { return };
        let vlan = &br.bridge.ports()[slot].vlan;
        for i in 0..n {
            if let Some(op) = self.mirror.moved_off(bridge, vlan, rx.frame(i)) {
                self.apply([op]);
            }
        }
    }

    /// Once a tick, after [`Fast::refresh_seen`] and aging: what the kernel forwarded goes into
    /// the ports' counters, and entries for what aged out anyway are removed.
    pub fn after_aging(&mut self, bridges: &[BridgeRt], now: u64) {
        self.fold_counters(bridges);
        self.prune(bridges, now);
        self.bindings_changed(bridges, now);
    }

    /// Adds what the kernel forwarded since the last call to the ports' counters, so
    /// `rvsctl show` and Interface statistics count both paths.
    pub fn fold_counters(&mut self, bridges: &[BridgeRt]) {
        for br in bridges {
            for (spec, kif) in br.bridge.ports().iter().zip(&br.kifs) {
                let Some(ifindex) = *kif else { continue };
                let now_c = self.fp.counters(ifindex);
                let before = self.counted.insert(ifindex, now_c).unwrap_or_default();
                let d = now_c.since(&before);
                spec.counters.count_fast_rx(d.rx_packets, d.rx_bytes);
                spec.counters.count_tx(d.tx_packets, d.tx_bytes);
            }
        }
    }

    /// Sources the kernel forwarded since their stamps were last read are refreshed in the MAC
    /// table; call before aging.
    pub fn refresh_seen(&mut self, bridges: &mut [BridgeRt], now: u64) {
        let fp = &self.fp;
        let slices = stamp_slices(bridges);
        self.round = self.round.wrapping_add(1);
        let fresh = self.mirror.seen_since((self.round, slices), |k| fp.flow(k).map(|v| v.seen_ns));
        let ids: HashMap<u32, usize> = bridges
            .iter()
            .enumerate()
            .filter_map(|(i, b)| Some((*self.bridge_ids.get(&b.name)?, i)))
            .collect();
        for (k, v) in fresh {
            let Some(br) = ids.get(&k.bridge).map(|i| &mut bridges[*i]) else { continue };
            if let Some(slot) = br.kifs.iter().position(|kif| *kif == Some(v.ifindex)) {
                br.bridge.refresh(k.vlan, MacAddr(k.mac), slot, now);
            }
        }
    }
}
