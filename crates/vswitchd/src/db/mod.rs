//! rvswitchd as a client of its own database, the way ovs-vswitchd is of ovsdb-server: it holds
//! the `ovs_vswitchd` lock, turns the Open_vSwitch/Bridge/Port/Interface rows into desired state,
//! reconciles, and writes status back (ofport, link_state, error, statistics, cur_cfg...).

mod conn;
mod datum;
mod error;
#[cfg(test)]
mod fixtures;
mod mirrors;
mod plan;
pub mod remote;
mod root;
mod scope;
mod security;
mod seed;
mod snapshot;
mod status;
mod vpn_options;
mod writeback;

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ovsdb::{Database, MonitorVersion};
use serde_json::{json, Value};
use tracing::{debug, warn};

pub use conn::{DbConn, LocalDb};
pub use error::DbError;
pub use plan::{plan, plan_scoped, Plan, Rejected, Unsupported};
pub use remote::{RemoteDb, RemoteOptions};
pub use root::{ensure_root_row, SYSTEM_ID_KEY};
pub use scope::{Scope, BRIDGE_HOST_KEY};
pub use seed::{seed_ops, SOURCE_KEY};
pub use snapshot::Snapshot;

use crate::reconcile::Reconciler;
use crate::state::DesiredState;
use status::{status_ops, StatusInput, WriteCache};
use writeback::OfportAllocator;

/// The lock ovs-vswitchd takes; holding it tells other daemons (and our own asserts) who writes.
pub const LOCK: &str = "ovs_vswitchd";
/// How often Interface `statistics` are written (ovs-vswitchd: every 5 s).
const STATS_INTERVAL: Duration = Duration::from_secs(5);

/// Config columns whose change needs a new sync. Status columns we write ourselves are not
/// monitored, so our own write-back does not wake us up again.
fn monitor_request() -> Value {
    json!({
        "Open_vSwitch": {"columns": ["bridges", "next_cfg"]},
        "Bridge": {"columns": ["name", "ports", "other_config", "mirrors"]},
        "Port": {"columns": ["name", "interfaces", "tag", "trunks", "vlan_mode"]},
        "Interface": {"columns": ["name", "type", "ofport_request", "other_config", "external_ids", "options"]},
        "Mirror": {"columns": snapshot::MIRROR_COLUMNS}
    })
}

/// Errors inside a transaction's result array, as text.
pub(crate) fn txn_errors(reply: &Value) -> Option<String> {
    let errors: Vec<String> = reply
        .as_array()
        .map(|a| a.iter().filter(|r| r.get("error").is_some()).map(|r| r.to_string()).collect())
        .unwrap_or_else(|| vec![reply.to_string()]);
    (!errors.is_empty()).then(|| errors.join("; "))
}

pub struct DbSync {
    conn: Box<dyn DbConn>,
    scope: Scope,
    /// The connection's epoch the status cache is valid for.
    epoch: u64,
    ofports: OfportAllocator,
    snapshot: Snapshot,
    plan: Plan,
    assigned: HashMap<String, i64>,
    /// What earlier status writes put in the database (write only what changed).
    written: WriteCache,
    last_stats: Option<Instant>,
}

/// The lock a host takes: `ovs_vswitchd` on a database of its own, one per system-id on a
/// shared one (a lock name is an OVSDB id: letters, digits, underscores).
pub fn lock_name(system_id: Option<&str>) -> String {
    match system_id {
        None => LOCK.to_string(),
        Some(id) => {
            let id: String = id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
            format!("{LOCK}_{id}")
        }
    }
}

impl DbSync {
    /// Connects to `db`, takes the `ovs_vswitchd` lock and starts monitoring. Returns the channel
    /// on which database changes are announced.
    pub fn new(db: &Arc<Database>) -> Result<(DbSync, Receiver<Value>), DbError> {
        let mut session = db.session();
        match session.lock(LOCK) {
            Ok(true) => {}
            Ok(false) => return Err(DbError::LockHeld),
            Err(e) => return Err(DbError::LockRequest(e)),
        }
        session
            .monitor(MonitorVersion::V1, json!("rvswitchd"), &monitor_request())
            .map_err(DbError::Monitor)?;
        let notes = session.take_notifications();
        Ok((DbSync::with(Box::new(LocalDb { session }), Scope::default()), notes))
    }

    /// A remote ovsdb-server (or cluster): the connection thread starts now and connects in
    /// the background; until it has the contents, [`DbSync::sync`] returns
    /// [`DbError::NotLoaded`] and the announcement channel says when they arrive.
    pub fn remote(opts: RemoteOptions, scope: Scope) -> std::io::Result<(DbSync, Receiver<Value>)> {
        let (conn, notes) = RemoteDb::start(opts)?;
        Ok((DbSync::with(Box::new(conn), scope), notes))
    }

    fn with(conn: Box<dyn DbConn>, scope: Scope) -> DbSync {
        DbSync {
            epoch: conn.epoch(),
            conn,
            scope,
            ofports: OfportAllocator::default(),
            snapshot: Snapshot::default(),
            plan: Plan::default(),
            assigned: HashMap::new(),
            written: WriteCache::default(),
            last_stats: None,
        }
    }

    /// Writes `desired` (from a config file) into the database as one transaction.
    pub fn seed(&mut self, desired: &DesiredState, source: &str) -> Result<(), DbError> {
        let snap = self.conn.snapshot()?;
        let reply = self.conn.transact(seed_ops(&snap, desired, source, &self.scope))?;
        match txn_errors(&reply) {
            Some(e) => Err(DbError::ConfigRefused(e)),
            None => Ok(()),
        }
    }

    /// Reads the configuration, makes the datapath match it and writes status back.
    pub fn sync(&mut self, rec: &mut Reconciler) -> Result<Vec<String>, DbError> {
        if !self.conn.has_lock() {
            return Err(DbError::LockHeld);
        }
        self.snapshot = self.conn.snapshot()?;
        self.plan = plan_scoped(&self.snapshot, &self.scope);
        for r in &self.plan.rejected {
            debug!(iface = r.iface_uuid, "not configurable: {}", r.error);
        }
        for note in &self.plan.mirror_notes {
            warn!("{note}");
        }
        self.assigned = self.ofports.assign(&self.snapshot, &self.plan);
        let changes = rec.apply(self.plan.desired.clone());
        self.write_status(rec);
        Ok(changes)
    }

    /// The OpenFlow port number assigned to each interface, by interface name (what OvS prints
    /// in `fdb/show` and `dpif/show`, and what `in_port=N` names).
    pub fn ofports(&self) -> HashMap<String, i64> {
        self.snapshot
            .ifaces
            .values()
            .filter_map(|i| self.assigned.get(&i.uuid).map(|n| (i.name.clone(), *n)))
            .collect()
    }

    /// Writes the status columns that changed (statistics when due) and, once the configuration
    /// read last is live, `cur_cfg`. What to write is decided by [`status_ops`].
    pub fn write_status(&mut self, rec: &Reconciler) {
        if !self.conn.has_lock() {
            return;
        }
        if self.conn.epoch() != self.epoch {
            // A new session: write everything again (the server may not have our last writes).
            self.epoch = self.conn.epoch();
            self.written = WriteCache::default();
        }
        let stats_due = self.last_stats.is_none_or(|t| t.elapsed() >= STATS_INTERVAL);
        if stats_due {
            rec.sync_counters();
        }
        let input = StatusInput {
            snapshot: &self.snapshot,
            plan: &self.plan,
            ofports: &self.assigned,
            status: &|name| rec.iface_status(name),
            stats_due,
            mirror_stats: &|uuid| rec.mirror_stats(uuid),
        };
        let (ops, written) = status_ops(&input, &self.written);
        if ops.is_empty() {
            return;
        }
        let mut txn = vec![json!("Open_vSwitch"), json!({"op": "assert", "lock": self.conn.lock_name()})];
        txn.extend(ops);
        let reply = match self.conn.transact_volatile(Value::Array(txn)) {
            Ok(reply) => reply,
            Err(e) => return debug!("status write-back postponed: {e}"),
        };
        match txn_errors(&reply) {
            None => {
                if stats_due {
                    self.last_stats = Some(Instant::now());
                }
                if let (Some(cfg), Some(ovs)) = (written.cur_cfg, self.snapshot.ovs.as_mut()) {
                    ovs.cur_cfg = cfg;
                }
                self.written.remember(written, &self.snapshot);
            }
            Some(e) => warn!("status write-back failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ovsdb::DatabaseSchema;

    fn sorted(mut s: DesiredState) -> DesiredState {
        s.bridges.sort_by(|a, b| a.name.cmp(&b.name));
        for b in &mut s.bridges {
            let local = b.name.clone();
            b.ports.sort_by(|x, y| (x.name != local, &x.name).cmp(&(y.name != local, &y.name)));
        }
        s
    }

    /// Config file → one transaction → tables → desired state gives back what the file said.
    #[test]
    fn seeding_round_trips_through_the_tables() {
        let db = Database::in_memory(DatabaseSchema::parse_str(ovsdb::VSWITCH_SCHEMA).unwrap());
        let session = db.session();
        let file =
            crate::config::parse(include_str!("../../../../examples/rvswitch.toml"), "example").unwrap();
        for round in 0..2 {
            // The second round seeds over existing rows (updates instead of inserts).
            let snap = Snapshot::read(&session).unwrap();
            let reply = session.transact(seed_ops(&snap, &file, "example", &Scope::default()));
            assert_eq!(txn_errors(&reply), None, "round {round}: {reply}");
            let snap = Snapshot::read(&session).unwrap();
            let planned = plan(&snap);
            assert!(planned.rejected.is_empty(), "{:?}", planned.rejected);
            assert_eq!(sorted(planned.desired), sorted(file.clone()), "round {round}");
        }
        // A file without br-internet removes that bridge (and only it).
        let mut smaller = file.clone();
        smaller.bridges.retain(|b| b.name != "br-internet");
        let snap = Snapshot::read(&session).unwrap();
        assert_eq!(
            txn_errors(&session.transact(seed_ops(&snap, &smaller, "example", &Scope::default()))),
            None
        );
        let names: Vec<String> =
            plan(&Snapshot::read(&session).unwrap()).desired.bridges.into_iter().map(|b| b.name).collect();
        assert_eq!(names, vec!["br-intranet".to_string()]);
    }

    /// Two hosts seed their own config files (same path) into one shared database: each marks
    /// its bridges, neither removes the other's, and each plans only its own.
    #[test]
    fn hosts_sharing_a_database_seed_and_plan_only_their_own_bridges() {
        let db = Database::in_memory(DatabaseSchema::parse_str(ovsdb::VSWITCH_SCHEMA).unwrap());
        let session = db.session();
        let file = crate::config::parse(include_str!("../../../../examples/rvswitch.toml"), "f").unwrap();
        let (a, b) = (Scope::new(Some("host-a".into())), Scope::new(Some("host-b".into())));
        let only = |name: &str, scope: &Scope| {
            let mut f = file.clone();
            f.bridges.retain(|br| br.name == name);
            let snap = Snapshot::read(&session).unwrap();
            let reply = session.transact(seed_ops(&snap, &f, "/etc/rvswitch.toml", scope));
            assert_eq!(txn_errors(&reply), None, "{reply}");
        };
        only("br-intranet", &a);
        only("br-internet", &b);
        only("br-intranet", &a); // a reload of host-a's file: host-b's bridge stays
        let snap = Snapshot::read(&session).unwrap();
        assert_eq!(snap.active_bridges().len(), 2);
        let names = |scope: &Scope| -> Vec<String> {
            plan_scoped(&snap, scope).desired.bridges.into_iter().map(|b| b.name).collect()
        };
        assert_eq!(names(&a), vec!["br-intranet".to_string()]);
        assert_eq!(names(&b), vec!["br-internet".to_string()]);
        assert!(names(&Scope::new(Some("host-c".into()))).is_empty());
    }

    #[test]
    fn lock_names_are_ovsdb_ids() {
        assert_eq!(lock_name(None), "ovs_vswitchd");
        assert_eq!(lock_name(Some("3f2a-b.c")), "ovs_vswitchd_3f2a_b_c");
    }

    #[test]
    fn a_second_client_cannot_take_the_lock() {
        let db = Database::in_memory(DatabaseSchema::parse_str(ovsdb::VSWITCH_SCHEMA).unwrap());
        let _first = DbSync::new(&db).unwrap();
        let e = DbSync::new(&db).err().expect("the lock is taken");
        assert!(matches!(e, DbError::LockHeld), "{e:?}");
        assert_eq!(e.to_string(), "lock ovs_vswitchd is held by another client");
    }

    /// libvirt's attached-mac makes a port a secured VM port; a malformed key refuses the port
    /// (with the reason for Interface `error`) instead of running it unchecked.
    #[test]
    fn interface_keys_become_port_security() {
        let db = Database::in_memory(DatabaseSchema::parse_str(ovsdb::VSWITCH_SCHEMA).unwrap());
        let s = db.session();
        let reply = s.transact(json!(["Open_vSwitch",
            {"op": "insert", "table": "Interface", "uuid-name": "i1", "row": {"name": "vnet0",
                "external_ids": ["map", [["attached-mac", "52:54:00:00:00:01"]]],
                "other_config": ["map", [["allowed-ips", "198.18.0.5"]]]}},
            {"op": "insert", "table": "Port", "uuid-name": "p1", "row": {"name": "vnet0", "interfaces": ["named-uuid", "i1"], "tag": 10}},
            {"op": "insert", "table": "Interface", "uuid-name": "i2", "row": {"name": "vnet1",
                "external_ids": ["map", [["attached-mac", "52:54:00:00:00:02"]]],
                "other_config": ["map", [["allowed-ips", "198.18.0.300"]]]}},
            {"op": "insert", "table": "Port", "uuid-name": "p2", "row": {"name": "vnet1", "interfaces": ["named-uuid", "i2"], "tag": 10}},
            {"op": "insert", "table": "Bridge", "uuid-name": "b", "row": {"name": "br0",
                "ports": ["set", [["named-uuid", "p1"], ["named-uuid", "p2"]]]}},
            {"op": "insert", "table": "Open_vSwitch", "row": {"bridges": ["named-uuid", "b"]}}
        ]));
        assert_eq!(txn_errors(&reply), None, "{reply}");
        let p = plan(&Snapshot::read(&s).unwrap());
        let port = &p.desired.bridges[0].ports[0];
        assert_eq!(port.name, "vnet0");
        assert!(port.security.checks_l3() && !port.security.trusted);
        assert_eq!(port.security.ips.len(), 1);
        assert_eq!(p.desired.bridges[0].ports.len(), 1, "vnet1 refused");
        assert_eq!(p.rejected.len(), 1);
        assert!(p.rejected[0].error.contains("198.18.0.300"), "{}", p.rejected[0].error);
    }

    #[test]
    fn unsupported_rows_are_rejected_with_a_reason() {
        let db = Database::in_memory(DatabaseSchema::parse_str(ovsdb::VSWITCH_SCHEMA).unwrap());
        let s = db.session();
        let reply = s.transact(json!(["Open_vSwitch",
            {"op": "insert", "table": "Interface", "uuid-name": "i1", "row": {"name": "vx0", "type": "vxlan"}},
            {"op": "insert", "table": "Port", "uuid-name": "p1", "row": {"name": "vx0", "interfaces": ["named-uuid", "i1"]}},
            {"op": "insert", "table": "Interface", "uuid-name": "i2", "row": {"name": "q0"}},
            {"op": "insert", "table": "Port", "uuid-name": "p2", "row": {"name": "q0", "interfaces": ["named-uuid", "i2"], "vlan_mode": "dot1q-tunnel", "tag": 5}},
            {"op": "insert", "table": "Interface", "uuid-name": "i3", "row": {"name": "ok0"}},
            {"op": "insert", "table": "Port", "uuid-name": "p3", "row": {"name": "ok0", "interfaces": ["named-uuid", "i3"], "tag": 7}},
            {"op": "insert", "table": "Bridge", "uuid-name": "b", "row": {"name": "br0",
                "ports": ["set", [["named-uuid", "p1"], ["named-uuid", "p2"], ["named-uuid", "p3"]]]}},
            {"op": "insert", "table": "Open_vSwitch", "row": {"bridges": ["named-uuid", "b"]}}
        ]));
        assert_eq!(txn_errors(&reply), None, "{reply}");
        let p = plan(&Snapshot::read(&s).unwrap());
        let errors: Vec<&str> = p.rejected.iter().map(|r| r.error.as_str()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("vxlan")));
        assert!(errors.iter().any(|e| e.contains("dot1q-tunnel")));
        let ports: Vec<&str> = p.desired.bridges[0].ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(ports, vec!["ok0"]);
    }
}
