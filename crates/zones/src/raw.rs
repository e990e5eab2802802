//! The zones file as TOML gives it, every value with its byte span so that validation can point
//! at it. Only shape is checked here (types, unknown keys); meaning is `validate`'s job.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    #[serde(default)]
    pub(crate) naming: Option<RawNaming>,
    #[serde(default)]
    pub(crate) zone: Vec<RawZone>,
    #[serde(default)]
    pub(crate) vm: Vec<RawVm>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNaming {
    pub(crate) bridge: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawZone {
    pub(crate) name: Spanned<String>,
    pub(crate) description: Option<Spanned<String>>,
    pub(crate) bridge: Option<Spanned<String>>,
    pub(crate) uplink: Option<Spanned<RawUplink>>,
    /// A VPN zone's subnet (the VMs' addresses) and gateway address.
    pub(crate) subnet: Option<Spanned<String>>,
    pub(crate) gateway: Option<Spanned<String>>,
    /// Its routed IPv6, optional (crate::vpn6).
    pub(crate) subnet6: Option<Spanned<String>>,
    pub(crate) gateway6: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) portgroup: Vec<RawPortgroup>,
    /// Underlay addresses of the other hosts this zone stretches to (VXLAN).
    #[serde(default)]
    pub(crate) peers: Vec<Spanned<String>>,
    /// This host's underlay address (OvS `options:local_ip`); None: the route's.
    pub(crate) local_ip: Option<Spanned<String>>,
    /// `nat = true`: the zone's IP services (crate::services).
    pub(crate) nat: Option<Spanned<bool>>,
    /// `dhcp = { range = [...] }` (crate::services).
    pub(crate) dhcp: Option<crate::services::RawDhcp>,
}

/// `{ nic = "eth1" }`, `{ wireguard = "/etc/rvswitch/office.conf" }` or `{ tun = "tun0" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUplink {
    pub(crate) nic: Option<Spanned<String>>,
    pub(crate) wireguard: Option<Spanned<String>>,
    pub(crate) tun: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPortgroup {
    pub(crate) name: Spanned<String>,
    pub(crate) vlan: Spanned<i64>,
    pub(crate) default: Option<Spanned<bool>>,
    /// The VXLAN network identifier this VLAN is carried as to the zone's peers.
    pub(crate) vni: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVm {
    pub(crate) name: Spanned<String>,
    pub(crate) zone: Spanned<String>,
    pub(crate) portgroup: Option<Spanned<String>>,
    pub(crate) mac: Spanned<String>,
    /// The VM's fixed address: its static DHCP lease (crate::services).
    pub(crate) ip: Option<Spanned<String>>,
    /// Addresses or prefixes the VM may use (port security's allowed IPs).
    #[serde(default)]
    pub(crate) ips: Vec<Spanned<String>>,
}
