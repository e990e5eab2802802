//! Why talking to our own database failed. The daemon reacts the same way to all of them (log,
//! keep the running configuration), but they are kept apart so tests and callers can tell a
//! lost lock from a refused configuration without matching on text.

use ovsdb::OvsdbError;

use super::LOCK;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Another client (an ovs-vswitchd, a second rvswitchd) holds `ovs_vswitchd`.
    #[error("lock {} is held by another client", LOCK)]
    LockHeld,
    #[error("cannot request lock {}: {0}", LOCK)]
    LockRequest(OvsdbError),
    #[error("cannot monitor the database: {0}")]
    Monitor(OvsdbError),
    /// The transaction that writes a config file's contents failed; the errors it reported.
    #[error("the database refused the config: {0}")]
    ConfigRefused(String),
    /// The root row could not be read; the reply, as text.
    #[error("cannot read the root row: {0}")]
    ReadRoot(String),
    /// The root row could not be made ready; the errors the transaction reported.
    #[error("cannot prepare the root row: {0}")]
    PrepareRoot(String),
    /// A reply without the shape of a select result; the reply, as text.
    #[error("unexpected select reply: {0}")]
    BadReply(String),
    /// One select of a snapshot failed; its result, as text.
    #[error("select failed: {0}")]
    SelectFailed(String),
    /// No database member answers now (the running configuration stays).
    #[error("no database member answers")]
    Disconnected,
    /// The remote database has not sent its contents yet.
    #[error("no contents received from the database yet")]
    NotLoaded,
}
