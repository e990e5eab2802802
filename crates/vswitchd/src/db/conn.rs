//! The one thing [`super::DbSync`] needs from a database, whether it is the embedded one (an
//! in-process [`Session`]) or an ovsdb-server elsewhere ([`super::remote::RemoteDb`]): read the
//! configuration tables, run transactions. The sync loop itself exists once.

use ovsdb::Session;
use serde_json::Value;

use super::snapshot::Snapshot;
use super::{DbError, LOCK};

pub trait DbConn: Send {
    /// The configuration tables now (for a remote database: as last received from it).
    fn snapshot(&mut self) -> Result<Snapshot, DbError>;
    /// Runs a transaction; the reply's result array (errors inside it are the caller's to read).
    fn transact(&mut self, ops: Value) -> Result<Value, DbError>;
    /// Like [`DbConn::transact`], for status the daemon can recompute (no fsync needed).
    fn transact_volatile(&mut self, ops: Value) -> Result<Value, DbError>;
    /// Changes whenever a new session with the server starts: what was written through an
    /// earlier one may be gone (another member, a restored file), so status is written afresh.
    fn epoch(&self) -> u64;
    /// The lock this connection holds (status writes assert it).
    fn lock_name(&self) -> &str;
    /// Whether the lock is ours now. Without it another daemon configures these bridges, so
    /// nothing is applied or written (as ovs-vswitchd waits for its lock).
    fn has_lock(&self) -> bool;
}

/// The embedded database, through an in-process session.
pub struct LocalDb {
    pub session: Session,
}

impl DbConn for LocalDb {
    fn snapshot(&mut self) -> Result<Snapshot, DbError> {
        Snapshot::read(&self.session)
    }

    fn transact(&mut self, ops: Value) -> Result<Value, DbError> {
        Ok(self.session.transact(ops))
    }

    fn transact_volatile(&mut self, ops: Value) -> Result<Value, DbError> {
        Ok(self.session.transact_volatile(ops))
    }

    fn epoch(&self) -> u64 {
        0
    }

    fn lock_name(&self) -> &str {
        LOCK
    }

    fn has_lock(&self) -> bool {
        true // DbSync::new refuses to start without it
    }
}
