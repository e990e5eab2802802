//! One session with one ovsdb-server: check that the member may be used, prepare the root row,
//! request the lock, monitor (`monitor_cond_since`, resuming from the last transaction seen),
//! then serve the sync loop's transactions and apply updates until the connection fails or the
//! member stops being the leader.

use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ovsdb::client::{Client, ClientError};
use ovsdb::DatabaseSchema;
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use super::member::{self, Member};
use super::replica::{Replica, ReplicaError};
use super::{lock, RemoteOptions, Request, Shared, DB_NAME};
use crate::db::root::root_row_ops;
use crate::db::{txn_errors, DbError};

/// Bounds every wait for one reply.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one wait for a notification lasts before the thread looks at its requests again.
const POLL: Duration = Duration::from_millis(20);
/// After this long without a notification, an echo checks the server is still there (a dead
/// host's TCP connection would otherwise look idle forever).
const PROBE: Duration = Duration::from_secs(5);
const CONFIG_MONITOR: &str = "rvs-config";
const SERVER_MONITOR: &str = "rvs-server";
/// The txn id that asks monitor_cond_since for everything.
const NO_TXN: &str = "00000000-0000-0000-0000-000000000000";

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("member is {0:?}")]
    NotUsable(Member),
    #[error("the database's schema: {0}")]
    Schema(String),
    #[error("{0}")]
    Replica(#[from] ReplicaError),
    #[error("unexpected {0} reply: {1}")]
    Reply(&'static str, String),
}

/// Why [`Session::serve`] returned.
pub enum End {
    /// The handle is gone: the daemon is stopping.
    Handle,
    /// The session is over; try the next member.
    Lost(SessionError),
}

pub struct Session {
    client: Client,
}

impl Session {
    /// Connects and does everything up to a running monitor; the replica then holds the
    /// server's contents (resumed, or in full if the server no longer has `last_txn`).
    pub fn open(
        remote: &str,
        opts: &RemoteOptions,
        shared: &Mutex<Shared>,
        last_txn: &mut Option<String>,
    ) -> Result<Session, SessionError> {
        let mut s = Session { client: Client::connect(remote, CALL_TIMEOUT)? };
        let rows = s.client.call("transact", member::query(DB_NAME))?;
        let rows = rows[0]["rows"].as_array().cloned().unwrap_or_default();
        match member::judge(&rows, DB_NAME) {
            Member::Usable => {}
            other => return Err(SessionError::NotUsable(other)),
        }
        let schema = s.schema()?;
        s.prepare_root(opts);
        let locked = s.client.call("lock", json!([opts.lock]))?["locked"].as_bool().unwrap_or(false);
        if !locked {
            info!(lock = opts.lock, "lock held by another client; waiting for it");
        }
        lock(shared).locked = locked;
        let cols = json!({"Database": {"columns": ["name", "model", "connected", "leader"]}});
        s.client.call("monitor", json!(["_Server", SERVER_MONITOR, cols]))?;
        s.monitor(schema, shared, last_txn)?;
        Ok(s)
    }

    fn schema(&mut self) -> Result<DatabaseSchema, SessionError> {
        let v = self.client.get_schema(DB_NAME)?;
        DatabaseSchema::from_json(&v).map_err(|e| SessionError::Schema(e.to_string()))
    }

    /// Makes the root row ready as the embedded database does at start (a fresh database from
    /// `ovsdb-tool create` has none). Failing here is not fatal: the next session tries again.
    fn prepare_root(&mut self, opts: &RemoteOptions) {
        let select = json!([DB_NAME, {"op": "select", "table": "Open_vSwitch", "where": [],
            "columns": ["_uuid", "external_ids"]}]);
        let rows = match self.client.call("transact", select) {
            Ok(r) => r[0]["rows"].as_array().cloned().unwrap_or_default(),
            Err(e) => return warn!("cannot read the root row: {e}"),
        };
        match self.client.call("transact", root_row_ops(&rows, opts.root_system_id.as_deref())) {
            Ok(reply) => {
                if let Some(e) = txn_errors(&reply) {
                    warn!("cannot prepare the root row: {e}");
                }
            }
            Err(e) => warn!("cannot prepare the root row: {e}"),
        }
    }

    /// Starts the configuration monitor, resuming from `last_txn` when the server still has it.
    fn monitor(
        &mut self,
        schema: DatabaseSchema,
        shared: &Mutex<Shared>,
        last_txn: &mut Option<String>,
    ) -> Result<(), SessionError> {
        let since = last_txn.clone().unwrap_or_else(|| NO_TXN.to_string());
        let params = json!([DB_NAME, CONFIG_MONITOR, Replica::monitor_requests(), since]);
        let reply = self.client.call("monitor_cond_since", params)?;
        let (Some(found), Some(txn)) = (reply[0].as_bool(), reply[1].as_str()) else {
            return Err(SessionError::Reply("monitor_cond_since", reply.to_string()));
        };
        let mut shared = lock(shared);
        let replica = shared.replica.get_or_insert_with(|| Replica::new(schema));
        if !found {
            replica.clear();
        }
        let applied = replica.apply(&reply[2]);
        if applied.is_err() {
            *last_txn = None; // a full resync next time
        }
        applied?;
        info!(resumed = found && last_txn.is_some(), txn, "database monitor running");
        *last_txn = Some(txn.to_string());
        shared.epoch += 1;
        Ok(())
    }

    /// Serves until the session ends.
    pub fn serve(
        &mut self,
        shared: &Mutex<Shared>,
        inbox: &Receiver<Request>,
        wake: &Sender<Value>,
        last_txn: &mut Option<String>,
    ) -> End {
        let mut quiet_since = Instant::now();
        loop {
            if let Err(end) = self.answer_requests(inbox) {
                return end;
            }
            let step = match self.client.poll_notification(POLL) {
                Ok(Some(n)) => {
                    quiet_since = Instant::now();
                    self.handle(&n, shared, wake, last_txn)
                }
                Ok(None) if quiet_since.elapsed() >= PROBE => {
                    quiet_since = Instant::now();
                    self.client.echo().map_err(SessionError::from)
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = step {
                return End::Lost(e);
            }
        }
    }

    fn answer_requests(&mut self, inbox: &Receiver<Request>) -> Result<(), End> {
        loop {
            let r = match inbox.try_recv() {
                Ok(r) => r,
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => return Err(End::Handle),
            };
            match self.client.call("transact", r.ops) {
                Ok(v) => {
                    let _ = r.reply.send(Ok(v));
                }
                Err(e) => {
                    let _ = r.reply.send(Err(DbError::Disconnected));
                    return Err(End::Lost(e.into()));
                }
            }
        }
    }

    /// One notification: config updates go into the replica (waking the sync loop when a
    /// configuration column changed); a `_Server` update that demotes the member ends the session.
    fn handle(
        &mut self,
        n: &Value,
        shared: &Mutex<Shared>,
        wake: &Sender<Value>,
        last_txn: &mut Option<String>,
    ) -> Result<(), SessionError> {
        let params = &n["params"];
        match n["method"].as_str() {
            Some("update3") if params[0] == CONFIG_MONITOR => {
                let mut shared = lock(shared);
                let Some(replica) = shared.replica.as_mut() else { return Ok(()) };
                let changed = replica.apply(&params[2]).inspect_err(|_| *last_txn = None)?;
                *last_txn = params[1].as_str().map(str::to_string).or(last_txn.take());
                if changed {
                    let _ = wake.send(Value::Null);
                }
            }
            Some("update") if params[0] == SERVER_MONITOR => {
                let rows = params[1]["Database"].as_object().into_iter().flat_map(|t| t.values());
                let news: Vec<&Value> = rows.map(|r| &r["new"]).filter(|r| r.is_object()).collect();
                match member::judge(news, DB_NAME) {
                    Member::Usable | Member::Missing => {}
                    other => return Err(SessionError::NotUsable(other)),
                }
            }
            Some("locked") => {
                info!("lock acquired");
                lock(shared).locked = true;
                let _ = wake.send(Value::Null);
            }
            Some("stolen") => {
                warn!("lock stolen by another client");
                lock(shared).locked = false;
            }
            other => debug!(?other, "notification ignored"),
        }
        Ok(())
    }
}
