//! One test at a time on a thing the whole host shares, across processes: two engineers' test
//! runs, or two test binaries of one `cargo test`, on the same machine.
//!
//! The lock is flock(2) on a file: it belongs to the open file, so the kernel drops it when the
//! holder's process ends however it ends (a panic, SIGKILL), and two threads of one test binary
//! exclude each other too (each guard opens the file anew). The file is never removed: a
//! waiter holding the old inode would otherwise lock a file nobody else sees.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::wait::wait_until_every;

/// The lock of tests that use Open vSwitch's default database socket,
/// `/var/run/openvswitch/db.sock` (libvirt runs ovs-vsctl without `--db`, so a test of libvirt
/// with rvswitchd must serve that path). Those tests also start libvirtd on its system sockets,
/// which this lock therefore covers too.
pub const OVS_DB_LOCK: &str = "/run/rvswitch-test-ovs-db.lock";
/// How long [`HostLock::ovs_db`] waits: generous (a libvirt test with two TCG guests runs for
/// minutes on a loaded machine), but a stuck holder ends in a clear failure, not a hung run.
pub const OVS_DB_WAIT: Duration = Duration::from_secs(20 * 60);
/// How often a waiter tries again.
const POLL: Duration = Duration::from_millis(100);

/// Holds an exclusive advisory lock on a file while it lives (declare it first in a test, so it
/// is dropped last). Released on drop, also when the test panics.
#[derive(Debug)]
pub struct HostLock {
    file: File,
    path: PathBuf,
}

impl HostLock {
    /// [`OVS_DB_LOCK`] for `test`, waiting up to [`OVS_DB_WAIT`].
    ///
    /// # Panics
    /// When the lock cannot be had in that time (or its file cannot be opened), saying who
    /// holds it.
    pub fn ovs_db(test: &str) -> HostLock {
        HostLock::acquire(Path::new(OVS_DB_LOCK), test, OVS_DB_WAIT)
            .unwrap_or_else(|e| panic!("{test}: {e:#}"))
    }

    /// Takes the lock at `path` (created if missing) for `holder`, waiting up to `timeout`
    /// while another process or thread holds it. The holder's PID and name are written into
    /// the file, for the message of whoever waits next.
    pub fn acquire(path: &Path, holder: &str, timeout: Duration) -> anyhow::Result<HostLock> {
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .with_context(|| format!("opening the lock file {}", path.display()))
        };
        let file = open()?;
        let mut told = false;
        let got = wait_until_every(timeout, POLL, || {
            let ok = try_lock(&file);
            if !ok && !told {
                told = true;
                eprintln!("{holder}: waiting for {} (held by {})", path.display(), read_holder(path));
            }
            ok
        });
        if !got {
            bail!(
                "{} is still held by {} after {timeout:?}: another test on the same shared \
                 resource runs, or is stuck (the lock goes when its process ends)",
                path.display(),
                read_holder(path)
            );
        }
        let mut lock = HostLock { file, path: path.to_path_buf() };
        lock.write_holder(holder);
        Ok(lock)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Best effort: the lock holds whether or not the note could be written.
    fn write_holder(&mut self, holder: &str) {
        let _ = self.file.set_len(0);
        let _ = self.file.write_all(format!("pid {} ({holder})\n", std::process::id()).as_bytes());
    }
}

impl Drop for HostLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        // SAFETY: flock on a descriptor this guard owns; closing the file would release it too.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// One non-blocking attempt (EINTR counts as not yet).
fn try_lock(file: &File) -> bool {
    // SAFETY: flock on a descriptor `file` owns for the duration of the call.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

fn read_holder(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => "an unknown process".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("testbed-lock-{}-{name}", std::process::id()))
    }

    #[test]
    fn a_held_lock_makes_the_next_wait_fail_clearly_until_it_is_dropped() {
        let path = lock_path("held");
        let first = HostLock::acquire(&path, "first", Duration::from_secs(5)).unwrap();
        let err = HostLock::acquire(&path, "second", Duration::from_millis(300)).unwrap_err().to_string();
        assert!(err.contains("still held by pid") && err.contains("(first)"), "{err}");
        drop(first);
        let second = HostLock::acquire(&path, "second", Duration::from_secs(5)).unwrap();
        assert_eq!(second.path(), path);
        drop(second);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_panicking_holder_releases_the_lock() {
        let path = lock_path("panic");
        let p = path.clone();
        let r = std::thread::spawn(move || {
            let _lock = HostLock::acquire(&p, "panicker", Duration::from_secs(5)).unwrap();
            panic!("test failure while holding the lock");
        })
        .join();
        assert!(r.is_err(), "the holder did not panic");
        assert!(HostLock::acquire(&path, "after", Duration::from_secs(5)).is_ok());
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn another_process_holding_the_lock_excludes_us_until_it_ends() {
        let path = lock_path("proc");
        std::fs::write(&path, "").unwrap();
        // util-linux flock(1) holds the same kind of lock; without a fork (-F) the process that
        // holds it is the child itself, which says so before it sleeps.
        let mut cmd = std::process::Command::new("flock");
        cmd.arg("-F").arg(&path).args(["sh", "-c", "echo locked; exec sleep 60"]);
        let child = crate::ChildGuard::spawn_ready(&mut cmd, "locked", Duration::from_secs(10))
            .expect("flock(1) (util-linux) holding the lock");
        assert!(HostLock::acquire(&path, "us", Duration::from_millis(300)).is_err(), "not excluded");
        drop(child); // SIGKILL: the kernel drops its lock
        assert!(HostLock::acquire(&path, "us", Duration::from_secs(10)).is_ok());
        let _ = std::fs::remove_file(path);
    }
}
