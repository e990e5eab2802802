//! Small process and socket probes shared by the guards.

use std::os::unix::net::UnixStream;
use std::path::Path;

/// True if something accepts connections on the unix socket `path` (a stale socket file or no
/// file: false). Used to refuse starting a second server on a system-wide path.
pub fn socket_answers(path: &Path) -> bool {
    UnixStream::connect(path).is_ok()
}

/// kill(2) for a PID the test started (directly or through a daemon it started); never 0 or a
/// negative value, which would reach a whole process group.
pub fn signal_pid(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        if pid > 0 {
            // SAFETY: plain kill(2) on a positive PID; a stale one only yields ESRCH.
            unsafe { libc::kill(pid, sig) };
        }
    }
}
