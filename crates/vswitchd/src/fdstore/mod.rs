//! Keeping device descriptors open across daemon restarts (issue: restart without an outage).
//! The daemon stores a copy of every port's descriptors in the keeper ([`keeper`], a process of
//! its own) as it opens them; a restarted daemon takes them back and adopts the devices instead
//! of opening them again. A clean stop (`SIGTERM`) tells the keeper to close everything, so taps
//! disappear as before; an upgrade (`--upgrade`) leaves them for the next process.

pub mod keeper;
mod unix;
mod wire;

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netdev::Labelled;
use tracing::{debug, info, warn};

/// Descriptors a previous process kept, by port name: `(label, fd)` as the port listed them.
pub type Kept = HashMap<String, Vec<(String, OwnedFd)>>;

/// The hidden flag that makes `rvswitchd` run as the keeper.
pub const KEEPER_FLAG: &str = "--fd-store-keeper";
/// Longest wait for the keeper's answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a keeper just started to listen.
const START_TIMEOUT: Duration = Duration::from_secs(3);

fn key(port: &str, label: &str) -> String {
    format!("port/{port}/{label}")
}

/// A connection to the keeper.
pub struct FdStore {
    sock: OwnedFd,
}

impl FdStore {
    /// Connects to the keeper at `path` and takes what it holds; starts a keeper (`exe
    /// --fd-store-keeper PATH`, in a session of its own so a terminal's signals do not reach it)
    /// if none answers.
    pub fn open(path: &Path, exe: &Path) -> io::Result<(FdStore, Kept)> {
        let sock = match unix::connect(path) {
            Ok(s) => s,
            Err(_) => spawn_keeper(path, exe)?,
        };
        set_recv_timeout(&sock, REPLY_TIMEOUT)?;
        let store = FdStore { sock };
        let kept = store.take_all()?;
        if !kept.is_empty() {
            info!(ports = kept.len(), "descriptors kept by the previous rvswitchd found");
        }
        Ok((store, kept))
    }

    fn take_all(&self) -> io::Result<Kept> {
        wire::send(self.sock.as_fd(), b"GET", None)?;
        let mut kept: Kept = HashMap::new();
        let mut buf = [0u8; wire::MAX_MESSAGE];
        // Bounded by what the keeper holds (it bounds that itself) plus the END message.
        loop {
            let (n, fd) = wire::recv(self.sock.as_fd(), &mut buf, false)?;
            let text = String::from_utf8_lossy(&buf[..n]);
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the keeper closed the connection"));
            }
            if text == "END" {
                return Ok(kept);
            }
            let parsed = text.strip_prefix("FD port/").and_then(|k| k.split_once('/'));
            if let (Some((port, label)), Some(fd)) = (parsed, fd) {
                kept.entry(port.to_string()).or_default().push((label.to_string(), fd));
            }
        }
    }

    /// Stores (replacing what was there) the descriptors of `port`.
    pub fn put(&self, port: &str, fds: &[Labelled<'_>]) {
        self.forget(port);
        for (label, fd) in fds {
            if let Err(e) =
                wire::send(self.sock.as_fd(), format!("PUT {}", key(port, label)).as_bytes(), Some(*fd))
            {
                warn!(port, "cannot hand a descriptor to the keeper: {e}");
            }
        }
    }

    /// Drops what the keeper holds for `port` (removed, or replaced by a new device) and waits
    /// (bounded by the socket's receive timeout) until it has closed them, so a device of the
    /// same name can be created right after.
    pub fn forget(&self, port: &str) {
        if let Err(e) = wire::send(self.sock.as_fd(), format!("DEL {}", key(port, "")).as_bytes(), None) {
            warn!(port, "cannot tell the keeper to close a device: {e}");
            return;
        }
        let mut buf = [0u8; wire::MAX_MESSAGE];
        match wire::recv(self.sock.as_fd(), &mut buf, false) {
            Ok((2, None)) if &buf[..2] == b"OK" => {}
            other => warn!(port, "the keeper did not confirm closing a device: {other:?}"),
        }
    }

    /// A clean stop: the keeper closes every descriptor and ends.
    /// Tells the keeper that this daemon's fast path is pinned: its tc programs outlive it, so
    /// the socket filters on the kept sockets stay when it leaves (see [`keeper`]).
    pub fn keep_filters(&self) {
        if let Err(e) = wire::send(self.sock.as_fd(), b"PINNED", None) {
            warn!("cannot tell the keeper the fast path is pinned: {e}");
        }
    }

    /// A second handle on this connection, for the one message a stopping daemon sends from
    /// its main thread while the reconciler still owns this store (see [`UnpinNotice`]).
    pub fn unpin_notice(&self) -> io::Result<UnpinNotice> {
        Ok(UnpinNotice(self.sock.try_clone()?))
    }

    pub fn close_all(self) {
        let _ = wire::send(self.sock.as_fd(), b"EXIT", None);
    }
}

/// Tells the keeper that this daemon's fast path no longer outlives it (its pins are unlinked):
/// should the daemon die before its clean stop ends, the keeper detaches the socket filters
/// then, as after any unpinned owner, instead of leaving them to hide frames nothing forwards.
pub struct UnpinNotice(OwnedFd);

impl UnpinNotice {
    pub fn send(self) {
        if let Err(e) = wire::send(self.0.as_fd(), b"UNPINNED", None) {
            warn!("cannot tell the keeper the fast path is no longer pinned: {e}");
        }
    }
}

fn spawn_keeper(path: &Path, exe: &Path) -> io::Result<OwnedFd> {
    let mut cmd = Command::new(exe);
    cmd.arg(KEEPER_FLAG).arg(path).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    debug!(pid = child.id(), path = %path.display(), "started the descriptor keeper");
    let started = Instant::now();
    // Bounded: START_TIMEOUT in 5 ms steps.
    loop {
        match unix::connect(path) {
            Ok(s) => return Ok(s),
            Err(e) if started.elapsed() >= START_TIMEOUT => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn set_recv_timeout(sock: &OwnedFd, t: Duration) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let tv = libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: SO_RCVTIMEO reads a `timeval` of the given size from our stack.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Where the keeper listens by default: beside the control socket.
pub fn default_path(control_socket: &Path) -> PathBuf {
    control_socket.with_extension("fdstore")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn devnull() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    /// A classic filter that drops every frame (`ret #0`).
    fn attach_drop_all(sock: &std::net::UdpSocket) {
        use std::os::fd::AsRawFd;
        let mut code = [libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0 }];
        let prog = libc::sock_fprog { len: 1, filter: code.as_mut_ptr() };
        // SAFETY: SO_ATTACH_FILTER copies the program from our live `sock_fprog`.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&prog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
    }

    fn delivers(rx: &std::net::UdpSocket) -> bool {
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"x", rx.local_addr().unwrap()).unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        rx.recv(&mut [0u8; 4]).is_ok()
    }

    /// A keeper on its own thread, returned once its socket exists.
    fn spawn_keeper(path: &Path) -> std::thread::JoinHandle<std::io::Result<()>> {
        let keeper = {
            let path = path.to_path_buf();
            std::thread::spawn(move || keeper::run(&path))
        };
        assert!((0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(5));
            path.exists()
        }));
        keeper
    }

    #[test]
    fn when_the_owning_daemon_leaves_the_keeper_detaches_socket_filters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.fdstore");
        let keeper = spawn_keeper(&path);
        let no_exe = Path::new("/nonexistent");
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        attach_drop_all(&rx);
        assert!(!delivers(&rx), "the filter hides the datagram");
        let (store, _) = FdStore::open(&path, no_exe).unwrap();
        store.put("eth1", &[("rx0:1".into(), rx.as_fd())]);
        // A client that never took the descriptors leaving changes nothing.
        let bystander = unix::connect(&path).unwrap();
        drop(bystander);
        let (probe, _) = FdStore::open(&path, no_exe).unwrap();
        assert!(!delivers(&rx), "a non-owner leaving keeps the filter");
        drop(probe);
        // `probe` took the descriptors last, so it owned them: its leaving detached the
        // filter, at the latest before the next client's GET is answered.
        let (store2, kept) = FdStore::open(&path, no_exe).unwrap();
        assert_eq!(kept["eth1"].len(), 1);
        assert!(delivers(&rx), "the filter is gone once its owner left");
        drop(store);
        store2.close_all();
        keeper.join().unwrap().unwrap();
    }

    #[test]
    fn a_pinned_owner_leaving_keeps_the_socket_filters_unless_it_unpinned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.fdstore");
        let keeper = spawn_keeper(&path);
        let no_exe = Path::new("/nonexistent");
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        attach_drop_all(&rx);
        let (store, _) = FdStore::open(&path, no_exe).unwrap();
        store.put("eth1", &[("rx0:1".into(), rx.as_fd())]);
        // Its tc programs outlive it: the filter must go on deciding for them.
        store.keep_filters();
        drop(store);
        let (store2, kept) = FdStore::open(&path, no_exe).unwrap();
        assert_eq!(kept["eth1"].len(), 1);
        assert!(!delivers(&rx), "a pinned owner's filter stays when it leaves");
        // The next owner did not say PINNED: its leaving detaches the filter again.
        drop(store2);
        let (store3, _) = FdStore::open(&path, no_exe).unwrap();
        assert!(delivers(&rx), "an unpinned owner's filter goes when it leaves");
        // Pinned, then a clean stop's first step (from another handle on the same connection),
        // then the daemon dies before its stop ends: the filter goes.
        attach_drop_all(&rx);
        store3.keep_filters();
        store3.unpin_notice().unwrap().send();
        drop(store3);
        let (store4, _) = FdStore::open(&path, no_exe).unwrap();
        assert!(delivers(&rx), "the filter outlived an owner whose fast path was unpinned");
        store4.close_all();
        keeper.join().unwrap().unwrap();
    }

    #[test]
    fn the_keeper_keeps_replaces_forgets_and_exits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.fdstore");
        let keeper = spawn_keeper(&path);
        let no_exe = Path::new("/nonexistent");
        let (store, kept) = FdStore::open(&path, no_exe).unwrap();
        assert!(kept.is_empty());
        let (a, b, c) = (devnull(), devnull(), devnull());
        store.put("vnet0", &[("tap".into(), a.as_fd())]);
        store.put("eth1", &[("tx".into(), b.as_fd()), ("rx0:2".into(), c.as_fd())]);
        // Replacing a port drops its old labels.
        store.put("eth1", &[("tx".into(), b.as_fd()), ("rx0:4".into(), c.as_fd())]);
        drop(store);

        let (store, kept) = FdStore::open(&path, no_exe).unwrap();
        let mut labels: Vec<String> = kept["eth1"].iter().map(|(l, _)| l.clone()).collect();
        labels.sort();
        assert_eq!(labels, vec!["rx0:4", "tx"]);
        assert_eq!(kept["vnet0"].len(), 1);
        store.forget("vnet0");
        drop(store);

        let (store, kept) = FdStore::open(&path, no_exe).unwrap();
        assert_eq!(kept.keys().collect::<Vec<_>>(), vec!["eth1"]);
        store.close_all();
        keeper.join().unwrap().unwrap();
        assert!(!path.exists(), "the keeper removes its socket when it ends");
    }
}
