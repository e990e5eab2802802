//! Interface `options` of a tunnel port (`type=vxlan` / `type=geneve`) with Open vSwitch's
//! meaning (ovs-vswitchd.conf.db(5), "Tunnel Options"), turned into the netdev's
//! [`TunnelConfig`]. What rvswitch cannot do (a `flow` key or remote, an IPv6 underlay,
//! different in/out keys) is refused with a reason for Interface `error`, never half-applied.

use std::net::{IpAddr, Ipv4Addr};

use netdev::tunnel::{Outer, TunnelConfig, TunnelProto};

/// Why a tunnel interface's options cannot be run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TunnelOptionError {
    #[error("{proto} interface needs options:remote_ip")]
    NoRemote { proto: &'static str },
    #[error("options:{key}=flow is not supported by rvswitch (set a fixed value)")]
    Flow { key: &'static str },
    #[error("options:{key}={value:?} is not {what}")]
    Bad { key: &'static str, value: String, what: &'static str },
    #[error("options:{key}={value} is IPv6: rvswitch tunnels run over IPv4 only")]
    Ipv6 { key: &'static str, value: String },
    #[error("options:in_key and options:out_key differ: rvswitch tunnels use one key both ways")]
    SplitKey,
}

/// The tunnel protocol of an Interface `type`, if it is one.
pub fn tunnel_proto(kind: &str) -> Option<TunnelProto> {
    match kind {
        "vxlan" => Some(TunnelProto::Vxlan),
        "geneve" => Some(TunnelProto::Geneve),
        _ => None,
    }
}

fn get<'a>(options: &'a [(String, String)], key: &str) -> Option<&'a str> {
    options.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn bad(key: &'static str, value: &str, what: &'static str) -> TunnelOptionError {
    TunnelOptionError::Bad { key, value: value.to_string(), what }
}

fn ipv4(key: &'static str, value: &str) -> Result<Ipv4Addr, TunnelOptionError> {
    match value {
        "flow" => Err(TunnelOptionError::Flow { key }),
        _ => match value.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) if !a.is_multicast() && !a.is_broadcast() && !a.is_unspecified() => Ok(a),
            Ok(IpAddr::V6(_)) => Err(TunnelOptionError::Ipv6 { key, value: value.to_string() }),
            _ => Err(bad(key, value, "a unicast IPv4 address")),
        },
    }
}

/// `key` / `in_key` / `out_key`: a 24-bit VNI, 0 when absent.
fn vni(options: &[(String, String)]) -> Result<u32, TunnelOptionError> {
    let parse = |key: &'static str| -> Result<Option<u32>, TunnelOptionError> {
        match get(options, key) {
            None => Ok(None),
            Some("flow") => Err(TunnelOptionError::Flow { key }),
            Some(v) => parse_number(v)
                .filter(|n| *n < 1 << 24)
                .map(|n| Some(n as u32))
                .ok_or_else(|| bad(key, v, "a 24-bit VNI (0 to 16777215)")),
        }
    };
    let (key, ink, outk) = (parse("key")?, parse("in_key")?, parse("out_key")?);
    let (i, o) = (ink.or(key).unwrap_or(0), outk.or(key).unwrap_or(0));
    if i != o {
        return Err(TunnelOptionError::SplitKey);
    }
    Ok(i)
}

/// Decimal or 0x-hex, as OvS accepts keys.
fn parse_number(v: &str) -> Option<u64> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

fn outer(
    options: &[(String, String)],
    key: &'static str,
    default: Outer,
) -> Result<Outer, TunnelOptionError> {
    match get(options, key) {
        None => Ok(default),
        Some("inherit") => Ok(Outer::Inherit),
        Some(v) => match parse_number(v).and_then(|n| u8::try_from(n).ok()).ok_or(()) {
            // OvS: "ECN part must be zero" for tos.
            Ok(t) if key == "tos" && t & 0x03 != 0 => {
                Err(bad(key, v, "a ToS with zero ECN bits, or inherit"))
            }
            Ok(t) if key == "ttl" && t == 0 => Err(bad(key, v, "a TTL of 1 to 255, or inherit")),
            Ok(t) => Ok(Outer::Fixed(t)),
            Err(_) => Err(bad(key, v, "a number from 0 to 255, or inherit")),
        },
    }
}

fn flag(options: &[(String, String)], key: &'static str, default: bool) -> Result<bool, TunnelOptionError> {
    match get(options, key) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(bad(key, v, "true or false")),
    }
}

/// The tunnel a `proto` interface with these `options` describes.
pub fn tunnel_of(
    proto: TunnelProto,
    options: &[(String, String)],
) -> Result<TunnelConfig, TunnelOptionError> {
    let remote = get(options, "remote_ip").ok_or(TunnelOptionError::NoRemote { proto: proto.as_str() })?;
    let mut cfg = TunnelConfig::new(proto, ipv4("remote_ip", remote)?, vni(options)?);
    cfg.local = get(options, "local_ip").map(|v| ipv4("local_ip", v)).transpose()?;
    if let Some(p) = get(options, "dst_port") {
        cfg.dst_port =
            p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("dst_port", p, "a UDP port"))?;
    }
    cfg.csum = flag(options, "csum", false)?;
    cfg.df = flag(options, "df_default", true)?;
    cfg.tos = outer(options, "tos", Outer::Fixed(0))?;
    cfg.ttl = outer(options, "ttl", Outer::Fixed(netdev::tunnel::DEFAULT_TTL))?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_ovs_defaults() {
        let c = tunnel_of(TunnelProto::Vxlan, &opts(&[("remote_ip", "198.18.0.2")])).unwrap();
        assert_eq!((c.vni, c.dst_port, c.csum, c.df, c.local), (0, 4789, false, true, None));
        assert_eq!((c.tos, c.ttl), (Outer::Fixed(0), Outer::Fixed(64)));
        let g = tunnel_of(TunnelProto::Geneve, &opts(&[("remote_ip", "198.18.0.2")])).unwrap();
        assert_eq!(g.dst_port, 6081);
    }

    #[test]
    fn every_option_is_read() {
        let c = tunnel_of(
            TunnelProto::Vxlan,
            &opts(&[
                ("remote_ip", "198.18.0.2"),
                ("local_ip", "198.18.0.1"),
                ("key", "0x64"),
                ("dst_port", "8472"),
                ("csum", "true"),
                ("tos", "inherit"),
                ("ttl", "9"),
                ("df_default", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(c.vni, 100);
        assert_eq!(c.local, Some(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!((c.dst_port, c.csum, c.df), (8472, true, false));
        assert_eq!((c.tos, c.ttl), (Outer::Inherit, Outer::Fixed(9)));
        let hex =
            tunnel_of(TunnelProto::Vxlan, &opts(&[("remote_ip", "198.18.0.2"), ("tos", "0x20")])).unwrap();
        assert_eq!(hex.tos, Outer::Fixed(0x20), "numbers as OvS reads them (strtol base 0)");
        let same = opts(&[("remote_ip", "198.18.0.2"), ("in_key", "7"), ("out_key", "7")]);
        assert_eq!(tunnel_of(TunnelProto::Vxlan, &same).unwrap().vni, 7);
    }

    #[test]
    fn unsupported_and_bad_options_are_refused_with_a_reason() {
        let case =
            |pairs: &[(&str, &str)]| tunnel_of(TunnelProto::Vxlan, &opts(pairs)).unwrap_err().to_string();
        assert!(case(&[]).contains("needs options:remote_ip"));
        assert!(case(&[("remote_ip", "flow")]).contains("remote_ip=flow is not supported"));
        assert!(case(&[("remote_ip", "198.18.0.2"), ("key", "flow")]).contains("key=flow is not supported"));
        assert!(case(&[("remote_ip", "2001:db8::1")]).contains("IPv4 only"));
        assert!(case(&[("remote_ip", "224.0.0.1")]).contains("unicast"));
        assert!(case(&[("remote_ip", "198.18.0.2"), ("key", "16777216")]).contains("24-bit"));
        assert!(case(&[("remote_ip", "198.18.0.2"), ("dst_port", "0")]).contains("UDP port"));
        assert!(case(&[("remote_ip", "198.18.0.2"), ("tos", "3")]).contains("ECN"));
        assert!(case(&[("remote_ip", "198.18.0.2"), ("csum", "yes")]).contains("true or false"));
        assert!(case(&[("remote_ip", "198.18.0.2"), ("in_key", "1"), ("out_key", "2")]).contains("differ"));
    }
}
