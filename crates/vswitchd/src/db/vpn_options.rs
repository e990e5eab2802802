//! A VPN gateway port's Interface `options`, checked whole: a bad one refuses the port with
//! a message naming the option (in the Interface's `error` column).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use gateway::Prefix;

use crate::state::{DhcpOptions, VpnOptions, VpnUplink};

/// A VPN gateway port's `options`: `wireguard` (the wg-quick file) or `tun` (a device), `subnet`, `gateway`,
/// `subnet6` and `gateway6` (optional), `nat`, `dhcp_range`, `dhcp_static`, `dhcp_dns`.
pub(super) fn vpn_of(options: &[(String, String)]) -> Result<VpnOptions, String> {
    let get = |k: &str| {
        options
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .ok_or(format!("options:{k} is missing"))
    };
    let opt = |k: &str| options.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let uplink = uplink_of(opt("wireguard"), opt("tun"))?;
    let subnet: Prefix = get("subnet")?.parse().map_err(|e| format!("options:subnet: {e}"))?;
    let gateway: Ipv4Addr =
        get("gateway")?.parse().map_err(|_| "options:gateway must be an IPv4 address".to_string())?;
    if !subnet.addr().is_ipv4() || !subnet.contains(gateway.into()) {
        return Err(format!("options:gateway {gateway} is not in options:subnet {subnet}"));
    }
    let nat = match opt("nat") {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => return Err(format!("options:nat {v:?} must be true or false")),
    };
    let v6 = vpn_v6(opt("subnet6"), opt("gateway6"), nat)?;
    let dhcp = match opt("dhcp_range") {
        None => None,
        Some(r) => {
            let (dns, dns6) = dhcp_dns(opt("dhcp_dns"), gateway, v6)?;
            Some(DhcpOptions { range: dhcp_range(r)?, statics: dhcp_statics(opt("dhcp_static"))?, dns, dns6 })
        }
    };
    Ok(VpnOptions { uplink, subnet, gateway, v6, nat, dhcp })
}

/// Exactly one of `options:wireguard` (an absolute path) and `options:tun` (an interface
/// name): a zone has one tunnel.
fn uplink_of(wireguard: Option<&str>, tun: Option<&str>) -> Result<VpnUplink, String> {
    match (wireguard, tun) {
        (Some(wg), None) if wg.starts_with('/') => Ok(VpnUplink::WireGuard(wg.into())),
        (Some(wg), None) => Err(format!("options:wireguard {wg:?} must be an absolute path")),
        (None, Some(dev)) => match netdev::IfName::new(dev) {
            Ok(_) => Ok(VpnUplink::Tun(dev.to_string())),
            Err(e) => Err(format!("options:tun {dev:?}: {e}")),
        },
        (Some(_), Some(_)) => {
            Err("options:wireguard and options:tun exclude each other: one tunnel per zone".into())
        }
        (None, None) => Err("options:wireguard or options:tun is missing".into()),
    }
}

/// `options:subnet6` and `options:gateway6`, both or neither; routed mode only (the NAT
/// translates IPv4, and a NAT zone drops IPv6).
fn vpn_v6(subnet: Option<&str>, gw: Option<&str>, nat: bool) -> Result<Option<gateway::GatewayV6>, String> {
    let (subnet, gw) = match (subnet, gw) {
        (None, None) => return Ok(None),
        (Some(s), Some(g)) => (s, g),
        _ => return Err("options:subnet6 and options:gateway6 go together".to_string()),
    };
    if nat {
        return Err("options:subnet6 is for routed zones; options:nat=true translates IPv4 only".to_string());
    }
    let subnet: Prefix = subnet.parse().map_err(|e| format!("options:subnet6: {e}"))?;
    let ip: std::net::Ipv6Addr =
        gw.parse().map_err(|_| "options:gateway6 must be an IPv6 address".to_string())?;
    if !subnet.addr().is_ipv6() || !subnet.contains(ip.into()) || ip.is_unicast_link_local() {
        return Err(format!("options:gateway6 {ip} is not in options:subnet6 {subnet}"));
    }
    Ok(Some(gateway::GatewayV6 { ip, subnet }))
}

/// `FIRST-LAST`, two IPv4 addresses.
fn dhcp_range(r: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let bad = || format!("options:dhcp_range {r:?} must be FIRST-LAST, two IPv4 addresses");
    let (a, b) = r.split_once('-').ok_or_else(bad)?;
    let first = a.trim().parse().map_err(|_| bad())?;
    let last = b.trim().parse().map_err(|_| bad())?;
    l3::dhcp::check_range(first, last).map_err(|e| format!("options:dhcp_range: {e}"))?;
    Ok((first, last))
}

/// `IP,IP`: the DNS servers the zone offers (the zones file's `dhcp.dns`), IPv4 ones by DHCP,
/// IPv6 ones in the RAs (RDNSS); empty or absent: the tunnel's (wg-quick's DNS line). At most
/// `l3::dhcp::MAX_DNS` in all; unicast, not loopback, not the gateway (which answers no DNS);
/// IPv6 ones not link-local and only with `v6` — the rules the zones file states.
fn dhcp_dns(
    s: Option<&str>,
    gateway: Ipv4Addr,
    v6: Option<gateway::GatewayV6>,
) -> Result<(Vec<Ipv4Addr>, Vec<Ipv6Addr>), String> {
    let entries: Vec<&str> = s.unwrap_or("").split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
    if entries.len() > l3::dhcp::MAX_DNS {
        return Err(format!(
            "options:dhcp_dns lists {} servers; at most {}",
            entries.len(),
            l3::dhcp::MAX_DNS
        ));
    }
    let (mut v4, mut v6s): (Vec<Ipv4Addr>, Vec<Ipv6Addr>) = (Vec::new(), Vec::new());
    for e in entries {
        let ip: IpAddr =
            e.parse().map_err(|_| format!("options:dhcp_dns entry {e:?} must be an IPv4 or IPv6 address"))?;
        let unreachable = || format!("options:dhcp_dns {ip} is not a DNS server the zone can reach");
        match ip {
            IpAddr::V4(ip) => {
                if ip.is_unspecified()
                    || ip.is_broadcast()
                    || ip.is_multicast()
                    || ip.is_loopback()
                    || ip == gateway
                {
                    return Err(unreachable());
                }
                if !v4.contains(&ip) {
                    v4.push(ip);
                }
            }
            IpAddr::V6(ip) => {
                let Some(zone6) = v6 else {
                    return Err(format!(
                        "options:dhcp_dns {ip} is IPv6, but there is no options:subnet6 to advertise it in"
                    ));
                };
                if l3::nd::dns_server_problem(ip).is_some() || ip == zone6.ip {
                    return Err(unreachable());
                }
                if !v6s.contains(&ip) {
                    v6s.push(ip);
                }
            }
        }
    }
    Ok((v4, v6s))
}

/// `MAC=IP,MAC=IP`; empty or absent: none.
fn dhcp_statics(s: Option<&str>) -> Result<Vec<(packet::MacAddr, Ipv4Addr)>, String> {
    let entries = s.unwrap_or("").split(',').map(str::trim).filter(|e| !e.is_empty());
    entries
        .map(|e| {
            let bad = || format!("options:dhcp_static entry {e:?} must be MAC=IPv4");
            let (mac, ip) = e.split_once('=').ok_or_else(bad)?;
            Ok((mac.parse().map_err(|_| bad())?, ip.parse().map_err(|_| bad())?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// A routed zone with IPv4 and IPv6.
    const GOOD: [(&str, &str); 5] = [
        ("wireguard", "/etc/rvswitch/office.conf"),
        ("subnet", "198.18.0.0/24"),
        ("gateway", "198.18.0.1"),
        ("subnet6", "2001:db8:50::/64"),
        ("gateway6", "2001:db8:50::1"),
    ];

    #[test]
    fn vpn_options() {
        let good: [(&str, &str); 3] = GOOD[..3].try_into().unwrap();
        let v = vpn_of(&o(&good)).unwrap();
        assert_eq!(v.gateway, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(v.uplink, VpnUplink::WireGuard("/etc/rvswitch/office.conf".into()));
        assert_eq!(vpn_of(&o(&good[1..])).unwrap_err(), "options:wireguard or options:tun is missing");
        let mut outside = good;
        outside[2].1 = "198.19.0.1";
        assert!(vpn_of(&o(&outside)).unwrap_err().contains("not in options:subnet"));
        let mut relative = good;
        relative[0].1 = "office.conf";
        assert!(vpn_of(&o(&relative)).unwrap_err().contains("absolute path"));
        let mut tun = good;
        tun[0] = ("tun", "tun0");
        assert_eq!(vpn_of(&o(&tun)).unwrap().uplink, VpnUplink::Tun("tun0".into()));
        tun[0].1 = "tun/0";
        assert!(vpn_of(&o(&tun)).unwrap_err().starts_with("options:tun \"tun/0\""));
        let both = [&good[..], &[("tun", "tun0")]].concat();
        assert!(vpn_of(&o(&both)).unwrap_err().contains("exclude each other"));
    }

    #[test]
    fn dhcp_dns_is_a_list_of_reachable_ipv4_servers() {
        let dhcp = |dns: &str| {
            let base =
                [&GOOD[..3], &[("dhcp_range", "198.18.0.100-198.18.0.110"), ("dhcp_dns", dns)]].concat();
            vpn_of(&o(&base)).map(|v| v.dhcp.unwrap().dns)
        };
        let two = [Ipv4Addr::new(198, 18, 60, 53), Ipv4Addr::new(198, 19, 0, 53)];
        assert_eq!(dhcp("198.18.60.53, 198.19.0.53").unwrap(), two);
        assert!(dhcp("").unwrap().is_empty(), "empty: the tunnel's own");
        let without = [&GOOD[..3], &[("dhcp_range", "198.18.0.100-198.18.0.110")]].concat();
        assert!(vpn_of(&o(&without)).unwrap().dhcp.unwrap().dns.is_empty());
        assert!(dhcp("ns1").unwrap_err().contains("\"ns1\" must be an IPv4 or IPv6 address"));
        for bad in ["198.18.0.1", "127.0.0.53", "0.0.0.0", "224.0.0.1", "255.255.255.255"] {
            assert!(dhcp(bad).unwrap_err().contains("not a DNS server the zone can reach"), "{bad}");
        }
        let nine: Vec<String> = (1..=9).map(|i| format!("198.18.60.{i}")).collect();
        assert!(dhcp(&nine.join(",")).unwrap_err().contains("at most 8"));
    }

    /// IPv6 entries of `options:dhcp_dns` go to the RAs (`dns6`), IPv4 ones to DHCP; the list
    /// limit covers both; an IPv6 server needs `subnet6` and may not be the gateway's address.
    #[test]
    fn dhcp_dns_ipv6_servers_are_for_the_router_advertisements() {
        let dhcp = |v6: bool, dns: &str| {
            let zone = if v6 { &GOOD[..] } else { &GOOD[..3] };
            let base = [zone, &[("dhcp_range", "198.18.0.100-198.18.0.110"), ("dhcp_dns", dns)]].concat();
            vpn_of(&o(&base)).map(|v| v.dhcp.map(|d| (d.dns, d.dns6)).unwrap())
        };
        let six: Ipv6Addr = "2001:db8:60::53".parse().unwrap();
        let (v4, v6) = dhcp(true, "198.18.60.53, 2001:db8:60::53,2001:db8:60:0::53").unwrap();
        assert_eq!((v4, v6), (vec![Ipv4Addr::new(198, 18, 60, 53)], vec![six]));
        assert!(dhcp(false, "2001:db8:60::53").unwrap_err().contains("no options:subnet6"));
        for bad in ["2001:db8:50::1", "fe80::53", "::1", "ff02::1", "::", "::ffff:198.18.60.53"] {
            assert!(dhcp(true, bad).unwrap_err().contains("not a DNS server the zone can reach"), "{bad}");
        }
        let nine: Vec<String> = (1..=9).map(|i| format!("2001:db8:60::{i}")).collect();
        assert!(dhcp(true, &nine.join(",")).unwrap_err().contains("at most 8"));
        assert!(dhcp(true, "198.18.60.53").unwrap().1.is_empty(), "an IPv4-only list parses as before");
    }

    #[test]
    fn ipv6_options_come_in_pairs_for_routed_zones() {
        let base = GOOD;
        let v6 = vpn_of(&o(&base)).unwrap().v6.unwrap();
        assert_eq!(
            (v6.ip.to_string(), v6.subnet.to_string()),
            ("2001:db8:50::1".into(), "2001:db8:50::/64".into())
        );
        assert_eq!(vpn_of(&o(&base[..3])).unwrap().v6, None, "IPv6 is optional");
        assert!(vpn_of(&o(&base[..4])).unwrap_err().contains("go together"));
        let mut outside = base;
        outside[4].1 = "2001:db8:51::1";
        assert!(vpn_of(&o(&outside)).unwrap_err().contains("not in options:subnet6"));
        let mut v4 = base;
        v4[4].1 = "198.18.0.1";
        assert!(vpn_of(&o(&v4)).unwrap_err().contains("must be an IPv6 address"));
        let nat = [&base[..], &[("nat", "true")]].concat();
        assert!(vpn_of(&o(&nat)).unwrap_err().contains("translates IPv4 only"));
    }
}
