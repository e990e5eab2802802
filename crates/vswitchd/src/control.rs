//! The control socket (like OvS's unixctl): a unix stream socket, mode 0600, one JSON request per
//! line. Every client gets its own thread, capped in number; a client that sends garbage gets an
//! error reply, one that sends too much is disconnected. None of this touches the forwarding
//! thread except through the reconciler's commands.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ctl::protocol::{ReloadReply, Reply, Request, MAX_LINE};
use tracing::{debug, warn};

use crate::daemon::Daemon;

const MAX_CLIENTS: usize = 32;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

pub type Shared = Arc<Mutex<Daemon>>;

/// Locks the daemon state; a panic elsewhere must not take the control plane down with it.
pub fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Daemon> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The served control socket.
pub struct ControlSocket {
    pub path: PathBuf,
    /// A copy of the listener, for [`ControlSocket::hand_over`].
    copy: OwnedFd,
}

impl ControlSocket {
    /// The listener, still bound, for the next process of an upgrade (the file stays).
    pub fn hand_over(self) -> OwnedFd {
        self.copy
    }

    /// A plain stop: the socket file goes.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the socket (refusing to steal one a live daemon is serving) — or takes over the
/// listener a previous process handed on — and serves it on a thread.
pub fn serve(path: &Path, shared: Shared, inherited: Option<UnixListener>) -> Result<ControlSocket> {
    let listener = match inherited {
        Some(l) => l,
        None => bind(path)?,
    };
    let copy = listener.as_fd().try_clone_to_owned().context("duplicating the control listener")?;
    let clients = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new().name("control".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if clients.load(Ordering::Relaxed) >= MAX_CLIENTS {
                let _ = reply(&stream, &Reply::failure("too many control clients"));
                continue;
            }
            clients.fetch_add(1, Ordering::Relaxed);
            let (shared, clients) = (shared.clone(), clients.clone());
            let spawned = std::thread::Builder::new().name("control-client".into()).spawn(move || {
                serve_client(stream, &shared);
                clients.fetch_sub(1, Ordering::Relaxed);
            });
            if spawned.is_err() {
                warn!("cannot start a control client thread");
            }
        }
    })?;
    Ok(ControlSocket { path: path.to_path_buf(), copy })
}

fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            bail!("{} is in use: is another rvswitchd running?", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

fn serve_client(stream: UnixStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IDLE_TIMEOUT));
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line.len() > MAX_LINE => {
                let _ = reply(&stream, &Reply::failure(format!("request longer than {MAX_LINE} bytes")));
                return;
            }
            Ok(_) => {}
        }
        let answer = match serde_json::from_slice::<Request>(&line) {
            Ok(req) => handle(req, shared),
            Err(e) => Reply::failure(format!("bad request: {e}")),
        };
        if reply(&stream, &answer).is_err() {
            return;
        }
    }
}

fn handle(req: Request, shared: &Shared) -> Reply {
    debug!(?req, "control request");
    match req {
        Request::Show => Reply::success(&lock(shared).show()),
        Request::FdbShow { bridge } => match lock(shared).fdb(&bridge) {
            Ok(r) => Reply::success(&r),
            Err(e) => Reply::failure(e.to_string()),
        },
        Request::Reload => match lock(shared).reload() {
            Ok(changes) => Reply::success(&ReloadReply { changes }),
            Err(e) => {
                warn!("reload refused, running config kept: {e}");
                Reply::failure(e.to_string())
            }
        },
    }
}

fn reply(mut stream: &UnixStream, r: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(r).unwrap_or_else(|_| br#"{"ok":false,"error":"encoding"}"#.to_vec());
    line.push(b'\n');
    stream.write_all(&line)
}
