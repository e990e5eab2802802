//! The zone IP services' series of a VPN port: DHCP lease events, and NAT translations held,
//! made and refused. Only for the services a zone runs (a routed zone has no NAT series), and
//! only under the gateway's fixed names, so cardinality stays bounded.

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::sample::{family, Labels};
use super::vpn::VpnSample;

/// The known counters among a status's `services`, under their static names.
pub fn known(services: &std::collections::BTreeMap<String, u64>) -> Vec<(&'static str, u64)> {
    let names = gateway::DHCP_COUNTERS.into_iter().chain(gateway::NAT_COUNTERS);
    names.filter_map(|n| services.get(n).map(|v| (n, *v))).collect()
}

/// Series `name`'s value for each port that has it.
fn of<'a>(vpns: &'a [VpnSample], name: &str) -> impl Iterator<Item = (Labels<'a>, u64)> + 'a {
    let name = name.to_string();
    vpns.iter()
        .filter_map(move |v| v.services.iter().find(|(k, _)| *k == name).map(|(_, n)| (v.labels(), *n)))
}

pub fn encode(vpns: &[VpnSample], enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let leases = gateway::DHCP_COUNTERS.iter().flat_map(|name| {
        let event = name.trim_start_matches("dhcp-");
        of(vpns, name).map(move |(mut l, n)| {
            l.push(("event", event));
            (l, ConstCounter::new(n))
        })
    });
    let help = "DHCP lease events of the zone's server (offered, acked, nak, declined, released).";
    family(enc, "vpn_dhcp_leases", help, leases.collect())?;
    let active = of(vpns, gateway::NAT_ACTIVE).map(|(l, n)| (l, ConstGauge::new(n as i64))).collect();
    family(enc, "vpn_nat_translations_active", "NAT translations (mappings) held now.", active)?;
    let counter = |name| of(vpns, name).map(|(l, n)| (l, ConstCounter::new(n))).collect();
    family(enc, "vpn_nat_translations_created", "NAT translations made.", counter("nat-created"))?;
    let help =
        "Packets the NAT would not translate (table full, no mapping, fragment, malformed, unsupported).";
    family(enc, "vpn_nat_translations_refused", help, counter("nat-refused"))?;
    let help = "NAT translations dropped because the tunnel's address changed (a VPN client's new address).";
    family(enc, "vpn_nat_translations_readdressed", help, counter("nat-readdressed"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::sample::Sample;

    #[test]
    fn dhcp_and_nat_series_only_where_the_zone_runs_them() {
        let dhcp = VpnSample {
            bridge: "br0".into(),
            port: "vpn0".into(),
            services: known(&[("dhcp-offered".to_string(), 3), ("dhcp-acked".to_string(), 2)].into()),
            ..Default::default()
        };
        let nat_status =
            [("nat-active", 4), ("nat-created", 9), ("nat-refused", 1), ("nat-readdressed", 2), ("bogus", 5)];
        let nat = VpnSample {
            bridge: "br0".into(),
            port: "vpn1".into(),
            services: known(&nat_status.iter().map(|(k, n)| (k.to_string(), *n)).collect()),
            ..Default::default()
        };
        assert_eq!(nat.services.len(), 4, "unknown names are not exported");
        let text = Sample { vpns: vec![dhcp, nat], ..Default::default() }.render();
        for want in [
            r#"rvswitch_vpn_dhcp_leases_total{bridge="br0",port="vpn0",event="offered"} 3"#,
            r#"rvswitch_vpn_dhcp_leases_total{bridge="br0",port="vpn0",event="acked"} 2"#,
            "# TYPE rvswitch_vpn_nat_translations_active gauge",
            r#"rvswitch_vpn_nat_translations_active{bridge="br0",port="vpn1"} 4"#,
            r#"rvswitch_vpn_nat_translations_created_total{bridge="br0",port="vpn1"} 9"#,
            r#"rvswitch_vpn_nat_translations_refused_total{bridge="br0",port="vpn1"} 1"#,
            r#"rvswitch_vpn_nat_translations_readdressed_total{bridge="br0",port="vpn1"} 2"#,
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
        assert!(!text.contains(r#"port="vpn1",event"#) && !text.contains("bogus"), "{text}");
        let (ok, said) = testbed::promtool_check_metrics(&text);
        assert!(ok, "promtool rejects: {said}\n{text}");
    }
}
