//! What the database should hold for a validated zones file: per zone one bridge with an
//! internal port of the same name and, optionally, a NIC uplink trunking the zone's VLANs.
//! A VPN zone's internal port carries none of the zone's VLANs ([`HOST_ONLY_VLAN`]).
//! Every row carries `external_ids:rvswitch-zone=ZONE` so that later plans know what zones
//! created (and may change or remove) and what belongs to someone else.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::live::{Map, DESCRIPTION_KEY, PORTGROUPS_KEY, RELEASED_KEY, ROLE_KEY, VM_IPS_KEY, ZONE_KEY};
use crate::model::{tunnel_port_name, IpNet, Mac, Model, Uplink, Zone};

/// The `external_ids` keys zones owns; all other keys of a row are left as they are.
pub const OUR_KEYS: [&str; 6] =
    [ZONE_KEY, PORTGROUPS_KEY, DESCRIPTION_KEY, ROLE_KEY, RELEASED_KEY, VM_IPS_KEY];

/// The rows of one zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredZone {
    /// Zone name.
    pub zone: String,
    /// Bridge name (also its internal port's and interface's).
    pub bridge: String,
    /// Becomes `rvswitch-description` on the bridge and its internal interface; the CLI
    /// writes it to the internal port's ifalias (OVSDB has no ifalias column).
    pub description: String,
    /// `(portgroup, VLAN)`, in file order.
    pub portgroups: Vec<(String, u16)>,
    /// The internal port's VLAN columns: trunk of all VLANs (as OvS makes it), or, in a VPN
    /// zone, an access port of [`HOST_ONLY_VLAN`].
    pub internal: VlanCols,
    /// The NIC uplink.
    pub uplink: Option<DesiredUplink>,
    /// `(MAC, allowed addresses)` of the zone's VMs that list `ips`, in file order.
    pub vm_ips: Vec<(Mac, Vec<IpNet>)>,
    /// VXLAN ports to the zone's peers, by name.
    pub tunnels: Vec<DesiredTunnel>,
}

/// A VXLAN port of a zone: one portgroup (VLAN, as an access port) to one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredTunnel {
    /// Port and interface name ([`tunnel_port_name`]).
    pub name: String,
    /// The portgroup's VLAN (the port's `tag`).
    pub vlan: u16,
    /// Interface `options`: `remote_ip`, `key` (the VNI), `local_ip` if the zone pins it.
    pub options: Map,
}

impl DesiredTunnel {
    /// Its VLAN columns: an access port of the portgroup's VLAN.
    pub fn vlans(&self) -> VlanCols {
        VlanCols { vlan_mode: Some("access".into()), tag: Some(self.vlan), trunks: vec![] }
    }
}

/// The VLAN of a VPN zone's internal port. IEEE 802.1Q reserves VID 4095 and portgroups are
/// 1..=4094 (validation), so no VM port of a zone is ever on it: the host's IP stack (the
/// internal device) hears none of the zone's frames, not even a VM's ARP or DHCP broadcast —
/// the kill switch holds on layer 2 too, by construction. `zones verify` checks it.
pub const HOST_ONLY_VLAN: u16 = 4095;

/// The internal port's VLAN columns for zone `z` (see [`DesiredZone::internal`]).
fn internal_vlans(z: &Zone) -> VlanCols {
    match z.uplink.as_ref().and_then(|u| u.vpn.as_ref()) {
        Some(_) => VlanCols { vlan_mode: Some("access".into()), tag: Some(HOST_ONLY_VLAN), trunks: vec![] },
        None => VlanCols { vlan_mode: None, tag: None, trunks: vec![] },
    }
}

/// Interface `type` of the zones' tunnel ports.
pub const TUNNEL_TYPE: &str = "vxlan";

fn tunnels(z: &Zone) -> Vec<DesiredTunnel> {
    let mut out = Vec::new();
    for pg in &z.portgroups {
        let Some(vni) = pg.vni else { continue };
        for peer in &z.peers {
            let mut options: Map =
                [("remote_ip".into(), peer.to_string()), ("key".into(), vni.to_string())].into();
            if let Some(l) = z.local_ip {
                options.insert("local_ip".into(), l.to_string());
            }
            out.push(DesiredTunnel { name: tunnel_port_name(&z.name, vni, *peer), vlan: pg.vlan, options });
        }
    }
    out
}

/// An uplink port: a NIC, or a VPN gateway port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredUplink {
    /// NIC name (port and interface), or the gateway port's.
    pub nic: String,
    /// Its VLAN columns.
    pub vlans: VlanCols,
    /// Interface `type`: "" (a NIC) or `rvswitch-vpn`.
    pub kind: String,
    /// Interface `options` (a VPN port's `wireguard` or `tun`, `subnet`, `gateway`).
    pub options: Map,
}

/// A port's `vlan_mode`, `tag` and `trunks` columns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VlanCols {
    /// `vlan_mode`.
    pub vlan_mode: Option<String>,
    /// `tag`.
    pub tag: Option<u16>,
    /// `trunks`, ascending.
    pub trunks: Vec<u16>,
}

impl std::fmt::Display for VlanCols {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t: Vec<String> = self.trunks.iter().map(u16::to_string).collect();
        let tag = self.tag.map_or_else(|| "none".to_string(), |t| t.to_string());
        write!(
            f,
            "vlan_mode={} tag={tag} trunks=[{}]",
            self.vlan_mode.as_deref().unwrap_or("default"),
            t.join(",")
        )
    }
}

/// Which of a zone's ports a row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The bridge's own internal port.
    Internal,
    /// The NIC uplink.
    Uplink,
    /// A VXLAN port to a peer host.
    Tunnel,
}

impl Role {
    /// The `rvswitch-role` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Internal => "internal",
            Role::Uplink => "uplink",
            Role::Tunnel => "tunnel",
        }
    }
}

/// The desired rows for every zone of the model.
pub fn desired(model: &Model) -> Vec<DesiredZone> {
    model
        .zones
        .iter()
        .map(|z| DesiredZone {
            zone: z.name.clone(),
            bridge: z.bridge.clone(),
            description: z.description.clone(),
            portgroups: z.portgroups.iter().map(|p| (p.name.clone(), p.vlan)).collect(),
            internal: internal_vlans(z),
            uplink: z.uplink.as_ref().map(|u| desired_uplink(z, u, &model.vms)),
            vm_ips: model
                .vms
                .iter()
                .filter(|v| v.zone == z.name && !v.ips.is_empty())
                .map(|v| (v.mac, v.ips.clone()))
                .collect(),
            tunnels: tunnels(z),
        })
        .collect()
}

/// A NIC trunks the zone's VLANs (VLAN 0 untagged in an untagged zone); a VPN gateway port
/// is an access port on the default portgroup's VLAN, where the VMs it routes for are.
fn desired_uplink(z: &Zone, u: &Uplink, vms: &[crate::model::Vm]) -> DesiredUplink {
    let access = |tag: u16| VlanCols { vlan_mode: Some("access".into()), tag: Some(tag), trunks: vec![] };
    let Some(v) = &u.vpn else {
        let vlans = z.vlans();
        let vlans = if vlans.is_empty() {
            access(0)
        } else {
            VlanCols { vlan_mode: Some("trunk".into()), tag: None, trunks: vlans }
        };
        return DesiredUplink { nic: u.nic.clone(), vlans, kind: String::new(), options: Map::new() };
    };
    let mut options: Map = [v.tunnel.option(), ("subnet", &v.subnet), ("gateway", &v.gateway)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some((subnet6, gateway6)) = &v.v6 {
        options.insert("subnet6".into(), subnet6.clone());
        options.insert("gateway6".into(), gateway6.clone());
    }
    options.extend(service_options(z, vms));
    let tag = z.default_portgroup().map_or(0, |p| p.vlan);
    DesiredUplink { nic: u.nic.clone(), vlans: access(tag), kind: "rvswitch-vpn".into(), options }
}

/// The gateway's IP services as Interface options: `nat=true`, `dhcp_range=FIRST-LAST`,
/// `dhcp_static=MAC=IP,...` (the zone's VMs with an `ip`, their static leases) and
/// `dhcp_dns=IP,...` (the DNS servers offered: IPv4 ones first, by DHCP, then IPv6 ones, by
/// the RAs). One key for both families, not a second `ra_dns`: it mirrors the zones file's one
/// `dhcp.dns` list (one limit, one override of the tunnel's), an IPv4-only list stays exactly
/// as it was, and a daemon too old for IPv6 refuses the port naming the entry instead of
/// ignoring an unknown key and leaving the VMs without the resolver.
fn service_options(z: &Zone, vms: &[crate::model::Vm]) -> Map {
    let mut m = Map::new();
    if z.services.nat {
        m.insert("nat".into(), "true".into());
    }
    if let Some(r) = z.services.dhcp {
        m.insert("dhcp_range".into(), format!("{}-{}", r.first, r.last));
        let statics: Vec<String> = vms
            .iter()
            .filter(|v| v.zone == z.name)
            .filter_map(|v| Some(format!("{}={}", v.mac, v.ip?)))
            .collect();
        if !statics.is_empty() {
            m.insert("dhcp_static".into(), statics.join(","));
        }
        let v4 = z.services.dns.iter().map(Ipv4Addr::to_string);
        let dns: Vec<String> = v4.chain(z.services.dns6.iter().map(Ipv6Addr::to_string)).collect();
        if !dns.is_empty() {
            m.insert("dhcp_dns".into(), dns.join(","));
        }
    }
    m
}

impl DesiredZone {
    /// The bridge's marks.
    pub fn bridge_marks(&self) -> Map {
        let mut m = self.marks(&[(PORTGROUPS_KEY, encode_portgroups(&self.portgroups))]);
        if !self.description.is_empty() {
            m.insert(DESCRIPTION_KEY.into(), self.description.clone());
        }
        if !self.vm_ips.is_empty() {
            m.insert(VM_IPS_KEY.into(), encode_vm_ips(&self.vm_ips));
        }
        m
    }

    /// A port's marks.
    pub fn port_marks(&self, role: Role) -> Map {
        self.marks(&[(ROLE_KEY, role.as_str().to_string())])
    }

    /// An interface's marks (the internal one carries the description).
    pub fn interface_marks(&self, role: Role) -> Map {
        let mut m = self.marks(&[]);
        if role == Role::Internal && !self.description.is_empty() {
            m.insert(DESCRIPTION_KEY.into(), self.description.clone());
        }
        m
    }

    fn marks(&self, extra: &[(&str, String)]) -> Map {
        let mut m = Map::new();
        m.insert(ZONE_KEY.into(), self.zone.clone());
        m.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        m
    }
}

/// The subset of `external_ids` that zones owns.
pub fn our_marks(ids: &Map) -> Map {
    ids.iter().filter(|(k, _)| OUR_KEYS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// `name=vlan,name=vlan`: how a bridge records its zone's portgroups, so that `verify` and
/// `show` work from the database alone.
pub fn encode_portgroups(pgs: &[(String, u16)]) -> String {
    pgs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(",")
}

/// `mac=ip/len,ip/len;mac=…`: a bridge's [`VM_IPS_KEY`].
pub fn encode_vm_ips(vms: &[(Mac, Vec<IpNet>)]) -> String {
    let one = |(mac, ips): &(Mac, Vec<IpNet>)| {
        format!("{mac}={}", ips.iter().map(IpNet::to_string).collect::<Vec<_>>().join(","))
    };
    vms.iter().map(one).collect::<Vec<_>>().join(";")
}

/// The addresses [`encode_vm_ips`] lists for `mac` (comma-separated, as
/// `other_config:allowed-ips` takes them); `None` when the MAC is not listed.
pub fn vm_ips_for(encoded: &str, mac: Mac) -> Option<&str> {
    encoded
        .split(';')
        .filter_map(|e| e.split_once('='))
        .find(|(m, _)| Mac::parse(m) == Some(mac))
        .map(|(_, ips)| ips)
}

/// The inverse of [`encode_portgroups`]; malformed entries are skipped.
pub fn decode_portgroups(s: &str) -> Vec<(String, u16)> {
    s.split(',')
        .filter_map(|e| e.rsplit_once('='))
        .filter_map(|(n, v)| Some((n.to_string(), v.parse().ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portgroups_round_trip_and_survive_garbage() {
        let pgs = vec![("vlan-10".to_string(), 10), ("guest".to_string(), 20)];
        assert_eq!(encode_portgroups(&pgs), "vlan-10=10,guest=20");
        assert_eq!(decode_portgroups("vlan-10=10,guest=20"), pgs);
        assert_eq!(decode_portgroups("x,=,a=b,c=5"), vec![("c".to_string(), 5)]);
    }

    #[test]
    fn vm_ips_reach_the_bridge_by_mac() {
        let m = crate::parse(
            "[[zone]]\nname = \"a\"\n[[zone]]\nname = \"b\"\n\
             [[vm]]\nname = \"v1\"\nzone = \"a\"\nmac = \"52:54:00:00:00:01\"\nips = [\"198.18.0.5\", \"2001:db8::/64\"]\n\
             [[vm]]\nname = \"v2\"\nzone = \"a\"\nmac = \"52:54:00:00:00:02\"\n\
             [[vm]]\nname = \"v3\"\nzone = \"b\"\nmac = \"52:54:00:00:00:03\"\nips = [\"198.18.1.7\"]\n",
            "z",
        )
        .unwrap();
        let d = desired(&m);
        let a = d[0].bridge_marks();
        let enc = a.get(VM_IPS_KEY).expect("zone a lists v1's addresses");
        assert_eq!(enc, "52:54:00:00:00:01=198.18.0.5/32,2001:db8::/64", "v2 lists none, v3 is zone b's");
        assert_eq!(vm_ips_for(enc, Mac([0x52, 0x54, 0, 0, 0, 1])), Some("198.18.0.5/32,2001:db8::/64"));
        assert_eq!(vm_ips_for(enc, Mac([0x52, 0x54, 0, 0, 0, 2])), None);
        assert_eq!(d[1].bridge_marks().get(VM_IPS_KEY).unwrap(), "52:54:00:00:00:03=198.18.1.7/32");
        let none = desired(&crate::parse("[[zone]]\nname = \"c\"\n", "z").unwrap());
        assert!(!none[0].bridge_marks().contains_key(VM_IPS_KEY), "no key without addresses");
    }

    #[test]
    fn untagged_zone_uplink_is_access_vlan_0_and_tagged_is_a_trunk_of_its_vlans() {
        let m = crate::parse(
            "[[zone]]\nname = \"a\"\nuplink = { nic = \"eth1\" }\n[[zone]]\nname = \"b\"\nuplink = { nic = \"eth2\" }\n\
             [[zone.portgroup]]\nname = \"x\"\nvlan = 20\ndefault = true\n[[zone.portgroup]]\nname = \"y\"\nvlan = 10\n",
            "z",
        )
        .unwrap();
        let d = desired(&m);
        assert_eq!(d[0].uplink.as_ref().unwrap().vlans.to_string(), "vlan_mode=access tag=0 trunks=[]");
        assert_eq!(
            d[1].uplink.as_ref().unwrap().vlans.to_string(),
            "vlan_mode=trunk tag=none trunks=[10,20]"
        );
        assert_eq!(d[1].bridge_marks().get(PORTGROUPS_KEY).unwrap(), "x=20,y=10");
    }
}
