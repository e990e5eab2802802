//! IPv6 Neighbor Discovery for a zone gateway (RFC 4861): reading the ND messages VMs send
//! (router and neighbor solicitations, neighbor advertisements) and building the gateway's
//! answers — a Neighbor Advertisement for its own addresses, a Router Advertisement with the
//! zone's prefix and the tunnel MTU (so guests configure an address by SLAAC, RFC 4862, and a
//! default route through the gateway), and the Neighbor Solicitation that finds a VM's MAC.
//! Packets are IPv6 without a link header, checksums complete.

use std::net::Ipv6Addr;

use packet::{checksum, icmpv6, ipv6, MacAddr};

/// ND is sent with and must arrive with hop limit 255: proof that no router forwarded it
/// (RFC 4861 §6.1, §7.1).
pub const HOP_LIMIT: u8 = 255;
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// Option types of RFC 4861 §4.6 beyond the link-layer addresses.
const OPT_PREFIX_INFO: u8 = 3;
/// Redirect (RFC 4861 §4.5): like an RA, only a router sends it.
const REDIRECT: u8 = 137;
const OPT_MTU: u8 = 5;
/// Recursive DNS Server option (RFC 8106 §5.1).
const OPT_RDNSS: u8 = 25;
/// The most DNS servers one RA names: the zones file's limit (`l3::dhcp::MAX_DNS`), so an RA
/// stays at most 104 + 8 + 16 × 8 = 240 bytes, far below the 1280-byte IPv6 minimum MTU.
pub const MAX_RDNSS: usize = crate::dhcp::MAX_DNS;
/// NA flags: router, solicited, override.
const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;
/// Prefix information flags: on-link, autonomous (SLAAC may use it).
const PREFIX_ON_LINK: u8 = 0x80;
const PREFIX_AUTONOMOUS: u8 = 0x40;
/// radvd's defaults for a prefix's valid and preferred lifetimes.
const VALID_SECS: u32 = 86_400;
const PREFERRED_SECS: u32 = 14_400;

/// An ND message from the zone that passed RFC 4861's validity checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nd {
    RouterSolicit {
        src: Ipv6Addr,
    },
    NeighborSolicit {
        src: Ipv6Addr,
        target: Ipv6Addr,
    },
    NeighborAdvert {
        target: Ipv6Addr,
    },
    /// A Router Advertisement or Redirect: only the gateway may send those in its zone.
    RouterOnly,
}

/// Why an ND message is invalid (RFC 4861 §6.1.1, §7.1): dropped silently, as it says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid neighbor discovery message: {0}")]
pub struct NdInvalid(pub &'static str);

/// Reads `pkt` as ND: `None` when it is not an ND message at all (not ICMPv6 types
/// 133..=137 directly after the IPv6 header; ND never carries extension headers we accept).
pub fn parse(pkt: &[u8]) -> Option<Result<Nd, NdInvalid>> {
    let ip = ipv6::Frame::new_checked(pkt).ok()?;
    let msg = ip.payload();
    let kind = *msg.first()?;
    if ip.next_header() != ipv6::NEXT_ICMPV6 || !(icmpv6::ROUTER_SOLICIT..=REDIRECT).contains(&kind) {
        return None;
    }
    Some(validate(&ip, msg, kind))
}

fn validate(ip: &ipv6::Frame<&[u8]>, msg: &[u8], kind: u8) -> Result<Nd, NdInvalid> {
    if ip.hop_limit() != HOP_LIMIT {
        return Err(NdInvalid("hop limit is not 255"));
    }
    let sum = checksum::pseudo_v6(ip.src(), ip.dst(), ipv6::NEXT_ICMPV6, msg.len()) + checksum::sum(msg);
    if checksum::finish(sum) != 0 {
        return Err(NdInvalid("bad ICMPv6 checksum"));
    }
    let m = icmpv6::Frame::new_checked(msg).map_err(|_| NdInvalid("truncated"))?;
    if m.code() != 0 {
        return Err(NdInvalid("ICMP code is not 0"));
    }
    match kind {
        icmpv6::ROUTER_SOLICIT if msg.len() >= 8 => Ok(Nd::RouterSolicit { src: ip.src() }),
        icmpv6::NEIGHBOR_SOLICIT | icmpv6::NEIGHBOR_ADVERT => {
            let target = m.nd_target().ok_or(NdInvalid("truncated"))?;
            if target.is_multicast() {
                return Err(NdInvalid("multicast target"));
            }
            Ok(if kind == icmpv6::NEIGHBOR_SOLICIT {
                Nd::NeighborSolicit { src: ip.src(), target }
            } else {
                Nd::NeighborAdvert { target }
            })
        }
        icmpv6::ROUTER_ADVERT | REDIRECT => Ok(Nd::RouterOnly),
        _ => Err(NdInvalid("truncated")),
    }
}

/// The solicited-node multicast address of `ip` (RFC 4291 §2.7.1): where an NS for it goes.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15]])
}

/// The Ethernet group address of an IPv6 multicast address (RFC 2464 §7).
pub fn multicast_mac(ip: Ipv6Addr) -> MacAddr {
    let o = ip.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// A Neighbor Advertisement from the router `target` (one of the gateway's addresses) to
/// `to`, with its MAC as the target link-layer address. `to` multicast (an answer to a DAD
/// probe from ::) makes it unsolicited.
pub fn neighbor_advert(target: Ipv6Addr, to: Ipv6Addr, mac: MacAddr) -> Vec<u8> {
    let solicited = if to.is_multicast() { 0 } else { NA_SOLICITED };
    let mut m = vec![icmpv6::NEIGHBOR_ADVERT, 0, 0, 0, NA_ROUTER | solicited | NA_OVERRIDE, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&link_addr_option(icmpv6::OPT_TARGET_LINK_ADDR, mac));
    packet_of(target, to, m)
}

/// A Neighbor Solicitation from `from` for `target`, to its solicited-node address.
pub fn neighbor_solicit(from: Ipv6Addr, target: Ipv6Addr, mac: MacAddr) -> Vec<u8> {
    let mut m = vec![icmpv6::NEIGHBOR_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&link_addr_option(icmpv6::OPT_SOURCE_LINK_ADDR, mac));
    packet_of(from, solicited_node(target), m)
}

/// Why `ip` cannot be a zone's IPv6 DNS server, if it cannot: the one rule the zones file,
/// the daemon's options and the wg-quick `DNS` line share. Link-local is refused too (RFC
/// 8106 allows it): the zone's link holds only the gateway, which answers no DNS, and VMs,
/// which have global addresses from the prefix to be named by instead — and a tunnel's
/// link-local address means nothing on the zone's link.
pub fn dns_server_problem(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() || ip.is_multicast() {
        Some("is not a unicast address")
    } else if ip.is_loopback() {
        Some("is a loopback address: each VM would ask itself")
    } else if ip.is_unicast_link_local() {
        Some("is link-local: name the server by a global address")
    } else if ip.to_ipv4_mapped().is_some() {
        Some("is an IPv4-mapped address: write it as IPv4")
    } else {
        None
    }
}

/// What the gateway advertises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advert<'a> {
    pub mac: MacAddr,
    /// The tunnel MTU: guests never send what it cannot carry.
    pub mtu: u32,
    /// The zone's prefix (host bits are cleared); autonomous (SLAAC) only when it is a /64.
    pub prefix: Ipv6Addr,
    pub prefix_len: u8,
    /// Seconds guests keep the gateway as a default router.
    pub router_lifetime: u16,
    /// The zone's IPv6 DNS servers (RFC 8106 RDNSS); empty: no RDNSS option. Only the first
    /// [`MAX_RDNSS`] are sent.
    pub dns: &'a [Ipv6Addr],
    /// Seconds guests may use `dns` after this RA (RFC 8106 §5.1's Lifetime).
    pub dns_lifetime: u32,
}

/// A Router Advertisement from the link-local `from` (RFC 4861 §4.2 requires one) to `to`
/// (all nodes, or a soliciting VM): hop limit 64 for guests, no DHCPv6 flags, the source
/// link-layer address, the MTU, the prefix and the DNS servers.
pub fn router_advert(from: Ipv6Addr, to: Ipv6Addr, a: &Advert) -> Vec<u8> {
    let mut m = vec![icmpv6::ROUTER_ADVERT, 0, 0, 0, 64, 0];
    m.extend_from_slice(&a.router_lifetime.to_be_bytes());
    m.extend_from_slice(&[0; 8]); // reachable time, retrans timer: unspecified
    m.extend_from_slice(&link_addr_option(icmpv6::OPT_SOURCE_LINK_ADDR, a.mac));
    m.extend_from_slice(&[OPT_MTU, 1, 0, 0]);
    m.extend_from_slice(&a.mtu.to_be_bytes());
    let flags = PREFIX_ON_LINK | if a.prefix_len == 64 { PREFIX_AUTONOMOUS } else { 0 };
    m.extend_from_slice(&[OPT_PREFIX_INFO, 4, a.prefix_len, flags]);
    m.extend_from_slice(&VALID_SECS.to_be_bytes());
    m.extend_from_slice(&PREFERRED_SECS.to_be_bytes());
    m.extend_from_slice(&[0; 4]);
    m.extend_from_slice(&network(a.prefix, a.prefix_len).octets());
    m.extend_from_slice(&rdnss_option(a.dns, a.dns_lifetime));
    packet_of(from, to, m)
}

/// The RDNSS option (RFC 8106 §5.1): type, length in units of 8 octets (1 + 2 per address),
/// 2 reserved bytes, the lifetime, the addresses. Empty when there are none (the option
/// must carry at least one), at most [`MAX_RDNSS`] addresses.
fn rdnss_option(dns: &[Ipv6Addr], lifetime: u32) -> Vec<u8> {
    let dns = &dns[..dns.len().min(MAX_RDNSS)];
    if dns.is_empty() {
        return Vec::new();
    }
    // At most 1 + 2 × 8 = 17 units: fits the length byte.
    let units = u8::try_from(1 + 2 * dns.len()).unwrap_or(u8::MAX);
    let mut o = vec![OPT_RDNSS, units, 0, 0];
    o.extend_from_slice(&lifetime.to_be_bytes());
    dns.iter().for_each(|d| o.extend_from_slice(&d.octets()));
    o
}

fn link_addr_option(kind: u8, mac: MacAddr) -> [u8; 8] {
    let m = mac.0;
    [kind, 1, m[0], m[1], m[2], m[3], m[4], m[5]]
}

fn network(ip: Ipv6Addr, len: u8) -> Ipv6Addr {
    let mask = u128::MAX.checked_shl(128 - u32::from(len.min(128))).unwrap_or(0);
    Ipv6Addr::from(u128::from(ip) & mask)
}

/// The IPv6 packet around the ICMPv6 message `m` (its checksum filled in), hop limit 255.
fn packet_of(src: Ipv6Addr, dst: Ipv6Addr, mut m: Vec<u8>) -> Vec<u8> {
    let sum = checksum::finish(checksum::pseudo_v6(src, dst, ipv6::NEXT_ICMPV6, m.len()) + checksum::sum(&m));
    m[icmpv6::field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
    let mut p = vec![0u8; ipv6::HEADER_LEN];
    // The messages above are at most 200 bytes, so the header always fits.
    let _ = ipv6::write_header(&mut p, (src, dst), ipv6::NEXT_ICMPV6, HOP_LIMIT, m.len());
    p.extend_from_slice(&m);
    p
}

#[cfg(test)]
#[path = "nd_tests.rs"]
mod tests;
