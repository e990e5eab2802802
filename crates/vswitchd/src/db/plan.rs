//! From the Open_vSwitch tables to the switch's desired state, with Open vSwitch's meaning of each
//! column. Rows that ask for something rvswitch cannot do are not silently dropped: they come
//! back as `rejected`, and the reason lands in the Interface's `error` column.

use std::collections::HashSet;

use switch::{BridgeSettings, PortVlan, VlanConfigError, VlanMode};

use super::mirrors::mirrors_of;
use super::scope::Scope;
use super::security::{security_of, with_zone_ips};
use super::snapshot::{BridgeRow, Snapshot};
use super::vpn_options::vpn_of;
use crate::config::check_ifname;
use crate::state::{DesiredBridge, DesiredPort, DesiredState, PortKind};
use crate::tunnel::{tunnel_of, tunnel_proto, TunnelOptionError};

/// An interface the database configures but the switch cannot run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub iface_uuid: String,
    pub error: String,
}

/// Why a row asks for something rvswitch cannot run; the text goes to Interface `error`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    #[error("interface type \"{0}\" is not supported by rvswitch")]
    IfaceType(String),
    #[error("vlan_mode {0} is not supported by rvswitch")]
    VlanMode(String),
    #[error(transparent)]
    Vlan(#[from] VlanConfigError),
    #[error(transparent)]
    Tunnel(#[from] TunnelOptionError),
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub desired: DesiredState,
    pub rejected: Vec<Rejected>,
    /// Mirror rows that are ignored or partly honoured, and why (logged at warn).
    pub mirror_notes: Vec<String>,
}

/// Interface `type` (and, for tunnels, `options`) → port kind; OvS's "" means a system device.
fn kind_of(t: &str, options: &[(String, String)]) -> Result<PortKind, Unsupported> {
    match t {
        "" | "system" => Ok(PortKind::System),
        "internal" => Ok(PortKind::Internal),
        "tap" => Ok(PortKind::Tap),
        "rvswitch-vpn" => Ok(PortKind::Vpn),
        other => match tunnel_proto(other) {
            Some(proto) => Ok(PortKind::Tunnel(tunnel_of(proto, options)?)),
            None => Err(Unsupported::IfaceType(other.to_string())),
        },
    }
}

fn vlan_of(tag: Option<i64>, trunks: &[i64], mode: Option<&str>) -> Result<PortVlan, Unsupported> {
    let mode = match mode {
        None => None,
        Some("access") => Some(VlanMode::Access),
        Some("trunk") => Some(VlanMode::Trunk),
        Some("native-tagged") => Some(VlanMode::NativeTagged),
        Some("native-untagged") => Some(VlanMode::NativeUntagged),
        Some(other) => return Err(Unsupported::VlanMode(other.to_string())),
    };
    // The schema bounds these to 0..=4095 already.
    let tag = tag.and_then(|t| u16::try_from(t).ok());
    let trunks: Vec<u16> = trunks.iter().filter_map(|t| u16::try_from(*t).ok()).collect();
    let access = mode == Some(VlanMode::Access) || (mode.is_none() && tag.is_some());
    // Like ovs-vswitchd, an access port ignores `trunks` rather than refusing the port.
    let trunks: &[u16] = if access { &[] } else { &trunks };
    Ok(PortVlan::new(mode, tag, trunks)?)
}

fn settings_of(b: &BridgeRow) -> BridgeSettings {
    let mut s = BridgeSettings::default();
    for (k, v) in &b.other_config {
        match k.as_str() {
            "mac-aging-time" => {
                if let Ok(secs) = v.parse::<u64>() {
                    s.mac_aging_ms = secs.clamp(1, 86_400) * 1000;
                }
            }
            "mac-table-size" => {
                if let Ok(n) = v.parse::<usize>() {
                    s.mac_table_size = n.clamp(1, 1_000_000);
                }
            }
            "forward-bpdu" => s.forward_bpdu = v == "true",
            _ => {}
        }
    }
    s
}

/// Builds the desired state from a snapshot (a database of this host's own).
pub fn plan(s: &Snapshot) -> Plan {
    plan_scoped(s, &Scope::default())
}

/// Builds the desired state from the bridges of `s` that `scope` says are this host's.
pub fn plan_scoped(s: &Snapshot, scope: &Scope) -> Plan {
    let mut plan = Plan::default();
    let mut used_ports = HashSet::new();
    let mut reject = |iface_uuid: &str, error: String| {
        plan.rejected.push(Rejected { iface_uuid: iface_uuid.to_string(), error });
    };
    let mut bridges = Vec::new();
    for b in s.active_bridges().into_iter().filter(|b| scope.owns(s, b)) {
        if check_ifname(&b.name).is_err() {
            for p in b.ports.iter().filter_map(|u| s.ports.get(u)) {
                for i in &p.interfaces {
                    reject(i, format!("bridge name {:?} is not a valid device name", b.name));
                }
            }
            continue;
        }
        let mut rows: Vec<_> = b.ports.iter().filter_map(|u| s.ports.get(u)).collect();
        // The bridge's own (local) port first, then by name: stable slots across restarts.
        rows.sort_by(|x, y| (x.name != b.name, &x.name).cmp(&(y.name != b.name, &y.name)));
        let mut ports = Vec::new();
        for p in rows {
            if !used_ports.insert(p.uuid.clone()) {
                continue; // a port listed by two bridges belongs to the first
            }
            let [iface_uuid] = p.interfaces.as_slice() else {
                for i in &p.interfaces {
                    reject(i, "bonds (ports with several interfaces) are not supported by rvswitch".into());
                }
                continue;
            };
            let Some(iface) = s.ifaces.get(iface_uuid) else { continue };
            if let Err(e) = check_ifname(&iface.name) {
                reject(iface_uuid, format!("{:?}: {e}", iface.name));
                continue;
            }
            let kind = match kind_of(&iface.kind, &iface.options) {
                Ok(k) => k,
                Err(e) => {
                    reject(iface_uuid, e.to_string());
                    continue;
                }
            };
            let own = security_of(&iface.other_config, &iface.external_ids);
            let security = match own.and_then(|s| with_zone_ips(s, &b.external_ids)) {
                Ok(s) => s,
                Err(e) => {
                    reject(iface_uuid, format!("interface {}: {e}", iface.name));
                    continue;
                }
            };
            let vpn = match (kind, vpn_of(&iface.options)) {
                (PortKind::Vpn, Ok(v)) => Some(v),
                (PortKind::Vpn, Err(e)) => {
                    reject(iface_uuid, format!("interface {}: {e}", iface.name));
                    continue;
                }
                _ => None,
            };
            match vlan_of(p.tag, &p.trunks, p.vlan_mode.as_deref()) {
                Ok(vlan) => ports.push(DesiredPort { name: iface.name.clone(), kind, vlan, security, vpn }),
                Err(e) => reject(iface_uuid, format!("port {}: {e}", p.name)),
            }
        }
        let (mirrors, notes) = mirrors_of(s, b, &ports);
        plan.mirror_notes.extend(notes);
        bridges.push(DesiredBridge { name: b.name.clone(), settings: settings_of(b), ports, mirrors });
    }
    plan.desired = DesiredState { bridges };
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_columns_follow_ovs() {
        assert_eq!(vlan_of(Some(10), &[], None).unwrap().mode(), VlanMode::Access);
        assert_eq!(vlan_of(Some(10), &[20], None).unwrap().tag(), Some(10), "access ignores trunks");
        assert_eq!(vlan_of(None, &[10, 20], None).unwrap().mode(), VlanMode::Trunk);
        let n = vlan_of(Some(42), &[42, 43], Some("native-untagged")).unwrap();
        assert_eq!((n.mode(), n.tag()), (VlanMode::NativeUntagged, Some(42)));
        assert!(vlan_of(None, &[], Some("dot1q-tunnel")).is_err());
        assert!(vlan_of(None, &[], Some("native-tagged")).is_err(), "native mode needs a tag");
    }

    #[test]
    fn interface_types() {
        assert_eq!(kind_of("", &[]), Ok(PortKind::System));
        assert_eq!(kind_of("rvswitch-vpn", &[]), Ok(PortKind::Vpn));
        assert_eq!(kind_of("internal", &[]), Ok(PortKind::Internal));
        let e = kind_of("gre", &[]).unwrap_err();
        assert_eq!(e, Unsupported::IfaceType("gre".into()));
        assert_eq!(e.to_string(), "interface type \"gre\" is not supported by rvswitch");
        let e = kind_of("vxlan", &[]).unwrap_err();
        assert_eq!(e.to_string(), "vxlan interface needs options:remote_ip");
        let opts = [("remote_ip".to_string(), "198.18.0.2".to_string()), ("key".into(), "100".into())];
        let Ok(PortKind::Tunnel(t)) = kind_of("geneve", &opts) else { panic!("geneve refused") };
        assert_eq!((t.vni, t.dst_port), (100, 6081));
        let e = vlan_of(None, &[], Some("dot1q-tunnel")).unwrap_err();
        assert_eq!(e.to_string(), "vlan_mode dot1q-tunnel is not supported by rvswitch");
    }
}
