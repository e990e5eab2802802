//! The OVSDB request path: bytes → [`Splitter`] → serde_json → a small dispatcher over an
//! in-memory `Open_vSwitch` database (transact, monitor*, lock/steal/unlock).
//!
//! The dispatcher is our own and deliberately thin: the server module's connection code is being
//! rewritten, and what must hold whatever the server looks like is that [`Database::transact`]
//! and the monitor code take any JSON without panicking and without leaving the database
//! inconsistent. The oracles (in [`crate::ovsdb_check`]) check that after every input.

use std::sync::{Arc, OnceLock};

use ovsdb::jsonrpc::Splitter;
use ovsdb::{Database, DatabaseSchema, MonitorVersion, Session};
use serde_json::{json, Value};

use crate::ovsdb_check::{self, Replica};

/// One message may not exceed this (the splitter's bound); AFL inputs are far smaller.
const MAX_MESSAGE: usize = 64 << 10;

/// The root row's UUID in the ovs-vsctl sample traffic, so the seed transactions that name it
/// find it here too.
pub const ROOT_UUID: &str = "48575afc-9db1-4a08-b6cc-f310e2fc1651";

fn schema() -> &'static DatabaseSchema {
    static SCHEMA: OnceLock<DatabaseSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| DatabaseSchema::parse_str(ovsdb::VSWITCH_SCHEMA).expect("built-in schema parses"))
}

/// Splits `data` into messages twice — whole, and in 7-byte chunks — and checks both ways agree.
/// Returns the messages up to the first framing error.
pub fn split(data: &[u8]) -> Vec<Vec<u8>> {
    let run = |chunk: usize| {
        let mut s = Splitter::new(MAX_MESSAGE);
        let mut out = Vec::new();
        let mut err = None;
        for c in data.chunks(chunk.max(1)) {
            if let Err(e) = s.feed(c, &mut |m| out.push(m)) {
                err = Some(e);
                break;
            }
        }
        (out, err)
    };
    let (whole, whole_err) = run(data.len());
    let (chunked, chunked_err) = run(7);
    assert_eq!(whole, chunked, "Splitter: messages depend on how the bytes were chunked");
    assert_eq!(whole_err, chunked_err, "Splitter: framing error depends on chunking");
    for m in &whole {
        assert!(m.len() <= MAX_MESSAGE, "Splitter emitted {} bytes, limit {MAX_MESSAGE}", m.len());
    }
    whole
}

/// An in-memory `Open_vSwitch` database holding only its root row (UUID [`ROOT_UUID`]), as
/// `ovs-vsctl init` leaves it.
pub fn fresh_database() -> Arc<Database> {
    let db = Database::in_memory(schema().clone());
    let init = db.transact(json!([{"op": "insert", "table": "Open_vSwitch", "uuid": ROOT_UUID, "row": {}}]));
    assert!(ovsdb_check::first_error(&init).is_none(), "setup insert failed: {init}");
    db
}

/// A fresh database with the root row the sample traffic expects, plus the client session the
/// input drives (holding the `ovs_vswitchd` lock, as in the sample) and an observer replica.
fn setup() -> (Arc<Database>, Session, Replica) {
    let db = fresh_database();
    let client = db.session();
    assert_eq!(client.lock("ovs_vswitchd").ok(), Some(true), "setup lock failed");
    let replica = Replica::start(&db);
    (db, client, replica)
}

/// What one input did, so tests can tell a seed exercises the database rather than bouncing off.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Messages that parsed as JSON.
    pub messages: usize,
    /// Transactions run, and how many of them failed.
    pub transactions: usize,
    pub failed: usize,
    /// Monitor requests the database accepted.
    pub monitors: usize,
}

/// The fuzz target.
pub fn run(data: &[u8]) {
    run_stats(data);
}

/// The fuzz target, reporting what it did.
pub fn run_stats(data: &[u8]) -> Stats {
    let messages = split(data);
    let (db, client, mut replica) = setup();
    let mut stats = Stats::default();
    for m in messages {
        let Ok(v) = serde_json::from_slice::<Value>(&m) else { continue };
        stats.messages += 1;
        dispatch(&db, &client, &v, &mut stats);
        while client.notifications().try_recv().is_ok() {}
        replica.catch_up();
    }
    ovsdb_check::consistent(&db);
    replica.check(&db);
    stats
}

fn dispatch(db: &Database, client: &Session, msg: &Value, stats: &mut Stats) {
    let Some(method) = msg.get("method").and_then(Value::as_str) else { return };
    let params = msg.get("params").cloned().unwrap_or(Value::Null);
    match method {
        "transact" => {
            stats.transactions += 1;
            stats.failed += usize::from(!transact(db, client, params));
        }
        "monitor" | "monitor_cond" | "monitor_cond_since" => {
            let version = match method {
                "monitor" => MonitorVersion::V1,
                "monitor_cond" => MonitorVersion::V2,
                _ => MonitorVersion::V3,
            };
            let (Some(id), Some(req)) = (params.get(1), params.get(2)) else { return };
            // Errors are fine; a panic or a broken database is not.
            stats.monitors += usize::from(client.monitor(version, id.clone(), req).is_ok());
        }
        "monitor_cancel" => {
            if let Some(id) = params.get(0) {
                client.monitor_cancel(id);
            }
        }
        "lock" | "steal" | "unlock" => {
            let Some(name) = params.get(0).and_then(Value::as_str) else { return };
            match method {
                "lock" => drop(client.lock(name)),
                "steal" => client.steal(name),
                _ => client.unlock(name),
            }
        }
        _ => {}
    }
}

/// Runs one transaction and checks it was all-or-nothing and answered in the RFC 7047 shape.
/// True if it succeeded.
fn transact(db: &Database, client: &Session, mut params: Value) -> bool {
    defuse_waits(&mut params);
    let n_ops = match &params {
        Value::Array(a) => a.len() - usize::from(a.first().is_some_and(Value::is_string)),
        _ => 0,
    };
    let reply = all_or_nothing(db, || client.transact(params));
    let Value::Array(results) = &reply else { panic!("transact reply is not an array: {reply}") };
    if n_ops > 0 {
        assert!(
            results.len() == n_ops || results.len() == n_ops + 1,
            "{} results for {n_ops} operations: {reply}",
            results.len()
        );
    }
    ovsdb_check::first_error(&reply).is_none()
}

/// Runs a transaction and checks it was all-or-nothing: if any operation (or the commit) failed,
/// the database is exactly as before.
pub fn all_or_nothing(db: &Database, transact: impl FnOnce() -> Value) -> Value {
    let before = db.dump();
    let reply = transact();
    if ovsdb_check::first_error(&reply).is_some() {
        assert_eq!(db.dump(), before, "a failed transaction changed the database: {reply}");
    }
    reply
}

/// A `wait` without a timeout blocks until the database changes, which in a single-client fuzz
/// run is forever; with `"timeout": 0` it is evaluated once and fails or passes at once.
pub fn defuse_waits(params: &mut Value) {
    let Value::Array(ops) = params else { return };
    for op in ops.iter_mut() {
        if let Some(o) = op.as_object_mut() {
            if o.get("op").and_then(Value::as_str) == Some("wait") {
                o.insert("timeout".into(), json!(0));
            }
        }
    }
}
