//! The validated zones file: every name checked, every reference resolved. Code after
//! validation can rely on these invariants (unique names, one default portgroup, VLANs in
//! range) instead of re-checking them.

use std::fmt;
use std::net::Ipv4Addr;

use crate::diag::Pos;

/// The default bridge naming template; `{zone}` is replaced by the zone's name.
pub const DEFAULT_BRIDGE_TEMPLATE: &str = "br-{zone}";

/// A whole zones file after validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    /// Zones in file order.
    pub zones: Vec<Zone>,
    /// VMs in file order.
    pub vms: Vec<Vm>,
}

/// An isolation domain: one bridge, its portgroups (VLANs), an optional NIC uplink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// `[a-z0-9-]+`, unique in the file; also the libvirt network name.
    pub name: String,
    /// Where `name =` is.
    pub name_pos: Pos,
    /// Free text; becomes the ifalias of the bridge's internal port.
    pub description: String,
    /// The bridge name after template expansion (≤ 15 bytes, a valid interface name).
    pub bridge: String,
    /// Where the bridge name comes from (the zone's `bridge =`, else its `name =`).
    pub bridge_pos: Pos,
    /// A NIC that trunks this zone's VLANs.
    pub uplink: Option<Uplink>,
    /// VLAN portgroups; empty means the zone is untagged.
    pub portgroups: Vec<Portgroup>,
    /// The other hosts' underlay addresses (unique, unicast): one VXLAN port per peer per
    /// portgroup with a VNI.
    pub peers: Vec<Ipv4Addr>,
    /// This host's underlay address, if pinned.
    pub local_ip: Option<Ipv4Addr>,
    /// NAT and DHCP for the zone's gateway.
    pub services: crate::services::Services,
}

impl Zone {
    /// The portgroup VMs get when they name none (exactly one exists if any exist).
    pub fn default_portgroup(&self) -> Option<&Portgroup> {
        self.portgroups.iter().find(|p| p.default)
    }

    /// The zone's VLAN IDs in ascending order.
    pub fn vlans(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self.portgroups.iter().map(|p| p.vlan).collect();
        v.sort_unstable();
        v
    }
}

/// Bytes of the zone name kept in a tunnel port's name (after `vx`, before `-` and the hash).
const TUNNEL_ZONE_PREFIX: usize = 4;
/// Base-36 digits of the tunnel hash (36^8 ≈ 2^41: thousands of tunnels rarely collide).
const TUNNEL_HASH_DIGITS: usize = 8;

/// The name of the VXLAN port of `zone` carrying `vni` to `peer`: `vx`, the zone name's first
/// bytes (readable), `-`, 8 base-36 digits of a hash of (zone, VNI, peer) — at most 15 bytes
/// for any zone name, so always an interface name. It depends on nothing but those three, so
/// every apply computes the same name for the same tunnel, and dropping a peer touches only its
/// own ports. Two tunnels of one file hashing alike are refused by validation, never renamed.
///
/// ```
/// let name = zones::tunnel_port_name("intranet", 100, "198.51.100.2".parse().unwrap());
/// assert_eq!(name, "vxintr-lvcfhdim");
/// ```
pub fn tunnel_port_name(zone: &str, vni: u32, peer: Ipv4Addr) -> String {
    let prefix: String =
        zone.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(TUNNEL_ZONE_PREFIX).collect();
    let mut h = stable_hash(&[zone.as_bytes(), &[0], &vni.to_be_bytes(), &peer.octets()].concat());
    let mut digits = [b'0'; TUNNEL_HASH_DIGITS];
    for d in digits.iter_mut() {
        *d = b"0123456789abcdefghijklmnopqrstuvwxyz"[(h % 36) as usize];
        h /= 36;
    }
    format!("vx{}-{}", prefix.trim_end_matches('-'), String::from_utf8_lossy(&digits))
}

/// FNV-1a with MurmurHash3's 64-bit finaliser. Spelled out rather than `std`'s hasher because
/// port names made from it must stay the same across Rust releases (a changed name would make
/// the next apply replace every tunnel).
fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A zone's way out: a NIC carried as a trunk of the zone's VLANs, or a VPN tunnel (WireGuard
/// or a VPN client's tun device) behind a gateway port (then the zone has no other way out: one uplink per zone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uplink {
    /// The uplink port's name: the NIC's interface name, or the VPN gateway port's (`wg-ZONE`).
    pub nic: String,
    /// Where `nic =` (or `wireguard =`, `tun =`) is.
    pub pos: Pos,
    /// Set for a VPN uplink.
    pub vpn: Option<VpnUplink>,
}

/// A VPN uplink: rvswitch's gateway port routes the zone's subnet into the tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpnUplink {
    /// What carries the tunnel.
    pub tunnel: VpnTunnel,
    /// The zone's subnet, `ADDR/LEN`.
    pub subnet: String,
    /// The gateway address inside `subnet`.
    pub gateway: String,
    /// Routed IPv6: `subnet6` and the gateway's address `gateway6` in it; None: the zone's
    /// IPv6 is dropped at the gateway.
    pub v6: Option<(String, String)>,
}

/// What carries a VPN zone's tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VpnTunnel {
    /// `wireguard = "/etc/rvswitch/office.conf"`: rvswitch's WireGuard, by that wg-quick file
    /// (absolute path).
    WireGuard(String),
    /// `tun = "tun0"`: an existing L3 device that a VPN client (OpenVPN...) holds.
    Tun(String),
}

impl VpnTunnel {
    /// The gateway port's Interface option: (`wireguard`, path) or (`tun`, device).
    pub fn option(&self) -> (&'static str, &str) {
        match self {
            VpnTunnel::WireGuard(f) => ("wireguard", f),
            VpnTunnel::Tun(d) => ("tun", d),
        }
    }
}

/// The gateway port's name for zone `zone` (whatever carries its tunnel).
pub fn vpn_port_name(zone: &str) -> String {
    format!("wg-{zone}")
}

/// A VLAN inside a zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Portgroup {
    /// Unique inside the zone; the libvirt portgroup name.
    pub name: String,
    /// 1..=4094, unique inside the zone.
    pub vlan: u16,
    /// The zone's default portgroup.
    pub default: bool,
    /// 1..=16777215, unique inside the zone: the VNI carrying this VLAN to the peers.
    pub vni: Option<u32>,
}

/// A libvirt domain's NIC on a zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vm {
    /// The libvirt domain name, unique.
    pub name: String,
    /// An existing zone.
    pub zone: String,
    /// The portgroup (the zone's default when the file names none); None in an untagged zone.
    pub portgroup: Option<String>,
    /// Unicast, unique.
    pub mac: Mac,
    /// A fixed IPv4 address (the VM's static DHCP lease), unique in its zone.
    pub ip: Option<std::net::Ipv4Addr>,
    /// Addresses/prefixes port security lets the VM use, in file order.
    pub ips: Vec<IpNet>,
}

/// An IPv4 or IPv6 address with a prefix length (`/32` or `/128` when the file gave none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    /// The address (for a prefix, any address inside it, as written).
    pub addr: std::net::IpAddr,
    /// Prefix length: 0 to 32 for IPv4, 0 to 128 for IPv6.
    pub len: u8,
}

impl IpNet {
    /// Parses `198.18.0.5`, `198.18.0.0/24`, `2001:db8::5`, `2001:db8::/64`.
    pub fn parse(s: &str) -> Result<IpNet, String> {
        let (a, l) = s.split_once('/').map_or((s, None), |(a, l)| (a, Some(l)));
        let addr: std::net::IpAddr =
            a.parse().map_err(|_| format!("\"{}\" is not an IPv4 or IPv6 address", s.escape_debug()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => l.parse::<u8>().ok().filter(|n| *n <= max).ok_or_else(|| {
                format!("prefix length \"/{}\" is not 0 to {max} for {addr}", l.escape_debug())
            })?,
        };
        Ok(IpNet { addr, len })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Parses `aa:bb:cc:dd:ee:ff` (hex digits, either case).
    pub fn parse(s: &str) -> Option<Mac> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts.next()?;
            if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            *byte = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(Mac(out))
    }

    /// True for group (multicast/broadcast) addresses: the I/G bit of the first octet.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_nets() {
        assert_eq!(IpNet::parse("198.18.0.5").unwrap().to_string(), "198.18.0.5/32");
        assert_eq!(IpNet::parse("2001:db8::/64").unwrap().to_string(), "2001:db8::/64");
        assert_eq!(IpNet::parse("2001:db8::5").unwrap().to_string(), "2001:db8::5/128");
        for bad in ["", "198.18.0", "198.18.0.5/33", "2001:db8::/129", "198.18.0.5/", "x/8"] {
            assert!(IpNet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mac_parse_and_display() {
        let m = Mac::parse("52:54:00:AB:cd:01").unwrap();
        assert_eq!(m.to_string(), "52:54:00:ab:cd:01");
        assert!(!m.is_multicast());
        assert!(Mac::parse("01:00:5e:00:00:01").unwrap().is_multicast());
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:01:02",
            "5:54:00:ab:cd:01",
            "zz:54:00:ab:cd:01",
            "+1:54:00:ab:cd:01",
        ] {
            assert_eq!(Mac::parse(bad), None, "{bad}");
        }
    }
}
