//! A VPN zone's optional IPv6: `subnet6 = "2001:db8:50::/64"` and `gateway6 =
//! "2001:db8:50::1"`, both or neither, beside the IPv4 `subnet` and `gateway` (two keys, not
//! lists: each family keeps its one prefix and address, and files without IPv6 stay as they
//! are). Routed zones only: the NAT translates IPv4, so a NAT zone drops all IPv6.

use std::net::Ipv6Addr;

use crate::raw::RawZone;
use crate::validate::Checker;

const FIX: &str = "write e.g. subnet6 = \"2001:db8:50::/64\" and gateway6 = \"2001:db8:50::1\"";

impl Checker<'_> {
    /// The zone's (subnet6, gateway6), reporting what is wrong with them.
    pub(crate) fn vpn_v6(&mut self, z: &RawZone) -> Option<(String, String)> {
        let (subnet, gw) = match (&z.subnet6, &z.gateway6) {
            (None, None) => return None,
            (Some(s), Some(g)) => (s, g),
            (Some(k), None) | (None, Some(k)) => {
                self.r.error(self.at(k), "subnet6 and gateway6 go together", FIX);
                return None;
            }
        };
        if let Some(n) = z.nat.as_ref().filter(|n| *n.get_ref()) {
            let why = "nat translates IPv4 only; a NAT zone drops IPv6";
            self.r.error(self.at(n), why, "remove subnet6 and gateway6, or nat");
        }
        let prefix = match subnet.get_ref().parse::<gateway::Prefix>() {
            Ok(p) if p.addr().is_ipv6() => Some(p),
            Ok(_) => {
                self.r.error(self.at(subnet), "subnet6 must be IPv6", FIX);
                None
            }
            Err(e) => {
                self.r.error(self.at(subnet), format!("subnet6: {e}"), FIX);
                None
            }
        };
        match gw.get_ref().parse::<Ipv6Addr>() {
            Ok(ip) if ip.is_unicast_link_local() => {
                self.r.error(self.at(gw), "gateway6 must not be link-local (the gateway has its own)", FIX)
            }
            Ok(ip) if prefix.is_none_or(|p| p.contains(ip.into())) => {}
            Ok(ip) => self.r.error(
                self.at(gw),
                format!("gateway6 {ip} is not in subnet6 {}", subnet.get_ref()),
                FIX,
            ),
            Err(_) => self.r.error(
                self.at(gw),
                format!("gateway6 \"{}\" is not an IPv6 address", gw.get_ref().escape_debug()),
                FIX,
            ),
        }
        Some((subnet.get_ref().clone(), gw.get_ref().clone()))
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::{parse, render};

    fn zone(extra: &str) -> String {
        format!(
            "[[zone]]\nname = \"intranet\"\nuplink = {{ wireguard = \"/etc/rvswitch/office.conf\" }}\n\
             subnet = \"198.18.50.0/24\"\ngateway = \"198.18.50.1\"\n{extra}\n\
             [[zone.portgroup]]\nname = \"default\"\nvlan = 10\ndefault = true\n"
        )
    }

    #[test]
    fn ipv6_keys_reach_the_gateway_port() {
        let m =
            parse(&zone("subnet6 = \"2001:db8:50::/64\"\ngateway6 = \"2001:db8:50::1\""), "z.toml").unwrap();
        let vpn = m.zones[0].uplink.as_ref().unwrap().vpn.clone().unwrap();
        assert_eq!(vpn.v6, Some(("2001:db8:50::/64".into(), "2001:db8:50::1".into())));
        let d = crate::desired::desired(&m);
        let opts = &d[0].uplink.as_ref().unwrap().options;
        assert_eq!(
            (opts["subnet6"].as_str(), opts["gateway6"].as_str()),
            ("2001:db8:50::/64", "2001:db8:50::1")
        );
        let plain = parse(&zone(""), "z.toml").unwrap();
        assert_eq!(plain.zones[0].uplink.as_ref().unwrap().vpn.as_ref().unwrap().v6, None);
    }

    #[test]
    fn bad_ipv6_keys_say_why() {
        for (extra, want) in [
            ("subnet6 = \"2001:db8:50::/64\"", "go together"),
            ("subnet6 = \"198.18.0.0/24\"\ngateway6 = \"2001:db8:50::1\"", "subnet6 must be IPv6"),
            ("subnet6 = \"2001:db8:50::/64\"\ngateway6 = \"2001:db8:51::1\"", "not in subnet6"),
            ("subnet6 = \"2001:db8:50::/64\"\ngateway6 = \"fe80::1\"", "link-local"),
            ("subnet6 = \"2001:db8:50::/64\"\ngateway6 = \"198.18.50.1\"", "not an IPv6 address"),
            (
                "subnet6 = \"2001:db8:50::/64\"\ngateway6 = \"2001:db8:50::1\"\nnat = true",
                "translates IPv4 only",
            ),
        ] {
            let e = render(&parse(&zone(extra), "z.toml").unwrap_err());
            assert!(e.contains(want), "{extra}: {e}");
        }
    }
}
