//! One client connection: reads JSON-RPC messages, dispatches OVSDB methods,
//! and queues replies on the connection's [`Outbox`].

use super::outbox::Outbox;
use super::stream::Stream;
use super::Limits;
use crate::database::{new_session_id, Attempt, Database};
use crate::error::OvsdbError;
use crate::jsonrpc::{error_reply, reply, Splitter};
use crate::locks::SessionId;
use crate::monitor::{self, MonitorSpec, MonitorVersion};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What every connection shares.
pub(crate) struct Ctx {
    pub main: Arc<Database>,
    pub server_db: Arc<Database>,
    pub limits: Limits,
    pub server_id: String,
}

/// Blocked transactions may wait at most this many at a time per client.
const MAX_PENDING: usize = 64;

struct Conn {
    ctx: Arc<Ctx>,
    session: SessionId,
    out: Arc<Outbox>,
    pending: Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>,
}

/// Serves a connection until it closes. `out` was built over a clone of `stream`.
pub(crate) fn serve(mut stream: Stream, out: Arc<Outbox>, ctx: Arc<Ctx>) {
    let writer = match stream.try_clone() {
        Ok(w) => {
            let o = out.clone();
            std::thread::Builder::new().name("ovsdb-writer".into()).spawn(move || o.run_writer(w)).ok()
        }
        Err(_) => None,
    };
    if writer.is_none() {
        out.close();
        return;
    }
    let session = new_session_id();
    ctx.main.attach(session, out.clone());
    ctx.server_db.attach(session, out.clone());
    let conn =
        Conn { ctx: ctx.clone(), session, out: out.clone(), pending: Arc::new(Mutex::new(HashMap::new())) };
    let mut splitter = Splitter::new(ctx.limits.max_message);
    let mut buf = vec![0u8; 64 * 1024];
    'read: loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut msgs = Vec::new();
        let framed = splitter.feed(&buf[..n], &mut |m| msgs.push(m));
        for m in msgs {
            if !conn.handle(&m) {
                break 'read;
            }
        }
        if let Err(e) = framed {
            out.send(&error_reply(&Value::Null, OvsdbError::syntax(e.to_string()).to_json()));
            break;
        }
        if out.is_closed() {
            break;
        }
    }
    for f in conn.pending.lock().map(|p| p.values().cloned().collect::<Vec<_>>()).unwrap_or_default() {
        f.store(true, Ordering::Relaxed);
    }
    ctx.main.detach(session);
    ctx.server_db.detach(session);
    out.finish();
    if let Some(w) = writer {
        let _ = w.join();
    }
}

fn param_str<'a>(params: &'a [Value], i: usize, what: &str) -> Result<&'a str, OvsdbError> {
    params
        .get(i)
        .and_then(Value::as_str)
        .ok_or_else(|| OvsdbError::syntax(format!("params[{i}] must be {what}")))
}

impl Conn {
    /// Handles one framed message; false closes the connection.
    fn handle(&self, raw: &[u8]) -> bool {
        let msg: Value = match serde_json::from_slice(raw) {
            Ok(v) => v,
            Err(e) => {
                self.out.send(&error_reply(
                    &Value::Null,
                    OvsdbError::syntax(format!("invalid JSON: {e}")).to_json(),
                ));
                return false;
            }
        };
        let Some(obj) = msg.as_object() else {
            self.out.send(&error_reply(
                &Value::Null,
                OvsdbError::syntax("message must be a JSON object").to_json(),
            ));
            return true;
        };
        let id = obj.get("id").cloned().unwrap_or(Value::Null);
        let Some(method) = obj.get("method").and_then(Value::as_str) else {
            if obj.contains_key("result") || obj.contains_key("error") {
                return true; // a reply to our echo; nothing to do
            }
            self.out.send(&error_reply(&id, OvsdbError::syntax("request lacks method").to_json()));
            return true;
        };
        let empty = Vec::new();
        let params = match obj.get("params") {
            Some(Value::Array(a)) => a,
            None => &empty,
            Some(_) => {
                self.out.send(&error_reply(&id, OvsdbError::syntax("params must be an array").to_json()));
                return true;
            }
        };
        let res = self.dispatch(method, params, &id);
        if id.is_null() {
            return true; // notification: no reply
        }
        match res {
            Ok(Some(v)) => {
                self.out.send(&reply(&id, v));
            }
            Ok(None) => {}
            Err(e) => {
                self.out.send(&error_reply(&id, e.to_json()));
            }
        }
        true
    }

    fn db(&self, name: &str) -> Result<&Arc<Database>, OvsdbError> {
        if name == self.ctx.main.name() {
            Ok(&self.ctx.main)
        } else if name == "_Server" {
            Ok(&self.ctx.server_db)
        } else {
            Err(OvsdbError::new(
                "unknown database",
                format!("{} is not a valid database name", crate::atom::trunc(name)),
            ))
        }
    }

    /// Ok(None) means the reply is sent later (blocked transaction).
    fn dispatch(&self, method: &str, params: &[Value], id: &Value) -> Result<Option<Value>, OvsdbError> {
        match method {
            "echo" => Ok(Some(Value::Array(params.to_vec()))),
            "list_dbs" => Ok(Some(json!([self.ctx.main.name(), "_Server"]))),
            "get_server_id" => Ok(Some(json!(self.ctx.server_id))),
            "get_schema" => {
                Ok(Some(self.db(param_str(params, 0, "a database name")?)?.schema().json.clone()))
            }
            "transact" => self.transact(params, id),
            "cancel" => {
                let key = params.first().map(Value::to_string).unwrap_or_default();
                if let Some(f) = self.pending.lock().ok().and_then(|p| p.get(&key).cloned()) {
                    f.store(true, Ordering::Relaxed);
                }
                Ok(None)
            }
            "monitor" => self.monitor(params, MonitorVersion::V1, id),
            "monitor_cond" => self.monitor(params, MonitorVersion::V2, id),
            "monitor_cond_since" => self.monitor(params, MonitorVersion::V3, id),
            "monitor_cond_change" => {
                let (Some(old), Some(new), Some(req)) = (params.first(), params.get(1), params.get(2)) else {
                    return Err(OvsdbError::syntax("monitor_cond_change needs [old-id, new-id, requests]"));
                };
                let deliver = |note: Option<&Value>| {
                    if !id.is_null() {
                        self.out.send(&reply(id, json!({})));
                    }
                    if let Some(n) = note {
                        self.out.send(n);
                    }
                };
                for db in [&self.ctx.main, &self.ctx.server_db] {
                    match db.change_monitor(self.session, old, new.clone(), req, Some(&deliver)) {
                        Ok(_) => return Ok(None),
                        Err(e) if e.error == "unknown monitor" => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(OvsdbError::new("unknown monitor", "no such monitor"))
            }
            "monitor_cancel" => {
                let mid = params.first().ok_or_else(|| OvsdbError::syntax("monitor_cancel needs an id"))?;
                if self.ctx.main.cancel_monitor(self.session, mid)
                    || self.ctx.server_db.cancel_monitor(self.session, mid)
                {
                    Ok(Some(json!({})))
                } else {
                    Err(OvsdbError::new("unknown monitor", "no such monitor"))
                }
            }
            "lock" => {
                let name = param_str(params, 0, "a lock name")?;
                Ok(Some(json!({"locked": self.ctx.main.lock_request(self.session, name)?})))
            }
            "steal" => {
                let name = param_str(params, 0, "a lock name")?;
                self.ctx.main.steal_request(self.session, name);
                Ok(Some(json!({"locked": true})))
            }
            "unlock" => {
                let name = param_str(params, 0, "a lock name")?;
                self.ctx.main.unlock_request(self.session, name);
                Ok(Some(json!({})))
            }
            "set_db_change_aware" => Ok(Some(json!({}))),
            other => Err(OvsdbError::new(
                "unknown method",
                format!("unknown method {}", crate::atom::trunc(other)),
            )),
        }
    }

    fn transact(&self, params: &[Value], id: &Value) -> Result<Option<Value>, OvsdbError> {
        let db = self.db(param_str(params, 0, "a database name")?)?.clone();
        let ops: Vec<Value> = params[1..].to_vec();
        let started = Instant::now();
        match db.attempt(Some(self.session), &ops, started) {
            Attempt::Reply(v) => Ok(Some(v)),
            Attempt::Blocked { mut deadline, mut generation } => {
                let key = id.to_string();
                let flag = Arc::new(AtomicBool::new(false));
                {
                    let mut p = self.pending.lock().map_err(|_| OvsdbError::bare("internal error"))?;
                    if p.len() >= MAX_PENDING {
                        return Err(OvsdbError::new("resources exhausted", "too many blocked transactions"));
                    }
                    p.insert(key.clone(), flag.clone());
                }
                let (out, pending, session, id) =
                    (self.out.clone(), self.pending.clone(), self.session, id.clone());
                let spawned = std::thread::Builder::new().name("ovsdb-wait".into()).spawn(move || {
                    loop {
                        if flag.load(Ordering::Relaxed) {
                            out.send(&error_reply(&id, json!({"error": "canceled"})));
                            break;
                        }
                        db.wait_change(generation, deadline);
                        match db.attempt(Some(session), &ops, started) {
                            Attempt::Reply(v) => {
                                out.send(&reply(&id, v));
                                break;
                            }
                            Attempt::Blocked { deadline: d, generation: g } => {
                                deadline = d;
                                generation = g;
                            }
                        }
                    }
                    if let Ok(mut p) = pending.lock() {
                        p.remove(&key);
                    }
                });
                if spawned.is_err() {
                    return Err(OvsdbError::new("resources exhausted", "cannot start wait thread"));
                }
                Ok(None)
            }
        }
    }

    /// Replies from inside the database lock (see [`Database::add_monitor`]), hence `Ok(None)`.
    fn monitor(
        &self,
        params: &[Value],
        version: MonitorVersion,
        id: &Value,
    ) -> Result<Option<Value>, OvsdbError> {
        let db = self.db(param_str(params, 0, "a database name")?)?;
        let mid = params.get(1).cloned().ok_or_else(|| OvsdbError::syntax("monitor needs an id"))?;
        let req = params.get(2).ok_or_else(|| OvsdbError::syntax("monitor needs requests"))?;
        let tables = monitor::parse_requests(db.schema(), req, version)?;
        let spec = MonitorSpec { version, id: mid, tables };
        let deliver = |result: &Value| {
            if !id.is_null() {
                self.out.send(&reply(id, result.clone()));
            }
        };
        if version == MonitorVersion::V3 {
            let last = params.get(3).and_then(Value::as_str).and_then(|s| crate::atom::parse_uuid(s).ok());
            db.add_monitor_since(self.session, spec, last, Some(&deliver)).map(|_| None)
        } else {
            db.add_monitor(self.session, spec, Some(&deliver)).map(|_| None)
        }
    }
}
