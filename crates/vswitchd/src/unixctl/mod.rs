//! The unixctl server, so Debian's real `ovs-appctl` works against rvswitchd: a unix stream
//! socket speaking OvS's JSON-RPC ([`wire`]), answering the commands in [`commands`] with OvS's
//! text layouts ([`text`]). Clients are capped in number and in bytes; garbage closes the
//! connection, as OvS's jsonrpc does.

pub mod commands;
pub mod text;
pub mod wire;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde_json::Value;
use tracing::debug;

use crate::listen;

use commands::After;
pub use commands::Ctx;

const MAX_CLIENTS: usize = 16;
/// Most bytes one connection may send (ovs-appctl sends one small request per connection).
const MAX_CONN_BYTES: u64 = 1 << 20;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where ovs-appctl looks for a daemon's socket: `DIR/NAME.PID.ctl` (`-t NAME` reads the pid
/// from `DIR/NAME.pid`).
pub fn default_path(dir: &Path) -> PathBuf {
    dir.join(format!("ovs-vswitchd.{}.ctl", std::process::id()))
}

/// Binds `path` (refusing one a live daemon serves) and answers on a thread of its own.
pub fn serve(path: &Path, ctx: Ctx) -> Result<PathBuf> {
    let listener = listen::bind_private(path)?;
    let serve = move |stream| serve_client(stream, &ctx);
    let refuse = |_: &UnixStream| debug!("unixctl: too many clients, connection refused");
    listen::spawn_clients(listener, "unixctl", MAX_CLIENTS, serve, refuse)?;
    Ok(path.to_path_buf())
}

/// Answers requests until the client closes, sends garbage or goes quiet.
fn serve_client(stream: UnixStream, ctx: &Ctx) {
    let Some(read_half) = listen::read_half(&stream, IDLE_TIMEOUT) else { return };
    let values = serde_json::Deserializer::from_reader(read_half.take(MAX_CONN_BYTES)).into_iter::<Value>();
    for value in values {
        let Ok(value) = value else { return };
        let (reply, after) = answer(&value, ctx);
        if let Some(reply) = reply {
            let mut bytes = serde_json::to_vec(&reply).unwrap_or_default();
            bytes.push(b'\n');
            if (&stream).write_all(&bytes).is_err() {
                return;
            }
        }
        if after == After::Exit {
            (ctx.exit)();
            return;
        }
    }
}

/// The reply to one JSON value (none for a notification) and what to do after sending it.
fn answer(value: &Value, ctx: &Ctx) -> (Option<Value>, After) {
    let req = match wire::parse(value) {
        Ok(r) => r,
        Err((id, e)) => return (id.map(|id| wire::reply(&id, Err(e.to_string()))), After::Nothing),
    };
    debug!(method = req.method, params = ?req.params, "unixctl request");
    let (outcome, after) = match commands::check(&req.method, req.params.len()) {
        Ok(spec) => commands::run(ctx, spec.name, &req.params),
        Err(e) => (Err(e), After::Nothing),
    };
    (req.id.map(|id| wire::reply(&id, outcome)), after)
}
