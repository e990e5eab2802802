//! `--ovs-compat`: be found where Open vSwitch's tools look. ovs-vsctl (and so libvirt, which
//! runs it without `--db`) connects to `$OVS_RUNDIR/db.sock`; scripts such as `ovs-ctl status`
//! and ovs-appctl read `$OVS_RUNDIR/ovs-vswitchd.pid` and `ovsdb-server.pid`. rvswitchd is both
//! daemons in one process, so both files name it.
//!
//! Pid files follow OvS's own convention: the daemon keeps a POSIX write lock on each file for
//! as long as it runs. A lock held by someone else means a live daemon (a real ovs-vswitchd, or
//! another rvswitchd), which is refused; a file without a lock is stale, whatever PID it holds,
//! so a PID reused after a crash can never block a start.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Where Open vSwitch keeps its sockets and pid files (its `OVS_RUNDIR`).
pub const DEFAULT_RUNDIR: &str = "/var/run/openvswitch";
/// The daemons OvS users look for; ovs-appctl's default target is the first.
pub const DAEMONS: [&str; 2] = ["ovs-vswitchd", "ovsdb-server"];

#[derive(Debug, Error)]
pub enum PidFileError {
    #[error("{0}: {1}")]
    Io(String, io::Error),
    #[error(
        "{path} is locked by a running daemon (pid {pid}): is Open vSwitch or another rvswitchd running?"
    )]
    Held { path: String, pid: String },
}

/// The database socket in OvS's place.
pub fn db_socket(rundir: &Path) -> PathBuf {
    rundir.join("db.sock")
}

/// The locked pid files of this process; dropping them removes the files.
#[derive(Debug)]
pub struct PidFiles {
    held: Vec<(PathBuf, File)>,
}

impl PidFiles {
    /// Writes `NAME.pid` for every daemon in [`DAEMONS`] into `rundir` (created if missing).
    /// All or nothing: on error the files already written are removed again.
    pub fn create(rundir: &Path) -> Result<PidFiles, PidFileError> {
        std::fs::create_dir_all(rundir).map_err(|e| PidFileError::Io(rundir.display().to_string(), e))?;
        let mut files = PidFiles { held: Vec::new() };
        for daemon in DAEMONS {
            let path = rundir.join(format!("{daemon}.pid"));
            let file = write_locked(&path)?;
            files.held.push((path, file));
        }
        Ok(files)
    }

    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.held.iter().map(|(p, _)| p.as_path())
    }
}

impl Drop for PidFiles {
    fn drop(&mut self) {
        // Unlink while still holding the lock, so no other daemon's fresh file is removed.
        for (path, file) in self.held.drain(..) {
            let _ = std::fs::remove_file(&path);
            drop(file);
        }
    }
}

/// Opens `path`, takes the write lock and replaces the contents with our PID.
fn write_locked(path: &Path) -> Result<File, PidFileError> {
    let err = |e| PidFileError::Io(path.display().to_string(), e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(err)?;
    if !try_lock(&file).map_err(err)? {
        let pid = std::fs::read_to_string(path).unwrap_or_default().trim().to_string();
        return Err(PidFileError::Held { path: path.display().to_string(), pid });
    }
    file.set_len(0).map_err(err)?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes()).map_err(err)?;
    Ok(file)
}

/// A non-blocking POSIX write lock on the whole file (what OvS's lib/daemon-unix.c takes, so
/// either daemon sees the other's). `Ok(false)`: someone else holds it.
fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: all-zero is a valid flock (l_start = l_len = 0 covers the whole file).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: fcntl on an fd we own with a pointer to a live flock.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) } == 0 {
        return Ok(true);
    }
    match io::Error::last_os_error() {
        e if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        e => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_files_name_us_and_vanish_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ovs-vswitchd.pid"), "999999\n").unwrap(); // stale
        let files = PidFiles::create(dir.path()).unwrap();
        let me = format!("{}\n", std::process::id());
        for daemon in DAEMONS {
            let text = std::fs::read_to_string(dir.path().join(format!("{daemon}.pid"))).unwrap();
            assert_eq!(text, me, "{daemon}");
        }
        assert_eq!(files.paths().count(), 2);
        drop(files);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_file_locked_by_another_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // The second file is the locked one, so the first must be taken back.
        let path = dir.path().join("ovsdb-server.pid");
        std::fs::write(&path, "4242\n").unwrap();
        // POSIX locks belong to a process, so the holder must be another one (as a real
        // ovs-vswitchd would be): python's lockf takes the same fcntl lock.
        let mut cmd = std::process::Command::new("/usr/bin/python3");
        cmd.arg("-c")
            .arg("import fcntl,sys,time\nf=open(sys.argv[1],'r+')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(30)")
            .arg(&path);
        if !std::path::Path::new("/usr/bin/python3").exists() {
            testbed::skip("pid file lock test", "/usr/bin/python3 missing (Debian package python3)");
            return;
        }
        let holder = testbed::ChildGuard::spawn_ready(&mut cmd, "locked", std::time::Duration::from_secs(20))
            .expect("python3 holding the lock");
        let e = PidFiles::create(dir.path()).unwrap_err();
        drop(holder);
        assert!(matches!(&e, PidFileError::Held { pid, .. } if pid == "4242"), "{e}");
        assert!(!dir.path().join("ovs-vswitchd.pid").exists(), "half-written pid files left");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "4242\n", "the holder's file was touched");
    }
}
