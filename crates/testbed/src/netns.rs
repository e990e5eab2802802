//! A network namespace per test "VM": traffic stays inside namespaces the test created, and the
//! guard removes the namespace (and every process in it) however the test ends.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{bail, Context};

use crate::child::ChildGuard;
use crate::cmd::{check, run, run_quiet_ok};
use crate::names::unique;

/// Guard for a named network namespace (`ip netns add`).
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `unique(prefix)` with `lo` up and IPv6 disabled, so captures inside it
    /// only show the traffic the test sends (no router solicitations, no MLD reports).
    pub fn new(prefix: &str) -> anyhow::Result<Netns> {
        let name = unique(prefix);
        run("ip", &["netns", "add", &name])?;
        // From here on the guard owns the namespace: any failure below still deletes it.
        let ns = Netns { name };
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"])?;
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Turns IPv6 on for the namespace and every interface in it (and those added later), for
    /// tests of IPv6 itself.
    pub fn enable_ipv6(&self) -> anyhow::Result<()> {
        self.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=0"])?;
        self.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0"]).map(drop)
    }

    /// The namespace's name (as listed by `ip netns list`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `args` inside the namespace; stdout on success, an error with stderr otherwise.
    pub fn exec(&self, args: &[&str]) -> anyhow::Result<String> {
        let full = self.full_args(args);
        let out = Command::new("ip")
            .args(&full)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot start `ip {}`", full.join(" ")))?;
        check("ip", &full, out)
    }

    /// Runs `args` inside the namespace and returns the exit status (output discarded).
    pub fn exec_status(&self, args: &[&str]) -> anyhow::Result<ExitStatus> {
        let full = self.full_args(args);
        Command::new("ip")
            .args(&full)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("cannot start `ip {}`", full.join(" ")))
    }

    /// Starts `args` inside the namespace in the background (stdout piped, stderr discarded).
    /// `ip netns exec` execs the command, so the guard's PID is the command's own.
    pub fn spawn(&self, args: &[&str]) -> anyhow::Result<ChildGuard> {
        let full = self.full_args(args);
        let child = Command::new("ip")
            .args(&full)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start `ip {}`", full.join(" ")))?;
        Ok(ChildGuard::new(child))
    }

    /// Pings `dst_ip` from inside the namespace; true iff all went well (exit status 0).
    pub fn ping(&self, dst_ip: &str, count: u32) -> bool {
        let count = count.to_string();
        self.exec_status(&["ping", "-c", &count, "-i", "0.2", "-W", "1", "-q", dst_ip])
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Runs `f` on a thread that has entered this namespace, so sockets and devices `f` creates
    /// belong to it (they stay there after the thread ends).
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
        let path = format!("/var/run/netns/{}", self.name);
        let file = File::open(&path).with_context(|| format!("cannot open {path}"))?;
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: plain syscall on a valid fd; it only changes this thread's namespace.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    bail!("setns({path}): {}", std::io::Error::last_os_error());
                }
                Ok(f())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("thread inside namespace panicked"))?
        })
    }

    /// Opens a [`netdev::SystemPort`] on `ifname` inside the namespace; the socket captures and
    /// sends there.
    pub fn open_port(&self, ifname: &str) -> anyhow::Result<netdev::SystemPort> {
        self.run_in(|| netdev::SystemPort::open(ifname))?
            .with_context(|| format!("opening {ifname} in netns {}", self.name))
    }

    /// Adds `cidr` to `ifname` and brings it up, inside the namespace.
    pub fn addr_up(&self, ifname: &str, cidr: &str) -> anyhow::Result<()> {
        self.exec(&["ip", "addr", "add", cidr, "dev", ifname])?;
        self.exec(&["ip", "link", "set", ifname, "up"])?;
        Ok(())
    }

    fn full_args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut full = vec!["netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        full
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Only processes a test started inside its own namespace can be listed here; never signal
        // ourselves (a thread of ours may have entered the namespace).
        let me = std::process::id();
        if let Ok(pids) = run("ip", &["netns", "pids", &self.name]) {
            for pid in pids.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                if pid > 1 && pid as u32 != me {
                    // SAFETY: plain syscall; a stale PID only yields ESRCH.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        run_quiet_ok("ip", &["netns", "del", &self.name]);
    }
}
