//! Human-readable output of rvsctl (the `--json` form is the protocol type itself).

use std::fmt::Write;

use switch::Stage;

use crate::protocol::{BindingSource, FdbReply, PortStatus, SecurityReply, ShowReply, Trace};

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
