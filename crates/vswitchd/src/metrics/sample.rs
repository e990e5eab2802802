//! What one scrape exports, as plain data gathered from the daemon, and its Prometheus text
//! (through prometheus-client, which escapes label values). Every series is labelled only by
//! bridge, port and drop reason: configured names and a fixed set of reasons, so cardinality is
//! bounded by the configuration (and capped at [`MAX_PORTS`] ports).

use ovsdb::server::StatsSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use switch::{DropReason, MacStats};

use ctl::protocol::BridgeStatus;

use super::vpn::VpnSample;

/// Most ports exported; beyond that a scrape would be megabytes for a dashboard nobody reads.
pub const MAX_PORTS: usize = 4096;

/// One port's numbers at scrape time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSample {
    pub bridge: String,
    pub port: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Of `rx_packets`, those the kernel fast path forwarded.
    pub fast_rx_packets: u64,
    /// Per reason, every reason (zeros included, so a series exists before its first drop).
    pub drops: Vec<(&'static str, u64)>,
    pub up: bool,
}

/// Everything one scrape exports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub ports: Vec<PortSample>,
    /// The VPN gateway ports (a subset of `ports`, with their tunnels' numbers).
    pub vpns: Vec<VpnSample>,
    pub bridges: Vec<(String, MacStats)>,
    pub ovsdb_clients: usize,
    pub ovsdb: StatsSnapshot,
    /// Events (`rvsctl events`) the forwarding thread could not hand over.
    pub events_lost: u64,
}

impl Sample {
    /// Builds the port part from `rvsctl show`'s data.
    pub fn ports_from(bridges: &[BridgeStatus]) -> Vec<PortSample> {
        let all = bridges.iter().flat_map(|b| b.ports.iter().map(move |p| (b, p)));
        all.take(MAX_PORTS)
            .map(|(b, p)| {
                let st = &p.statistics;
                let drops = DropReason::ALL
                    .iter()
                    .map(|r| (r.as_str(), st.drops.get(r.as_str()).copied().unwrap_or(0)))
                    .collect();
                PortSample {
                    bridge: b.name.clone(),
                    port: p.name.clone(),
                    rx_packets: st.rx_packets,
                    rx_bytes: st.rx_bytes,
                    tx_packets: st.tx_packets,
                    tx_bytes: st.tx_bytes,
                    fast_rx_packets: st.fast_rx_packets,
                    drops,
                    up: p.link_state == "up",
                }
            })
            .collect()
    }

    /// The Prometheus text format (0.0.4) of this sample.
    pub fn render(self) -> String {
        let mut registry = Registry::with_prefix("rvswitch");
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}

pub(super) type Labels<'a> = Vec<(&'static str, &'a str)>;

/// One metric family: name, help, and its series.
pub(super) fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: Vec<(Labels<'_>, M)>,
) -> Result<(), std::fmt::Error> {
    let Some(kind) = series.first().map(|(_, m)| m.metric_type()) else { return Ok(()) };
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, m) in series {
        m.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Sample {
    fn port_counter(&self, f: impl Fn(&PortSample) -> u64) -> Vec<(Labels<'_>, ConstCounter)> {
        self.ports.iter().map(|p| (port_labels(p), ConstCounter::new(f(p)))).collect()
    }

    fn bridge_counter(&self, f: impl Fn(&MacStats) -> u64) -> Vec<(Labels<'_>, ConstCounter)> {
        self.bridges.iter().map(|(b, st)| (vec![("bridge", b.as_str())], ConstCounter::new(f(st)))).collect()
    }

    fn encode_ports(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        family(enc, "port_rx_packets", "Frames received on the port.", self.port_counter(|p| p.rx_packets))?;
        family(enc, "port_rx_bytes", "Bytes received on the port.", self.port_counter(|p| p.rx_bytes))?;
        family(enc, "port_tx_packets", "Frames sent on the port.", self.port_counter(|p| p.tx_packets))?;
        family(enc, "port_tx_bytes", "Bytes sent on the port.", self.port_counter(|p| p.tx_bytes))?;
        let paths = self
            .ports
            .iter()
            .flat_map(|p| {
                let slow = p.rx_packets.saturating_sub(p.fast_rx_packets);
                [("kernel", p.fast_rx_packets), ("userspace", slow)].map(|(path, n)| {
                    let mut l = port_labels(p);
                    l.push(("path", path));
                    (l, ConstCounter::new(n))
                })
            })
            .collect();
        family(
            enc,
            "port_rx_path_packets",
            "Frames received on the port, by the path that forwarded them: the kernel fast path or the userspace pipeline.",
            paths,
        )?;
        let drops = self
            .ports
            .iter()
            .flat_map(|p| {
                p.drops.iter().map(move |(reason, n)| {
                    let mut l = port_labels(p);
                    l.push(("reason", reason));
                    (l, ConstCounter::new(*n))
                })
            })
            .collect();
        family(enc, "port_drops", "Frames dropped, by the port they arrived on and the reason.", drops)?;
        let up = self.ports.iter().map(|p| (port_labels(p), ConstGauge::new(i64::from(p.up)))).collect();
        family(enc, "port_link_up", "1 when the port has a working device and its link is up.", up)
    }

    fn encode_bridges(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = |f: fn(&MacStats) -> usize| {
            self.bridges
                .iter()
                .map(|(b, st)| (vec![("bridge", b.as_str())], ConstGauge::new(f(st) as i64)))
                .collect()
        };
        family(enc, "bridge_mac_entries", "Addresses in the MAC table.", gauge(|s| s.entries))?;
        family(enc, "bridge_mac_table_size", "The MAC table's size limit.", gauge(|s| s.limit))?;
        family(enc, "bridge_mac_learned", "Addresses learned.", self.bridge_counter(|s| s.learned))?;
        family(enc, "bridge_mac_expired", "Addresses aged out.", self.bridge_counter(|s| s.expired))?;
        family(
            enc,
            "bridge_mac_evicted",
            "Addresses evicted from a full table.",
            self.bridge_counter(|s| s.evicted),
        )?;
        family(
            enc,
            "bridge_mac_moved",
            "Addresses seen again on another port.",
            self.bridge_counter(|s| s.moved),
        )
    }
}

fn port_labels(p: &PortSample) -> Labels<'_> {
    vec![("bridge", p.bridge.as_str()), ("port", p.port.as_str())]
}

impl Collector for Sample {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_ports(&mut enc)?;
        super::vpn::encode(&self.vpns, &mut enc)?;
        self.encode_bridges(&mut enc)?;
        let clients = vec![(Vec::new(), ConstGauge::new(self.ovsdb_clients as i64))];
        family(&mut enc, "ovsdb_clients", "Open OVSDB client connections.", clients)?;
        let lost = vec![(Vec::new(), ConstCounter::new(self.events_lost))];
        family(
            &mut enc,
            "events_lost",
            "Events the forwarding thread could not hand over (queue full, rate limits).",
            lost,
        )?;
        let txns = vec![(Vec::new(), ConstCounter::new(self.ovsdb.transactions))];
        family(&mut enc, "ovsdb_transactions", "OVSDB transactions answered.", txns)?;
        let latency = vec![(Vec::new(), Latency(&self.ovsdb))];
        family(
            &mut enc,
            "ovsdb_transaction_seconds",
            "Time from an OVSDB transaction's arrival to its answer (blocked waits included).",
            latency,
        )
    }
}

/// The OVSDB server's latency buckets as a Prometheus histogram.
struct Latency<'a>(&'a StatsSnapshot);

impl EncodeMetric for Latency<'_> {
    fn encode(&self, mut enc: MetricEncoder) -> Result<(), std::fmt::Error> {
        let st = self.0;
        // The encoder wants per-bucket counts (it sums them up again) and the +Inf bucket.
        let mut below = 0;
        let mut buckets: Vec<(f64, u64)> = st
            .latency_le
            .iter()
            .map(|(bound_us, cum)| {
                let n = cum.saturating_sub(below);
                below = *cum;
                (*bound_us as f64 / 1e6, n)
            })
            .collect();
        buckets.push((f64::INFINITY, st.transactions.saturating_sub(below)));
        let sum = st.latency_sum_us as f64 / 1e6;
        enc.encode_histogram::<NoLabelSet>(sum, st.transactions, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_every_family_and_escapes_labels() {
        let port = PortSample {
            bridge: "br\"0\\x".into(),
            port: "vnet0".into(),
            rx_packets: 10,
            drops: vec![("runt", 2), ("tx-failed", 0)],
            up: true,
            ..Default::default()
        };
        let st = MacStats { entries: 1, limit: 8192, learned: 4, expired: 0, evicted: 0, moved: 1 };
        let ovsdb =
            StatsSnapshot { transactions: 3, latency_sum_us: 1_500, latency_le: vec![(50, 1), (1_000, 2)] };
        let port = PortSample { fast_rx_packets: 7, ..port };
        let text = Sample {
            ports: vec![port],
            vpns: Vec::new(),
            bridges: vec![("br0".into(), st)],
            ovsdb_clients: 2,
            ovsdb,
            events_lost: 4,
        }
        .render();
        for want in [
            "# TYPE rvswitch_port_rx_packets_total counter",
            r#"rvswitch_port_rx_packets_total{bridge="br\"0\\x",port="vnet0"} 10"#,
            r#"rvswitch_port_drops_total{bridge="br\"0\\x",port="vnet0",reason="runt"} 2"#,
            r#"rvswitch_port_link_up{bridge="br\"0\\x",port="vnet0"} 1"#,
            r#"rvswitch_bridge_mac_moved_total{bridge="br0"} 1"#,
            r#"rvswitch_bridge_mac_table_size{bridge="br0"} 8192"#,
            "rvswitch_ovsdb_clients 2",
            r#"rvswitch_port_rx_path_packets_total{bridge="br\"0\\x",port="vnet0",path="kernel"} 7"#,
            r#"rvswitch_port_rx_path_packets_total{bridge="br\"0\\x",port="vnet0",path="userspace"} 3"#,
            "rvswitch_ovsdb_transactions_total 3",
            "rvswitch_events_lost_total 4",
            "# TYPE rvswitch_ovsdb_transaction_seconds histogram",
            r#"rvswitch_ovsdb_transaction_seconds_bucket{le="5e-05"} 1"#,
            r#"rvswitch_ovsdb_transaction_seconds_bucket{le="0.001"} 2"#,
            r#"rvswitch_ovsdb_transaction_seconds_bucket{le="+Inf"} 3"#,
            "rvswitch_ovsdb_transaction_seconds_count 3",
            "rvswitch_ovsdb_transaction_seconds_sum 0.0015",
        ] {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
    }
}
