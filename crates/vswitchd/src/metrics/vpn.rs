//! The VPN gateway ports' series: tunnel state, handshake age, tunnel bytes, datagrams that
//! did not authenticate, and the gateway's drops by reason (a fixed set: [`drop_reasons`]).
//!
//! A tunnel that has never completed a handshake has no age: its
//! `rvswitch_vpn_last_handshake_age_seconds` series is left out rather than written as 0 (which
//! would claim "just now") or NaN (which breaks comparisons in alerts); `rvswitch_vpn_up` is
//! always there and says the same thing for alerting.

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use ctl::protocol::BridgeStatus;

use super::sample::{family, Labels, MAX_PORTS};
use crate::vpn::drop_reasons;

/// One VPN port's numbers at scrape time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VpnSample {
    pub bridge: String,
    pub port: String,
    pub up: bool,
    /// Seconds since the last completed handshake; None: never.
    pub handshake_age: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub bad_datagrams: u64,
    /// Every reason, zeros included (so a series exists before its first drop).
    pub drops: Vec<(&'static str, u64)>,
    /// The zone's IP services' counters (only those it runs): [`super::vpn_services`].
    pub services: Vec<(&'static str, u64)>,
}

impl VpnSample {
    /// The VPN ports in `rvsctl show`'s data.
    pub fn from_show(bridges: &[BridgeStatus]) -> Vec<VpnSample> {
        let all = bridges.iter().flat_map(|b| b.ports.iter().map(move |p| (b, p)));
        all.filter_map(|(b, p)| p.vpn.as_ref().map(|v| (b, p, v)))
            .take(MAX_PORTS)
            .map(|(b, p, v)| VpnSample {
                bridge: b.name.clone(),
                port: p.name.clone(),
                up: v.state == "up",
                handshake_age: v.last_handshake_secs,
                rx_bytes: v.rx_bytes,
                tx_bytes: v.tx_bytes,
                bad_datagrams: v.bad_datagrams,
                drops: drop_reasons().map(|r| (r, v.drops.get(r).copied().unwrap_or(0))).collect(),
                services: super::vpn_services::known(&v.services),
            })
            .collect()
    }

    pub(super) fn labels(&self) -> Labels<'_> {
        vec![("bridge", self.bridge.as_str()), ("port", self.port.as_str())]
    }
}

fn counter(vpns: &[VpnSample], f: impl Fn(&VpnSample) -> u64) -> Vec<(Labels<'_>, ConstCounter)> {
    vpns.iter().map(|v| (v.labels(), ConstCounter::new(f(v)))).collect()
}

/// Writes the VPN families (none when there is no VPN port).
pub fn encode(vpns: &[VpnSample], enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let up = vpns.iter().map(|v| (v.labels(), ConstGauge::new(i64::from(v.up)))).collect();
    family(enc, "vpn_up", "1 when the WireGuard tunnel has a current session and the peer answers.", up)?;
    let age = vpns
        .iter()
        .filter_map(|v| v.handshake_age.map(|s| (v.labels(), ConstGauge::new(s as i64))))
        .collect();
    family(
        enc,
        "vpn_last_handshake_age_seconds",
        "Seconds since the tunnel's last completed handshake; absent when it never completed one.",
        age,
    )?;
    family(enc, "vpn_rx_bytes", "Payload bytes received from the tunnel.", counter(vpns, |v| v.rx_bytes))?;
    family(enc, "vpn_tx_bytes", "Payload bytes sent into the tunnel.", counter(vpns, |v| v.tx_bytes))?;
    family(
        enc,
        "vpn_bad_datagrams",
        "Datagrams at the WireGuard port that did not authenticate (garbage, truncated, replayed, unknown peer).",
        counter(vpns, |v| v.bad_datagrams),
    )?;
    let drops = vpns
        .iter()
        .flat_map(|v| {
            v.drops.iter().map(move |(reason, n)| {
                let mut l = v.labels();
                l.push(("reason", reason));
                (l, ConstCounter::new(*n))
            })
        })
        .collect();
    family(
        enc,
        "vpn_drops",
        "Packets the VPN gateway dropped, by reason (vpn-down: the kill switch).",
        drops,
    )?;
    super::vpn_services::encode(vpns, enc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::sample::Sample;
    use ctl::protocol::{CounterSnapshot, PortStatus, VpnStatus};

    fn vpn_port(name: &str, vpn: Option<VpnStatus>) -> PortStatus {
        PortStatus {
            name: name.into(),
            kind: if vpn.is_some() { "rvswitch-vpn" } else { "tap" }.into(),
            vlan_mode: "access".into(),
            tag: Some(10),
            trunks: vec![],
            link_state: "up".into(),
            ifindex: None,
            error: None,
            statistics: CounterSnapshot::default(),
            vpn,
        }
    }

    fn show() -> Vec<BridgeStatus> {
        let up = VpnStatus {
            transport: "wireguard".into(),
            state: "up".into(),
            endpoint: "198.18.60.1:51820".into(),
            last_handshake_secs: Some(42),
            rx_bytes: 1000,
            tx_bytes: 2000,
            bad_datagrams: 5,
            drops: [("vpn-down".to_string(), 3), ("gso-unsegmented".to_string(), 1)].into(),
            services: Default::default(),
            mtu: Some(1420),
        };
        let never =
            VpnStatus { state: "down".into(), endpoint: "198.18.61.1:51820".into(), ..Default::default() };
        let ports = vec![vpn_port("vnet0", None), vpn_port("vpn0", Some(up)), vpn_port("vpn1", Some(never))];
        vec![BridgeStatus {
            name: "br0".into(),
            mac_aging_time: 300,
            mac_table_size: 8192,
            ports,
            mirrors: vec![],
        }]
    }

    #[test]
    fn vpn_ports_have_state_age_bytes_and_every_drop_reason() {
        let vpns = VpnSample::from_show(&show());
        assert_eq!(vpns.iter().map(|v| v.port.as_str()).collect::<Vec<_>>(), ["vpn0", "vpn1"]);
        assert_eq!(vpns[0].drops.len(), gateway::DropReason::ALL.len() + 2, "the port's own two reasons too");
        let text = Sample { vpns, ..Default::default() }.render();
        let l = |p: &str| format!(r#"{{bridge="br0",port="{p}"}}"#);
        for want in [
            "# TYPE rvswitch_vpn_up gauge".to_string(),
            format!("rvswitch_vpn_up{} 1", l("vpn0")),
            format!("rvswitch_vpn_up{} 0", l("vpn1")),
            "# TYPE rvswitch_vpn_last_handshake_age_seconds gauge".to_string(),
            format!("rvswitch_vpn_last_handshake_age_seconds{} 42", l("vpn0")),
            format!("rvswitch_vpn_rx_bytes_total{} 1000", l("vpn0")),
            format!("rvswitch_vpn_tx_bytes_total{} 2000", l("vpn0")),
            format!("rvswitch_vpn_bad_datagrams_total{} 5", l("vpn0")),
            r#"rvswitch_vpn_drops_total{bridge="br0",port="vpn0",reason="vpn-down"} 3"#.to_string(),
            r#"rvswitch_vpn_drops_total{bridge="br0",port="vpn0",reason="gso-unsegmented"} 1"#.to_string(),
            r#"rvswitch_vpn_drops_total{bridge="br0",port="vpn1",reason="no-route"} 0"#.to_string(),
            r#"rvswitch_vpn_drops_total{bridge="br0",port="vpn1",reason="send-lost"} 0"#.to_string(),
        ] {
            assert!(text.contains(&want), "missing {want:?} in:\n{text}");
        }
        assert!(!text.contains(&format!("age_seconds{}", l("vpn1"))), "never handshaken: no age\n{text}");
        assert!(!text.contains("vnet0") && !text.contains("NaN"), "{text}");
    }

    #[test]
    fn no_vpn_port_no_vpn_families() {
        let text = Sample { vpns: VpnSample::from_show(&[]), ..Default::default() }.render();
        assert!(!text.contains("rvswitch_vpn"), "{text}");
    }
}
