//! Desired state: what the running datapath should look like, independent of where it came from
//! (today the TOML file; the OVSDB issue adds the Open_vSwitch tables as a second source).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use gateway::Prefix;
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
    /// A zone's gateway with its WireGuard uplink (Interface `type=rvswitch-vpn`): no kernel
    /// device; frames become IP packets in a boringtun tunnel over a UDP socket.
    #[serde(rename = "rvswitch-vpn")]
    Vpn,
}

impl PortKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            PortKind::System => "system",
            PortKind::Tap => "tap",
            PortKind::Internal => "internal",
            PortKind::Tunnel(t) => t.proto.as_str(),
            PortKind::Vpn => "rvswitch-vpn",
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
    /// The gateway and tunnel of a [`PortKind::Vpn`] port (Interface `options`); None otherwise.
    pub vpn: Option<VpnOptions>,
}

/// What a VPN gateway port is configured with (Interface `options:wireguard` or `tun`,
/// `subnet`, `gateway`). The wg-quick file is read when the port opens, so a bad file shows in
/// the Interface's `error` column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpnOptions {
    pub uplink: VpnUplink,
    /// The zone's subnet: the VMs' addresses, routed by the office to us.
    pub subnet: Prefix,
    /// The address the zone's VMs use as their gateway.
    pub gateway: Ipv4Addr,
    /// `options:subnet6` and `options:gateway6`: routed IPv6 (None: the zone drops IPv6).
    pub v6: Option<gateway::GatewayV6>,
    /// `options:nat=true`: the VMs leave as the wg-quick file's [Interface] Address.
    pub nat: bool,
    /// `options:dhcp_range` (and `dhcp_static`): the zone's DHCP server.
    pub dhcp: Option<DhcpOptions>,
}

/// Where a gateway port's tunnel is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VpnUplink {
    /// `options:wireguard=PATH`: the built-in WireGuard, configured by that wg-quick file.
    WireGuard(PathBuf),
    /// `options:tun=DEV`: an existing L3 device another VPN client holds (OpenVPN's tun0).
    Tun(String),
}

/// The zone DHCP server's settings from the Interface options; the rest (router, MTU, and
/// DNS unless `dns` names servers) comes from the gateway and the wg-quick file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpOptions {
    /// `options:dhcp_range=FIRST-LAST`, inclusive.
    pub range: (Ipv4Addr, Ipv4Addr),
    /// `options:dhcp_static=MAC=IP,...`: the zones file's `[[vm]] ip`s.
    pub statics: Vec<(packet::MacAddr, Ipv4Addr)>,
    /// `options:dhcp_dns=IP,...` (the zones file's `dhcp.dns`): the IPv4 DNS servers offered;
    /// empty: the wg-quick file's `DNS` line (a tun uplink has none).
    pub dns: Vec<Ipv4Addr>,
    /// The IPv6 ones of `options:dhcp_dns`: the RAs name them (RDNSS, RFC 8106). When both
    /// lists are empty, the wg-quick file's `DNS` line supplies both families.
    pub dns6: Vec<std::net::Ipv6Addr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredBridge {
    pub name: String,
    pub settings: BridgeSettings,
    /// The bridge's internal port comes first.
    pub ports: Vec<DesiredPort>,
    /// Port mirrors (OvS Mirror rows of Bridge `mirrors`) that take effect; see [`DesiredMirror`].
    pub mirrors: Vec<DesiredMirror>,
}

/// A mirror the switch runs: ports by name (the bridge's own ports only; a name the bridge
/// does not have selects nothing), `output` always set (a mirror without an output port does
/// nothing and is left out by the planner).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredMirror {
    /// The Mirror row's UUID (where its `statistics` go).
    pub uuid: String,
    pub name: String,
    pub select_all: bool,
    pub src: Vec<String>,
    pub dst: Vec<String>,
    /// Empty: every VLAN.
    pub vlans: Vec<u16>,
    pub output: String,
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
