//! One OVSDB database: state, file log, monitors, locks, and the in-process
//! API the daemon uses (see the crate docs).
//!
//! All mutation happens under one mutex: a transaction runs, is logged and
//! fsync'ed, installed, and its notifications are queued to every monitor
//! before the lock is released, so every client sees the same total order.
//! (The socket server's transactions are fsync'ed after the lock, once per
//! event-loop turn, but still before their replies are sent.)

use crate::error::{Error, OResult, OvsdbError};
use crate::locks::{LockManager, SessionId};
use crate::monitor::{self, MonitorSpec, MonitorVersion};
use crate::replay;
use crate::row::{DbState, RowChange};
use crate::schema::DatabaseSchema;
use crate::storage::Storage;
use crate::txn::{self, Outcome, TxnEnv};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Where a session's notifications go (a socket's output queue or a channel).
pub trait Sink: Send + Sync {
    /// Queues one JSON-RPC message; false means the receiver is gone and the
    /// session's monitors should be dropped.
    fn deliver(&self, msg: &Value) -> bool;
}

/// Told (under the database lock, so it must not block) that a transaction committed: an event
/// loop uses it to re-attempt its blocked `wait` transactions without a thread per wait.
pub(crate) trait CommitWatch: Send + Sync {
    /// Called once per committed transaction.
    fn committed(&self);
}

/// A [`Sink`] feeding a std channel (in-process sessions).
pub struct ChannelSink(Mutex<Sender<Value>>);

impl Sink for ChannelSink {
    fn deliver(&self, msg: &Value) -> bool {
        self.0.lock().map(|s| s.send(msg.clone()).is_ok()).unwrap_or(false)
    }
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Allocates a process-wide unique session id.
pub fn new_session_id() -> SessionId {
    NEXT_SESSION.fetch_add(1, Ordering::Relaxed)
}

/// How many committed transactions monitor_cond_since can replay.
const HISTORY: usize = 256;
/// Default log size that triggers compaction (also requires 4x growth).
const DEFAULT_COMPACT_BYTES: u64 = 10 << 20;

struct MonitorReg {
    session: SessionId,
    spec: MonitorSpec,
}

struct Inner {
    state: DbState,
    storage: Option<Storage>,
    compact_bytes: u64,
    sinks: HashMap<SessionId, Arc<dyn Sink>>,
    monitors: Vec<MonitorReg>,
    locks: LockManager,
    history: VecDeque<(Uuid, Arc<Vec<RowChange>>)>,
    last_txn: Uuid,
    generation: u64,
    /// Weak so that a stopped server's watch goes away with it.
    watches: Vec<Weak<dyn CommitWatch>>,
}

/// An OVSDB database.
pub struct Database {
    schema: Arc<DatabaseSchema>,
    inner: Mutex<Inner>,
    changed: Condvar,
    read_only: bool,
    /// A deferred log write awaits [`Database::sync`] (an atomic, so idle syncs take no lock).
    unsynced: AtomicBool,
}

/// Result of one attempt at a transaction.
pub(crate) enum Attempt {
    Reply(Value),
    Blocked { deadline: Option<Instant>, generation: u64 },
}

impl Database {
    fn build(
        schema: DatabaseSchema,
        state: DbState,
        storage: Option<Storage>,
        read_only: bool,
    ) -> Arc<Database> {
        Arc::new(Database {
            schema: Arc::new(schema),
            inner: Mutex::new(Inner {
                state,
                storage,
                compact_bytes: DEFAULT_COMPACT_BYTES,
                sinks: HashMap::new(),
                monitors: Vec::new(),
                locks: LockManager::default(),
                history: VecDeque::new(),
                last_txn: Uuid::new_v4(),
                generation: 0,
                watches: Vec::new(),
            }),
            changed: Condvar::new(),
            read_only,
            unsynced: AtomicBool::new(false),
        })
    }

    /// A database kept only in memory.
    pub fn in_memory(schema: DatabaseSchema) -> Arc<Database> {
        let st = DbState::empty(&schema);
        Self::build(schema, st, None, false)
    }

    pub(crate) fn in_memory_read_only(schema: DatabaseSchema) -> Arc<Database> {
        let st = DbState::empty(&schema);
        Self::build(schema, st, None, true)
    }

    /// Opens (or creates) a database file in the OvS standalone format.
    /// A torn trailing record is discarded. If the file's schema differs from
    /// `schema`, the data is loaded under `schema` (unknown tables/columns
    /// dropped) and the file is rewritten.
    pub fn open(schema: DatabaseSchema, path: &Path) -> Result<Arc<Database>, Error> {
        let mut state = DbState::empty(&schema);
        let storage = match Storage::open(path)? {
            None => Storage::create(path, &schema.json)?,
            Some((mut st, loaded)) => {
                let fname = loaded.schema.get("name").and_then(Value::as_str).unwrap_or("");
                if fname != schema.name {
                    return Err(Error::Corrupt {
                        path: path.display().to_string(),
                        reason: format!("file holds database {fname:?}, expected {:?}", schema.name),
                    });
                }
                for rec in &loaded.records {
                    replay::apply_record(&schema, &mut state, rec).map_err(|e| Error::Corrupt {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                }
                if loaded.schema != schema.json {
                    tracing::info!(path = %path.display(), "schema changed; rewriting database file");
                    st.compact(&schema.json, &replay::snapshot_record(&schema, &state))?;
                }
                st
            }
        };
        Ok(Self::build(schema, state, Some(storage), false))
    }

    /// Writes into a read-only database (used to fill `_Server`).
    pub(crate) fn populate(&self, ops: Value) -> Value {
        let ops = match ops {
            Value::Array(a) => a,
            _ => return json!([]),
        };
        let mut g = self.lock();
        let owns = |_: &str| false;
        let env = TxnEnv { owns_lock: &owns, started: Instant::now(), read_only: false };
        match txn::execute(&self.schema, &g.state, &ops, &env) {
            Outcome::Done { reply, commit } => {
                if let Some(c) = commit {
                    g.state = c.state;
                    g.generation += 1;
                }
                reply
            }
            Outcome::Blocked { .. } => json!([{"error": "blocked"}]),
        }
    }

    /// The schema.
    pub fn schema(&self) -> &DatabaseSchema {
        &self.schema
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.schema.name
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave half-applied state (the
        // state is swapped in one assignment), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the log size above which the file is compacted (default 10 MiB;
    /// compaction also requires the log to have grown 4x since the last one).
    pub fn set_compact_threshold(&self, bytes: u64) {
        self.lock().compact_bytes = bytes;
    }

    /// Rewrites the file as schema + one snapshot record now.
    pub fn compact(&self) -> Result<(), Error> {
        let mut g = self.lock();
        let snap = replay::snapshot_record(&self.schema, &g.state);
        match g.storage.as_mut() {
            Some(st) => st.compact(&self.schema.json, &snap),
            None => Ok(()),
        }
    }

    /// All rows as `{table: {uuid: {column: value}}}`.
    pub fn dump(&self) -> Value {
        self.lock().state.to_json()
    }

    /// Runs a transaction without a session: `ops` is the array of operations
    /// (a leading database-name string is accepted and skipped). Blocks while a
    /// `wait` with a timeout is unsatisfied. Returns the `result` array.
    pub fn transact(&self, ops: Value) -> Value {
        self.transact_as(None, ops, None, Durability::Synced)
    }

    pub(crate) fn transact_as(
        &self,
        session: Option<SessionId>,
        ops: Value,
        cancel: Option<&AtomicBool>,
        durability: Durability,
    ) -> Value {
        let ops = match ops {
            Value::Array(mut a) => {
                if a.first().and_then(Value::as_str).is_some() {
                    a.remove(0);
                }
                a
            }
            _ => return json!([OvsdbError::syntax("transaction must be an array").to_json()]),
        };
        let started = Instant::now();
        loop {
            match self.attempt_with(session, &ops, started, durability) {
                Attempt::Reply(v) => return v,
                Attempt::Blocked { deadline, generation } => {
                    if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                        return json!({"error": "canceled"});
                    }
                    self.wait_change(generation, deadline);
                }
            }
        }
    }

    /// How many transactions have committed: a blocked transaction is worth re-attempting
    /// only once this moves past the value its attempt saw.
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Registers `w` to be told of every later commit (until `w` is dropped).
    pub(crate) fn watch_commits(&self, w: Weak<dyn CommitWatch>) {
        self.lock().watches.push(w);
    }

    /// Waits until the database changes past `generation`, `deadline`, or
    /// 200 ms (so callers can poll a cancel flag).
    pub(crate) fn wait_change(&self, generation: u64, deadline: Option<Instant>) {
        let g = self.lock();
        if g.generation != generation {
            return;
        }
        let mut dur = Duration::from_millis(200);
        if let Some(d) = deadline {
            dur = dur.min(d.saturating_duration_since(Instant::now()));
        }
        let _ = self.changed.wait_timeout(g, dur);
    }

    /// One attempt at a transaction, written to the log but not yet fsynced: the caller must
    /// call [`Database::sync`] before it acknowledges the reply.
    pub(crate) fn attempt(&self, session: Option<SessionId>, ops: &[Value], started: Instant) -> Attempt {
        self.attempt_with(session, ops, started, Durability::Deferred)
    }

    /// Flushes the log records of [`Database::attempt`]s to disk (a no-op when there are none).
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        if !self.unsynced.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        match self.lock().storage.as_mut() {
            Some(st) => st.sync(),
            None => Ok(()),
        }
    }

    fn attempt_with(
        &self,
        session: Option<SessionId>,
        ops: &[Value],
        started: Instant,
        durability: Durability,
    ) -> Attempt {
        let mut g = self.lock();
        let out = {
            let locks = &g.locks;
            let owns = |name: &str| session.is_some_and(|s| locks.owns(name, s));
            let env = TxnEnv { owns_lock: &owns, started, read_only: self.read_only };
            txn::execute(&self.schema, &g.state, ops, &env)
        };
        match out {
            Outcome::Blocked { deadline } => Attempt::Blocked { deadline, generation: g.generation },
            Outcome::Done { reply, commit: None } => Attempt::Reply(reply),
            Outcome::Done { mut reply, commit: Some(c) } => {
                if let Some(st) = g.storage.as_mut() {
                    if let Some(rec) = replay::txn_record(&self.schema, &c.changes, &c.comments) {
                        if durability == Durability::Deferred {
                            self.unsynced.store(true, Ordering::Release);
                        }
                        if let Err(e) = st.append(&rec, durability == Durability::Synced) {
                            tracing::error!(error = %e, "database log write failed");
                            if let Value::Array(a) = &mut reply {
                                a.push(OvsdbError::new("I/O error", e.to_string()).to_json());
                            }
                            return Attempt::Reply(reply);
                        }
                    }
                }
                g.state = c.state;
                g.generation += 1;
                let txn_id = Uuid::new_v4();
                g.last_txn = txn_id;
                let changes = Arc::new(c.changes);
                g.history.push_back((txn_id, changes.clone()));
                while g.history.len() > HISTORY {
                    g.history.pop_front();
                }
                self.notify(&mut g, &changes, txn_id);
                self.changed.notify_all();
                g.watches.retain(|w| w.upgrade().inspect(|w| w.committed()).is_some());
                self.maybe_compact(&mut g);
                Attempt::Reply(reply)
            }
        }
    }

    fn notify(&self, g: &mut Inner, changes: &[RowChange], txn_id: Uuid) {
        let mut dead = Vec::new();
        for m in &g.monitors {
            let Some(u) = monitor::updates(&self.schema, &m.spec, changes) else { continue };
            let msg = notification(&m.spec, u, txn_id);
            let ok = g.sinks.get(&m.session).is_some_and(|s| s.deliver(&msg));
            if !ok {
                dead.push(m.session);
            }
        }
        if !dead.is_empty() {
            g.monitors.retain(|m| !dead.contains(&m.session));
        }
    }

    fn maybe_compact(&self, g: &mut Inner) {
        let limit = g.compact_bytes;
        let Some(st) = g.storage.as_ref() else { return };
        if st.size() < limit || st.size() < st.snapshot_size().saturating_mul(4) {
            return;
        }
        let snap = replay::snapshot_record(&self.schema, &g.state);
        if let Some(st) = g.storage.as_mut() {
            match st.compact(&self.schema.json, &snap) {
                Ok(()) => tracing::info!(path = %st.path().display(), size = st.size(), "compacted database"),
                Err(e) => tracing::warn!(error = %e, "compaction failed; continuing with the old log"),
            }
        }
    }

    /// Registers where a session's notifications go.
    pub(crate) fn attach(&self, session: SessionId, sink: Arc<dyn Sink>) {
        self.lock().sinks.insert(session, sink);
    }

    /// Forgets a session: its monitors go, its locks pass to the next waiter.
    pub(crate) fn detach(&self, session: SessionId) {
        let mut g = self.lock();
        g.monitors.retain(|m| m.session != session);
        let granted = g.locks.release_all(session);
        g.sinks.remove(&session);
        for (name, owner) in granted {
            if let Some(s) = g.sinks.get(&owner) {
                s.deliver(&json!({"id": null, "method": "locked", "params": [name]}));
            }
        }
    }

    /// Adds a monitor and returns its initial contents (monitor / monitor_cond).
    /// Registers a monitor and returns its initial contents. `deliver`, when given, is called
    /// with them while the database is still locked: a connection queues its reply there, so no
    /// update from a later commit can reach the client before the rows it modifies.
    pub(crate) fn add_monitor(
        &self,
        session: SessionId,
        spec: MonitorSpec,
        deliver: Option<&dyn Fn(&Value)>,
    ) -> OResult<Value> {
        self.register_monitor(session, spec, deliver, |g, spec| {
            monitor::initial(&self.schema, spec, &g.state)
        })
    }

    /// monitor_cond_since: `[found, last-txn-id, updates]`.
    /// Like [`Database::add_monitor`], with `deliver` under the same lock.
    pub(crate) fn add_monitor_since(
        &self,
        session: SessionId,
        spec: MonitorSpec,
        last: Option<Uuid>,
        deliver: Option<&dyn Fn(&Value)>,
    ) -> OResult<Value> {
        self.register_monitor(session, spec, deliver, |g, spec| {
            let pos = last.filter(|u| !u.is_nil()).and_then(|u| {
                if u == g.last_txn {
                    Some(g.history.len())
                } else {
                    g.history.iter().position(|(id, _)| *id == u).map(|p| p + 1)
                }
            });
            match pos {
                Some(p) => {
                    let sets: Vec<&[RowChange]> =
                        g.history.iter().skip(p).map(|(_, c)| c.as_slice()).collect();
                    let composed = monitor::compose(&sets);
                    let upd = monitor::updates(&self.schema, spec, &composed).unwrap_or_else(|| json!({}));
                    json!([true, g.last_txn.to_string(), upd])
                }
                None => {
                    json!([false, g.last_txn.to_string(), monitor::initial(&self.schema, spec, &g.state)])
                }
            }
        })
    }

    /// The common part of both monitor requests: refuse a duplicate id, compute the first reply
    /// with `first`, register, deliver — all under one lock.
    fn register_monitor(
        &self,
        session: SessionId,
        spec: MonitorSpec,
        deliver: Option<&dyn Fn(&Value)>,
        first: impl FnOnce(&Inner, &MonitorSpec) -> Value,
    ) -> OResult<Value> {
        let mut g = self.lock();
        if g.monitors.iter().any(|m| m.session == session && m.spec.id == spec.id) {
            return Err(OvsdbError::new(
                "duplicate monitor ID",
                format!("monitor {} already exists", spec.id),
            ));
        }
        let result = first(&g, &spec);
        g.monitors.push(MonitorReg { session, spec });
        if let Some(deliver) = deliver {
            deliver(&result);
        }
        Ok(result)
    }

    /// monitor_cond_change: replaces conditions (and the id); returns the
    /// insert/delete updates that the new conditions imply.
    ///
    /// `deliver`, when given, receives the reply-then-update sequence while the database is
    /// still locked, so a later commit's update cannot overtake the condition change.
    pub(crate) fn change_monitor(
        &self,
        session: SessionId,
        old_id: &Value,
        new_id: Value,
        requests: &Value,
        deliver: Option<DeliverChange<'_>>,
    ) -> OResult<Option<Value>> {
        let mut g = self.lock();
        let Some(idx) = g.monitors.iter().position(|m| m.session == session && m.spec.id == *old_id) else {
            return Err(OvsdbError::new("unknown monitor", format!("no monitor {old_id}")));
        };
        let old = g.monitors[idx].spec.clone();
        let changes = monitor::parse_requests(&self.schema, requests, old.version)?;
        let mut new = old.clone();
        for (t, m) in changes {
            match new.tables.get_mut(&t) {
                Some(cur) => {
                    cur.cond = m.cond;
                    if requests
                        .get(&t)
                        .and_then(|r| r.as_array().and_then(|a| a.first()).or(Some(r)))
                        .and_then(|r| r.get("columns"))
                        .is_some()
                    {
                        cur.columns = m.columns;
                    }
                }
                None => return Err(OvsdbError::syntax(format!("table {t} not monitored"))),
            }
        }
        new.id = new_id;
        let upd = monitor::cond_change(&self.schema, &old, &new, &g.state);
        let msg = upd.map(|u| notification(&new, u, g.last_txn));
        g.monitors[idx].spec = new;
        if let Some(deliver) = deliver {
            deliver(msg.as_ref());
        }
        Ok(msg)
    }

    /// Removes a monitor; false if this session has none with that id.
    pub(crate) fn cancel_monitor(&self, session: SessionId, id: &Value) -> bool {
        let mut g = self.lock();
        let before = g.monitors.len();
        g.monitors.retain(|m| !(m.session == session && m.spec.id == *id));
        g.monitors.len() != before
    }

    /// lock: true if granted now (otherwise "locked" is sent later).
    pub(crate) fn lock_request(&self, session: SessionId, name: &str) -> OResult<bool> {
        let mut g = self.lock();
        if g.locks.involved(name, session) {
            return Err(OvsdbError::new("duplicate lock", format!("already own or wait for lock {name}")));
        }
        Ok(g.locks.lock(name, session))
    }

    /// steal: always granted; the previous owner gets "stolen".
    pub(crate) fn steal_request(&self, session: SessionId, name: &str) {
        let mut g = self.lock();
        if let Some(prev) = g.locks.steal(name, session) {
            if prev != session {
                if let Some(s) = g.sinks.get(&prev) {
                    s.deliver(&json!({"id": null, "method": "stolen", "params": [name]}));
                }
            }
        }
    }

    /// unlock: the next waiter (if any) gets "locked".
    pub(crate) fn unlock_request(&self, session: SessionId, name: &str) {
        let mut g = self.lock();
        if let Some(next) = g.locks.unlock(name, session) {
            if let Some(s) = g.sinks.get(&next) {
                s.deliver(&json!({"id": null, "method": "locked", "params": [name]}));
            }
        }
    }

    /// Creates an in-process session: a client of this database with its own
    /// locks and monitors whose notifications arrive on a channel.
    pub fn session(self: &Arc<Self>) -> Session {
        let (tx, rx) = channel();
        let id = new_session_id();
        self.attach(id, Arc::new(ChannelSink(Mutex::new(tx))));
        Session { db: self.clone(), id, rx }
    }
}

/// The JSON-RPC notification for one monitor's table-updates.
fn notification(spec: &MonitorSpec, updates: Value, txn_id: Uuid) -> Value {
    let params = match spec.version {
        MonitorVersion::V3 => json!([spec.id, txn_id.to_string(), updates]),
        _ => json!([spec.id, updates]),
    };
    json!({"id": null, "method": spec.version.method(), "params": params})
}

/// Receives a condition change's update (if any) under the database lock.
pub(crate) type DeliverChange<'a> = &'a dyn Fn(Option<&Value>);

/// Whether a committed transaction must be on disk before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
    /// fsync before the reply (every client transaction).
    Synced,
    /// Written now, fsynced by the caller's [`Database::sync`] before it sends the reply: the
    /// event loop commits every transaction of one turn and then pays one fsync for all of them.
    Deferred,
    /// written, not flushed (recomputable status).
    Volatile,
}

/// An in-process client session (what ovs-vswitchd is to ovsdb-server).
/// Dropping it cancels its monitors and releases its locks.
pub struct Session {
    db: Arc<Database>,
    id: SessionId,
    rx: Receiver<Value>,
}

impl Session {
    /// Runs a transaction; `assert` ops succeed for locks this session owns.
    pub fn transact(&self, ops: Value) -> Value {
        self.db.transact_as(Some(self.id), ops, None, Durability::Synced)
    }

    /// Like [`Session::transact`], but the log record is written without fsync: for state the
    /// writer can recompute after a crash (ovs-vswitchd-style status write-back), so it does
    /// not pay a disk flush per change. It still survives the process being killed, and the
    /// next synced transaction flushes it too.
    pub fn transact_volatile(&self, ops: Value) -> Value {
        self.db.transact_as(Some(self.id), ops, None, Durability::Volatile)
    }

    /// Starts a monitor. `requests` is `<monitor-requests>` (table → request),
    /// `version` picks update / update2 / update3 notifications. Returns the
    /// initial table-updates.
    pub fn monitor(&self, version: MonitorVersion, id: Value, requests: &Value) -> Result<Value, OvsdbError> {
        let tables = monitor::parse_requests(self.db.schema(), requests, version)?;
        self.db.add_monitor(self.id, MonitorSpec { version, id, tables }, None)
    }

    /// Cancels a monitor; false if unknown.
    pub fn monitor_cancel(&self, id: &Value) -> bool {
        self.db.cancel_monitor(self.id, id)
    }

    /// Requests a lock; true if owned now, else a `locked` notification follows.
    pub fn lock(&self, name: &str) -> Result<bool, OvsdbError> {
        self.db.lock_request(self.id, name)
    }

    /// Takes a lock from its owner.
    pub fn steal(&self, name: &str) {
        self.db.steal_request(self.id, name)
    }

    /// Releases a lock or stops waiting for it.
    pub fn unlock(&self, name: &str) {
        self.db.unlock_request(self.id, name)
    }

    /// Notifications (`update*`, `locked`, `stolen`) as JSON-RPC objects:
    /// `{"id": null, "method": ..., "params": [...]}`.
    pub fn notifications(&self) -> &Receiver<Value> {
        &self.rx
    }

    /// Moves the notification channel out, so one thread can wait for updates while another
    /// owns the session and transacts. Later calls return a receiver that never yields.
    pub fn take_notifications(&mut self) -> Receiver<Value> {
        std::mem::replace(&mut self.rx, channel().1)
    }

    /// The database this session talks to.
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.db.detach(self.id);
    }
}
