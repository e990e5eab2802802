//! Blocked transactions (`wait` with a timeout) of one connection, kept as data instead of a
//! thread each: the event loop re-attempts them when their database has committed something
//! since their last attempt, and when their deadline passes.

use super::outbox::Outbox;
use crate::database::{Attempt, Database};
use crate::error::OvsdbError;
use crate::jsonrpc::{error_reply, reply};
use crate::locks::SessionId;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Blocked transactions may wait at most this many at a time per client.
const MAX_PENDING: usize = 64;

/// One transaction waiting for the database to change.
pub(crate) struct Blocked {
    pub db: Arc<Database>,
    pub ops: Vec<Value>,
    pub started: Instant,
    pub deadline: Option<Instant>,
    pub generation: u64,
    pub id: Value,
}

/// A connection's blocked transactions, by request id.
#[derive(Default)]
pub(crate) struct Waits {
    map: HashMap<String, Blocked>,
}

impl Waits {
    /// Parks a transaction; refused when too many wait or its id is already waiting.
    pub fn add(&mut self, b: Blocked) -> Result<(), OvsdbError> {
        if self.map.len() >= MAX_PENDING {
            return Err(OvsdbError::new("resources exhausted", "too many blocked transactions"));
        }
        let key = b.id.to_string();
        if self.map.contains_key(&key) {
            return Err(OvsdbError::new("duplicate request ID", format!("request {key} is still waiting")));
        }
        self.map.insert(key, b);
        Ok(())
    }

    /// `cancel`: the waiting request `id` (if any) gets a "canceled" error.
    pub fn cancel(&mut self, id: &Value, out: &Outbox) {
        if let Some(b) = self.map.remove(&id.to_string()) {
            out.send(&error_reply(&b.id, json!({"error": "canceled"})));
        }
    }

    /// How many are waiting.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Re-attempts those whose database moved on or whose deadline passed, replying to the ones
    /// that finish. Returns the earliest deadline of those still waiting.
    pub fn retry(
        &mut self,
        session: SessionId,
        now: Instant,
        out: &Outbox,
        stats: &super::ServerStats,
    ) -> Option<Instant> {
        let mut done = Vec::new();
        for (key, b) in self.map.iter_mut() {
            let due = b.deadline.is_some_and(|d| d <= now);
            if !due && b.db.generation() == b.generation {
                continue;
            }
            match b.db.attempt(Some(session), &b.ops, b.started) {
                Attempt::Reply(v) => {
                    // What the client waited, the blocked time included.
                    stats.transaction(b.started.elapsed());
                    out.send(&reply(&b.id, v));
                    done.push(key.clone());
                }
                Attempt::Blocked { deadline, generation } => {
                    b.deadline = deadline;
                    b.generation = generation;
                }
            }
        }
        for k in done {
            self.map.remove(&k);
        }
        self.map.values().filter_map(|b| b.deadline).min()
    }
}
