//! Human-readable output of rvsctl (the `--json` form is the protocol type itself).

use std::fmt::Write;

use crate::protocol::{FdbReply, PortStatus, ShowReply};

pub fn show(reply: &ShowReply) -> String {
    let mut s = String::new();
    if let Some(cfg) = &reply.config_file {
        let _ = writeln!(s, "config: {cfg}");
    }
    for br in &reply.bridges {
        let _ = writeln!(
            s,
            "Bridge {}  (mac-aging-time {} s, mac-table-size {})",
            br.name, br.mac_aging_time, br.mac_table_size
        );
        for p in &br.ports {
            let _ = writeln!(s, "    Port {}", p.name);
            let _ = writeln!(s, "        type: {}  link: {}{}", p.kind, p.link_state, ifindex(p));
            let _ = writeln!(s, "        {}", vlan(p));
            if let Some(e) = &p.error {
                let _ = writeln!(s, "        error: \"{e}\"");
            }
            let st = &p.statistics;
            let _ = writeln!(
                s,
                "        rx: {} pkts {} bytes   tx: {} pkts {} bytes   drops: {}",
                st.rx_packets,
                st.rx_bytes,
                st.tx_packets,
                st.tx_bytes,
                st.total_drops()
            );
            if !st.drops.is_empty() {
                let reasons: Vec<String> = st.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = writeln!(s, "        drop reasons: {}", reasons.join(" "));
            }
        }
    }
    s
}

fn ifindex(p: &PortStatus) -> String {
    p.ifindex.map(|i| format!("  ifindex: {i}")).unwrap_or_default()
}

fn vlan(p: &PortStatus) -> String {
    let mut s = format!("vlan_mode: {}", p.vlan_mode);
    if let Some(t) = p.tag {
        let _ = write!(s, "  tag: {t}");
    }
    if p.vlan_mode != "access" {
        if p.trunks.is_empty() {
            s.push_str("  trunks: all");
        } else {
            let t: Vec<String> = p.trunks.iter().map(u16::to_string).collect();
            let _ = write!(s, "  trunks: {}", t.join(","));
        }
    }
    s
}

pub fn fdb(reply: &FdbReply) -> String {
    let mut s = format!("{:>16}  {:>4}  {:<17}  {:>4}\n", "port", "VLAN", "MAC", "Age");
    for e in &reply.entries {
        let _ = writeln!(s, "{:>16}  {:>4}  {:<17}  {:>4}", e.port, e.vlan, e.mac, e.age);
    }
    s
}
