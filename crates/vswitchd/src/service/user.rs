//! `--user USER[:GROUP]`: give up root once the daemon's files are in place, as ovs-vswitchd's
//! `--user` does, keeping only the capabilities the datapath needs later (creating taps and
//! opening AF_PACKET sockets when ports are added): CAP_NET_ADMIN and CAP_NET_RAW.
//!
//! Capabilities are per thread, and threads inherit them from the thread that creates them, so
//! the switch must happen while the process has one thread: [`drop_to`] refuses otherwise.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use thiserror::Error;

/// Capabilities kept after the switch (linux/capability.h numbers).
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;
const KEPT: u32 = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW);
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[derive(Debug, Error)]
pub enum UserError {
    #[error("--user {0:?}: expected USER or USER:GROUP")]
    Syntax(String),
    #[error("no such user {0:?}")]
    NoUser(String),
    #[error("no such group {0:?}")]
    NoGroup(String),
    #[error("--user must be used before the daemon starts threads ({0} running)")]
    Threads(usize),
    #[error("{0} failed: {1}")]
    Sys(&'static str, io::Error),
    #[error("handing {0} to the new user: {1}")]
    Chown(String, io::Error),
    #[error("still able to regain root after the switch: refusing to run")]
    Regained,
    /// The user cannot open /dev/net/tun (tap and internal ports need it).
    #[error("/dev/net/tun: {0}")]
    NoTun(io::Error),
}

/// The parsed `USER[:GROUP]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub user: String,
    pub group: Option<String>,
}

impl std::str::FromStr for UserSpec {
    type Err = UserError;

    fn from_str(s: &str) -> Result<UserSpec, UserError> {
        let (user, group) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        let bad = |n: &str| n.is_empty() || n.contains([':', '\0', '/']);
        if bad(user) || group.is_some_and(bad) {
            return Err(UserError::Syntax(s.to_string()));
        }
        Ok(UserSpec { user: user.to_string(), group: group.map(str::to_string) })
    }
}

/// A resolved account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
}

/// Looks the names up in the system's user database (NSS); the group defaults to the user's
/// primary group.
pub fn lookup(spec: &UserSpec) -> Result<Account, UserError> {
    let name = CString::new(spec.user.as_str()).map_err(|_| UserError::Syntax(spec.user.clone()))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all-zero is a valid passwd (null pointers, zero ids); it is only read after
    // getpwnam_r filled it.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live memory we own; buf's length is passed with it.
    let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return Err(UserError::NoUser(spec.user.clone()));
    }
    let gid = match &spec.group {
        Some(g) => group_id(g)?,
        None => pw.pw_gid,
    };
    Ok(Account { uid: pw.pw_uid, gid })
}

fn group_id(group: &str) -> Result<u32, UserError> {
    let name = CString::new(group).map_err(|_| UserError::Syntax(group.to_string()))?;
    let mut buf = vec![0 as libc::c_char; 64 * 1024];
    // SAFETY: as for passwd above.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer refers to live memory we own; buf's length is passed with it.
    let rc = unsafe { libc::getgrnam_r(name.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return Err(UserError::NoGroup(group.to_string()));
    }
    Ok(gr.gr_gid)
}

/// Makes `dirs` (created if missing) and the existing `files` owned by `account`, so the daemon
/// can still bind its sockets, compact its database (a rename in its directory) and clean up.
/// A sticky directory such as /tmp is left alone: anyone may create files there already.
pub fn hand_over(account: Account, dirs: &[&Path], files: &[&Path]) -> Result<(), UserError> {
    let chown = |p: &Path| {
        std::os::unix::fs::chown(p, Some(account.uid), Some(account.gid))
            .map_err(|e| UserError::Chown(p.display().to_string(), e))
    };
    for dir in dirs {
        std::fs::create_dir_all(dir).map_err(|e| UserError::Chown(dir.display().to_string(), e))?;
        let sticky = std::fs::metadata(dir).is_ok_and(|m| m.mode() & libc::S_ISVTX != 0);
        if !sticky {
            chown(dir)?;
        }
    }
    for file in files.iter().filter(|f| f.exists()) {
        chown(file)?;
    }
    Ok(())
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn check(what: &'static str, rc: libc::c_int) -> Result<(), UserError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(UserError::Sys(what, io::Error::last_os_error()))
    }
}

/// Switches the (single-threaded) process to `account` keeping CAP_NET_ADMIN and CAP_NET_RAW
/// effective; every thread started afterwards inherits exactly that.
pub fn drop_to(account: Account) -> Result<(), UserError> {
    match threads() {
        1 => {}
        n => return Err(UserError::Threads(n)),
    }
    let groups = [account.gid];
    // SAFETY: plain syscalls on values we own; each result is checked.
    unsafe {
        check("prctl(PR_SET_KEEPCAPS)", libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0))?;
        check("setgroups", libc::setgroups(1, groups.as_ptr()))?;
        check("setgid", libc::setgid(account.gid))?;
        check("setuid", libc::setuid(account.uid))?;
        check("prctl(PR_SET_KEEPCAPS, 0)", libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0))?;
    }
    set_capabilities(KEPT)?;
    // SAFETY: setuid(0) only tests whether root can be regained; it must fail.
    if account.uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(UserError::Regained);
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// capset(2) for this thread: `caps` (capabilities 0..31) permitted and effective, nothing
/// inheritable. Capabilities 32..63 (e.g. CAP_BPF, CAP_PERFMON) are cleared.
fn set_capabilities(caps: u32) -> Result<(), UserError> {
    let header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let data = [CapData { effective: caps, permitted: caps, inheritable: 0 }, CapData::default()];
    // SAFETY: capset reads one header and two data structs (version 3), which we pass.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    check("capset", if rc == 0 { 0 } else { -1 })
}

/// Whether the (new) user may open /dev/net/tun, which every tap and internal port needs:
/// stock Debian makes it 0666, but a hardened or containerised host may not.
pub fn check_tun_access() -> Result<(), UserError> {
    const TUN: &CStr = c"/dev/net/tun";
    // SAFETY: access(2) on a NUL-terminated constant path.
    if unsafe { libc::access(TUN.as_ptr(), libc::R_OK | libc::W_OK) } == 0 {
        return Ok(());
    }
    Err(UserError::NoTun(io::Error::last_os_error()))
}

/// The user name of `uid`, for log lines (the number if it has none).
pub fn user_name(uid: u32) -> String {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: as in `lookup`.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live memory we own.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return uid.to_string();
    }
    // SAFETY: getpwuid_r succeeded, so pw_name points to a NUL-terminated string inside buf.
    unsafe { CStr::from_ptr(pw.pw_name) }.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!("nobody".parse::<UserSpec>().unwrap(), UserSpec { user: "nobody".into(), group: None });
        let s: UserSpec = "rvs:netdev".parse().unwrap();
        assert_eq!(s, UserSpec { user: "rvs".into(), group: Some("netdev".into()) });
        for bad in ["", ":", "a:", ":g", "a:b:c", "a/b", "a\0"] {
            assert!(bad.parse::<UserSpec>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn lookups_resolve_and_fail_cleanly() {
        let root = lookup(&"root".parse().unwrap()).unwrap();
        assert_eq!(root, Account { uid: 0, gid: 0 });
        let with_group = lookup(&"root:root".parse().unwrap()).unwrap();
        assert_eq!(with_group.gid, 0);
        assert!(matches!(lookup(&"no-such-user-rvs".parse().unwrap()), Err(UserError::NoUser(_))));
        assert!(matches!(lookup(&"root:no-such-group-rvs".parse().unwrap()), Err(UserError::NoGroup(_))));
        assert_eq!(user_name(0), "root");
    }

    #[test]
    fn dropping_refuses_a_threaded_process() {
        // A second thread that surely lives during the call, whatever thread runs the test: this
        // test must never really drop the test process's root.
        let (release, parked) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || parked.recv());
        let e = drop_to(Account { uid: 65534, gid: 65534 }).unwrap_err();
        drop(release);
        let _ = other.join();
        assert!(matches!(e, UserError::Threads(n) if n > 1), "{e}");
    }
}
