//! The diff between the desired rows of a zones file and the live database: a list of
//! human-readable [`Change`]s and the one guarded transaction that makes them. Nothing that
//! zones did not create (no `rvswitch-zone` mark) is ever changed or removed; a removed zone's
//! bridge that still carries such foreign ports (libvirt's `vnetN`, a hand-added port) is
//! *released* rather than deleted — its uplink is removed, the zone marks are replaced by
//! `rvswitch-released-zone=ZONE`, and a later apply deletes it once those ports are gone (or
//! re-adopts it if the zone comes back).

use serde::Serialize;

use crate::desired::{our_marks, DesiredTunnel, DesiredUplink, DesiredZone, Role, VlanCols, TUNNEL_TYPE};
use crate::live::{LiveBridge, LiveDb, LivePort, Map, RELEASED_KEY, ROLE_KEY};
use crate::txn::Txn;

/// One change the plan makes. (Fields are the zone, bridge, port... they name.)
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Change {
    /// A new zone bridge.
    CreateBridge { zone: String, bridge: String },
    /// A zone's bridge deleted with everything on it (all of it zones-created).
    RemoveBridge { zone: String, bridge: String },
    /// A removed zone's bridge kept because ports zones did not create are still on it.
    ReleaseBridge { zone: String, bridge: String, foreign_ports: Vec<String> },
    /// A new port (internal or uplink).
    CreatePort { zone: String, bridge: String, port: String, role: Role },
    /// A port zones created, removed.
    RemovePort { zone: String, bridge: String, port: String },
    /// A port's VLAN columns changed.
    SetVlans { zone: String, port: String, from: VlanCols, to: VlanCols },
    /// An uplink interface's `type` or `options` changed (a VPN uplink's file, subnet, gateway).
    SetInterface { zone: String, port: String, kind: String, options: Map },
    /// A row's zones marks (`external_ids` keys owned by zones) changed.
    SetMarks { zone: String, table: String, row: String, from: Map, to: Map },
    /// A tunnel port's Interface `options` (remote, VNI, local address) changed.
    SetTunnel { zone: String, port: String, from: Map, to: Map },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::CreateBridge { zone, bridge } => write!(f, "+ bridge {bridge} (zone {zone})"),
            Change::RemoveBridge { zone, bridge } => {
                write!(f, "- bridge {bridge} (zone {zone}, with its ports)")
            }
            Change::ReleaseBridge { zone, bridge, foreign_ports } => {
                write!(
                    f,
                    "~ bridge {bridge} released by zone {zone}: kept for ports zones did not create ({})",
                    foreign_ports.join(", ")
                )
            }
            Change::CreatePort { zone, bridge, port, role } => {
                write!(f, "+ port {port} on {bridge} ({}, zone {zone})", role.as_str())
            }
            Change::RemovePort { zone, bridge, port } => write!(f, "- port {port} on {bridge} (zone {zone})"),
            Change::SetVlans { zone, port, from, to } => {
                write!(f, "~ port {port} (zone {zone}): {from} -> {to}")
            }
            Change::SetInterface { zone, port, kind, options } => {
                write!(f, "~ interface {port} (zone {zone}): type={kind:?} options {options:?}")
            }
            Change::SetMarks { zone, table, row, from, to } => {
                write!(f, "~ {table} {row} (zone {zone}): external_ids {from:?} -> {to:?}")
            }
            Change::SetTunnel { zone, port, from, to } => {
                write!(f, "~ tunnel {port} (zone {zone}): options {from:?} -> {to:?}")
            }
        }
    }
}

/// Why no plan can be made; each names what to do.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
pub enum Conflict {
    /// The database was never initialised.
    #[error("the database has no Open_vSwitch row — initialise it first (ovs-vsctl --no-wait init)")]
    NoRootRow,
    /// A bridge of the wanted name exists and zones did not create it.
    #[error("zone {zone}: bridge {bridge} already exists and was not created by zones — remove it (ovs-vsctl del-br {bridge}) or set another `bridge =` for the zone")]
    BridgeNotOurs { zone: String, bridge: String },
    /// The wanted bridge belongs to another zone that still exists.
    #[error("zone {zone}: bridge {bridge} belongs to zone {owner} — give one of them another `bridge =`")]
    BridgeOfOtherZone { zone: String, bridge: String, owner: String },
    /// A port of the wanted name exists elsewhere and zones did not create it.
    #[error("zone {zone}: port {port} already exists on bridge {bridge} and was not created by zones — remove it (ovs-vsctl del-port {bridge} {port}) or use another name")]
    PortNotOurs { zone: String, port: String, bridge: String },
}

/// The diff and the transaction that applies it (empty when there is nothing to do).
#[derive(Debug)]
pub struct Plan {
    /// What changes, in order.
    pub changes: Vec<Change>,
    /// The OVSDB operations (one transaction); empty when `changes` is.
    pub ops: Vec<serde_json::Value>,
}

/// Diffs `desired` against `live`. `comment` is recorded in the transaction (the database log
/// shows who changed what).
pub fn plan(desired: &[DesiredZone], live: &LiveDb, comment: &str) -> Result<Plan, Vec<Conflict>> {
    let Some(root) = &live.ovs_uuid else { return Err(vec![Conflict::NoRootRow]) };
    let mut p = Planner { live, desired, txn: Txn::new(root, live), changes: vec![], conflicts: vec![] };
    for d in desired {
        p.zone(d);
    }
    for b in &live.bridges {
        match owner(b) {
            Some(z) if !desired.iter().any(|d| d.bridge == b.name) => p.remove(b, z),
            _ => {}
        }
    }
    if !p.conflicts.is_empty() {
        return Err(p.conflicts);
    }
    Ok(Plan { changes: p.changes, ops: p.txn.finish(comment) })
}

/// The zone a bridge belongs to (or was released by).
fn owner(b: &LiveBridge) -> Option<&str> {
    b.zone().or_else(|| b.external_ids.get(RELEASED_KEY).map(String::as_str))
}

fn role(p: &LivePort) -> Option<&str> {
    p.zone().and(p.external_ids.get(ROLE_KEY).map(String::as_str))
}

fn live_vlans(p: &LivePort) -> VlanCols {
    let mut trunks = p.trunks.clone();
    trunks.sort_unstable();
    VlanCols { vlan_mode: p.vlan_mode.clone(), tag: p.tag, trunks }
}

struct Planner<'a> {
    live: &'a LiveDb,
    desired: &'a [DesiredZone],
    txn: Txn,
    changes: Vec<Change>,
    conflicts: Vec<Conflict>,
}

impl Planner<'_> {
    fn zone(&mut self, d: &DesiredZone) {
        self.names_free(d);
        let Some(b) = self.live.bridge(&d.bridge) else { return self.create(d) };
        match owner(b) {
            Some(z) if z == d.zone || !self.desired.iter().any(|x| x.zone == z) => self.reconcile(d, b),
            Some(z) => self.conflicts.push(Conflict::BridgeOfOtherZone {
                zone: d.zone.clone(),
                bridge: d.bridge.clone(),
                owner: z.into(),
            }),
            None => self
                .conflicts
                .push(Conflict::BridgeNotOurs { zone: d.zone.clone(), bridge: d.bridge.clone() }),
        }
    }

    /// The zone's port names (internal = bridge name, uplink NIC) must not be foreign ports on
    /// another bridge: OVSDB port names are unique, and taking one over would move it.
    fn names_free(&mut self, d: &DesiredZone) {
        let wanted = std::iter::once(&d.bridge)
            .chain(d.uplink.as_ref().map(|u| &u.nic))
            .chain(d.tunnels.iter().map(|t| &t.name));
        for name in wanted {
            for (b, p) in self.live.ports().filter(|(b, p)| &p.name == name && b.name != d.bridge) {
                if p.zone().is_none() {
                    self.conflicts.push(Conflict::PortNotOurs {
                        zone: d.zone.clone(),
                        port: name.clone(),
                        bridge: b.name.clone(),
                    });
                }
            }
        }
    }

    fn create(&mut self, d: &DesiredZone) {
        let (z, br) = (d.zone.clone(), d.bridge.clone());
        self.changes.push(Change::CreateBridge { zone: z.clone(), bridge: br.clone() });
        let mut ports = vec![self.new_internal(d)];
        if let Some(u) = &d.uplink {
            ports.push(self.new_port(d, Role::Uplink, &u.nic, (&u.kind, &u.options), Some(&u.vlans)));
        }
        for t in &d.tunnels {
            ports.push(self.new_tunnel(d, t));
        }
        self.txn.insert_bridge(&d.bridge, &ports, &d.bridge_marks());
    }

    fn new_port(
        &mut self,
        d: &DesiredZone,
        role: Role,
        name: &str,
        kind: (&str, &Map),
        vlans: Option<&VlanCols>,
    ) -> String {
        self.changes.push(Change::CreatePort {
            zone: d.zone.clone(),
            bridge: d.bridge.clone(),
            port: name.into(),
            role,
        });
        self.txn.insert_port(name, kind, vlans, &d.port_marks(role), &d.interface_marks(role))
    }

    fn new_internal(&mut self, d: &DesiredZone) -> String {
        self.new_port(d, Role::Internal, &d.bridge, ("internal", &Map::new()), Some(&d.internal))
    }

    /// A zones-created port's VLAN columns set to `want` if they differ.
    fn vlans(&mut self, d: &DesiredZone, p: &LivePort, want: &VlanCols) {
        if live_vlans(p) != *want {
            self.txn.set_vlans(p, want);
            let (zone, port, from, to) = (d.zone.clone(), p.name.clone(), live_vlans(p), want.clone());
            self.changes.push(Change::SetVlans { zone, port, from, to });
        }
    }

    fn new_tunnel(&mut self, d: &DesiredZone, t: &DesiredTunnel) -> String {
        self.new_port(d, Role::Tunnel, &t.name, (TUNNEL_TYPE, &t.options), Some(&t.vlans()))
    }

    fn marks(&mut self, zone: &str, table: &str, row: &str, uuid: &str, live: &Map, want: Map) {
        let have = our_marks(live);
        if have != want {
            self.txn.set_marks(table, uuid, &want);
            self.changes.push(Change::SetMarks {
                zone: zone.into(),
                table: table.into(),
                row: row.into(),
                from: have,
                to: want,
            });
        }
    }

    fn reconcile(&mut self, d: &DesiredZone, b: &LiveBridge) {
        if our_marks(&b.external_ids) != d.bridge_marks() {
            self.txn.guard_bridge(b);
        }
        self.marks(&d.zone, "Bridge", &b.name, &b.uuid, &b.external_ids, d.bridge_marks());
        match b.ports.iter().find(|p| p.name == b.name) {
            None => {
                let p = self.new_internal(d);
                self.txn.add_port(b, &p);
            }
            Some(p) if p.zone().is_some() => {
                self.vlans(d, p, &d.internal);
                self.port_marks(d, p, Role::Internal);
            }
            Some(_) => {} // a local port zones did not create: left alone
        }
        self.uplink(d, b);
        self.tunnels(d, b);
    }

    /// The zone's VXLAN ports: unwanted ones removed, missing ones added, changed ones updated
    /// in place (VLAN and options), so a peer's address change keeps the port.
    fn tunnels(&mut self, d: &DesiredZone, b: &LiveBridge) {
        for p in b.ports.iter().filter(|p| role(p) == Some(Role::Tunnel.as_str())) {
            if !d.tunnels.iter().any(|t| t.name == p.name) {
                self.txn.remove_port(b, p);
                let (zone, bridge, port) = (d.zone.clone(), b.name.clone(), p.name.clone());
                self.changes.push(Change::RemovePort { zone, bridge, port });
            }
        }
        for t in &d.tunnels {
            let Some(p) = b.ports.iter().find(|p| p.name == t.name) else {
                let p = self.new_tunnel(d, t);
                self.txn.add_port(b, &p);
                continue;
            };
            if p.zone().is_none() {
                let (zone, port, bridge) = (d.zone.clone(), t.name.clone(), b.name.clone());
                self.conflicts.push(Conflict::PortNotOurs { zone, port, bridge });
                continue;
            }
            self.vlans(d, p, &t.vlans());
            if let Some(i) = p.interfaces.iter().find(|i| i.name == p.name) {
                if i.kind != TUNNEL_TYPE || i.options != t.options {
                    self.txn.set_tunnel(p, &i.uuid, TUNNEL_TYPE, &t.options);
                    let (zone, port, from, to) =
                        (d.zone.clone(), p.name.clone(), i.options.clone(), t.options.clone());
                    self.changes.push(Change::SetTunnel { zone, port, from, to });
                }
            }
            self.port_marks(d, p, Role::Tunnel);
        }
    }

    fn port_marks(&mut self, d: &DesiredZone, p: &LivePort, role: Role) {
        self.marks(&d.zone, "Port", &p.name, &p.uuid, &p.external_ids, d.port_marks(role));
        if let Some(i) = p.interfaces.iter().find(|i| i.name == p.name) {
            self.marks(&d.zone, "Interface", &i.name, &i.uuid, &i.external_ids, d.interface_marks(role));
        }
    }

    fn uplink(&mut self, d: &DesiredZone, b: &LiveBridge) {
        let want = d.uplink.as_ref();
        for p in b.ports.iter().filter(|p| role(p) == Some(Role::Uplink.as_str())) {
            if want.is_none_or(|u| u.nic != p.name) {
                self.txn.remove_port(b, p);
                self.changes.push(Change::RemovePort {
                    zone: d.zone.clone(),
                    bridge: b.name.clone(),
                    port: p.name.clone(),
                });
            }
        }
        let Some(u) = want else { return };
        match b.ports.iter().find(|p| p.name == u.nic) {
            Some(p) if p.zone().is_none() => self.conflicts.push(Conflict::PortNotOurs {
                zone: d.zone.clone(),
                port: u.nic.clone(),
                bridge: b.name.clone(),
            }),
            Some(p) => {
                self.vlans(d, p, &u.vlans);
                self.uplink_interface(d, p, u);
                self.port_marks(d, p, Role::Uplink);
            }
            None => {
                let p = self.new_port(d, Role::Uplink, &u.nic, (&u.kind, &u.options), Some(&u.vlans));
                self.txn.add_port(b, &p);
            }
        }
    }

    /// The uplink's interface `type` and `options` as the zone wants them (a VPN uplink's
    /// settings live there).
    fn uplink_interface(&mut self, d: &DesiredZone, p: &LivePort, u: &DesiredUplink) {
        let Some(i) = p.interfaces.iter().find(|i| i.name == p.name) else { return };
        if i.kind != u.kind || i.options != u.options {
            self.txn.guard_port(p);
            self.txn.set_interface(&i.uuid, &u.kind, &u.options);
            self.changes.push(Change::SetInterface {
                zone: d.zone.clone(),
                port: p.name.clone(),
                kind: u.kind.clone(),
                options: u.options.clone(),
            });
        }
    }

    /// A bridge whose zone is gone (or whose zone now wants another bridge).
    fn remove(&mut self, b: &LiveBridge, zone: &str) {
        let foreign: Vec<String> =
            b.ports.iter().filter(|p| p.zone().is_none()).map(|p| p.name.clone()).collect();
        if foreign.is_empty() {
            self.txn.remove_bridge(b);
            self.changes.push(Change::RemoveBridge { zone: zone.into(), bridge: b.name.clone() });
            return;
        }
        if b.zone().is_none() {
            return; // released already; waits for its foreign ports to go
        }
        // A released bridge keeps no way out of this host: uplink and tunnels go.
        let leaves = [Some(Role::Uplink.as_str()), Some(Role::Tunnel.as_str())];
        for p in b.ports.iter().filter(|p| leaves.contains(&role(p))) {
            self.txn.remove_port(b, p);
            self.changes.push(Change::RemovePort {
                zone: zone.into(),
                bridge: b.name.clone(),
                port: p.name.clone(),
            });
        }
        self.txn.guard_bridge(b);
        let released: Map = [(RELEASED_KEY.to_string(), zone.to_string())].into();
        self.txn.set_marks("Bridge", &b.uuid, &released);
        self.changes.push(Change::ReleaseBridge {
            zone: zone.into(),
            bridge: b.name.clone(),
            foreign_ports: foreign,
        });
    }
}
