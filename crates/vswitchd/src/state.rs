//! Desired state: what the running datapath should look like, independent of where it came from
//! (today the TOML file; the OVSDB issue adds the Open_vSwitch tables as a second source).

use netdev::TunnelConfig;
use serde::Deserialize;
use switch::{BridgeSettings, PortSecurity, PortVlan};

/// OvS Interface `type`s we implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortKind {
    /// An existing netdev, attached with AF_PACKET (OvS's `""`/`system`).
    System,
    /// A tap device rvswitchd creates.
    Tap,
    /// The host stack's leg on the bridge (a tap named like the port).
    Internal,
    /// A VXLAN or Geneve tunnel to one remote (OvS's `vxlan` / `geneve` with their options).
    /// Only the database configures these.
    #[serde(skip)]
    Tunnel(TunnelConfig),
}

impl PortKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            PortKind::System => "system",
            PortKind::Tap => "tap",
            PortKind::Internal => "internal",
            PortKind::Tunnel(t) => t.proto.as_str(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredPort {
    pub name: String,
    pub kind: PortKind,
    pub vlan: PortVlan,
    /// From Interface `external_ids:attached-mac` and `other_config` (off for file ports).
    pub security: PortSecurity,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredBridge {
    pub name: String,
    pub settings: BridgeSettings,
    /// The bridge's internal port comes first.
    pub ports: Vec<DesiredPort>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub bridges: Vec<DesiredBridge>,
}

impl DesiredState {
    pub fn ports(&self) -> impl Iterator<Item = (&DesiredBridge, &DesiredPort)> {
        self.bridges.iter().flat_map(|b| b.ports.iter().map(move |p| (b, p)))
    }
}
