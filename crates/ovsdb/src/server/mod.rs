//! The OVSDB JSON-RPC server: a unix socket (and optional loopback TCP) listener and all its
//! clients on one event-loop thread (see `evloop`).
//!
//! Every client is bounded: one partial message ([`Limits::max_message`]), its output queue
//! ([`Limits::max_output`]), how long a message may stay half-sent ([`Limits::stall_timeout`]),
//! and OvS's inactivity probe ([`Limits::probe_interval`]). A new client is never refused
//! because idle ones exist: at [`Limits::max_connections`] (or out of file descriptors) the
//! longest-idle client makes room.

mod client;
mod conn;
mod evloop;
mod liveness;
mod outbox;
mod stats;
mod stream;
mod waits;

use crate::database::{CommitWatch, Database};
use crate::error::Error;
use crate::schema::{DatabaseSchema, VSWITCH_SCHEMA};
use evloop::{EventLoop, Shared, WAKER};
use outbox::Doorbell;
use serde_json::Value;
pub use stats::{ServerStats, StatsSnapshot, LATENCY_BOUNDS_US};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
pub use stream::Stream;

/// Where the schema comes from.
#[derive(Debug, Clone)]
pub enum SchemaSource {
    /// The Open_vSwitch schema shipped in this crate (OvS 3.1, 8.3.1).
    Vswitch,
    /// A `.ovsschema` file.
    Path(PathBuf),
    /// A schema given as JSON.
    Json(Value),
}

impl SchemaSource {
    /// Loads and parses the schema.
    pub fn load(&self) -> Result<DatabaseSchema, Error> {
        match self {
            SchemaSource::Vswitch => DatabaseSchema::parse_str(VSWITCH_SCHEMA),
            SchemaSource::Path(p) => {
                let s = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
                DatabaseSchema::parse_str(&s)
            }
            SchemaSource::Json(v) => DatabaseSchema::from_json(v).map_err(|e| Error::Schema(e.to_string())),
        }
    }
}

/// Resource bounds per connection and per server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted JSON-RPC message (bytes); larger → error and close. Also the most
    /// partial input buffered for one client.
    pub max_message: usize,
    /// Output queued for one client before it is disconnected (bytes).
    pub max_output: usize,
    /// Simultaneous connections; at the limit the longest-idle client is dropped to make room.
    pub max_connections: usize,
    /// After this long with nothing received, the client is sent an `echo` request; after as
    /// long again without a byte, it is disconnected (OvS's inactivity probe, 5 s by default).
    /// None disables the probe.
    pub probe_interval: Option<Duration>,
    /// A message still incomplete this long after it began gets its client disconnected.
    pub stall_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: 64 << 20,
            max_output: 16 << 20,
            max_connections: 100_000,
            probe_interval: Some(Duration::from_secs(5)),
            stall_timeout: Duration::from_secs(10),
        }
    }
}

/// Everything needed to start a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Schema of the served database.
    pub schema: SchemaSource,
    /// Database file (created if missing).
    pub db_file: PathBuf,
    /// Unix socket path (a stale socket there is replaced).
    pub unix_socket: PathBuf,
    /// Permission bits for the socket, e.g. 0o660.
    pub socket_mode: u32,
    /// Optional TCP listener (use a loopback address).
    pub tcp: Option<SocketAddr>,
    /// Resource bounds.
    pub limits: Limits,
}

/// Entry point.
pub struct Server;

/// A running server; dropping it (or [`ServerHandle::shutdown`]) stops it.
pub struct ServerHandle {
    db: Arc<Database>,
    unix_socket: PathBuf,
    /// Our copy of the unix listener (see [`ServerHandle::hand_over`]).
    listener: Option<OwnedFd>,
    /// (device, inode) of the socket we bound: only that file is removed at shutdown.
    socket_id: (u64, u64),
    tcp: Option<SocketAddr>,
    shared: Arc<Shared>,
    stats: Arc<ServerStats>,
    thread: Option<JoinHandle<()>>,
}

/// How long shutdown waits for the event loop before leaving it behind.
const STOP_GRACE: Duration = Duration::from_secs(10);

impl Server {
    /// Opens the database file and starts listening.
    pub fn start(cfg: ServerConfig) -> Result<ServerHandle, Error> {
        let schema = cfg.schema.load()?;
        let db = Database::open(schema, &cfg.db_file)?;
        Self::start_with_database(db, &cfg.unix_socket, cfg.socket_mode, cfg.tcp, cfg.limits)
    }

    /// Serves an already opened database (e.g. one the daemon also uses
    /// in-process).
    pub fn start_with_database(
        db: Arc<Database>,
        unix_socket: &Path,
        socket_mode: u32,
        tcp: Option<SocketAddr>,
        limits: Limits,
    ) -> Result<ServerHandle, Error> {
        let ul = bind_unix(unix_socket, socket_mode)?;
        Self::start_on(db, unix_socket, ul, tcp, limits)
    }

    /// Like [`Server::start_with_database`] on a listening socket a previous process bound at
    /// `unix_socket` and handed over ([`ServerHandle::hand_over`]): clients that connect while
    /// the processes change wait in its backlog instead of finding no socket.
    pub fn start_with_listener(
        db: Arc<Database>,
        unix_socket: &Path,
        listener: UnixListener,
        tcp: Option<SocketAddr>,
        limits: Limits,
    ) -> Result<ServerHandle, Error> {
        listener.set_nonblocking(true).map_err(|e| Error::io(unix_socket, e))?;
        Self::start_on(db, unix_socket, mio::net::UnixListener::from_std(listener), tcp, limits)
    }

    fn start_on(
        db: Arc<Database>,
        unix_socket: &Path,
        ul: mio::net::UnixListener,
        tcp: Option<SocketAddr>,
        limits: Limits,
    ) -> Result<ServerHandle, Error> {
        let server_db = crate::server_db::build(&[&db])?;
        // A copy of the listener, so it can be handed to the next process on an upgrade.
        let listener = dup_fd(&ul).map_err(|e| Error::io(unix_socket, e))?;
        let socket_id = std::fs::metadata(unix_socket).map(|m| (m.dev(), m.ino())).unwrap_or_default();
        let (tl, tcp_addr) = match tcp {
            Some(addr) => bind_tcp(addr)?,
            None => (None, None),
        };
        let poll = mio::Poll::new().map_err(|e| io_err("epoll", e))?;
        let waker = mio::Waker::new(poll.registry(), WAKER).map_err(|e| io_err("eventfd", e))?;
        let bell = Arc::new(Doorbell::new(waker));
        let shared = Arc::new(Shared {
            bell: bell.clone(),
            stop: AtomicBool::new(false),
            clients: AtomicUsize::new(0),
        });
        let stats = Arc::new(ServerStats::default());
        let ctx = Arc::new(conn::Ctx {
            main: db.clone(),
            server_db: server_db.clone(),
            limits,
            server_id: uuid::Uuid::new_v4().to_string(),
            stats: stats.clone(),
        });
        for d in [&db, &server_db] {
            d.watch_commits(Arc::downgrade(&bell) as Weak<dyn CommitWatch>);
        }
        let ev = EventLoop::new(poll, ctx, shared.clone(), ul, tl).map_err(|e| io_err("epoll", e))?;
        let thread = std::thread::Builder::new()
            .name("ovsdb-io".into())
            .spawn(move || ev.run())
            .map_err(|e| io_err("ovsdb-io", e))?;
        Ok(ServerHandle {
            db,
            unix_socket: unix_socket.to_path_buf(),
            listener: Some(listener),
            socket_id,
            tcp: tcp_addr,
            shared,
            stats,
            thread: Some(thread),
        })
    }
}

fn io_err(what: &str, e: std::io::Error) -> Error {
    Error::io(Path::new(what), e)
}

/// Binds the TCP listener; returns it with its address (port 0 picks one).
fn bind_tcp(addr: SocketAddr) -> Result<(Option<mio::net::TcpListener>, Option<SocketAddr>), Error> {
    let tl = TcpListener::bind(addr).map_err(|e| io_err(&addr.to_string(), e))?;
    tl.set_nonblocking(true).map_err(|e| io_err(&addr.to_string(), e))?;
    let local = tl.local_addr().ok();
    Ok((Some(mio::net::TcpListener::from_std(tl)), local))
}

/// A second descriptor for `ul`'s socket (close-on-exec).
fn dup_fd(ul: &mio::net::UnixListener) -> std::io::Result<OwnedFd> {
    use std::os::fd::AsFd;
    ul.as_fd().try_clone_to_owned()
}

/// Binds the unix socket, replacing a stale one but never a live server's.
fn bind_unix(path: &Path, mode: u32) -> Result<mio::net::UnixListener, Error> {
    if let Ok(md) = std::fs::symlink_metadata(path) {
        if md.file_type().is_socket() {
            if UnixStream::connect(path).is_ok() {
                return Err(Error::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::AddrInUse, "another server is listening there"),
                ));
            }
            let _ = std::fs::remove_file(path);
        }
    }
    let ul = UnixListener::bind(path).map_err(|e| Error::io(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| Error::io(path, e))?;
    ul.set_nonblocking(true).map_err(|e| Error::io(path, e))?;
    Ok(mio::net::UnixListener::from_std(ul))
}

impl ServerHandle {
    /// The served database (for in-process sessions).
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// The unix socket path.
    pub fn unix_socket(&self) -> &Path {
        &self.unix_socket
    }

    /// The bound TCP address, if any (useful with port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
    }

    /// Transactions answered and their latency, for a metrics exporter.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Number of open client connections.
    pub fn connections(&self) -> usize {
        self.shared.clients.load(Ordering::Relaxed)
    }

    /// Stops listening, disconnects every client and removes the socket.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    /// Stops serving and disconnects every client but keeps the socket: returns the listening
    /// socket (still bound, its backlog intact) for the next process, and leaves the file.
    pub fn hand_over(mut self) -> Option<OwnedFd> {
        let listener = self.listener.take();
        // Without a copy to hand on, a plain shutdown.
        if listener.is_some() {
            self.socket_id = (u64::MAX, u64::MAX);
        }
        self.stop_now();
        listener
    }

    /// Wakes the loop through its eventfd (never through the socket path, which may be gone),
    /// waits a bounded time for it to disconnect everyone, and removes the socket file if it is
    /// still the one we bound.
    fn stop_now(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        self.shared.stop.store(true, Ordering::Release);
        self.shared.bell.ring();
        let deadline = Instant::now() + STOP_GRACE;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            tracing::error!("OVSDB event loop did not stop within {STOP_GRACE:?}; leaving it");
        }
        let ours =
            std::fs::symlink_metadata(&self.unix_socket).is_ok_and(|m| (m.dev(), m.ino()) == self.socket_id);
        if ours {
            let _ = std::fs::remove_file(&self.unix_socket);
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}
