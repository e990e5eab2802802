//! The descriptor keeper: a small process of its own (`rvswitchd --fd-store-keeper PATH`) that
//! holds copies of rvswitchd's device descriptors. While it holds them the sockets and taps stay
//! open whatever happens to the daemon: a crashed daemon dies fast (closing an AF_PACKET socket
//! costs an RCU grace period or two — ~30 ms each here — but dropping one of two references is
//! free), and the next one adopts them instead of opening new ones. systemd's FDSTORE does the
//! same for units; the keeper also works without systemd.
//!
//! Protocol (one SOCK_SEQPACKET message each, descriptors by SCM_RIGHTS): `PUT <key>` with a
//! descriptor stores or replaces; `DEL <prefix>` drops every key starting with it and answers
//! `OK` once they are closed; `GET` answers
//! `FD <key>` with a descriptor per entry, then `END`; `PINNED` (from the client that took them
//! last) says its fast path outlives it (see below), `UNPINNED` (from the same client) takes
//! that back (a stopping daemon has unlinked its pins); `EXIT` closes everything and ends the
//! keeper. A keeper that has had no client for [`GRACE`] ends too, so descriptors of a daemon
//! that never comes back are not held forever.
//!
//! The fast path's socket filter hides from the slow path the frames the daemon's tc programs
//! forward, and the filter stays on the sockets kept here. Two cases when the connection of the
//! daemon that last took the descriptors (`GET`) closes — it died or exited:
//! - its fast path was pinned (it sent `PINNED` after `GET`): its tc programs and maps stay in
//!   the kernel, so the filters stay too. Fast-pathed flows keep being forwarded by the kernel,
//!   exactly once (filter and program share the maps); frames for the slow path wait in the
//!   kept sockets' queues for the successor (dropped once a queue is full). When this keeper
//!   ends (no daemon for [`GRACE`]) the sockets close and nothing decides any more: the
//!   programs then pass every frame to the host stack.
//! - otherwise its tc programs ended with it: the keeper detaches every socket filter from what
//!   it holds, before any successor can take them, so frames queue for the successor's slow
//!   path instead of being hidden with nobody forwarding them (a `kill -9` leaves no chance to
//!   switch the filter off).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{unix, wire};

/// How long descriptors are kept with no daemon connected (a supervisor restarts a crashed
/// daemon within a fraction of this).
pub const GRACE: Duration = Duration::from_secs(10);
/// Bounds: entries held and simultaneous clients.
const MAX_ENTRIES: usize = 1 << 16;
const MAX_CLIENTS: usize = 8;

/// Runs the keeper on `path` until `EXIT` or the grace period ends. Returns at once if another
/// keeper already serves there.
pub fn run(path: &Path) -> std::io::Result<()> {
    if unix::connect(path).is_ok() {
        return Ok(());
    }
    let _ = std::fs::remove_file(path);
    let listener = unix::listen(path)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let mut keeper = Keeper {
        entries: BTreeMap::new(),
        clients: Vec::new(),
        idle_since: Some(Instant::now()),
        owner: None,
        owner_pinned: false,
    };
    loop {
        if keeper.idle_since.is_some_and(|t| t.elapsed() >= GRACE) {
            break;
        }
        let mut polls = vec![libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        polls.extend(keeper.clients.iter().map(|c| libc::pollfd {
            fd: c.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        // SAFETY: `polls` is a live array of pollfd of the given length.
        let n = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, 1000) };
        if n <= 0 {
            continue;
        }
        if polls[0].revents != 0 {
            keeper.accept(&listener);
        }
        let ready: Vec<usize> = (1..polls.len()).filter(|&i| polls[i].revents != 0).map(|i| i - 1).collect();
        if keeper.serve(&ready) == Flow::Exit {
            break;
        }
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

enum Drained {
    Open,
    Closed,
    Exit,
}

#[derive(PartialEq)]
enum Flow {
    Continue,
    Exit,
}

struct Keeper {
    entries: BTreeMap<String, OwnedFd>,
    clients: Vec<OwnedFd>,
    idle_since: Option<Instant>,
    /// The client that last took the descriptors (its socket's number while connected): the
    /// daemon whose socket filters are attached to them.
    owner: Option<RawFd>,
    /// Whether the owner's tc programs outlive it (it sent `PINNED`).
    owner_pinned: bool,
}

impl Keeper {
    fn accept(&mut self, listener: &OwnedFd) {
        let Ok(c) = unix::accept(listener) else { return };
        // Only the daemon's own user may store or take descriptors.
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if self.clients.len() < MAX_CLIENTS && unix::peer_uid(&c).is_ok_and(|u| u == me) {
            self.clients.push(c);
            self.idle_since = None;
        }
    }

    /// Handles every message waiting from each ready client (indexes into `clients`).
    fn serve(&mut self, ready: &[usize]) -> Flow {
        let mut closed = Vec::new();
        for &i in ready {
            match self.drain(i, true) {
                Drained::Exit => return Flow::Exit,
                Drained::Closed => closed.push(i),
                Drained::Open => {}
            }
        }
        closed.sort_unstable();
        closed.dedup();
        for i in closed.into_iter().rev() {
            self.clients.swap_remove(i);
        }
        if self.clients.is_empty() && self.idle_since.is_none() {
            self.idle_since = Some(Instant::now());
        }
        Flow::Continue
    }

    /// Handles the messages client `i` has queued, without waiting for more. Bounded: a
    /// client's socket buffer holds a bounded number of messages.
    fn drain(&mut self, i: usize, may_drain_others: bool) -> Drained {
        let mut buf = [0u8; wire::MAX_MESSAGE];
        loop {
            match wire::recv(self.clients[i].as_fd(), &mut buf, true) {
                Ok((0, _)) => return self.closed(i),
                Ok((n, fd)) => {
                    let msg = buf[..n].to_vec();
                    if msg == b"GET" && may_drain_others {
                        // What a dead daemon sent last must count before its successor reads:
                        // messages on different connections are not ordered otherwise.
                        for other in (0..self.clients.len()).filter(|&o| o != i) {
                            if let Drained::Exit = self.drain(other, false) {
                                return Drained::Exit;
                            }
                        }
                    }
                    if self.command(i, &msg, fd) == Flow::Exit {
                        return Drained::Exit;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Drained::Open,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return self.closed(i),
            }
        }
    }

    /// Client `i` is gone (it is removed later). If it owned the sockets, their filters go now:
    /// this runs before a successor's `GET` is answered (see `drain`). Idempotent.
    fn closed(&mut self, i: usize) -> Drained {
        if self.owner == Some(self.clients[i].as_raw_fd()) {
            self.owner = None;
            if self.owner_pinned {
                tracing::debug!("the owning daemon left; its fast path is pinned: socket filters stay");
                return Drained::Closed;
            }
            let n = self.entries.values().filter(|fd| unix::detach_filter(fd)).count();
            tracing::debug!(sockets = n, "the owning daemon left: socket filters detached");
        }
        Drained::Closed
    }

    fn command(&mut self, client: usize, msg: &[u8], fd: Option<OwnedFd>) -> Flow {
        let text = String::from_utf8_lossy(msg);
        let (verb, key) = text.split_once(' ').unwrap_or((&text, ""));
        match (verb, fd) {
            ("PUT", Some(fd))
                if !key.is_empty()
                    && (self.entries.len() < MAX_ENTRIES || self.entries.contains_key(key)) =>
            {
                self.entries.insert(key.to_string(), fd);
            }
            ("DEL", _) if !key.is_empty() => {
                self.entries.retain(|k, _| !k.starts_with(key));
                // Acknowledged once closed: a tap's name is free only after the last copy went.
                let _ = wire::send(self.clients[client].as_fd(), b"OK", None);
            }
            ("GET", _) => {
                self.owner = Some(self.clients[client].as_raw_fd());
                self.owner_pinned = false;
                let sock = self.clients[client].as_fd();
                for (k, fd) in &self.entries {
                    let _ = wire::send(sock, format!("FD {k}").as_bytes(), Some(fd.as_fd()));
                }
                let _ = wire::send(sock, b"END", None);
            }
            ("PINNED", _) if self.owner == Some(self.clients[client].as_raw_fd()) => self.owner_pinned = true,
            ("UNPINNED", _) if self.owner == Some(self.clients[client].as_raw_fd()) => {
                self.owner_pinned = false
            }
            ("EXIT", _) => return Flow::Exit,
            _ => {} // unknown or malformed: ignored (a descriptor that came with it is closed)
        }
        Flow::Continue
    }
}
