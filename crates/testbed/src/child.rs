//! A guard for a child process, so a failing test never leaves e.g. a responder running.

use std::process::Child;

/// Owns a child process; dropping it sends SIGKILL to that PID and reaps it.
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    /// Takes ownership of `child`.
    pub fn new(child: Child) -> Self {
        ChildGuard { child }
    }

    /// Spawns `cmd` with its stdout piped and waits (bounded by `limit`) until its first line
    /// is `ready`: for a helper that must have done something (taken a lock, bound a socket)
    /// before the test goes on. An error if it says something else, ends, or stays silent.
    pub fn spawn_ready(
        cmd: &mut std::process::Command,
        ready: &str,
        limit: std::time::Duration,
    ) -> std::io::Result<ChildGuard> {
        let mut guard = ChildGuard::new(cmd.stdout(std::process::Stdio::piped()).spawn()?);
        let out = guard.child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Ends at the first line or when the child (killed by the guard at the latest) closes.
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(limit) {
            Ok(line) if line.trim() == ready => Ok(guard),
            Ok(line) => Err(std::io::Error::other(format!("the child said {line:?}, not {ready:?}"))),
            Err(_) => Err(std::io::Error::other(format!("the child did not say {ready:?} within {limit:?}"))),
        }
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits up to `limit` for the child to end by itself; its exit status if it
    /// did (None: still running, and dropping the guard will SIGKILL it). A daemon that cleans
    /// up on SIGTERM (e.g. rvswitchd unpinning its kernel fast path) needs the wait: the guard's
    /// SIGKILL right after the signal would look like a crash to it.
    pub fn terminate(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        crate::signal_pid(self.pid(), libc::SIGTERM);
        let mut status = None;
        crate::wait_until(limit, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// The wrapped child, e.g. to take its stdout.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // std's kill targets exactly this (not yet reaped) PID, so it can never hit a recycled one.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
