//! Which bridges of a shared database are this host's. One Open_vSwitch database (one root row)
//! may serve many rvswitchd hosts, as an ovsdb-server Raft cluster does for OVN's chassis:
//!
//! - a host's system-id is `--system-id` if given, else the root row's `external_ids:system-id`
//!   (a database of its own, as ovs-vswitchd uses it);
//! - a Bridge is handled by the host whose system-id is in its
//!   `external_ids:rvswitch-system-id`;
//! - a Bridge without that key belongs to the host whose system-id is the root row's, so a
//!   single-host database needs no key at all, and in a shared one such a bridge is applied by
//!   at most that one host (never by all).
//!
//! `ovs-vsctl add-br br0 -- set Bridge br0 external_ids:rvswitch-system-id=host-a` configures
//! host-a's bridge; the other hosts leave it alone (no ports opened, no status written).

use super::root::SYSTEM_ID_KEY;
use super::snapshot::{BridgeRow, Snapshot};

/// The Bridge `external_ids` key naming the host that applies the bridge.
pub const BRIDGE_HOST_KEY: &str = "rvswitch-system-id";

/// This host's claim on a shared database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// `--system-id`; `None`: the root row's system-id is ours.
    pub system_id: Option<String>,
}

impl Scope {
    pub fn new(system_id: Option<String>) -> Scope {
        Scope { system_id }
    }

    /// Whether `bridge` is applied by this host.
    pub fn owns(&self, snap: &Snapshot, bridge: &BridgeRow) -> bool {
        let root_id = snap.ovs.as_ref().and_then(|o| lookup(&o.external_ids, SYSTEM_ID_KEY));
        let ours = self.system_id.as_deref().or(root_id);
        match lookup(&bridge.external_ids, BRIDGE_HOST_KEY) {
            Some(id) => ours == Some(id),
            None => ours == root_id,
        }
    }
}

fn lookup<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::snapshot::OvsRow;
    use std::collections::HashMap;

    fn ids(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn snap(root_id: Option<&str>) -> Snapshot {
        let external_ids = root_id.map(|id| ids(&[(SYSTEM_ID_KEY, id)])).unwrap_or_default();
        let ovs = OvsRow { uuid: "o".into(), external_ids, ..Default::default() };
        Snapshot::new(Some(ovs), HashMap::new(), HashMap::new(), HashMap::new())
    }

    fn bridge(host: Option<&str>) -> BridgeRow {
        BridgeRow {
            uuid: "b".into(),
            name: "br0".into(),
            ports: vec![],
            other_config: vec![],
            external_ids: host.map(|h| ids(&[(BRIDGE_HOST_KEY, h)])).unwrap_or_default(),
            datapath_id: None,
            mirrors: vec![],
        }
    }

    #[test]
    fn a_database_of_its_own_needs_no_keys() {
        let s = Scope::default();
        assert!(s.owns(&snap(Some("h1")), &bridge(None)));
        assert!(s.owns(&snap(None), &bridge(None)));
        assert!(s.owns(&snap(Some("h1")), &bridge(Some("h1"))));
        assert!(!s.owns(&snap(Some("h1")), &bridge(Some("h2"))), "another host's bridge");
    }

    #[test]
    fn in_a_shared_database_each_bridge_has_exactly_one_host() {
        let db = snap(Some("owner"));
        let hosts = ["owner", "a", "b"].map(|h| Scope::new(Some(h.to_string())));
        for key in [None, Some("owner"), Some("a"), Some("b")] {
            let claimed: Vec<_> = hosts.iter().filter(|h| h.owns(&db, &bridge(key))).collect();
            assert_eq!(claimed.len(), 1, "{key:?}: {claimed:?}");
            assert_eq!(claimed[0].system_id.as_deref(), Some(key.unwrap_or("owner")));
        }
        // Without an owner in the root row, an unkeyed bridge is nobody's.
        assert!(hosts.iter().all(|h| !h.owns(&snap(None), &bridge(None))));
    }
}
