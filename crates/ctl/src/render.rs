//! Human-readable output of rvsctl (the `--json` form is the protocol type itself).

use std::fmt::Write;

use switch::Stage;

use crate::protocol::{
    BindingSource, FdbReply, MirrorStatus, PortStatus, SecurityReply, ShowReply, Trace, VpnStatus,
};

/// `rvsctl security show`: one block per port, one line per binding.
pub fn security(reply: &SecurityReply) -> String {
    let mut s = String::new();
    for br in &reply.bridges {
        let _ = writeln!(s, "Bridge {}", br.bridge);
        for p in &br.ports {
            let limit = p.mac_limit.map_or_else(|| "none".to_string(), |n| n.to_string());
            let macs = if p.macs.is_empty() { "-".to_string() } else { p.macs.join(" ") };
            let trusted = if p.trusted { "  trusted" } else { "" };
            let _ =
                writeln!(s, "    Port {}  mode {}  mac {macs}  mac-limit {limit}{trusted}", p.port, p.mode);
            for b in &p.bindings {
                let source = match b.source {
                    BindingSource::Static => "static",
                    BindingSource::Zones => "zones",
                    BindingSource::Dhcp => "dhcp",
                };
                let expiry = b.expires_in.map_or_else(String::new, |secs| format!("  expires in {secs} s"));
                let _ = writeln!(s, "        {:<24} {source}{expiry}", b.address);
            }
        }
    }
    s
}

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
            if st.fast_rx_packets > 0 {
                let (k, u) = (st.fast_rx_packets, st.slow_rx_packets());
                let _ = writeln!(s, "        rx by path: kernel {k}, userspace {u}");
            }
            if !st.drops.is_empty() {
                let reasons: Vec<String> = st.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = writeln!(s, "        drop reasons: {}", reasons.join(" "));
            }
            if let Some(v) = &p.vpn {
                vpn(&mut s, v);
            }
        }
        for m in &br.mirrors {
            mirror(&mut s, m);
        }
    }
    s
}

/// A running mirror under its bridge, with the Mirror table's column names (as `ovs-vsctl
/// list Mirror` prints them, ports by name): only the selectors that are set.
fn mirror(s: &mut String, m: &MirrorStatus) {
    let _ = writeln!(s, "    Mirror {}", m.name);
    if m.select_all {
        let _ = writeln!(s, "        select_all: true");
    }
    for (column, ports) in [("select_src_port", &m.select_src_port), ("select_dst_port", &m.select_dst_port)]
    {
        if !ports.is_empty() {
            let _ = writeln!(s, "        {column}: {}", ports.join(" "));
        }
    }
    if !m.select_all && m.select_src_port.is_empty() && m.select_dst_port.is_empty() {
        // OvS's reading too: VLANs alone select nothing.
        let _ = writeln!(s, "        selects nothing (no select_all, select_src_port or select_dst_port)");
    }
    if !m.select_vlan.is_empty() {
        let vlans: Vec<String> = m.select_vlan.iter().map(u16::to_string).collect();
        let _ = writeln!(s, "        select_vlan: {}", vlans.join(","));
    }
    let _ = writeln!(s, "        output_port: {}", m.output_port);
    let _ = writeln!(s, "        tx: {} pkts {} bytes", m.tx_packets, m.tx_bytes);
}

/// A VPN gateway port's tunnel: state, peer, handshake age, the MTU the zone follows, bytes,
/// gateway drops.
fn vpn(s: &mut String, v: &VpnStatus) {
    let mtu = v.mtu.map(|m| format!("  mtu: {m}")).unwrap_or_default();
    if v.transport == "tun" {
        // A VPN client's device: rvswitch sees no handshake.
        let _ = writeln!(s, "        vpn: {}  tun device: {}{mtu}", v.state, v.endpoint);
    } else {
        let age = v.last_handshake_secs.map_or("never".to_string(), |a| format!("{a} s ago"));
        let _ = writeln!(s, "        vpn: {}  endpoint: {}  last handshake: {age}{mtu}", v.state, v.endpoint);
    }
    let _ = writeln!(
        s,
        "        tunnel rx: {} bytes   tx: {} bytes   bad datagrams: {}",
        v.rx_bytes, v.tx_bytes, v.bad_datagrams
    );
    if !v.drops.is_empty() {
        let reasons: Vec<String> = v.drops.iter().map(|(k, n)| format!("{k}={n}")).collect();
        let _ = writeln!(s, "        gateway drops: {}", reasons.join(" "));
    }
    if !v.services.is_empty() {
        let counts: Vec<String> = v.services.iter().map(|(k, n)| format!("{k}={n}")).collect();
        let _ = writeln!(s, "        services: {}", counts.join(" "));
    }
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

/// A trace in the layout of `ovs-appctl ofproto/trace`: the flow, the bridge's steps, and a
/// final `Datapath actions:` line that scripts written for OvS look for.
pub fn trace(bridge: &str, t: &Trace) -> String {
    let mut s = String::new();
    let flow = t.steps.first().filter(|st| st.stage == Stage::Parse).map_or("", |st| st.result.as_str());
    let _ = writeln!(s, "Flow: in_port={} {flow}\n", t.in_port);
    let title = format!("bridge(\"{bridge}\")");
    let _ = writeln!(s, "{title}\n{}", "-".repeat(title.len()));
    for (i, st) in t.steps.iter().enumerate() {
        let stage = serde_json::to_value(st.stage).ok().and_then(|v| v.as_str().map(str::to_string));
        let _ = writeln!(s, "{:2}. {}: {}\n    -> {}", i + 1, stage.unwrap_or_default(), st.rule, st.result);
    }
    for o in &t.outputs {
        let how = match o.vid {
            None => "untagged".to_string(),
            Some(vid) => format!("tagged VID {vid} PCP {}", o.pcp),
        };
        let dev = if o.attached { "" } else { " (no device attached: not sent)" };
        let _ = writeln!(s, "    output {}: {how}{dev}", o.port);
    }
    let _ = writeln!(s, "\nVerdict: {}\nPath: {}", t.summary(), t.path);
    let _ = writeln!(s, "Datapath actions: {}", datapath_actions(t));
    s
}

/// OvS's cumulative action list: tag changes apply to every output after them, so each output
/// is preceded by the pop/push that turns the previous copy's encapsulation into its own.
pub fn datapath_actions(t: &Trace) -> String {
    let mut actions = Vec::new();
    // (VID, PCP) of the copy as it stands; a priority tag (VID 0) counts as a tag too.
    let mut current = t.ingress_vid.map(|v| (v, t.ingress_pcp));
    for o in t.outputs.iter().filter(|o| o.attached) {
        let want = o.vid.map(|v| (v, o.pcp));
        if want != current {
            if current.is_some() {
                actions.push("pop_vlan".to_string());
            }
            if let Some((vid, pcp)) = want {
                actions.push(format!("push_vlan(vid={vid},pcp={pcp})"));
            }
            current = want;
        }
        actions.push(o.port.clone());
    }
    if actions.is_empty() {
        "drop".to_string()
    } else {
        actions.join(",")
    }
}

/// One line per event: UTC time, bridge, port, kind, details.
pub fn events(events: &[crate::protocol::Event]) -> String {
    use crate::protocol::EventKind;
    let mut out = String::new();
    for e in events {
        let what = match &e.kind {
            EventKind::PortUp => "port-up".to_string(),
            EventKind::PortDown => "port-down".to_string(),
            EventKind::VpnUp { endpoint } => format!("vpn-up endpoint {endpoint}"),
            EventKind::VpnDown { endpoint } => format!("vpn-down endpoint {endpoint}"),
            EventKind::MacMove { mac, vlan, from_port } => {
                format!("mac-move {mac} vlan {vlan} from {from_port}")
            }
            EventKind::SecurityDrop { reason, mac, ip, suppressed } => {
                let ip = ip.as_deref().map(|ip| format!(" ip {ip}")).unwrap_or_default();
                let more = if *suppressed > 0 { format!(" (+{suppressed} more)") } else { String::new() };
                format!("security-drop {reason} mac {mac}{ip}{more}")
            }
        };
        let _ = writeln!(out, "{} {} {} {what}", utc(e.time_ms), e.bridge, e.port);
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the Unix epoch (proleptic Gregorian, as
/// in Howard Hinnant's `civil_from_days`).
pub fn utc(ms: u64) -> String {
    let (days, rem) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod event_tests {
    use super::*;
    use crate::protocol::{Event, EventKind};

    #[test]
    fn show_splits_rx_by_path_when_the_kernel_forwarded() {
        use crate::protocol::{BridgeStatus, CounterSnapshot, PortStatus, ShowReply};
        let port = |fast| PortStatus {
            name: "eth1".into(),
            kind: "system".into(),
            vlan_mode: "access".into(),
            tag: Some(10),
            trunks: vec![],
            link_state: "up".into(),
            ifindex: None,
            error: None,
            statistics: CounterSnapshot { rx_packets: 10, fast_rx_packets: fast, ..Default::default() },
            vpn: None,
        };
        let reply = |fast| ShowReply {
            config_file: None,
            bridges: vec![BridgeStatus {
                name: "br0".into(),
                mac_aging_time: 300,
                mac_table_size: 8192,
                ports: vec![port(fast)],
                mirrors: vec![],
            }],
        };
        assert!(show(&reply(7)).contains("        rx by path: kernel 7, userspace 3\n"));
        assert!(!show(&reply(0)).contains("rx by path"), "userspace only: no split line");
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc(1_796_127_501_123), "2026-12-01T12:18:21.123Z");
    }

    #[test]
    fn one_line_per_event() {
        let e = |kind| Event { seq: 1, time_ms: 0, bridge: "br0".into(), port: "vnet0".into(), kind };
        let text = events(&[
            e(EventKind::PortDown),
            e(EventKind::VpnDown { endpoint: "198.18.60.1:51820".into() }),
            e(EventKind::SecurityDrop {
                reason: "spoofed-ip".into(),
                mac: "52:54:00:00:00:01".into(),
                ip: Some("198.18.0.9".into()),
                suppressed: 4,
            }),
        ]);
        assert_eq!(
            text,
            "1970-01-01T00:00:00.000Z br0 vnet0 port-down\n\
             1970-01-01T00:00:00.000Z br0 vnet0 vpn-down endpoint 198.18.60.1:51820\n\
             1970-01-01T00:00:00.000Z br0 vnet0 security-drop spoofed-ip mac 52:54:00:00:00:01 ip 198.18.0.9 (+4 more)\n"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{BridgeStatus, CounterSnapshot, MirrorStatus};

    #[test]
    fn show_prints_a_vpn_ports_tunnel() {
        let vpn = VpnStatus {
            transport: String::new(),
            state: "down".into(),
            endpoint: "198.19.200.2:51820".into(),
            last_handshake_secs: Some(42),
            rx_bytes: 1000,
            tx_bytes: 2000,
            bad_datagrams: 3,
            drops: [("vpn-down".to_string(), 7)].into(),
            services: [("dhcp-acked".to_string(), 2), ("dhcp-offered".to_string(), 2)].into(),
            mtu: None,
        };
        let port = PortStatus {
            name: "wg-intranet".into(),
            kind: "rvswitch-vpn".into(),
            vlan_mode: "access".into(),
            tag: Some(10),
            trunks: vec![],
            link_state: "down".into(),
            ifindex: None,
            error: None,
            statistics: CounterSnapshot::default(),
            vpn: Some(vpn.clone()),
        };
        let mut on_tun = port.clone();
        on_tun.vpn =
            Some(VpnStatus { transport: "tun".into(), endpoint: "tun0".into(), mtu: Some(1300), ..vpn });
        let reply = ShowReply {
            config_file: None,
            bridges: vec![BridgeStatus {
                name: "br0".into(),
                mac_aging_time: 300,
                mac_table_size: 8192,
                ports: vec![port, on_tun],
                mirrors: vec![],
            }],
        };
        let text = show(&reply);
        assert!(text.contains("        vpn: down  tun device: tun0  mtu: 1300\n"), "{text}");
        assert!(
            text.contains("        vpn: down  endpoint: 198.19.200.2:51820  last handshake: 42 s ago\n"),
            "{text}"
        );
        assert!(text.contains("tunnel rx: 1000 bytes   tx: 2000 bytes   bad datagrams: 3\n"), "{text}");
        assert!(text.contains("gateway drops: vpn-down=7\n"), "{text}");
        assert!(text.contains("        services: dhcp-acked=2 dhcp-offered=2\n"), "{text}");
    }

    fn bridge_with(mirrors: Vec<MirrorStatus>) -> ShowReply {
        let port = PortStatus {
            name: "mon0".into(),
            kind: "system".into(),
            vlan_mode: "trunk".into(),
            tag: None,
            trunks: vec![],
            link_state: "up".into(),
            ifindex: None,
            error: None,
            statistics: CounterSnapshot::default(),
            vpn: None,
        };
        let bridge = BridgeStatus {
            name: "br0".into(),
            mac_aging_time: 300,
            mac_table_size: 8192,
            ports: vec![port],
            mirrors,
        };
        ShowReply { config_file: None, bridges: vec![bridge] }
    }

    #[test]
    fn show_lists_a_bridges_mirrors_after_its_ports() {
        let span = MirrorStatus {
            name: "span".into(),
            select_src_port: vec!["vnet0".into()],
            select_dst_port: vec!["vnet0".into(), "vnet1".into()],
            select_vlan: vec![10, 20],
            output_port: "mon0".into(),
            tx_packets: 10,
            tx_bytes: 980,
            ..Default::default()
        };
        let all = MirrorStatus {
            name: "all".into(),
            select_all: true,
            output_port: "mon0".into(),
            ..Default::default()
        };
        let text = show(&bridge_with(vec![all, span]));
        let want = "    Mirror all\n        select_all: true\n        output_port: mon0\n        tx: 0 pkts 0 bytes\n\
                    \x20   Mirror span\n        select_src_port: vnet0\n        select_dst_port: vnet0 vnet1\n\
                    \x20       select_vlan: 10,20\n        output_port: mon0\n        tx: 10 pkts 980 bytes\n";
        assert!(text.ends_with(want), "{text}");
        assert!(text.find("    Port mon0").unwrap() < text.find("    Mirror all").unwrap(), "{text}");
        assert!(!show(&bridge_with(vec![])).contains("Mirror"), "no mirrors: no Mirror block");
    }

    #[test]
    fn a_mirror_without_selectors_says_it_selects_nothing() {
        let vlan_only = MirrorStatus {
            name: "v".into(),
            select_vlan: vec![30],
            output_port: "mon0".into(),
            ..Default::default()
        };
        let text = show(&bridge_with(vec![vlan_only]));
        assert!(
            text.contains("        selects nothing (no select_all, select_src_port or select_dst_port)\n"),
            "{text}"
        );
        assert!(text.contains("        select_vlan: 30\n"), "{text}");
    }

    #[test]
    fn show_json_carries_mirrors_and_the_vpn_mtu_and_reads_older_replies() {
        let m = MirrorStatus {
            name: "m".into(),
            select_all: true,
            output_port: "mon0".into(),
            ..Default::default()
        };
        let reply = bridge_with(vec![m]);
        let v = serde_json::to_value(&reply).unwrap();
        assert_eq!(v["bridges"][0]["mirrors"][0]["output_port"], "mon0");
        assert_eq!(v["bridges"][0]["mirrors"][0]["select_all"], true);
        assert_eq!(serde_json::from_value::<ShowReply>(v).unwrap(), reply);
        // An older daemon's reply: no mirrors, no mtu.
        let mut old = serde_json::to_value(bridge_with(vec![])).unwrap();
        assert!(old["bridges"][0].get("mirrors").is_none(), "empty mirrors are left out");
        old["bridges"][0]["ports"][0]["vpn"] = serde_json::json!({
            "state": "up", "endpoint": "tun0", "rx_bytes": 0, "tx_bytes": 0, "bad_datagrams": 0, "drops": {}
        });
        let parsed: ShowReply = serde_json::from_value(old).unwrap();
        assert_eq!(parsed.bridges[0].ports[0].vpn.as_ref().map(|v| v.mtu), Some(None));
        assert!(parsed.bridges[0].mirrors.is_empty());
    }
}
