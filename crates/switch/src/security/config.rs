//! What a port is allowed to say, as configured: the `other_config:port-security` mode, its
//! MACs, its IP addresses/prefixes, whether it may speak for DHCP servers and routers, and how
//! many MACs it may have learned at once.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use packet::MacAddr;
use thiserror::Error;

/// Interface `other_config:port-security`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SecurityMode {
    /// Not checked (the default for ports that are not VM ports: uplinks, the host).
    #[default]
    Off,
    /// Layer-2 checks only: source MAC, hidden tags, MAC limit.
    Mac,
    /// All checks (the default for VM ports): layer 2 plus ARP, IP, ND, DHCP server and RA.
    On,
}

impl SecurityMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            SecurityMode::Off => "off",
            SecurityMode::Mac => "mac",
            SecurityMode::On => "on",
        }
    }
}

impl fmt::Display for SecurityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SecurityMode {
    type Err = SecurityConfigError;

    fn from_str(s: &str) -> Result<SecurityMode, SecurityConfigError> {
        [SecurityMode::Off, SecurityMode::Mac, SecurityMode::On]
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| SecurityConfigError::UnknownMode(s.escape_debug().to_string()))
    }
}

/// A port-security setting that cannot be applied; the text lands in Interface `error`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SecurityConfigError {
    #[error("port-security \"{0}\" is not one of on, mac, off")]
    UnknownMode(String),
    #[error("allowed-ips: \"{0}\" is not an IPv4/IPv6 address or prefix")]
    BadAddress(String),
    #[error("allowed-ips: prefix length /{len} is too long for {addr}")]
    BadPrefixLen { addr: IpAddr, len: u8 },
    #[error("trusted \"{0}\" is not true or false")]
    BadTrusted(String),
    #[error("mac-limit \"{0}\" is not a number from 1 to 1000000")]
    BadMacLimit(String),
    #[error("external_ids:attached-mac \"{0}\" is not a unicast MAC address")]
    BadMac(String),
    #[error("port-security {0} needs external_ids:attached-mac (the VM's MAC)")]
    NoMac(SecurityMode),
}

/// An address or prefix, IPv4 or IPv6 (`198.18.0.5`, `198.18.0.0/24`, `2001:db8::/64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl IpPrefix {
    pub fn new(addr: IpAddr, len: u8) -> Result<IpPrefix, SecurityConfigError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(SecurityConfigError::BadPrefixLen { addr, len });
        }
        Ok(IpPrefix { addr, len })
    }

    /// The one address `addr` (/32 or /128).
    pub fn host(addr: IpAddr) -> IpPrefix {
        IpPrefix { addr, len: if addr.is_ipv4() { 32 } else { 128 } }
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                same_prefix(u128::from(p.to_bits()) << 96, u128::from(a.to_bits()) << 96, self.len)
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => same_prefix(p.to_bits(), a.to_bits(), self.len),
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, len: u8) -> bool {
    len == 0 || (a ^ b) >> (128 - u32::from(len)) == 0
}

impl FromStr for IpPrefix {
    type Err = SecurityConfigError;

    fn from_str(s: &str) -> Result<IpPrefix, SecurityConfigError> {
        let bad = || SecurityConfigError::BadAddress(s.escape_debug().to_string());
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        IpPrefix::new(addr, len.unwrap_or(if addr.is_ipv4() { 32 } else { 128 }))
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Parses `other_config:allowed-ips`: comma-separated, blanks around items ignored.
pub fn parse_allowed_ips(s: &str) -> Result<Vec<IpPrefix>, SecurityConfigError> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::parse).collect()
}

/// The security settings of one port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSecurity {
    pub mode: SecurityMode,
    /// Source MACs the port may use (libvirt's `external_ids:attached-mac`).
    pub macs: Vec<MacAddr>,
    /// Configured addresses (`other_config:allowed-ips`); DHCP snooping adds leases at run time.
    pub ips: Vec<IpPrefix>,
    /// May send DHCP server messages and RAs; its DHCPACKs are snooped.
    pub trusted: bool,
    /// At most this many learned MACs on the port at once; `None`: no per-port limit.
    pub mac_limit: Option<usize>,
}

/// Off and trusted: what every port was before port security existed.
impl Default for PortSecurity {
    fn default() -> PortSecurity {
        PortSecurity::off()
    }
}

impl PortSecurity {
    /// A port without checks; trusted, like an uplink.
    pub fn off() -> PortSecurity {
        PortSecurity {
            mode: SecurityMode::Off,
            macs: Vec::new(),
            ips: Vec::new(),
            trusted: true,
            mac_limit: None,
        }
    }

    /// The default of a VM port whose NIC has `mac`: all checks, one MAC, not trusted.
    pub fn vm(mac: MacAddr) -> PortSecurity {
        PortSecurity {
            mode: SecurityMode::On,
            macs: vec![mac],
            ips: Vec::new(),
            trusted: false,
            mac_limit: Some(1),
        }
    }

    /// Layer-2 checks apply (mode `mac` or `on`).
    pub fn checks_l2(&self) -> bool {
        self.mode != SecurityMode::Off
    }

    /// ARP/IP/ND/DHCP/RA checks apply (mode `on`). A fast path that caches decisions by MAC
    /// pair alone must not cache frames from such a port: its decision depends on layer 3.
    pub fn checks_l3(&self) -> bool {
        self.mode == SecurityMode::On
    }

    pub fn has_v4_config(&self) -> bool {
        self.ips.iter().any(IpPrefix::is_ipv4)
    }

    pub fn has_v6_config(&self) -> bool {
        self.ips.iter().any(|p| !p.is_ipv4())
    }

    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.ips.iter().any(|p| p.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip() {
        for m in [SecurityMode::Off, SecurityMode::Mac, SecurityMode::On] {
            assert_eq!(m.as_str().parse::<SecurityMode>(), Ok(m));
        }
        assert!(matches!("yes".parse::<SecurityMode>(), Err(SecurityConfigError::UnknownMode(_))));
    }

    #[test]
    fn prefixes() {
        let ips = parse_allowed_ips("198.18.0.5, 198.18.1.0/24,2001:db8::/64 ,").unwrap();
        assert_eq!(ips.len(), 3);
        let has = |s: &str| ips.iter().any(|p| p.contains(s.parse().unwrap()));
        assert!(has("198.18.0.5") && !has("198.18.0.6"));
        assert!(has("198.18.1.77") && !has("198.18.2.1"));
        assert!(has("2001:db8::1234") && !has("2001:db9::1"));
        assert!(!has("::ffff:198.18.0.5"), "families never mix");
        assert_eq!(ips[0].to_string(), "198.18.0.5/32");
        assert!("0.0.0.0/0".parse::<IpPrefix>().unwrap().contains("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn bad_prefixes() {
        assert!(matches!(parse_allowed_ips("198.18.0.5/33"), Err(SecurityConfigError::BadPrefixLen { .. })));
        assert!(matches!(parse_allowed_ips("2001:db8::/129"), Err(SecurityConfigError::BadPrefixLen { .. })));
        for bad in ["198.18.0", "host", "198.18.0.1/x", "198.18.0.1/"] {
            assert!(matches!(parse_allowed_ips(bad), Err(SecurityConfigError::BadAddress(_))), "{bad}");
        }
    }
}
