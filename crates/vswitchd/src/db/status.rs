//! The status write-back's planner: from one snapshot, the plan made from it, the devices'
//! status and what was written before, the row updates to send — decided without a database
//! or a device, so "what is written when" is unit-tested. [`super::DbSync::write_status`] only
//! runs the transaction and, if it succeeded, remembers what it wrote.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};

use serde_json::{json, Value};

use super::datum::map;
use super::plan::Plan;
use super::snapshot::Snapshot;
use super::writeback::{datapath_id, iface_row, statistics, update, OFPORT_FAILED};
use crate::reconcile::IfaceStatus;

/// What earlier successful writes left in the database, so a write carries only changes.
#[derive(Debug, Default)]
pub struct WriteCache {
    /// Digest of the status columns last written, by Interface UUID (a digest, not the JSON:
    /// 1000 ports' rows cost ~1.5 MB of heap as values).
    rows: HashMap<String, u64>,
    /// Digest of the `statistics` last written, by Interface UUID. A new interface gets them in
    /// the first status write (libvirt's `virsh domifstat` reads them right after attaching),
    /// the others when statistics are due and only if they changed: an idle port's row is not
    /// rewritten (copied whole by the database) every time.
    stats: HashMap<String, u64>,
    /// Digest of the Mirror `statistics` last written, by Mirror UUID.
    mirror_stats: HashMap<String, u64>,
    /// The root row (UUID) that carries our version and capabilities.
    announced: Option<String>,
    /// `datapath_id` written since the snapshot was read, by Bridge UUID (the snapshot still
    /// shows the value before our write until the next configuration change).
    dpids: HashMap<String, String>,
}

/// What one write puts in the database, to remember once the transaction succeeded.
#[derive(Debug, Default, PartialEq)]
pub struct Written {
    rows: Vec<(String, u64)>,
    stats: Vec<(String, u64)>,
    mirror_stats: Vec<(String, u64)>,
    announced: Option<String>,
    dpids: Vec<(String, String)>,
    /// The configuration number written as `cur_cfg`.
    pub cur_cfg: Option<i64>,
}

impl WriteCache {
    /// Records a successful write. Only rows that still exist (in `snap`) are kept, so the
    /// cache cannot grow without bound.
    pub fn remember(&mut self, w: Written, snap: &Snapshot) {
        self.rows.extend(w.rows);
        self.stats.extend(w.stats);
        self.mirror_stats.extend(w.mirror_stats);
        self.dpids.extend(w.dpids);
        if w.announced.is_some() {
            self.announced = w.announced;
        }
        let live = &snap.ifaces;
        self.rows.retain(|u, _| live.contains_key(u));
        self.stats.retain(|u, _| live.contains_key(u));
        self.mirror_stats.retain(|u, _| snap.mirrors.contains_key(u));
        self.dpids.retain(|u, _| snap.bridges.contains_key(u));
    }
}

/// The inputs of one status write.
pub struct StatusInput<'a> {
    pub snapshot: &'a Snapshot,
    pub plan: &'a Plan,
    /// Port numbers by Interface UUID.
    pub ofports: &'a HashMap<String, i64>,
    /// The device status of a port, by name (`None`: the reconciler does not know it).
    pub status: &'a dyn Fn(&str) -> Option<IfaceStatus>,
    /// Whether the periodic statistics write is due.
    pub stats_due: bool,
    /// `(tx_packets, tx_bytes)` of a running mirror, by Mirror UUID.
    pub mirror_stats: &'a dyn Fn(&str) -> Option<(u64, u64)>,
}

/// The row operations (without the database name and lock assertion; empty: nothing to write)
/// and what to remember if they are committed.
pub fn status_ops(input: &StatusInput<'_>, cache: &WriteCache) -> (Vec<Value>, Written) {
    let mut ops = Vec::new();
    let mut w = Written::default();
    port_ops(input, cache, &mut ops, &mut w);
    mirror_ops(input, cache, &mut ops, &mut w);
    for r in &input.plan.rejected {
        let row = iface_row(OFPORT_FAILED, None, Some(&r.error));
        let d = digest(&row);
        if cache.rows.get(&r.iface_uuid) != Some(&d) {
            ops.push(update("Interface", &r.iface_uuid, row));
            w.rows.push((r.iface_uuid.clone(), d));
        }
    }
    root_ops(input.snapshot, cache, &mut ops, &mut w);
    (ops, w)
}

/// Interface status (and statistics) of every configured port; a bridge's `datapath_id` from
/// its local port's MAC.
fn port_ops(input: &StatusInput<'_>, cache: &WriteCache, ops: &mut Vec<Value>, w: &mut Written) {
    let snap = input.snapshot;
    for b in &input.plan.desired.bridges {
        for p in &b.ports {
            let Some(iface) = snap.iface_by_name(&p.name) else { continue };
            let st = (input.status)(&p.name);
            let ofport = input.ofports.get(&iface.uuid).copied().unwrap_or(OFPORT_FAILED);
            let row = iface_row(ofport, st.as_ref(), None);
            let d = digest(&row);
            if cache.rows.get(&iface.uuid) != Some(&d) {
                ops.push(update("Interface", &iface.uuid, row));
                w.rows.push((iface.uuid.clone(), d));
            }
            let written = cache.stats.get(&iface.uuid);
            if let (true, Some(st)) = (input.stats_due || written.is_none(), st.as_ref()) {
                let stats = statistics(st);
                let d = digest(&stats);
                if written != Some(&d) {
                    ops.push(update("Interface", &iface.uuid, json!({"statistics": stats})));
                    w.stats.push((iface.uuid.clone(), d));
                }
            }
            if p.name != b.name {
                continue;
            }
            let dpid = st.and_then(|s| s.mac).map(datapath_id);
            if let (Some(dpid), Some(row)) = (dpid, snap.bridge_by_name(&b.name)) {
                let known = cache.dpids.get(&row.uuid).or(row.datapath_id.as_ref());
                if known != Some(&dpid) {
                    ops.push(update("Bridge", &row.uuid, json!({"datapath_id": dpid})));
                    w.dpids.push((row.uuid.clone(), dpid));
                }
            }
        }
    }
}

/// Mirror `statistics` (`tx_packets`, `tx_bytes`, as ovs-vswitchd writes them) of every
/// running mirror: in the first write, then when due and changed. A mirror that has no effect
/// (no output port) gets none.
fn mirror_ops(input: &StatusInput<'_>, cache: &WriteCache, ops: &mut Vec<Value>, w: &mut Written) {
    for m in input.plan.desired.bridges.iter().flat_map(|b| &b.mirrors) {
        let written = cache.mirror_stats.get(&m.uuid);
        if !(input.stats_due || written.is_none()) || !input.snapshot.mirrors.contains_key(&m.uuid) {
            continue;
        }
        let Some((packets, bytes)) = (input.mirror_stats)(&m.uuid) else { continue };
        let stats = map([("tx_packets".to_string(), packets), ("tx_bytes".to_string(), bytes)]);
        let d = digest(&stats);
        if written != Some(&d) {
            ops.push(update("Mirror", &m.uuid, json!({ "statistics": stats })));
            w.mirror_stats.push((m.uuid.clone(), d));
        }
    }
}

/// A 64-bit digest of a JSON value as written (SipHash with fixed keys over its text): what
/// the cache compares, so an unchanged row costs no write. A collision (2^-64) would only skip
/// one status write.
fn digest(v: &Value) -> u64 {
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(v.to_string())
}

/// The root row: our capabilities (once per row), and `cur_cfg` once the configuration read
/// with this snapshot is live. The caller runs this only after the reconciler applied the plan,
/// so `cur_cfg = next_cfg` is the acknowledgement that it is applied.
fn root_ops(snap: &Snapshot, cache: &WriteCache, ops: &mut Vec<Value>, w: &mut Written) {
    let Some(ovs) = &snap.ovs else { return };
    if cache.announced.as_ref() != Some(&ovs.uuid) {
        // The root row is made ready before the socket opens (root.rs); this covers one that a
        // client deleted and recreated since.
        ops.push(update("Open_vSwitch", &ovs.uuid, super::root::announce_columns()));
        w.announced = Some(ovs.uuid.clone());
    }
    if ovs.cur_cfg != ovs.next_cfg {
        ops.push(update("Open_vSwitch", &ovs.uuid, json!({"cur_cfg": ovs.next_cfg})));
        w.cur_cfg = Some(ovs.next_cfg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::fixtures::{plan_for, snap};
    use crate::db::plan::Rejected;
    use ctl::protocol::CounterSnapshot;

    const LOCAL_MAC: [u8; 6] = [0x52, 0x54, 0, 1, 2, 3];

    fn up(name: &str) -> Option<IfaceStatus> {
        let mac = (name == "br0").then_some(LOCAL_MAC);
        let counters = CounterSnapshot { rx_packets: 3, ..Default::default() };
        Some(IfaceStatus {
            ifindex: Some(7),
            mac,
            mtu: Some(1500),
            admin_up: true,
            link_up: true,
            error: None,
            counters,
            vpn: None,
        })
    }

    fn ofports() -> HashMap<String, i64> {
        HashMap::from([("l".into(), 65534), ("a".into(), 1), ("c".into(), 2)])
    }

    /// Runs the planner once and, like a committed transaction, remembers what it wrote.
    fn write(s: &mut Snapshot, plan: &Plan, cache: &mut WriteCache, stats_due: bool) -> Vec<Value> {
        let ofports = ofports();
        let input = StatusInput {
            snapshot: s,
            plan,
            ofports: &ofports,
            status: &up,
            stats_due,
            mirror_stats: &|_| None,
        };
        let (ops, w) = status_ops(&input, cache);
        if let (Some(cfg), Some(ovs)) = (w.cur_cfg, s.ovs.as_mut()) {
            ovs.cur_cfg = cfg;
        }
        cache.remember(w, s);
        ops
    }

    /// The rows an operation list updates, as (table, uuid, columns).
    fn updates(ops: &[Value]) -> Vec<(String, String, Value)> {
        ops.iter()
            .map(|o| {
                let uuid = o["where"][0][2][1].as_str().unwrap_or_default().to_string();
                (o["table"].as_str().unwrap_or_default().to_string(), uuid, o["row"].clone())
            })
            .collect()
    }

    fn stats_written(ops: &[Value]) -> Vec<String> {
        updates(ops)
            .into_iter()
            .filter(|(_, _, r)| r.get("statistics").is_some())
            .map(|(_, u, _)| u)
            .collect()
    }

    #[test]
    fn mirror_statistics_are_written_like_interface_statistics() {
        use crate::db::snapshot::MirrorRow;
        use crate::state::DesiredMirror;
        let s = snap(&[("l", "br0", None, None), ("a", "vnet0", None, None)]);
        let mut s = s.with_mirrors(HashMap::from([(
            "m".to_string(),
            MirrorRow { uuid: "m".into(), ..MirrorRow::default() },
        )]));
        let mut plan = plan_for(&["br0", "vnet0"]);
        let mirror = DesiredMirror { uuid: "m".into(), output: "vnet0".into(), ..DesiredMirror::default() };
        plan.desired.bridges[0].mirrors.push(mirror);
        let ofports = ofports();
        let cache = WriteCache::default();
        let counts = std::cell::Cell::new((3u64, 180u64));
        let stats = |u: &str| (u == "m").then(|| counts.get());
        let run = |s: &Snapshot, cache: &mut WriteCache, due: bool| {
            let input = StatusInput {
                snapshot: s,
                plan: &plan,
                ofports: &ofports,
                status: &up,
                stats_due: due,
                mirror_stats: &stats,
            };
            let (ops, w) = status_ops(&input, cache);
            cache.remember(w, s);
            updates(&ops)
                .into_iter()
                .filter(|(t, _, _)| t == "Mirror")
                .map(|(_, u, r)| (u, r))
                .collect::<Vec<_>>()
        };
        let mut cache = cache;
        let first = run(&s, &mut cache, false);
        assert_eq!(first.len(), 1, "a new mirror's statistics at once");
        assert_eq!(first[0].1["statistics"], json!(["map", [["tx_packets", 3], ["tx_bytes", 180]]]));
        assert!(run(&s, &mut cache, true).is_empty(), "due, but unchanged");
        counts.set((4, 240));
        assert!(run(&s, &mut cache, false).is_empty(), "changed, not due");
        assert_eq!(run(&s, &mut cache, true).len(), 1);
        s.mirrors.clear();
        assert!(run(&s, &mut cache, true).is_empty(), "a row that is gone is not updated");
    }

    #[test]
    fn a_new_interface_gets_statistics_in_its_first_write() {
        let (mut s, plan) =
            (snap(&[("l", "br0", None, None), ("a", "vnet0", None, None)]), plan_for(&["br0", "vnet0"]));
        let mut cache = WriteCache::default();
        let ops = write(&mut s, &plan, &mut cache, false);
        assert_eq!(stats_written(&ops), ["l", "a"], "not due, but new: written at once");
        let stats = updates(&ops).into_iter().find(|(_, u, r)| u == "a" && r.get("statistics").is_some());
        assert!(stats.unwrap().2.to_string().contains("rx_packets"));
        assert!(stats_written(&write(&mut s, &plan, &mut cache, false)).is_empty(), "not due any more");
        // vnet1 joins: only it gets statistics before they are due again.
        let mut s = snap(&[("l", "br0", None, None), ("a", "vnet0", None, None), ("c", "vnet1", None, None)]);
        let plan = plan_for(&["br0", "vnet0", "vnet1"]);
        assert_eq!(stats_written(&write(&mut s, &plan, &mut cache, false)), ["c"]);
        assert!(stats_written(&write(&mut s, &plan, &mut cache, true)).is_empty(), "due, but unchanged");
        // Counters move on vnet0 only: when due, only its statistics are written.
        let busy = |n: &str| {
            up(n).map(|mut st| {
                st.counters.rx_packets += u64::from(n == "vnet0");
                st
            })
        };
        let ofports = ofports();
        let input = StatusInput {
            snapshot: &s,
            plan: &plan,
            ofports: &ofports,
            status: &busy,
            stats_due: true,
            mirror_stats: &|_| None,
        };
        assert_eq!(stats_written(&status_ops(&input, &cache).0), ["a"], "due: the changed ones");
    }

    #[test]
    fn unchanged_rows_write_nothing() {
        let (mut s, plan) =
            (snap(&[("l", "br0", None, None), ("a", "vnet0", None, None)]), plan_for(&["br0", "vnet0"]));
        let mut cache = WriteCache::default();
        let first = updates(&write(&mut s, &plan, &mut cache, false));
        let tables: Vec<(&str, &str)> = first.iter().map(|(t, u, _)| (t.as_str(), u.as_str())).collect();
        for want in [("Interface", "l"), ("Interface", "a"), ("Bridge", "b"), ("Open_vSwitch", "o")] {
            assert!(tables.contains(&want), "{want:?} missing from {tables:?}");
        }
        let dpid = first.iter().find(|(t, _, _)| t == "Bridge").map(|(_, _, r)| r["datapath_id"].clone());
        assert_eq!(dpid, Some(json!("0000525400010203")));
        assert_eq!(write(&mut s, &plan, &mut cache, false), Vec::<Value>::new());
    }

    #[test]
    fn cur_cfg_follows_next_cfg_once_and_is_retried_after_a_failed_write() {
        let (mut s, plan) = (snap(&[("l", "br0", None, None)]), plan_for(&["br0"]));
        if let Some(o) = s.ovs.as_mut() {
            (o.next_cfg, o.cur_cfg) = (3, 2);
        }
        let cur_cfg = |ops: &[Value]| -> Vec<Value> {
            updates(ops).into_iter().filter_map(|(_, _, r)| r.get("cur_cfg").cloned()).collect()
        };
        let ofports = ofports();
        let input = StatusInput {
            snapshot: &s,
            plan: &plan,
            ofports: &ofports,
            status: &up,
            stats_due: false,
            mirror_stats: &|_| None,
        };
        let (ops, w) = status_ops(&input, &WriteCache::default());
        assert_eq!((cur_cfg(&ops), w.cur_cfg), (vec![json!(3)], Some(3)));
        // Not committed (nothing remembered): the next write carries it again.
        let mut cache = WriteCache::default();
        assert_eq!(cur_cfg(&write(&mut s, &plan, &mut cache, false)), [json!(3)]);
        // Committed: the periodic writes that follow leave cur_cfg alone.
        assert!(cur_cfg(&write(&mut s, &plan, &mut cache, true)).is_empty());
    }

    #[test]
    fn rejected_rows_get_error_and_ofport_minus_one() {
        let mut s = snap(&[("l", "br0", None, None), ("x", "vx0", None, None)]);
        let mut plan = plan_for(&["br0"]);
        plan.rejected.push(Rejected { iface_uuid: "x".into(), error: "type vxlan is not supported".into() });
        let mut cache = WriteCache::default();
        let ops = updates(&write(&mut s, &plan, &mut cache, true));
        let rows: Vec<&Value> = ops.iter().filter(|(_, u, _)| u == "x").map(|(_, _, r)| r).collect();
        assert_eq!(rows.len(), 1, "status only, no statistics: {rows:?}");
        assert_eq!(
            (&rows[0]["ofport"], &rows[0]["error"]),
            (&json!(-1), &json!("type vxlan is not supported"))
        );
        let again = updates(&write(&mut s, &plan, &mut cache, true));
        assert!(again.iter().all(|(_, u, _)| u != "x"), "written once: {again:?}");
    }

    #[test]
    fn a_failed_device_gets_ofport_minus_one_and_its_error() {
        let s = snap(&[("l", "br0", None, None), ("a", "vnet0", None, None)]);
        let plan = plan_for(&["br0", "vnet0"]);
        let failed = |name: &str| {
            let mut st = up(name)?;
            st.error =
                (name == "vnet0").then(|| "could not open network device vnet0 (No such device)".into());
            Some(st)
        };
        let ofports = ofports();
        let input = StatusInput {
            snapshot: &s,
            plan: &plan,
            ofports: &ofports,
            status: &failed,
            stats_due: false,
            mirror_stats: &|_| None,
        };
        let ops = updates(&status_ops(&input, &WriteCache::default()).0);
        let row =
            ops.iter().find(|(_, u, r)| u == "a" && r.get("ofport").is_some()).map(|(_, _, r)| r).unwrap();
        assert_eq!(row["ofport"], -1);
        assert!(row["error"].as_str().unwrap().contains("No such device"), "{row}");
    }

    /// A VPN port's MTU (what its tun uplink's device says, every tick) reaches Interface
    /// `mtu` when it changes, and an unchanged one costs no write.
    #[test]
    fn a_changed_mtu_rewrites_the_row_once() {
        let s = snap(&[("l", "br0", None, None), ("a", "vpn0", None, None)]);
        let plan = plan_for(&["br0", "vpn0"]);
        let ofports = ofports();
        let mtu = std::cell::Cell::new(1500);
        let status = |name: &str| {
            let mut st = up(name)?;
            st.mtu = Some(mtu.get());
            Some(st)
        };
        let mut cache = WriteCache::default();
        let mut run = || {
            let input = StatusInput {
                snapshot: &s,
                plan: &plan,
                ofports: &ofports,
                status: &status,
                stats_due: false,
                mirror_stats: &|_| None,
            };
            let (ops, w) = status_ops(&input, &cache);
            cache.remember(w, &s);
            let rows = updates(&ops).into_iter().filter(|(_, u, r)| u == "a" && r.get("mtu").is_some());
            rows.map(|(_, _, r)| r["mtu"].clone()).collect::<Vec<_>>()
        };
        assert_eq!(run(), [json!(1500)], "the first write");
        assert!(run().is_empty(), "unchanged: nothing written");
        mtu.set(1300);
        assert_eq!(run(), [json!(1300)], "the new MTU");
        assert!(run().is_empty());
    }
}
