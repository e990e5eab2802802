//! The reconciler's planner: what changes between two desired states, decided without touching
//! a device, so every case (a port moving between bridges, changing type, a bridge vanishing
//! with its ports) is unit-tested without root. The reconciler only carries the result out.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::state::{DesiredPort, DesiredState, PortKind};

/// One difference between the old and the new desired state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    AddedBridge(String),
    RemovedBridge(String),
    /// MAC aging, table size or BPDU forwarding changed; ports and learned MACs stay.
    BridgeSettings(String),
    AddedPort {
        name: String,
        bridge: String,
    },
    RemovedPort {
        name: String,
        bridge: String,
    },
    /// Same name, but another type or another bridge: the old device is closed and a new one
    /// opened under the same name.
    ReplacedPort {
        name: String,
        old_kind: PortKind,
        old_bridge: String,
        kind: PortKind,
        bridge: String,
    },
    /// Only the VLAN configuration changed; the device stays open.
    PortVlan(String),
    /// Only the port-security settings changed (Interface other_config/external_ids).
    PortSecurity(String),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::AddedBridge(b) => write!(f, "added bridge {b}"),
            Change::RemovedBridge(b) => write!(f, "removed bridge {b}"),
            Change::BridgeSettings(b) => write!(f, "changed settings of bridge {b}"),
            Change::AddedPort { name, bridge } => write!(f, "added port {name} to {bridge}"),
            Change::RemovedPort { name, bridge } => write!(f, "removed port {name} from {bridge}"),
            Change::ReplacedPort { name, old_kind, old_bridge, kind, bridge } => write!(
                f,
                "replaced port {name} ({} on {old_bridge} → {} on {bridge})",
                old_kind.as_str(),
                kind.as_str()
            ),
            Change::PortVlan(p) => write!(f, "changed VLAN settings of port {p}"),
            Change::PortSecurity(p) => write!(f, "changed port security of port {p}"),
        }
    }
}

/// Everything that differs, in a stable order: removed bridges, added and changed bridges (in
/// the new state's order), added/replaced/re-tagged ports (new order), then removed ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub items: Vec<Change>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Ports whose device is closed: removed ones and the old device of replaced ones.
    pub fn closed_ports(&self) -> impl Iterator<Item = &str> {
        self.items.iter().filter_map(|c| match c {
            Change::RemovedPort { name, .. } | Change::ReplacedPort { name, .. } => Some(name.as_str()),
            _ => None,
        })
    }

    /// Ports that need a device opened (or created): new ones and replaced ones, in new order.
    pub fn opened_ports(&self) -> impl Iterator<Item = &str> {
        self.items.iter().filter_map(|c| match c {
            Change::AddedPort { name, .. } | Change::ReplacedPort { name, .. } => Some(name.as_str()),
            _ => None,
        })
    }

    /// Whether devices are closed by this change, so the forwarding thread must have closed
    /// them before any device is opened: a replaced tap's name is free only then (else
    /// TUNSETIFF fails with EBUSY).
    pub fn close_before_open(&self) -> bool {
        self.closed_ports().next().is_some()
    }

    /// One log line per change.
    pub fn lines(&self) -> Vec<String> {
        self.items.iter().map(Change::to_string).collect()
    }
}

/// What turns `old` into `new`.
pub fn diff(old: &DesiredState, new: &DesiredState) -> Changes {
    let mut items = bridge_changes(old, new);
    items.extend(port_changes(old, new));
    Changes { items }
}

fn bridge_changes(old: &DesiredState, new: &DesiredState) -> Vec<Change> {
    let mut items: Vec<Change> = old
        .bridges
        .iter()
        .filter(|b| !new.bridges.iter().any(|n| n.name == b.name))
        .map(|b| Change::RemovedBridge(b.name.clone()))
        .collect();
    for b in &new.bridges {
        match old.bridges.iter().find(|o| o.name == b.name) {
            None => items.push(Change::AddedBridge(b.name.clone())),
            Some(o) if o.settings != b.settings => items.push(Change::BridgeSettings(b.name.clone())),
            Some(_) => {}
        }
    }
    items
}

fn port_changes(old: &DesiredState, new: &DesiredState) -> Vec<Change> {
    let old_ports: HashMap<&str, (&str, &DesiredPort)> =
        old.ports().map(|(b, p)| (p.name.as_str(), (b.name.as_str(), p))).collect();
    let mut items = Vec::new();
    for (b, port) in new.ports() {
        let (name, bridge) = (port.name.clone(), b.name.clone());
        match old_ports.get(port.name.as_str()) {
            None => items.push(Change::AddedPort { name, bridge }),
            Some((old_bridge, o)) if o.kind != port.kind || *old_bridge != bridge || o.vpn != port.vpn => {
                let (old_kind, old_bridge) = (o.kind, old_bridge.to_string());
                items.push(Change::ReplacedPort { name, old_kind, old_bridge, kind: port.kind, bridge });
            }
            Some((_, o)) if o.vlan != port.vlan => items.push(Change::PortVlan(name)),
            Some((_, o)) if o.security != port.security => items.push(Change::PortSecurity(name)),
            Some(_) => {}
        }
    }
    let new_names: HashSet<&str> = new.ports().map(|(_, p)| p.name.as_str()).collect();
    items.extend(
        old.ports()
            .filter(|(_, p)| !new_names.contains(p.name.as_str()))
            .map(|(b, p)| Change::RemovedPort { name: p.name.clone(), bridge: b.name.clone() }),
    );
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::DesiredBridge;
    use switch::{BridgeSettings, PortVlan};

    fn port(name: &str, kind: PortKind, tag: u16) -> DesiredPort {
        DesiredPort {
            name: name.into(),
            kind,
            vlan: PortVlan::access(tag),
            security: Default::default(),
            vpn: None,
        }
    }

    fn bridge(name: &str, ports: Vec<DesiredPort>) -> DesiredBridge {
        let mut all = vec![port(name, PortKind::Internal, 1)];
        all.extend(ports);
        DesiredBridge { name: name.into(), settings: BridgeSettings::default(), ports: all, mirrors: vec![] }
    }

    fn state(bridges: Vec<DesiredBridge>) -> DesiredState {
        DesiredState { bridges }
    }

    fn sys(name: &str) -> DesiredPort {
        port(name, PortKind::System, 1)
    }

    #[test]
    fn equal_states_change_nothing() {
        let s = state(vec![bridge("br0", vec![sys("vnet0")])]);
        let c = diff(&s, &s.clone());
        assert!(c.is_empty(), "{c:?}");
        assert!(!c.close_before_open());
    }

    #[test]
    fn a_new_bridge_opens_its_ports_and_closes_nothing() {
        let c = diff(&DesiredState::default(), &state(vec![bridge("br0", vec![sys("vnet0")])]));
        assert_eq!(c.lines(), ["added bridge br0", "added port br0 to br0", "added port vnet0 to br0"]);
        assert_eq!(c.opened_ports().collect::<Vec<_>>(), ["br0", "vnet0"]);
        assert!(!c.close_before_open(), "nothing closes: no need to wait before opening");
    }

    #[test]
    fn a_removed_bridge_closes_its_ports() {
        let old = state(vec![bridge("br0", vec![sys("vnet0")]), bridge("br1", vec![])]);
        let c = diff(&old, &state(vec![bridge("br1", vec![])]));
        assert_eq!(
            c.lines(),
            ["removed bridge br0", "removed port br0 from br0", "removed port vnet0 from br0"]
        );
        assert_eq!(c.closed_ports().collect::<Vec<_>>(), ["br0", "vnet0"]);
        assert_eq!(c.opened_ports().count(), 0);
        assert!(c.close_before_open());
    }

    /// del-br X -- add-br X with other settings arrives as one change: the bridge stays, only
    /// its settings change, and its internal port keeps its device.
    #[test]
    fn settings_and_vlan_changes_keep_devices() {
        let old = state(vec![bridge("br0", vec![sys("vnet0")])]);
        let mut new = old.clone();
        new.bridges[0].settings.mac_aging_ms = 1000;
        new.bridges[0].ports[1].vlan = PortVlan::access(20);
        let c = diff(&old, &new);
        assert_eq!(c.items, [Change::BridgeSettings("br0".into()), Change::PortVlan("vnet0".into())]);
        assert_eq!(c.opened_ports().count() + c.closed_ports().count(), 0);
    }

    #[test]
    fn a_port_changing_type_or_bridge_is_replaced() {
        let old = state(vec![bridge("br0", vec![sys("p1"), sys("p2")]), bridge("br1", vec![])]);
        let new =
            state(vec![bridge("br0", vec![port("p1", PortKind::Tap, 1)]), bridge("br1", vec![sys("p2")])]);
        let c = diff(&old, &new);
        assert_eq!(
            c.lines(),
            [
                "replaced port p1 (system on br0 → tap on br0)",
                "replaced port p2 (system on br0 → system on br1)"
            ]
        );
        // The old device is closed and a new one opened under the same name: wait in between.
        assert_eq!(c.closed_ports().collect::<Vec<_>>(), ["p1", "p2"]);
        assert_eq!(c.opened_ports().collect::<Vec<_>>(), ["p1", "p2"]);
        assert!(c.close_before_open());
    }

    #[test]
    fn ports_added_and_removed_together() {
        let old = state(vec![bridge("br0", vec![sys("old0")])]);
        let new = state(vec![bridge("br0", vec![sys("new0")])]);
        let c = diff(&old, &new);
        assert_eq!(c.lines(), ["added port new0 to br0", "removed port old0 from br0"]);
        assert!(c.close_before_open());
    }
}
