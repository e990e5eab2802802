//! The TOML config file: bridges and ports in Open vSwitch's vocabulary (`name`, `type`, `tag`,
//! `trunks`, `vlan_mode`, `mac-aging-time`...). Parsing is all-or-nothing: any error names the
//! file, line and column and nothing of the file is applied.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use switch::{BridgeSettings, PortSecurity, PortVlan, VlanMode};
use toml::Spanned;

use crate::state::{DesiredBridge, DesiredPort, DesiredState, PortKind};

/// Largest config file we read; anything bigger is refused rather than parsed.
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// A config problem, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default, rename = "bridge")]
    bridges: Vec<RawBridge>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBridge {
    name: Spanned<String>,
    /// Seconds a learned MAC stays without being seen (OvS `other_config:mac-aging-time`).
    mac_aging_time: Option<Spanned<u64>>,
    /// Most MACs learned on this bridge (OvS `other_config:mac-table-size`).
    mac_table_size: Option<Spanned<u64>>,
    /// Forward 01:80:c2:00:00:0x frames (OvS `other_config:forward-bpdu`).
    forward_bpdu: Option<bool>,
    #[serde(default, rename = "port")]
    ports: Vec<RawPort>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: Spanned<String>,
    #[serde(rename = "type")]
    kind: Option<Spanned<PortKind>>,
    tag: Option<Spanned<u16>>,
    trunks: Option<Spanned<Vec<u16>>>,
    vlan_mode: Option<Spanned<VlanMode>>,
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<DesiredState, ConfigError> {
    let file = path.display().to_string();
    let whole = |message: String| ConfigError { file: file.clone(), line: 0, column: 0, message };
    let meta = std::fs::metadata(path).map_err(|e| whole(format!("cannot read config: {e}")))?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(whole(format!("config is {} bytes; the limit is {MAX_CONFIG_BYTES}", meta.len())));
    }
    let text = std::fs::read_to_string(path).map_err(|e| whole(format!("cannot read config: {e}")))?;
    parse(&text, &file)
}

/// Parses and validates config text; `file` only labels errors.
pub fn parse(text: &str, file: &str) -> Result<DesiredState, ConfigError> {
    let at = |span: Range<usize>, message: String| {
        let (line, column) = line_col(text, span.start);
        ConfigError { file: file.to_string(), line, column, message }
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let mut message = e.message().trim().to_string();
        if message.is_empty() {
            // toml leaves some syntax errors unexplained (found by fuzzing: a key whose value is
            // missing at the end of the file); the location alone would read as no error at all.
            message = "invalid TOML syntax".into();
        }
        match e.span() {
            Some(span) => at(span, message),
            None => ConfigError { file: file.to_string(), line: 0, column: 0, message },
        }
    })?;

    let bridge_names: HashSet<&str> = raw.bridges.iter().map(|b| b.name.get_ref().as_str()).collect();
    let mut seen_bridges = HashSet::new();
    let mut seen_ports = HashSet::new();
    let mut bridges = Vec::with_capacity(raw.bridges.len());
    for rb in &raw.bridges {
        let name = rb.name.get_ref();
        check_ifname(name).map_err(|m| at(rb.name.span(), format!("bridge name {name:?}: {m}")))?;
        if !seen_bridges.insert(name.as_str()) {
            return Err(at(rb.name.span(), format!("duplicate bridge {name:?}")));
        }
        let mut settings = BridgeSettings::default();
        if let Some(a) = &rb.mac_aging_time {
            if !(1..=86_400).contains(a.get_ref()) {
                return Err(at(a.span(), "mac-aging-time must be 1..=86400 seconds".into()));
            }
            settings.mac_aging_ms = a.get_ref() * 1000;
        }
        if let Some(n) = &rb.mac_table_size {
            if !(1..=1_000_000).contains(n.get_ref()) {
                return Err(at(n.span(), "mac-table-size must be 1..=1000000".into()));
            }
            settings.mac_table_size = *n.get_ref() as usize;
        }
        settings.forward_bpdu = rb.forward_bpdu.unwrap_or(false);

        // Like `ovs-vsctl add-br`, every bridge has an internal port named after it; the file may
        // list it to give it VLAN settings.
        let mut ports = vec![DesiredPort {
            name: name.clone(),
            kind: PortKind::Internal,
            vlan: PortVlan::new(None, None, &[]).expect("an all-VLAN trunk is always valid"),
            security: PortSecurity::off(),
            vpn: None,
        }];
        for rp in &rb.ports {
            let pname = rp.name.get_ref();
            check_ifname(pname).map_err(|m| at(rp.name.span(), format!("port name {pname:?}: {m}")))?;
            let kind = rp.kind.as_ref().map(|k| *k.get_ref());
            if let Some(k) = rp.kind.as_ref().filter(|k| *k.get_ref() == PortKind::Vpn) {
                return Err(at(
                    k.span(),
                    format!(
                        "port {pname:?}: rvswitch-vpn ports need options (wireguard, subnet, gateway): \
                         configure them with a zones file or ovs-vsctl"
                    ),
                ));
            }
            if pname == name {
                if let Some(k) = rp.kind.as_ref().filter(|k| *k.get_ref() != PortKind::Internal) {
                    return Err(at(
                        k.span(),
                        format!("port {pname:?} is the bridge's own port: its type is internal"),
                    ));
                }
            } else if bridge_names.contains(pname.as_str()) {
                return Err(at(rp.name.span(), format!("port {pname:?} has the name of a bridge")));
            }
            if !seen_ports.insert(pname.clone()) {
                return Err(at(
                    rp.name.span(),
                    format!("duplicate port {pname:?} (port names are unique across bridges)"),
                ));
            }
            let trunks: &[u16] = rp.trunks.as_ref().map(|t| t.get_ref().as_slice()).unwrap_or(&[]);
            let vlan = PortVlan::new(
                rp.vlan_mode.as_ref().map(|m| *m.get_ref()),
                rp.tag.as_ref().map(|t| *t.get_ref()),
                trunks,
            )
            .map_err(|e| {
                let span = rp
                    .tag
                    .as_ref()
                    .map(|t| t.span())
                    .or_else(|| rp.vlan_mode.as_ref().map(|m| m.span()))
                    .unwrap_or_else(|| rp.name.span());
                at(span, format!("port {pname:?}: {e}"))
            })?;
            let desired = DesiredPort {
                name: pname.clone(),
                kind: kind.unwrap_or(PortKind::System),
                vlan,
                security: PortSecurity::off(),
                vpn: None,
            };
            if pname == name {
                ports[0] = DesiredPort { kind: PortKind::Internal, ..desired };
            } else {
                ports.push(desired);
            }
        }
        seen_ports.insert(name.clone());
        bridges.push(DesiredBridge { name: name.clone(), settings, ports, mirrors: Vec::new() });
    }
    Ok(DesiredState { bridges })
}

/// Whether `name` can name a bridge or port: `netdev::IfName`'s rule (the one owner), with its
/// reason when not.
pub fn check_ifname(name: &str) -> Result<(), &'static str> {
    match netdev::IfName::new(name) {
        Ok(_) => Ok(()),
        Err(netdev::NetdevError::InvalidName { reason, .. }) => Err(reason),
        Err(_) => Err("not a Linux interface name"),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../examples/rvswitch.toml");

    #[test]
    fn example_parses() {
        let s = parse(EXAMPLE, "example").unwrap();
        let intranet = s.bridges.iter().find(|b| b.name == "br-intranet").unwrap();
        assert_eq!(intranet.ports[0].name, "br-intranet");
        assert_eq!(intranet.ports[0].kind, PortKind::Internal);
        assert!(intranet.ports.iter().any(|p| p.vlan.tag() == Some(10)));
    }

    fn err(text: &str) -> ConfigError {
        parse(text, "t.toml").unwrap_err()
    }

    #[test]
    fn errors_name_the_line() {
        let e = err("[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p1\"\ntag = 5000\n");
        assert_eq!((e.line, e.file.as_str()), (5, "t.toml"));
        assert!(e.message.contains("tag 5000"), "{e}");

        let e = err("[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p1\"\ntag = 70000\n");
        assert_eq!(e.line, 5, "{e}");

        let e = err(
            "[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p1\"\n[[bridge.port]]\nname = \"p1\"\n",
        );
        assert_eq!(e.line, 6);
        assert!(e.message.contains("duplicate port"));

        let e = err("[[bridge]]\nname = \"br0\"\ncolour = \"blue\"\n");
        assert_eq!(e.line, 3, "{e}");

        let e = err("[[bridge]]\nname = \"a-name-far-too-long\"\n");
        assert_eq!(e.line, 2);

        let e = err("[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p1\"\nvlan_mode = \"hybrid\"\n");
        assert_eq!(e.line, 5, "{e}");

        let e = err("[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p1\"\ntype = \"tap\"\nvlan_mode = \"access\"\n");
        assert!(e.message.contains("needs a tag"), "{e}");

        let e =
            err("[[bridge]]\nname = \"br0\"\n[[bridge]]\nname = \"br1\"\n[[bridge.port]]\nname = \"br0\"\n");
        assert!(e.message.contains("name of a bridge"), "{e}");

        let e = err("[[bridge]\n");
        assert_eq!(e.line, 1);
        assert!(e.to_string().starts_with("t.toml:1:"));
    }

    #[test]
    fn bridge_port_may_be_configured() {
        let s = parse("[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"br0\"\ntag = 7\n", "t").unwrap();
        assert_eq!(s.bridges[0].ports.len(), 1);
        assert_eq!(s.bridges[0].ports[0].vlan.tag(), Some(7));
        assert!(parse("[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"br0\"\ntype = \"tap\"\n", "t")
            .is_err());
    }

    /// Fuzzing found errors with an empty message (toml 0.8 explains nothing for these).
    #[test]
    fn syntax_errors_always_say_something() {
        for text in ["[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p1\"\ntag =      ", "name ="] {
            let e = err(text);
            assert!(!e.message.is_empty(), "{text:?} gave {e:?}");
            assert!(e.line >= 1, "{e:?}");
        }
    }

    #[test]
    fn empty_config_is_valid() {
        assert!(parse("", "t").unwrap().bridges.is_empty());
    }
}
