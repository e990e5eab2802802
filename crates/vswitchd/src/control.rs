//! The control socket (like OvS's unixctl): a unix stream socket, mode 0600, one JSON request per
//! line. Every client gets its own thread, capped in number; a client that sends garbage gets an
//! error reply, one that sends too much is disconnected. None of this touches the forwarding
//! thread except through the reconciler's commands.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use ctl::protocol::{ReloadReply, Reply, Request, MAX_LINE};
use tracing::{debug, warn};

use crate::daemon::Daemon;
use crate::listen;

const MAX_CLIENTS: usize = 32;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a question to the forwarding thread may take before it counts as stuck.
const TRACE_TIMEOUT: Duration = Duration::from_secs(2);

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
        None => listen::bind_private(path)?,
    };
    let copy = listener.as_fd().try_clone_to_owned().context("duplicating the control listener")?;
    let serve = move |stream| serve_client(stream, &shared);
    let refuse = |stream: &UnixStream| {
        let _ = reply(stream, &Reply::failure("too many control clients"));
    };
    listen::spawn_clients(listener, "control", MAX_CLIENTS, serve, refuse)?;
    Ok(ControlSocket { path: path.to_path_buf(), copy })
}

fn serve_client(stream: UnixStream, shared: &Shared) {
    let Some(read_half) = listen::read_half(&stream, IDLE_TIMEOUT) else { return };
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
        Request::Trace { bridge, in_port, frame } => match trace(shared, &bridge, &in_port, &frame) {
            Ok(t) => Reply::success(&t),
            Err(e) => Reply::failure(e),
        },
        Request::Events { from, wait_ms } => {
            // The ring is read without the daemon's lock: a follower waits for news.
            let ring = lock(shared).events();
            Reply::success(&ring.read(from, Duration::from_millis(wait_ms)))
        }
        Request::Reload => match lock(shared).reload() {
            Ok(changes) => Reply::success(&ReloadReply { changes }),
            Err(e) => {
                warn!("reload refused, running config kept: {e}");
                Reply::failure(e.to_string())
            }
        },
    }
}

/// Traces a hex frame: shared by the control socket and unixctl's `ofproto/trace`.
pub fn trace(shared: &Shared, bridge: &str, in_port: &str, hex: &str) -> Result<switch::Trace, String> {
    let frame = ctl::flow::parse_hex(hex).map_err(|e| e.to_string())?;
    let daemon = lock(shared);
    let port = daemon.resolve_port(in_port);
    daemon.datapath().trace(bridge, &port, frame, TRACE_TIMEOUT).map_err(|e| e.to_string())
}

fn reply(mut stream: &UnixStream, r: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(r).unwrap_or_else(|_| br#"{"ok":false,"error":"encoding"}"#.to_vec());
    line.push(b'\n');
    stream.write_all(&line)
}
