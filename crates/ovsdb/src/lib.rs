//! RFC 7047 OVSDB engine and server for rvswitch, and a small blocking client
//! ([`client::Client`]) for tools such as `rvsctl zones`.
//!
//! Serves the `Open_vSwitch` schema exactly as OvS 3.1 ships it so that the
//! unchanged Debian `ovs-vsctl`, `ovsdb-client` and libvirt can drive it, and
//! keeps its data in the OvS standalone file format so `ovsdb-tool` can read it.
//!
//! # Embedding
//!
//! Start a server (unix socket, optional loopback TCP) on a database file:
//!
//! ```no_run
//! use ovsdb::server::{Server, ServerConfig, SchemaSource};
//! let handle = Server::start(ServerConfig {
//!     schema: SchemaSource::Vswitch,
//!     db_file: "/var/lib/rvswitch/conf.db".into(),
//!     unix_socket: "/run/rvswitch/db.sock".into(),
//!     socket_mode: 0o660,
//!     tcp: None,
//!     limits: Default::default(),
//! }).expect("start ovsdb");
//! let db = handle.database().clone(); // Arc<ovsdb::Database>
//! ```
//!
//! The daemon is then a client of its own database, like ovs-vswitchd is of
//! ovsdb-server, through an in-process [`Session`]:
//!
//! ```no_run
//! # let db = ovsdb::Database::in_memory(ovsdb::DatabaseSchema::parse_str(ovsdb::VSWITCH_SCHEMA).unwrap());
//! use ovsdb::MonitorVersion;
//! use serde_json::json;
//! let s = db.session();
//! assert!(s.lock("ovs_vswitchd").unwrap());
//! let initial = s.monitor(MonitorVersion::V2, json!("mon"),
//!     &json!({"Interface": {"columns": ["name", "ofport"]}})).unwrap();
//! let reply = s.transact(json!([{"op": "assert", "lock": "ovs_vswitchd"}]));
//! let note = s.notifications().recv(); // {"method": "update2", "params": ["mon", {...}]}
//! ```
//!
//! [`Database::transact`] takes the array of operations (optionally preceded
//! by the database name) and returns the RFC 7047 `result` array: one entry per
//! operation, an error object at a failing one followed by `null`s, or one
//! extra trailing error if a commit-time check fails.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod atom;
pub mod client;
pub mod commit;
pub mod condition;
pub mod database;
pub mod datum;
pub mod error;
pub mod jsonrpc;
pub mod locks;
pub mod monitor;
pub mod mutation;
pub mod replay;
pub mod row;
pub mod schema;
pub mod server;
pub mod server_db;
pub mod sorted;
pub mod storage;
pub mod txn;

pub use atom::{Atom, AtomicType};
pub use database::{Database, Session, Sink};
pub use datum::Datum;
pub use error::{Error, OvsdbError};
pub use monitor::MonitorVersion;
pub use schema::{DatabaseSchema, SERVER_SCHEMA, VSWITCH_SCHEMA};
