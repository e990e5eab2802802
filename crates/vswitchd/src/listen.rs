//! Unix stream sockets the daemon serves (the control socket, unixctl): bind safely, then one
//! thread per client with a cap on their number. The protocol is the caller's.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tracing::warn;

/// Binds `path` with mode 0600, creating its directory; refuses a socket a live process still
/// serves (connecting to it succeeds) and replaces a stale one.
pub fn bind_private(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
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

/// Accepts on a thread named `name`; each client runs `serve` on a thread of its own, at most
/// `max` at once. A client over the cap is handed to `refuse` and closed.
pub fn spawn_clients<S, R>(listener: UnixListener, name: &str, max: usize, serve: S, refuse: R) -> Result<()>
where
    S: Fn(UnixStream) + Clone + Send + 'static,
    R: Fn(&UnixStream) + Send + 'static,
{
    let clients = Arc::new(AtomicUsize::new(0));
    let client_name = format!("{name}-client");
    std::thread::Builder::new().name(name.to_string()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if clients.load(Ordering::Relaxed) >= max {
                refuse(&stream);
                continue;
            }
            clients.fetch_add(1, Ordering::Relaxed);
            let (serve, clients) = (serve.clone(), clients.clone());
            let spawned = std::thread::Builder::new().name(client_name.clone()).spawn(move || {
                serve(stream);
                clients.fetch_sub(1, Ordering::Relaxed);
            });
            if spawned.is_err() {
                warn!("cannot start a {client_name} thread");
            }
        }
    })?;
    Ok(())
}

/// Puts `idle` as read and write timeout on a client's stream (a silent client cannot hold its
/// thread forever) and returns a second handle to read from; `None` if the stream is unusable.
pub fn read_half(stream: &UnixStream, idle: Duration) -> Option<UnixStream> {
    let _ = stream.set_read_timeout(Some(idle));
    let _ = stream.set_write_timeout(Some(idle));
    stream.try_clone().ok()
}
