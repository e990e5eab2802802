//! One client's protocol state: dispatches its JSON-RPC messages to OVSDB methods and queues
//! replies on the connection's [`Outbox`]. No I/O here: the event loop feeds it whole messages.

use super::outbox::Outbox;
use super::waits::{Blocked, Waits};
use super::Limits;
use crate::database::{new_session_id, Attempt, Database};
use crate::error::OvsdbError;
use crate::jsonrpc::{error_reply, reply};
use crate::locks::SessionId;
use crate::monitor::{self, MonitorSpec, MonitorVersion};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// What every connection shares.
pub(crate) struct Ctx {
    pub main: Arc<Database>,
    pub server_db: Arc<Database>,
    pub limits: Limits,
    pub server_id: String,
    pub stats: Arc<super::ServerStats>,
}

/// One client session. Dropping it forgets the session: monitors go, locks pass on.
pub(crate) struct Conn {
    ctx: Arc<Ctx>,
    session: SessionId,
    out: Arc<Outbox>,
    waits: Waits,
}

impl Conn {
    /// A new session whose notifications go to `out`.
    pub fn new(ctx: Arc<Ctx>, out: Arc<Outbox>) -> Conn {
        let session = new_session_id();
        ctx.main.attach(session, out.clone());
        ctx.server_db.attach(session, out.clone());
        Conn { ctx, session, out, waits: Waits::default() }
    }

    /// The connection's output queue.
    pub fn out(&self) -> &Arc<Outbox> {
        &self.out
    }

    /// Blocked transactions waiting.
    pub fn waiting(&self) -> usize {
        self.waits.len()
    }

    /// Re-attempts blocked transactions (see [`Waits::retry`]).
    pub fn retry_waits(&mut self, now: Instant) -> Option<Instant> {
        self.waits.retry(self.session, now, &self.out, &self.ctx.stats)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.ctx.main.detach(self.session);
        self.ctx.server_db.detach(self.session);
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
    pub fn handle(&mut self, raw: &[u8]) -> bool {
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
    fn dispatch(&mut self, method: &str, params: &[Value], id: &Value) -> Result<Option<Value>, OvsdbError> {
        match method {
            "echo" => Ok(Some(Value::Array(params.to_vec()))),
            "list_dbs" => Ok(Some(json!([self.ctx.main.name(), "_Server"]))),
            "get_server_id" => Ok(Some(json!(self.ctx.server_id))),
            "get_schema" => {
                Ok(Some(self.db(param_str(params, 0, "a database name")?)?.schema().json.clone()))
            }
            "transact" => self.transact(params, id),
            "cancel" => {
                if let Some(key) = params.first() {
                    self.waits.cancel(key, &self.out);
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

    fn transact(&mut self, params: &[Value], id: &Value) -> Result<Option<Value>, OvsdbError> {
        let db = self.db(param_str(params, 0, "a database name")?)?.clone();
        let ops: Vec<Value> = params[1..].to_vec();
        let started = Instant::now();
        match db.attempt(Some(self.session), &ops, started) {
            Attempt::Reply(v) => {
                self.ctx.stats.transaction(started.elapsed());
                Ok(Some(v))
            }
            Attempt::Blocked { deadline, generation } => {
                self.waits.add(Blocked { db, ops, started, deadline, generation, id: id.clone() })?;
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
