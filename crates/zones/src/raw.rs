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
    pub(crate) uplink: Option<RawUplink>,
    #[serde(default)]
    pub(crate) portgroup: Vec<RawPortgroup>,
    /// Underlay addresses of the other hosts this zone stretches to (VXLAN).
    #[serde(default)]
    pub(crate) peers: Vec<Spanned<String>>,
    /// This host's underlay address (OvS `options:local_ip`); None: the route's.
    pub(crate) local_ip: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUplink {
    pub(crate) nic: Spanned<String>,
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
}
