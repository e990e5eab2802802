//! The reconciler: turns desired state into the running datapath and keeps it there. It opens
//! and creates port devices (syscalls that may block — never on the forwarding thread), hands
//! them over, and every second re-checks devices so a VM's tap that vanished is marked down and
//! picked up again when it comes back.

mod diff;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ctl::protocol::{
    BridgeStatus, CounterSnapshot, FdbReply, MirrorStatus, PortStatus, ShowReply, VpnStatus,
};
use netdev::{interface_info, InterfaceInfo, NetdevError, TunnelEndpoints};
use switch::{MirrorCounters, MirrorSpec, PortCounters, PortSpec};
use tracing::{debug, info, warn};

use crate::datapath::{Datapath, NoAnswer, PortLink, Topology, TopologyBridge, TopologyPort};
use crate::device::Device;
use crate::fdstore::{FdStore, Kept};
use crate::state::{DesiredBridge, DesiredMirror, DesiredPort, DesiredState, PortKind};
use crate::vpn::VpnShared;
pub use diff::{diff, Change, Changes};

/// How long a configuration change may wait for the forwarding thread to carry it out. Closing
/// a thousand AF_PACKET ports takes about a second (see `close_all`).
const BARRIER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the reconciler remembers about a port between passes.
struct PortRuntime {
    kind: PortKind,
    counters: Arc<PortCounters>,
    link: Arc<PortLink>,
    /// ifindex of the device handed to the datapath (to notice a vanished-and-recreated one).
    ifindex: Option<u32>,
    /// Why the port has no device, as OvS writes it to Interface `error`.
    error: Option<String>,
    /// The device as last seen (at open, and on every monitoring pass for system ports), so
    /// status write-back costs no syscalls per port.
    info: Option<InterfaceInfo>,
    /// A VPN gateway port's tunnel status, as its forwarding-side device publishes it.
    vpn: Option<VpnShared>,
}

/// A port's device as the database shows it (Interface status columns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceStatus {
    pub ifindex: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    pub admin_up: bool,
    pub link_up: bool,
    pub error: Option<String>,
    pub counters: CounterSnapshot,
    pub vpn: Option<VpnStatus>,
}

pub struct Reconciler {
    desired: DesiredState,
    ports: HashMap<String, PortRuntime>,
    datapath: Datapath,
    /// Where device descriptors are kept across restarts (None: not kept).
    store: Option<FdStore>,
    /// Descriptors the previous process kept, not yet adopted.
    kept: Kept,
    /// The UDP sockets tunnel ports share.
    endpoints: TunnelEndpoints,
    /// Where ports keep state across restarts (the zone DHCP leases): the database's directory.
    state_dir: Option<std::path::PathBuf>,
    /// Each running mirror's counters, by Mirror UUID (kept while the mirror is configured).
    mirrors: HashMap<String, Arc<MirrorCounters>>,
}

impl Reconciler {
    pub fn new(datapath: Datapath) -> Reconciler {
        Reconciler::with_store(datapath, None, Kept::new())
    }

    /// A reconciler that keeps device descriptors in `store` and adopts `kept` ones.
    pub fn with_store(datapath: Datapath, store: Option<FdStore>, kept: Kept) -> Reconciler {
        Reconciler {
            desired: DesiredState::default(),
            ports: HashMap::new(),
            datapath,
            store,
            kept,
            endpoints: TunnelEndpoints::default(),
            state_dir: None,
            mirrors: HashMap::new(),
        }
    }

    /// Ports keep their state (DHCP leases) in `dir` from now on.
    pub fn set_state_dir(&mut self, dir: Option<std::path::PathBuf>) {
        self.state_dir = dir;
    }

    /// Makes the datapath match `new`; returns a line per change. What changes is decided by
    /// [`diff`]; this only carries it out.
    pub fn apply(&mut self, new: DesiredState) -> Vec<String> {
        if new == self.desired {
            // Nothing to do (e.g. only external_ids changed in the database): the forwarding
            // thread is not disturbed at all.
            return Vec::new();
        }
        let changes = diff(&self.desired, &new);
        // Ports that are gone, or whose type or bridge changed, lose their runtime (and device).
        for name in changes.closed_ports() {
            self.ports.remove(name);
            self.forget(name);
            // Close the old device now: the datapath carries devices over by name, so it would
            // otherwise keep e.g. the internal tap of a port that became a system port (and the
            // new device could not take the name).
            self.datapath.detach(name);
        }
        // Port layout first, then devices for the new ports: the datapath drops a device for a
        // port it does not know.
        let topology = self.topology(&new);
        self.datapath.set_topology(Arc::new(topology));
        self.desired = new;
        if changes.close_before_open() {
            // A replaced tap's name is free only once the forwarding thread closed the old one
            // (else TUNSETIFF fails with EBUSY).
            self.wait_for_datapath();
        }
        for name in changes.opened_ports() {
            self.open_port(name);
        }
        // Status (and with it cur_cfg) is written after this returns: by then removed devices
        // are closed and new ones are in use, so "acknowledged" means "applied".
        self.wait_for_datapath();
        let lines = changes.lines();
        for c in &lines {
            info!("{c}");
        }
        lines
    }

    /// The forwarding layout of `new`; ports without a runtime get a fresh one (detached, zero
    /// counters), surviving ports keep theirs.
    fn topology(&mut self, new: &DesiredState) -> Topology {
        let mut port = |p: &DesiredPort| {
            let rt = self.ports.entry(p.name.clone()).or_insert_with(|| PortRuntime {
                kind: p.kind,
                counters: Arc::default(),
                link: Arc::default(),
                ifindex: None,
                error: None,
                info: None,
                vpn: None,
            });
            TopologyPort {
                spec: PortSpec {
                    name: p.name.clone(),
                    vlan: p.vlan.clone(),
                    security: p.security.clone(),
                    counters: rt.counters.clone(),
                },
                link: rt.link.clone(),
            }
        };
        let mut bridges: Vec<TopologyBridge> = new
            .bridges
            .iter()
            .map(|b| TopologyBridge {
                name: b.name.clone(),
                settings: b.settings.clone(),
                ports: b.ports.iter().map(&mut port).collect(),
                mirrors: Vec::new(),
            })
            .collect();
        let live: std::collections::HashSet<&str> =
            new.bridges.iter().flat_map(|b| b.mirrors.iter().map(|m| m.uuid.as_str())).collect();
        self.mirrors.retain(|uuid, _| live.contains(uuid.as_str()));
        for (tb, b) in bridges.iter_mut().zip(&new.bridges) {
            tb.mirrors = self.mirror_specs(b);
        }
        Topology { bridges }
    }

    /// The bridge's mirrors with their ports as slots (the index in the bridge's port list),
    /// each with its counters (kept across changes while the Mirror row exists).
    fn mirror_specs(&mut self, b: &DesiredBridge) -> Vec<MirrorSpec> {
        let slot = |name: &String| b.ports.iter().position(|p| &p.name == name);
        b.mirrors
            .iter()
            .map(|m| MirrorSpec {
                name: m.name.clone(),
                select_all: m.select_all,
                src: m.src.iter().filter_map(slot).collect(),
                dst: m.dst.iter().filter_map(slot).collect(),
                vlans: m.vlans.clone(),
                output: slot(&m.output),
                counters: self.mirrors.entry(m.uuid.clone()).or_default().clone(),
            })
            .collect()
    }

    /// `(tx_packets, tx_bytes)` of the running mirror with this Mirror UUID.
    pub fn mirror_stats(&self, uuid: &str) -> Option<(u64, u64)> {
        self.mirrors.get(uuid).map(|c| c.read())
    }

    fn wait_for_datapath(&self) {
        if !self.datapath.barrier(BARRIER_TIMEOUT) {
            warn!("the forwarding thread did not confirm the new configuration in time");
        }
    }

    /// Opens (or creates) the device of `name` and hands it to the datapath. Descriptors a
    /// previous process kept for it are adopted instead when they still fit; a fresh device's
    /// descriptors go to the keeper.
    fn open_port(&mut self, name: &str) {
        let Some(rt) = self.ports.get_mut(name) else { return };
        let opened = match rt.kind {
            PortKind::Vpn => self.open_vpn(name),
            kind => self.open_device(name, kind).map_err(|e| e.to_string()),
        };
        let Some(rt) = self.ports.get_mut(name) else { return };
        match opened {
            Ok(dev) => {
                let ifindex = dev.ifindex();
                if rt.error.take().is_some() || rt.ifindex.is_some() {
                    info!(port = name, ifindex, "port device is back");
                }
                // Tunnel and VPN ports have no device of their own, hence no ifindex.
                rt.ifindex = ifindex;
                rt.error = dev.warning();
                if let Some(w) = &rt.error {
                    warn!(port = name, "{w}");
                }
                rt.info = interface_info(name).ok().flatten();
                rt.vpn = match &dev {
                    Device::Vpn(v) => Some(v.shared.clone()),
                    _ => None,
                };
                rt.link.set_attached(true);
                self.datapath.attach(name, dev.into_netdev());
            }
            Err(msg) => {
                if rt.error.as_deref() != Some(msg.as_str()) {
                    warn!(port = name, "{msg}");
                }
                rt.ifindex = None;
                rt.error = Some(msg);
            }
        }
    }

    /// A device by name: adopted from kept descriptors when they still fit, else opened.
    fn open_device(&mut self, name: &str, kind: PortKind) -> Result<Device, NetdevError> {
        match self.kept.remove(name) {
            Some(fds) => match Device::adopt(name, kind, fds) {
                Ok(dev) => {
                    info!(port = name, "adopted the device the previous rvswitchd kept open");
                    Ok(dev)
                }
                Err(e) => {
                    info!(port = name, "{e}; opening it afresh");
                    Device::open(
                        name,
                        kind,
                        self.datapath.rx_queues(),
                        self.datapath.kernel_fast_path(),
                        &self.endpoints,
                    )
                    .inspect(|d| self.keep(name, d))
                }
            },
            None => Device::open(
                name,
                kind,
                self.datapath.rx_queues(),
                self.datapath.kernel_fast_path(),
                &self.endpoints,
            )
            .inspect(|d| self.keep(name, d)),
        }
    }

    /// A VPN gateway port from its options in the desired state.
    fn open_vpn(&self, name: &str) -> Result<Device, String> {
        let opts = self.desired.ports().find(|(_, p)| p.name == name).and_then(|(_, p)| p.vpn.as_ref());
        let opts = opts.ok_or_else(|| format!("VPN port {name} has no options"))?;
        Device::open_vpn(name, opts, self.state_dir.as_deref()).map_err(|e| e.to_string())
    }

    /// Hands `dev`'s descriptors to the keeper (if there is one).
    fn keep(&self, name: &str, dev: &Device) {
        if let Some(store) = &self.store {
            store.put(name, &dev.descriptors());
        }
    }

    /// The keeper no longer holds `name`'s device (removed, replaced, vanished).
    fn forget(&self, name: &str) {
        if let Some(store) = &self.store {
            store.forget(name);
        }
    }

    /// After the first reconcile: descriptors kept for ports the configuration no longer has
    /// are closed (here and in the keeper).
    pub fn drop_unclaimed_kept(&mut self) {
        for (name, _) in std::mem::take(&mut self.kept) {
            info!(port = name, "closing a kept device the configuration no longer has");
            self.forget(&name);
        }
        self.datapath.settle();
    }

    /// One monitoring pass: detach system ports whose device vanished, reopen devices that
    /// (re)appeared or failed in the datapath.
    pub fn monitor(&mut self) {
        let names: Vec<String> = self.ports.keys().cloned().collect();
        for name in names {
            let Some(rt) = self.ports.get_mut(&name) else { continue };
            match rt.kind {
                PortKind::System => {
                    rt.info = interface_info(&name).ok().flatten();
                    let now = rt.info.as_ref().map(|i| i.ifindex);
                    match (now, rt.ifindex) {
                        (None, Some(_)) => {
                            warn!(port = name, "device vanished; port down until it comes back");
                            rt.ifindex = None;
                            rt.error = Some(NetdevError::NoSuchDevice(name.clone()).to_string());
                            rt.link.set_attached(false);
                            self.datapath.detach(&name);
                            self.forget(&name);
                        }
                        (Some(now), Some(was)) if now == was && rt.link.is_attached() => {}
                        (Some(_), _) => self.open_port(&name),
                        (None, None) => {}
                    }
                }
                // Our own taps: only the datapath can tell they failed (they may also have been
                // moved into another namespace on purpose, where we cannot see them by name).
                PortKind::Tap | PortKind::Internal | PortKind::Tunnel(_) | PortKind::Vpn => {
                    if !rt.link.is_attached() {
                        self.open_port(&name);
                    }
                }
            }
        }
    }

    /// Status of the device behind port `name`, for the database.
    pub fn iface_status(&self, name: &str) -> Option<IfaceStatus> {
        let rt = self.ports.get(name)?;
        let attached = rt.link.is_attached();
        // Our taps may have been moved into another namespace (a VM's); by name we then see
        // nothing, which is not an error.
        let info = rt.info.as_ref().filter(|i| Some(i.ifindex) == rt.ifindex);
        let owned = rt.kind != PortKind::System;
        let vpn = rt.vpn.as_ref().map(VpnShared::get);
        Some(IfaceStatus {
            ifindex: rt.ifindex,
            mac: info.map(|i| i.mac),
            // A VPN port has no device of its own: its MTU is the one its zone follows (a tun
            // uplink's, read every tick), so `ovs-vsctl get Interface vpn0 mtu` shows it.
            mtu: info.map(|i| i.mtu).or(vpn.as_ref().and_then(|v| v.mtu)),
            admin_up: attached && (owned || info.is_some_and(|i| i.admin_up)),
            link_up: attached && (owned || info.is_some_and(|i| i.carrier)),
            error: rt.error.clone(),
            counters: rt.counters.snapshot(),
            vpn,
        })
    }

    /// Every VPN port's tunnel state as the forwarding thread last published it (for VPN
    /// up/down events).
    pub fn vpn_states(&self) -> Vec<crate::events::vpn::VpnState> {
        self.desired
            .ports()
            .filter_map(|(b, p)| {
                let v = self.ports.get(&p.name)?.vpn.as_ref()?.get();
                let (bridge, port) = (b.name.clone(), p.name.clone());
                Some(crate::events::vpn::VpnState { bridge, port, up: v.state == "up", endpoint: v.endpoint })
            })
            .collect()
    }

    /// Every configured port's (bridge, port, link up), as the database is told (for port
    /// up/down events).
    pub fn link_states(&self) -> Vec<(String, String, bool)> {
        self.desired
            .ports()
            .map(|(b, p)| {
                let up = self.iface_status(&p.name).is_some_and(|s| s.link_up);
                (b.name.clone(), p.name.clone(), up)
            })
            .collect()
    }

    /// Folds the kernel fast path's counters into the ports' (before reading statistics).
    pub fn sync_counters(&self) {
        if !self.datapath.sync_counters(Duration::from_secs(1)) {
            debug!("forwarding thread did not fold the fast path's counters in time");
        }
    }

    pub fn show(&self, config_file: Option<String>) -> ShowReply {
        self.sync_counters();
        let bridges = self
            .desired
            .bridges
            .iter()
            .map(|b| BridgeStatus {
                name: b.name.clone(),
                mac_aging_time: b.settings.mac_aging_ms / 1000,
                mac_table_size: b.settings.mac_table_size,
                ports: b.ports.iter().map(|p| self.port_status(p)).collect(),
                mirrors: b.mirrors.iter().map(|m| self.mirror_status(m)).collect(),
            })
            .collect();
        ShowReply { config_file, bridges }
    }

    /// A running mirror as `rvsctl show` lists it, with the counters its statistics come from;
    /// ports sorted by name (the row's sets are in UUID order, which would shuffle the text).
    fn mirror_status(&self, m: &DesiredMirror) -> MirrorStatus {
        let (tx_packets, tx_bytes) = self.mirror_stats(&m.uuid).unwrap_or_default();
        let sorted = |ports: &[String]| {
            let mut v = ports.to_vec();
            v.sort();
            v
        };
        MirrorStatus {
            name: m.name.clone(),
            select_all: m.select_all,
            select_src_port: sorted(&m.src),
            select_dst_port: sorted(&m.dst),
            select_vlan: m.vlans.clone(),
            output_port: m.output.clone(),
            tx_packets,
            tx_bytes,
        }
    }

    fn port_status(&self, p: &DesiredPort) -> PortStatus {
        let rt = self.ports.get(&p.name);
        let attached = rt.is_some_and(|r| r.link.is_attached());
        // A device we hold is up when its link is; our taps may live in another namespace.
        let carrier = match p.kind {
            PortKind::System => interface_info(&p.name).ok().flatten().is_some_and(|i| i.carrier),
            PortKind::Tap | PortKind::Internal | PortKind::Tunnel(_) => true,
            PortKind::Vpn => rt.and_then(|r| r.vpn.as_ref()).is_some_and(|v| v.get().state == "up"),
        };
        PortStatus {
            name: p.name.clone(),
            kind: p.kind.as_str().to_string(),
            vlan_mode: p.vlan.mode().as_str().to_string(),
            tag: p.vlan.tag(),
            trunks: if p.vlan.trunks_all() { Vec::new() } else { p.vlan.trunks().iter().collect() },
            link_state: if attached && carrier { "up" } else { "down" }.to_string(),
            ifindex: rt.and_then(|r| r.ifindex),
            error: rt.and_then(|r| r.error.clone()),
            statistics: rt.map(|r| r.counters.snapshot()).unwrap_or_default(),
            vpn: rt.and_then(|r| r.vpn.as_ref()).map(VpnShared::get),
        }
    }

    /// Stops forwarding and closes every device (our taps disappear with their fds). With
    /// `keep_devices` (an upgrade) the keeper goes on holding them for the next process, and a
    /// pinned kernel fast path stays in the kernel; otherwise it leaves with the devices.
    pub fn shutdown(&mut self, keep_devices: bool) {
        if !keep_devices {
            self.datapath.retire_fast_path();
        }
        self.datapath.stop();
        if let Some(store) = self.store.take() {
            if !keep_devices {
                store.close_all();
            }
        }
    }

    pub fn datapath(&self) -> &Datapath {
        &self.datapath
    }

    pub fn fdb(&self, bridge: &str) -> Result<FdbReply, FdbError> {
        match self.datapath.fdb(bridge, Duration::from_secs(2))? {
            Some(entries) => Ok(FdbReply { bridge: bridge.to_string(), entries }),
            None => Err(FdbError::NoBridge(bridge.to_string())),
        }
    }
}

/// Why a bridge's MAC table cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum FdbError {
    #[error("no bridge named {0}")]
    NoBridge(String),
    #[error(transparent)]
    Datapath(#[from] NoAnswer),
}
