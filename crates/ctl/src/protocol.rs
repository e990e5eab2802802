//! Requests and replies of the control socket.

use serde::{Deserialize, Serialize};
pub use switch::{BindingEntry, BindingSource, CounterSnapshot, FdbEntry, PortSecurityEntry, Trace};

/// Longest request or reply line either end accepts; longer input is refused, not buffered.
pub const MAX_LINE: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    /// Bridges, ports, VLAN settings, link state and counters; mirrors; a VPN port's tunnel
    /// and MTU.
    Show,
    /// The MAC table of one bridge.
    FdbShow { bridge: String },
    /// Port security of one bridge's ports (every bridge when `bridge` is absent): mode,
    /// allowed MACs, bindings with their source and lease expiry.
    SecurityShow {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bridge: Option<String>,
    },
    /// Re-read the config file and apply the difference.
    Reload,
    /// Explain what the switch would do with a frame (hex) arriving on `in_port`; changes nothing.
    /// `in_port` is a port name or an OpenFlow port number. Replies a [`Trace`].
    Trace { bridge: String, in_port: String, frame: String },
    /// Recent events with sequence number `from` or later (0: all the daemon still holds). When
    /// there are none yet, waits up to `wait_ms` (at most [`MAX_EVENT_WAIT_MS`]) for one, so a
    /// follower long-polls instead of spinning. Replies an [`EventsReply`].
    Events {
        #[serde(default)]
        from: u64,
        #[serde(default)]
        wait_ms: u64,
    },
}

/// Longest an `events` request waits for news (well within the socket's idle timeout).
pub const MAX_EVENT_WAIT_MS: u64 = 10_000;

/// Something that happened on a port, as `rvsctl events` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Increases by one per event; a follower asks for `last seq + 1`.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub bridge: String,
    pub port: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EventKind {
    /// The port's link came up (device attached and carrier on).
    PortUp,
    /// The port's link went down (carrier lost, device gone).
    PortDown,
    /// A learned address was seen on `port`, having been on `from_port`.
    MacMove { mac: String, vlan: u16, from_port: String },
    /// The VPN port's tunnel came up (a session and the peer answers); `endpoint` is the peer.
    VpnUp { endpoint: String },
    /// The VPN port's tunnel went down (the kill switch holds); `endpoint` is the peer as last
    /// heard from.
    VpnDown { endpoint: String },
    /// Port security dropped a frame from `port`. `suppressed`: further drops on the port
    /// since the previous such event that the rate limit folded into this one.
    SecurityDrop {
        reason: String,
        mac: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ip: Option<String>,
        suppressed: u64,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsReply {
    pub events: Vec<Event>,
    /// The `from` of the next request: one past the last event the daemon has.
    pub next: u64,
    /// Events asked for that the daemon no longer holds (its ring is bounded).
    pub missed: u64,
    /// Events the forwarding thread could not hand over (queue full) since the start.
    pub dropped: u64,
}

/// A reply: `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    pub fn success<T: Serialize>(value: &T) -> Reply {
        match serde_json::to_value(value) {
            Ok(v) => Reply { ok: true, result: Some(v), error: None },
            Err(e) => Reply::failure(format!("cannot encode reply: {e}")),
        }
    }

    pub fn failure(error: impl Into<String>) -> Reply {
        Reply { ok: false, result: None, error: Some(error.into()) }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShowReply {
    pub config_file: Option<String>,
    pub bridges: Vec<BridgeStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeStatus {
    pub name: String,
    pub mac_aging_time: u64,
    pub mac_table_size: usize,
    pub ports: Vec<PortStatus>,
    /// The mirrors the bridge runs (a Mirror row that has no effect, e.g. without an output
    /// port, is not among them); absent from older daemons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<MirrorStatus>,
}

/// A running port mirror, with the Mirror table's column names: what it selects, where the
/// copies go, and its `statistics`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorStatus {
    pub name: String,
    pub select_all: bool,
    /// Ports whose received frames are copied (by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select_src_port: Vec<String>,
    /// Ports whose sent frames are copied (by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select_dst_port: Vec<String>,
    /// Only frames in these VLANs; empty: every VLAN.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select_vlan: Vec<u16>,
    pub output_port: String,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatus {
    pub name: String,
    /// `system`, `tap` or `internal`.
    #[serde(rename = "type")]
    pub kind: String,
    pub vlan_mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<u16>,
    /// Explicit trunk list; empty on a trunk means all VLANs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trunks: Vec<u16>,
    /// `up` or `down`.
    pub link_state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub statistics: CounterSnapshot,
    /// A VPN gateway port's tunnel (type `rvswitch-vpn` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpn: Option<VpnStatus>,
}

/// A zone's VPN uplink as the daemon last saw it (refreshed every 250 ms).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpnStatus {
    /// What carries the tunnel: `tun` (a VPN client's device); `wireguard` or absent (older
    /// daemons): the built-in WireGuard.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub transport: String,
    /// `up` (a current session and the peer answers) or `down` (the kill switch holds).
    pub state: String,
    /// Where the peer is (host:port as last heard from, or as configured); a tun uplink's
    /// device name.
    pub endpoint: String,
    /// Seconds since the last completed handshake; None: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handshake_secs: Option<u64>,
    /// Payload bytes received from / sent into the tunnel.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Datagrams at the WireGuard port that did not authenticate (garbage, truncated,
    /// replayed, an unknown peer).
    pub bad_datagrams: u64,
    /// Packets the gateway dropped, by reason (`vpn-down`, `no-route`...), zeros left out.
    pub drops: std::collections::BTreeMap<String, u64>,
    /// What the zone's IP services did (`dhcp-offered`, `nat-active`...; gateway's
    /// `DHCP_COUNTERS` and `NAT_COUNTERS`), only for the services the zone runs.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub services: std::collections::BTreeMap<String, u64>,
    /// The MTU the zone follows (fragmentation, ICMP errors, MSS clamp, DHCP option 26): a
    /// tun uplink's device MTU as last read (every 250 ms), WireGuard's configured one.
    /// Absent from older daemons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdbReply {
    pub bridge: String,
    pub entries: Vec<FdbEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityReply {
    pub bridges: Vec<BridgeSecurity>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeSecurity {
    pub bridge: String,
    pub ports: Vec<PortSecurityEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReply {
    /// One line per change applied (`added port vnet1 to br-intranet`, ...); empty if none.
    pub changes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_is_stable() {
        assert_eq!(serde_json::to_string(&Request::Show).unwrap(), r#"{"cmd":"show"}"#);
        assert_eq!(
            serde_json::to_string(&Request::FdbShow { bridge: "br0".into() }).unwrap(),
            r#"{"cmd":"fdb-show","bridge":"br0"}"#
        );
        let r: Request = serde_json::from_str(r#"{"cmd":"events"}"#).unwrap();
        assert_eq!(r, Request::Events { from: 0, wait_ms: 0 });
        let e = Event {
            seq: 3,
            time_ms: 9,
            bridge: "br0".into(),
            port: "vnet0".into(),
            kind: EventKind::MacMove { mac: "52:54:00:00:00:01".into(), vlan: 10, from_port: "vnet1".into() },
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"seq":3,"time_ms":9,"bridge":"br0","port":"vnet0","kind":"mac-move","mac":"52:54:00:00:00:01","vlan":10,"from_port":"vnet1"}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&serde_json::to_string(&e).unwrap()).unwrap(), e);
        let r: Request = serde_json::from_str(r#"{"cmd":"reload"}"#).unwrap();
        assert_eq!(r, Request::Reload);
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"format-disk"}"#).is_err());
        assert_eq!(serde_json::to_string(&Reply::failure("no")).unwrap(), r#"{"ok":false,"error":"no"}"#);
    }
}
