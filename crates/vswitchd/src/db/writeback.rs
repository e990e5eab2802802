//! What ovs-vswitchd writes back to the database, and only when it changed: Interface `ofport`,
//! `ifindex`, `mac_in_use`, `mtu`, `link_state`, `admin_state`, `error` and (periodically)
//! `statistics`; Bridge `datapath_id`; Open_vSwitch `cur_cfg` once a configuration is live.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use super::datum::{by_uuid, map, set};
use super::plan::Plan;
use super::snapshot::Snapshot;
use crate::reconcile::IfaceStatus;

/// OvS's port number for a bridge's own internal port (OFPP_LOCAL).
pub const OFPORT_LOCAL: i64 = 65534;
/// What OvS writes as `ofport` for an interface it could not add.
pub const OFPORT_FAILED: i64 = -1;
const OFPORT_MAX: i64 = 65279;

/// Stable OpenFlow-style port numbers per interface, remembered across reconfigurations (and
/// read back from the database after a restart) so a port keeps its number.
#[derive(Default)]
pub struct OfportAllocator {
    assigned: HashMap<String, i64>,
}

impl OfportAllocator {
    /// Numbers for every configured interface of `plan`, keyed by interface UUID.
    pub fn assign(&mut self, snap: &Snapshot, plan: &Plan) -> HashMap<String, i64> {
        let mut out = HashMap::new();
        for b in &plan.desired.bridges {
            let mut used = HashSet::new();
            let ifaces: Vec<_> = b.ports.iter().filter_map(|p| snap.iface_by_name(&p.name)).collect();
            // Requests and earlier numbers first, so a new port cannot take an old one's number.
            for i in &ifaces {
                let n = if i.name == b.name {
                    Some(OFPORT_LOCAL)
                } else {
                    [i.ofport_request, self.assigned.get(&i.uuid).copied(), i.ofport]
                        .into_iter()
                        .flatten()
                        .find(|n| (1..=OFPORT_MAX).contains(n) && !used.contains(n))
                };
                if let Some(n) = n {
                    used.insert(n);
                    out.insert(i.uuid.clone(), n);
                }
            }
            let mut next = 1;
            for i in &ifaces {
                if out.contains_key(&i.uuid) {
                    continue;
                }
                while used.contains(&next) && next < OFPORT_MAX {
                    next += 1;
                }
                used.insert(next);
                out.insert(i.uuid.clone(), next);
            }
        }
        self.assigned.extend(out.iter().map(|(k, v)| (k.clone(), *v)));
        out
    }
}

/// The status columns of one Interface row as we would write them.
pub fn iface_row(ofport: i64, st: Option<&IfaceStatus>, rejected: Option<&str>) -> Value {
    let opt = |v: Option<Value>| v.unwrap_or_else(|| set([]));
    match (st, rejected) {
        (_, Some(error)) => json!({
            "ofport": OFPORT_FAILED, "error": error, "link_state": set([]), "admin_state": set([]),
            "ifindex": set([]), "mac_in_use": set([]), "mtu": set([]),
        }),
        (Some(st), None) => with_vpn_status(
            json!({
                "ofport": if st.error.is_some() { OFPORT_FAILED } else { ofport },
                "error": opt(st.error.clone().map(Value::from)),
                "link_state": if st.link_up { "up" } else { "down" },
                "admin_state": if st.admin_up { "up" } else { "down" },
                "ifindex": opt(st.ifindex.map(Value::from)),
                "mac_in_use": opt(st.mac.map(|m| Value::from(packet::MacAddr(m).to_string()))),
                "mtu": opt(st.mtu.map(Value::from)),
            }),
            st,
        ),
        (None, None) => json!({"ofport": OFPORT_FAILED, "error": "interface not configured"}),
    }
}

/// Interface `statistics` as OvS names its keys.
pub fn statistics(st: &IfaceStatus) -> Value {
    let c = &st.counters;
    let rx_dropped: u64 = c.drops.iter().filter(|(k, _)| k.as_str() != "tx-failed").map(|(_, v)| v).sum();
    let tx_dropped = c.drops.get("tx-failed").copied().unwrap_or(0);
    let totals = [
        ("rx_packets", c.rx_packets),
        ("rx_bytes", c.rx_bytes),
        ("tx_packets", c.tx_packets),
        ("tx_bytes", c.tx_bytes),
        ("rx_dropped", rx_dropped),
        ("tx_dropped", tx_dropped),
    ];
    // Each non-zero drop reason as `drop_<reason>` (e.g. `drop_spoofed-mac`), so
    // `ovs-vsctl get Interface vnet0 statistics` says why, as `rvsctl show` does.
    let reasons = c.drops.iter().map(|(k, v)| (format!("drop_{k}"), *v));
    map(totals.into_iter().map(|(k, v)| (k.to_string(), v)).chain(reasons).chain(vpn_statistics(st)))
}

/// Interface `status` of a VPN gateway port: its tunnel's state and peer (what changes
/// rarely; ages and byte counts go to `statistics`). Empty for other ports.
fn with_vpn_status(mut row: Value, st: &IfaceStatus) -> Value {
    if let Some(v) = &st.vpn {
        row["status"] = map([("vpn_state", v.state.clone()), ("vpn_endpoint", v.endpoint.clone())]);
    }
    row
}

/// A VPN gateway port's tunnel numbers in `statistics`: bytes, last handshake age, bad
/// datagrams, gateway drops as `vpn_drop_<reason>` (`vpn_drop_vpn-down`...), and the IP
/// services' counters (`vpn_dhcp_offered`, `vpn_nat_active`...).
fn vpn_statistics(st: &IfaceStatus) -> Vec<(String, u64)> {
    let Some(v) = &st.vpn else { return Vec::new() };
    let mut out = vec![
        ("vpn_rx_bytes".to_string(), v.rx_bytes),
        ("vpn_tx_bytes".to_string(), v.tx_bytes),
        ("vpn_bad_datagrams".to_string(), v.bad_datagrams),
    ];
    if let Some(age) = v.last_handshake_secs {
        out.push(("vpn_last_handshake_age".to_string(), age));
    }
    out.extend(v.drops.iter().map(|(k, n)| (format!("vpn_drop_{k}"), *n)));
    out.extend(v.services.iter().map(|(k, n)| (format!("vpn_{}", k.replace('-', "_")), *n)));
    out
}

/// An update of one row's columns.
pub fn update(table: &str, uuid: &str, row: Value) -> Value {
    json!({"op": "update", "table": table, "where": by_uuid(uuid), "row": row})
}

/// `datapath_id` as OvS derives it from the local port's MAC: 16 hex digits.
pub fn datapath_id(mac: [u8; 6]) -> String {
    format!("0000{}", mac.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::fixtures::{plan_for, snap};

    #[test]
    fn ofports_are_stable_and_honour_requests() {
        let s = snap(&[
            ("l", "br0", None, None),
            ("a", "vnet0", Some(3), None),
            ("b", "vnet1", None, Some(7)),
            ("c", "vnet2", None, None),
        ]);
        let mut alloc = OfportAllocator::default();
        let got = alloc.assign(&s, &plan_for(&["br0", "vnet0", "vnet1", "vnet2"]));
        assert_eq!((got["l"], got["a"], got["b"], got["c"]), (OFPORT_LOCAL, 3, 7, 1));
        // vnet0 leaves and comes back: same number; a newcomer does not steal it meanwhile.
        let s2 = snap(&[
            ("l", "br0", None, None),
            ("b", "vnet1", None, Some(7)),
            ("c", "vnet2", None, None),
            ("d", "vnet3", None, None),
        ]);
        let got = alloc.assign(&s2, &plan_for(&["br0", "vnet1", "vnet2", "vnet3"]));
        assert_eq!(got["d"], 2);
        let got = alloc.assign(&s, &plan_for(&["br0", "vnet0", "vnet1", "vnet2"]));
        assert_eq!(got["a"], 3);
    }

    #[test]
    fn rejected_and_failed_rows() {
        let row = iface_row(5, None, Some("nope"));
        assert_eq!(row["ofport"], -1);
        assert_eq!(row["error"], "nope");
        assert_eq!(datapath_id([0x52, 0x54, 0, 1, 2, 3]), "0000525400010203");
    }
}
