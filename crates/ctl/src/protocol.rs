//! Requests and replies of the control socket.

use serde::{Deserialize, Serialize};
pub use switch::{BindingEntry, BindingSource, CounterSnapshot, FdbEntry, PortSecurityEntry, Trace};

/// Longest request or reply line either end accepts; longer input is refused, not buffered.
pub const MAX_LINE: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    /// Bridges, ports, VLAN settings, link state and counters.
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
        let r: Request = serde_json::from_str(r#"{"cmd":"reload"}"#).unwrap();
        assert_eq!(r, Request::Reload);
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"format-disk"}"#).is_err());
        assert_eq!(serde_json::to_string(&Reply::failure("no")).unwrap(), r#"{"ok":false,"error":"no"}"#);
    }
}
