//! What `rvsctl security show` prints: per port its mode, allowed MACs and the addresses it is
//! bound to, each with where the binding came from and, for a lease, how long it has left.

use serde::{Deserialize, Serialize};

use super::bindings::LeaseEntry;
use super::config::IpPrefix;
use crate::PortSpec;

/// Where a binding came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindingSource {
    /// `other_config:allowed-ips`.
    Static,
    /// The zones file's `ips` for the VM's MAC.
    Zones,
    /// A DHCPACK or DHCPv6 REPLY snooped from a trusted port.
    Dhcp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingEntry {
    /// An address or prefix (`198.18.0.5/32`, `2001:db8::/64`).
    pub address: String,
    pub source: BindingSource,
    /// Seconds left of a lease; `None` for static bindings and infinite leases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

/// One port's security, as configured and as bound at the moment of asking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSecurityEntry {
    pub port: String,
    /// `on`, `mac` or `off`.
    pub mode: String,
    pub macs: Vec<String>,
    pub trusted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_limit: Option<usize>,
    pub bindings: Vec<BindingEntry>,
}

/// The report for `ports`, given the live leases.
pub(crate) fn report(ports: &[PortSpec], leases: &[LeaseEntry]) -> Vec<PortSecurityEntry> {
    ports.iter().map(|p| entry(p, leases)).collect()
}

fn entry(p: &PortSpec, leases: &[LeaseEntry]) -> PortSecurityEntry {
    let sec = &p.security;
    let configured = sec.ips.iter().map(|ip| BindingEntry {
        address: ip.to_string(),
        source: if sec.from_zones.contains(ip) { BindingSource::Zones } else { BindingSource::Static },
        expires_in: None,
    });
    let leased =
        leases.iter().filter(|l| sec.checks_l2() && sec.macs.contains(&l.mac)).map(|l| BindingEntry {
            address: IpPrefix::host(l.ip).to_string(),
            source: BindingSource::Dhcp,
            expires_in: (l.remaining_ms != u64::MAX).then(|| l.remaining_ms.div_ceil(1000)),
        });
    PortSecurityEntry {
        port: p.name.clone(),
        mode: sec.mode.to_string(),
        macs: sec.macs.iter().map(|m| m.to_string()).collect(),
        trusted: sec.trusted,
        mac_limit: sec.mac_limit,
        bindings: configured.chain(leased).collect(),
    }
}
