//! The text of unixctl replies, in Open vSwitch's own layouts (ofproto-dpif.c's `fdb/show`,
//! `fdb/stats-show`, `dpif/show`; unixctl.c's `list-commands`) so scripts that parse OvS's
//! output keep working. Pure functions of the data.

use std::collections::HashMap;
use std::fmt::Write;

use ctl::protocol::{BridgeStatus, FdbEntry};
use switch::MacStats;

/// OvS's number for a bridge's own port (OFPP_LOCAL), printed as `LOCAL`.
const OFPORT_LOCAL: i64 = 65534;

/// A port as OvS names it in fdb/show: its OpenFlow number (`LOCAL` for the bridge's own
/// port), or its name when it has no number.
fn port_label(name: &str, ofports: &HashMap<String, i64>) -> String {
    match ofports.get(name) {
        Some(&OFPORT_LOCAL) => "LOCAL".to_string(),
        Some(n) if *n > 0 => n.to_string(),
        _ => name.to_string(),
    }
}

/// ` port  VLAN  MAC                Age` and one row per address, oldest first.
pub fn fdb_show(entries: &[FdbEntry], ofports: &HashMap<String, i64>) -> String {
    let mut s = String::from(" port  VLAN  MAC                Age\n");
    for e in entries {
        let _ = writeln!(s, "{:>5}  {:>4}  {}  {:>3}", port_label(&e.port, ofports), e.vlan, e.mac, e.age);
    }
    s
}

pub fn fdb_stats(bridge: &str, st: &MacStats) -> String {
    let mut s = format!("Statistics for bridge \"{bridge}\":\n");
    let _ = writeln!(s, "  Current/maximum MAC entries in the table: {}/{}", st.entries, st.limit);
    let _ = writeln!(s, "  Current static MAC entries in the table : 0");
    let _ = writeln!(s, "  Total number of learned MAC entries     : {}", st.learned);
    let _ = writeln!(s, "  Total number of expired MAC entries     : {}", st.expired);
    let _ = writeln!(s, "  Total number of evicted MAC entries     : {}", st.evicted);
    let _ = writeln!(s, "  Total number of port moved MAC entries  : {}", st.moved);
    s
}

/// The datapath and its ports. Every frame is handled by the userspace pipeline, so all of
/// them count as `missed` (OvS's upcalls); `hit` stays 0 until a kernel fast path exists.
pub fn dpif_show(bridges: &[BridgeStatus], ofports: &HashMap<String, i64>) -> String {
    let missed: u64 = bridges.iter().flat_map(|b| &b.ports).map(|p| p.statistics.rx_packets).sum();
    let mut s = format!("rvswitch@userspace: hit:0 missed:{missed}\n");
    for b in bridges {
        let _ = writeln!(s, "  {}:", b.name);
        for p in &b.ports {
            let ofport = ofports.get(&p.name).map_or_else(|| "none".to_string(), i64::to_string);
            let dp = p.ifindex.map_or_else(|| "none".to_string(), |i| i.to_string());
            let _ = writeln!(s, "    {} {ofport}/{dp}: ({})", p.name, p.kind);
        }
    }
    s
}

/// `The available commands are:` and `  NAME  USAGE` lines, sorted.
pub fn list_commands(commands: &[(&str, &str)]) -> String {
    let mut sorted = commands.to_vec();
    sorted.sort();
    let mut s = String::from("The available commands are:\n");
    for (name, usage) in sorted {
        let _ = writeln!(s, "  {name:<23} {usage}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctl::protocol::{CounterSnapshot, PortStatus};

    #[test]
    fn fdb_show_has_ovs_columns() {
        let ofports = HashMap::from([("vnet0".to_string(), 1), ("br0".to_string(), OFPORT_LOCAL)]);
        let e = |port: &str, vlan, mac: &str, age| FdbEntry { port: port.into(), vlan, mac: mac.into(), age };
        let text = fdb_show(
            &[
                e("vnet0", 10, "52:54:00:00:00:01", 3),
                e("br0", 0, "02:00:00:00:00:09", 120),
                e("x", 1, "02:00:00:00:00:0a", 0),
            ],
            &ofports,
        );
        let want = " port  VLAN  MAC                Age\n\
                    \x20   1    10  52:54:00:00:00:01    3\n\
                    LOCAL     0  02:00:00:00:00:09  120\n\
                    \x20   x     1  02:00:00:00:00:0a    0\n";
        assert_eq!(text, want);
    }

    #[test]
    fn stats_and_dpif_layouts() {
        let st = MacStats { entries: 2, limit: 8192, learned: 5, expired: 1, evicted: 0, moved: 2 };
        let text = fdb_stats("br0", &st);
        assert!(text.starts_with(
            "Statistics for bridge \"br0\":\n  Current/maximum MAC entries in the table: 2/8192\n"
        ));
        assert!(text.contains("  Total number of port moved MAC entries  : 2\n"), "{text}");
        let port = PortStatus {
            name: "vnet0".into(),
            kind: "tap".into(),
            vlan_mode: "access".into(),
            tag: Some(10),
            trunks: vec![],
            link_state: "up".into(),
            ifindex: Some(7),
            error: None,
            statistics: CounterSnapshot { rx_packets: 4, ..Default::default() },
            vpn: None,
        };
        let br = BridgeStatus {
            name: "br0".into(),
            mac_aging_time: 300,
            mac_table_size: 8192,
            ports: vec![port],
            mirrors: vec![],
        };
        let ofports = HashMap::from([("vnet0".to_string(), 1)]);
        assert_eq!(
            dpif_show(&[br], &ofports),
            "rvswitch@userspace: hit:0 missed:4\n  br0:\n    vnet0 1/7: (tap)\n"
        );
        assert_eq!(
            list_commands(&[("version", ""), ("exit", "")]),
            "The available commands are:\n  exit                    \n  version                 \n"
        );
    }
}
