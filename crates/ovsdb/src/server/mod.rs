//! The OVSDB JSON-RPC server: a unix socket (and optional loopback TCP)
//! listener, one reader and one writer thread per client.
//!
//! Threads keep the code simple and blocking I/O bounded: a slow client only
//! ever blocks its own writer thread, and its queue is capped by
//! [`Limits::max_output`].

mod conn;
mod outbox;
mod stream;

use crate::database::Database;
use crate::error::Error;
use crate::schema::{DatabaseSchema, VSWITCH_SCHEMA};
use outbox::Outbox;
use serde_json::Value;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
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
    /// Largest accepted JSON-RPC message (bytes); larger → error and close.
    pub max_message: usize,
    /// Output queued for one client before it is disconnected (bytes).
    pub max_output: usize,
    /// Simultaneous connections; more are refused.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_message: 64 << 20, max_output: 16 << 20, max_connections: 1024 }
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

type ConnMap = Arc<Mutex<HashMap<u64, Arc<Outbox>>>>;

/// A running server; dropping it (or [`ServerHandle::shutdown`]) stops it.
pub struct ServerHandle {
    db: Arc<Database>,
    unix_socket: PathBuf,
    tcp: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    conns: ConnMap,
}

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
        let server_db = crate::server_db::build(&[&db])?;
        if let Ok(md) = std::fs::symlink_metadata(unix_socket) {
            if md.file_type().is_socket() {
                // A live server keeps its socket: taking it over would also leave that server
                // unable to wake its own accept loop on shutdown.
                if UnixStream::connect(unix_socket).is_ok() {
                    return Err(Error::io(
                        unix_socket,
                        std::io::Error::new(
                            std::io::ErrorKind::AddrInUse,
                            "another server is listening there",
                        ),
                    ));
                }
                let _ = std::fs::remove_file(unix_socket);
            }
        }
        let ul = UnixListener::bind(unix_socket).map_err(|e| Error::io(unix_socket, e))?;
        std::fs::set_permissions(unix_socket, std::fs::Permissions::from_mode(socket_mode))
            .map_err(|e| Error::io(unix_socket, e))?;
        let ctx = Arc::new(conn::Ctx {
            main: db.clone(),
            server_db,
            limits,
            server_id: uuid::Uuid::new_v4().to_string(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let conns: ConnMap = Arc::new(Mutex::new(HashMap::new()));
        let mut threads = Vec::new();
        {
            let (ctx, stop, conns) = (ctx.clone(), stop.clone(), conns.clone());
            threads.push(spawn("ovsdb-accept-unix", move || {
                for s in ul.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(s) = s {
                        accept(Stream::Unix(s), &ctx, &conns);
                    }
                }
            })?);
        }
        let mut tcp_addr = None;
        if let Some(addr) = tcp {
            let tl = TcpListener::bind(addr).map_err(|e| Error::io(Path::new(&addr.to_string()), e))?;
            tcp_addr = tl.local_addr().ok();
            let (ctx, stop, conns) = (ctx.clone(), stop.clone(), conns.clone());
            threads.push(spawn("ovsdb-accept-tcp", move || {
                for s in tl.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(s) = s {
                        let _ = s.set_nodelay(true);
                        accept(Stream::Tcp(s), &ctx, &conns);
                    }
                }
            })?);
        }
        Ok(ServerHandle { db, unix_socket: unix_socket.to_path_buf(), tcp: tcp_addr, stop, threads, conns })
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, Error> {
    std::thread::Builder::new().name(name.into()).spawn(f).map_err(|e| Error::io(Path::new(name), e))
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

fn accept(s: Stream, ctx: &Arc<conn::Ctx>, conns: &ConnMap) {
    let Ok(shut) = s.try_clone() else { return };
    let out = Arc::new(Outbox::new(shut, ctx.limits.max_output));
    let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    {
        let Ok(mut m) = conns.lock() else { return };
        if m.len() >= ctx.limits.max_connections {
            tracing::warn!("too many OVSDB connections; refusing one");
            out.close();
            return;
        }
        m.insert(id, out.clone());
    }
    let (ctx, conns2) = (ctx.clone(), conns.clone());
    let r = std::thread::Builder::new().name("ovsdb-conn".into()).spawn(move || {
        conn::serve(s, out, ctx);
        if let Ok(mut m) = conns2.lock() {
            m.remove(&id);
        }
    });
    if r.is_err() {
        if let Ok(mut m) = conns.lock() {
            if let Some(o) = m.remove(&id) {
                o.close();
            }
        }
    }
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

    /// Number of open client connections.
    pub fn connections(&self) -> usize {
        self.conns.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Stops listening, disconnects every client and removes the socket.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if self.stop.swap(true, Ordering::Relaxed) {
            return;
        }
        let _ = UnixStream::connect(&self.unix_socket);
        if let Some(a) = self.tcp {
            let _ = TcpStream::connect(a);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Ok(m) = self.conns.lock() {
            for o in m.values() {
                o.close();
            }
        }
        let _ = std::fs::remove_file(&self.unix_socket);
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}
