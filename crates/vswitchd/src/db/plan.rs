//! From the Open_vSwitch tables to the switch's desired state, with Open vSwitch's meaning of each
//! column. Rows that ask for something rvswitch cannot do are not silently dropped: they come
//! back as `rejected`, and the reason lands in the Interface's `error` column.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use gateway::Prefix;

use switch::{BridgeSettings, PortVlan, VlanConfigError, VlanMode};

use super::scope::Scope;
use super::security::{security_of, with_zone_ips};
use super::snapshot::{BridgeRow, Snapshot};
use crate::config::check_ifname;
use crate::state::{DesiredBridge, DesiredPort, DesiredState, DhcpOptions, PortKind, VpnOptions, VpnUplink};
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

/// A VPN gateway port's `options`: `wireguard` (the wg-quick file) or `tun` (a device),
/// `subnet`, `gateway`.
fn vpn_of(options: &[(String, String)]) -> Result<VpnOptions, String> {
    let get = |k: &str| {
        options
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .ok_or(format!("options:{k} is missing"))
    };
    let opt = |k: &str| options.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let uplink = uplink_of(opt("wireguard"), opt("tun"))?;
    let subnet: Prefix = get("subnet")?.parse().map_err(|e| format!("options:subnet: {e}"))?;
    let gateway: Ipv4Addr =
        get("gateway")?.parse().map_err(|_| "options:gateway must be an IPv4 address".to_string())?;
    if !subnet.addr().is_ipv4() || !subnet.contains(gateway.into()) {
        return Err(format!("options:gateway {gateway} is not in options:subnet {subnet}"));
    }
    let nat = match opt("nat") {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => return Err(format!("options:nat {v:?} must be true or false")),
    };
    let dhcp = match opt("dhcp_range") {
        None => None,
        Some(r) => Some(DhcpOptions { range: dhcp_range(r)?, statics: dhcp_statics(opt("dhcp_static"))? }),
    };
    Ok(VpnOptions { uplink, subnet, gateway, nat, dhcp })
}

/// Exactly one of `options:wireguard` (an absolute path) and `options:tun` (an interface
/// name): a zone has one tunnel.
fn uplink_of(wireguard: Option<&str>, tun: Option<&str>) -> Result<VpnUplink, String> {
    match (wireguard, tun) {
        (Some(wg), None) if wg.starts_with('/') => Ok(VpnUplink::WireGuard(wg.into())),
        (Some(wg), None) => Err(format!("options:wireguard {wg:?} must be an absolute path")),
        (None, Some(dev)) => match netdev::IfName::new(dev) {
            Ok(_) => Ok(VpnUplink::Tun(dev.to_string())),
            Err(e) => Err(format!("options:tun {dev:?}: {e}")),
        },
        (Some(_), Some(_)) => {
            Err("options:wireguard and options:tun exclude each other: one tunnel per zone".into())
        }
        (None, None) => Err("options:wireguard or options:tun is missing".into()),
    }
}

/// `FIRST-LAST`, two IPv4 addresses.
fn dhcp_range(r: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let bad = || format!("options:dhcp_range {r:?} must be FIRST-LAST, two IPv4 addresses");
    let (a, b) = r.split_once('-').ok_or_else(bad)?;
    let first = a.trim().parse().map_err(|_| bad())?;
    let last = b.trim().parse().map_err(|_| bad())?;
    l3::dhcp::check_range(first, last).map_err(|e| format!("options:dhcp_range: {e}"))?;
    Ok((first, last))
}

/// `MAC=IP,MAC=IP`; empty or absent: none.
fn dhcp_statics(s: Option<&str>) -> Result<Vec<(packet::MacAddr, Ipv4Addr)>, String> {
    let entries = s.unwrap_or("").split(',').map(str::trim).filter(|e| !e.is_empty());
    entries
        .map(|e| {
            let bad = || format!("options:dhcp_static entry {e:?} must be MAC=IPv4");
            let (mac, ip) = e.split_once('=').ok_or_else(bad)?;
            Ok((mac.parse().map_err(|_| bad())?, ip.parse().map_err(|_| bad())?))
        })
        .collect()
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
        bridges.push(DesiredBridge { name: b.name.clone(), settings: settings_of(b), ports });
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
    fn vpn_options() {
        let o = |kv: &[(&str, &str)]| -> Vec<(String, String)> {
            kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let good = [
            ("wireguard", "/etc/rvswitch/office.conf"),
            ("subnet", "198.18.0.0/24"),
            ("gateway", "198.18.0.1"),
        ];
        let v = vpn_of(&o(&good)).unwrap();
        assert_eq!(v.gateway, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(v.uplink, VpnUplink::WireGuard("/etc/rvswitch/office.conf".into()));
        assert_eq!(vpn_of(&o(&good[1..])).unwrap_err(), "options:wireguard or options:tun is missing");
        let mut outside = good;
        outside[2].1 = "198.19.0.1";
        assert!(vpn_of(&o(&outside)).unwrap_err().contains("not in options:subnet"));
        let mut relative = good;
        relative[0].1 = "office.conf";
        assert!(vpn_of(&o(&relative)).unwrap_err().contains("absolute path"));
        let mut tun = good;
        tun[0] = ("tun", "tun0");
        assert_eq!(vpn_of(&o(&tun)).unwrap().uplink, VpnUplink::Tun("tun0".into()));
        tun[0].1 = "tun/0";
        assert!(vpn_of(&o(&tun)).unwrap_err().starts_with("options:tun \"tun/0\""));
        let both = [&good[..], &[("tun", "tun0")]].concat();
        assert!(vpn_of(&o(&both)).unwrap_err().contains("exclude each other"));
        assert_eq!(kind_of("rvswitch-vpn", &[]), Ok(PortKind::Vpn));
    }

    #[test]
    fn interface_types() {
        assert_eq!(kind_of("", &[]), Ok(PortKind::System));
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
