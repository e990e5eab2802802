//! rvswitchd on an existing ovsdb-server (`--db tcp:A:6641,tcp:B:6641,...` or `unix:PATH`), as
//! ovs-vswitchd runs: a connection thread owns the JSON-RPC connection and keeps a [`Replica`]
//! of the configuration tables; the sync loop reads the replica and sends its transactions
//! through the thread. The replica outlives every connection, so while no member answers the
//! switch keeps forwarding on the last configuration received: a lost database never flushes
//! the datapath.

mod backoff;
mod member;
mod replica;
mod session;

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::{info, warn};

use super::conn::DbConn;
use super::snapshot::Snapshot;
use super::DbError;
use backoff::Backoff;
pub use member::Member;
pub use replica::{Replica, ReplicaError};
use session::Session;

/// The database rvswitchd configures itself from.
pub const DB_NAME: &str = "Open_vSwitch";
/// Longest a transaction waits for the connection thread (it answers at once while disconnected).
const TXN_WAIT: Duration = Duration::from_secs(10);
/// Reconnection waits: after every round over all remotes, doubling within these bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(4);

/// How to reach and use the remote database.
#[derive(Clone, Debug)]
pub struct RemoteOptions {
    /// `unix:PATH` / `tcp:HOST:PORT`, tried in turn.
    pub remotes: Vec<String>,
    /// The lock to hold (per host when several share the database).
    pub lock: String,
    /// The system-id to give a root row that has none; `None` when the host names itself with
    /// `--system-id` (it then claims nothing in the shared root row).
    pub root_system_id: Option<String>,
}

/// What the connection thread shares with the sync loop.
#[derive(Default)]
struct Shared {
    /// `None` until a first monitor reply arrived.
    replica: Option<Replica>,
    epoch: u64,
    /// Whether the current session holds the lock.
    locked: bool,
    /// Whether a session is serving requests now (else they are refused without waiting, so a
    /// slow connection attempt never holds up the caller).
    serving: bool,
}

struct Request {
    ops: Value,
    reply: SyncSender<Result<Value, DbError>>,
}

/// The sync loop's handle on the connection thread.
pub struct RemoteDb {
    shared: Arc<Mutex<Shared>>,
    requests: Sender<Request>,
    lock: String,
}

impl RemoteDb {
    /// Starts the connection thread; a value arrives on the returned channel whenever the
    /// configuration changed (or a new session started). The thread ends with the handle.
    pub fn start(opts: RemoteOptions) -> std::io::Result<(RemoteDb, Receiver<Value>)> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (requests, inbox) = mpsc::channel();
        let (wake, notes) = mpsc::channel();
        let lock = opts.lock.clone();
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("ovsdb-client".into())
            .spawn(move || run(&opts, &thread_shared, &inbox, &wake))?;
        Ok((RemoteDb { shared, requests, lock }, notes))
    }

    fn call(&self, ops: Value) -> Result<Value, DbError> {
        if !lock(&self.shared).serving {
            return Err(DbError::Disconnected);
        }
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests.send(Request { ops, reply }).map_err(|_| DbError::Disconnected)?;
        answer.recv_timeout(TXN_WAIT).map_err(|_| DbError::Disconnected)?
    }
}

impl DbConn for RemoteDb {
    fn snapshot(&mut self) -> Result<Snapshot, DbError> {
        let shared = lock(&self.shared);
        let replica = shared.replica.as_ref().ok_or(DbError::NotLoaded)?;
        Snapshot::parse(&replica.select_reply())
    }

    fn transact(&mut self, ops: Value) -> Result<Value, DbError> {
        self.call(ops)
    }

    fn transact_volatile(&mut self, ops: Value) -> Result<Value, DbError> {
        self.call(ops)
    }

    fn epoch(&self) -> u64 {
        lock(&self.shared).epoch
    }

    fn lock_name(&self) -> &str {
        &self.lock
    }

    fn has_lock(&self) -> bool {
        lock(&self.shared).locked
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The connection thread: a session with each remote in turn, for as long as it lasts.
fn run(opts: &RemoteOptions, shared: &Arc<Mutex<Shared>>, inbox: &Receiver<Request>, wake: &Sender<Value>) {
    let mut backoff = Backoff::new(opts.remotes.len(), BACKOFF_MIN, BACKOFF_MAX);
    // The last transaction seen, for monitor_cond_since to resume from (kept across sessions).
    let mut last_txn: Option<String> = None;
    loop {
        let remote = &opts.remotes[backoff.current()];
        match Session::open(remote, opts, shared, &mut last_txn) {
            Ok(mut session) => {
                backoff.connected();
                lock(shared).serving = true;
                info!(remote, "connected to the database");
                let _ = wake.send(Value::Null);
                let end = session.serve(shared, inbox, wake, &mut last_txn);
                let mut state = lock(shared);
                (state.locked, state.serving) = (false, false);
                drop(state);
                match end {
                    session::End::Handle => return,
                    session::End::Lost(e) => warn!(remote, "database session ended: {e}"),
                }
            }
            Err(e) => info!(remote, "database member not usable: {e}"),
        }
        if !refuse_until(inbox, Instant::now() + backoff.failed()) {
            return;
        }
    }
}

/// While disconnected: answers every request at once (the caller keeps its running
/// configuration) until `until`. False when the handle is gone.
fn refuse_until(inbox: &Receiver<Request>, until: Instant) -> bool {
    loop {
        match inbox.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(r) => {
                let _ = r.reply.send(Err(DbError::Disconnected));
            }
            Err(RecvTimeoutError::Timeout) => return true,
            Err(RecvTimeoutError::Disconnected) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ovsdb::server::Server;
    use ovsdb::{Database, DatabaseSchema};
    use serde_json::json;

    fn names(conn: &mut RemoteDb) -> Vec<String> {
        conn.snapshot().unwrap().active_bridges().iter().map(|b| b.name.clone()).collect()
    }

    /// Against our own server (which keeps transaction history like a Raft member): contents
    /// arrive, changes wake the loop, an outage keeps the last rows and refuses writes at once,
    /// and the next server is found again with a new epoch.
    #[test]
    fn the_replica_survives_the_server_and_the_connection_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("db.sock");
        let db = Database::in_memory(DatabaseSchema::parse_str(ovsdb::VSWITCH_SCHEMA).unwrap());
        let server = Server::start_with_database(db.clone(), &sock, 0o600, None, Default::default()).unwrap();
        let opts = RemoteOptions {
            remotes: vec![format!("unix:{}", sock.display())],
            lock: "ovs_vswitchd".into(),
            root_system_id: Some("host-1".into()),
        };
        let (mut conn, notes) = RemoteDb::start(opts).unwrap();
        notes.recv_timeout(Duration::from_secs(10)).expect("connected");
        let root = conn.snapshot().unwrap().ovs.expect("root row prepared");
        assert_eq!(root.external_ids, vec![("system-id".to_string(), "host-1".to_string())]);
        assert!(conn.has_lock());
        let first_epoch = conn.epoch();

        let r = conn.transact(json!(["Open_vSwitch",
            {"op": "insert", "table": "Bridge", "uuid-name": "b", "row": {"name": "br0"}},
            {"op": "mutate", "table": "Open_vSwitch", "where": [],
             "mutations": [["bridges", "insert", ["named-uuid", "b"]]]}]));
        assert_eq!(crate::db::txn_errors(&r.unwrap()), None);
        let seen = (0..50).any(|_| {
            let _ = notes.recv_timeout(Duration::from_millis(200));
            names(&mut conn) == ["br0"]
        });
        assert!(seen, "the insert never reached the replica");

        server.shutdown();
        let lost = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            matches!(conn.transact(json!(["Open_vSwitch"])), Err(DbError::Disconnected))
        });
        assert!(lost, "writes still answered after the server went away");
        assert_eq!(names(&mut conn), ["br0"], "the last configuration is kept");
        assert!(!conn.has_lock());

        let _server = Server::start_with_database(db, &sock, 0o600, None, Default::default()).unwrap();
        let back = (0..100).any(|_| {
            let _ = notes.recv_timeout(Duration::from_millis(100));
            conn.epoch() > first_epoch && conn.has_lock()
        });
        assert!(back, "no new session after the server came back");
        assert_eq!(names(&mut conn), ["br0"]);
    }
}
