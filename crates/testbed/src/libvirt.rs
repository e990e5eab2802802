//! A libvirt of the test's own: virtlogd and libvirtd (system mode, `qemu:///system`) run as the
//! test's children and are stopped by PID; every network and domain the test defined through
//! the guard is destroyed and undefined again, however the test ends.
//!
//! Two things of this machine are hidden from libvirtd, in a mount namespace of its own (so
//! nothing changes for the rest of the host):
//! - `/dev/kvm` exists but is root-only (no udev gives it to group kvm). libvirt probes qemu's
//!   capabilities with KVM (the probe may open it), then finds KVM unusable for the
//!   libvirt-qemu user and throws the cached capabilities away, on *every* lookup: about 4 s a
//!   probe, 48 s per domain start. An empty mode-000 file over /dev/kvm makes both answers
//!   "no KVM" (nested KVM does not work here anyway; the domains are TCG, `type='qemu'`).
//! - qemu.conf gets `namespaces = []`: libvirt's per-domain /dev namespace would try to move
//!   that /dev/kvm bind mount and fail. Everything else stays Debian's default (qemu runs as
//!   libvirt-qemu; dynamic_ownership hands it the kernel, initrd and console files).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::child::ChildGuard;
use crate::cmd::{run, run_quiet_ok};
use crate::unix::{signal_pid, socket_answers};
use crate::wait::wait_until;

/// The connection URI every call uses (libvirtd in system mode).
pub const URI: &str = "qemu:///system";
const LIBVIRTD_SOCKET: &str = "/run/libvirt/libvirt-sock";
const VIRTLOGD_SOCKET: &str = "/run/libvirt/virtlogd-sock";
/// Programs the guard runs; [`Libvirt::missing_tools`] checks for them.
const TOOLS: [&str; 5] = ["libvirtd", "virtlogd", "virsh", "unshare", "mount"];

/// Guard for a running virtlogd + libvirtd and the objects defined through it.
pub struct Libvirt {
    dir: PathBuf,
    networks: Vec<String>,
    domains: Vec<String>,
    libvirtd: Option<ChildGuard>,
    virtlogd: Option<ChildGuard>,
}

impl Libvirt {
    /// The programs from Debian's libvirt-daemon-system / libvirt-clients that are not
    /// installed (empty: all there).
    pub fn missing_tools() -> Vec<&'static str> {
        TOOLS.into_iter().filter(|t| !on_path(t)).collect()
    }

    /// Starts virtlogd, then libvirtd, with their configs and logs in `dir` (created), and
    /// waits (bounded) until `virsh -c qemu:///system version` answers. Refuses if another
    /// libvirtd or virtlogd already serves the system sockets: the test needs its own.
    pub fn start(dir: &Path) -> anyhow::Result<Libvirt> {
        for sock in [LIBVIRTD_SOCKET, VIRTLOGD_SOCKET] {
            if socket_answers(Path::new(sock)) {
                bail!("{sock} answers: a libvirtd/virtlogd runs already; stop it (this test starts its own)");
            }
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut lv = Libvirt {
            dir: dir.to_owned(),
            networks: vec![],
            domains: vec![],
            libvirtd: None,
            virtlogd: None,
        };
        lv.write_configs()?;
        lv.virtlogd = Some(lv.spawn("virtlogd", &lv.virtlogd_cmd())?);
        lv.wait_up("virtlogd", Duration::from_secs(20), || socket_answers(Path::new(VIRTLOGD_SOCKET)))?;
        lv.libvirtd = Some(lv.spawn("libvirtd", &lv.libvirtd_cmd())?);
        // The first start on a machine probes qemu's capabilities (seconds under TCG and load).
        lv.wait_up("libvirtd", Duration::from_secs(90), || run("virsh", &["-c", URI, "version"]).is_ok())?;
        Ok(lv)
    }

    /// Runs `virsh -c qemu:///system args…`; stdout, or an error with virsh's message.
    pub fn virsh(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["-c", URI];
        full.extend_from_slice(args);
        run("virsh", &full)
    }

    /// `virsh net-define XML` + `net-start NAME`; the guard undefines it again.
    pub fn define_network(&mut self, name: &str, xml: &Path) -> anyhow::Result<()> {
        self.networks.push(name.to_owned());
        self.virsh(&["net-define", path_str(xml)?])?;
        self.virsh(&["net-start", name]).map(drop)
    }

    /// `virsh define XML` + `start NAME`; the guard destroys and undefines it again.
    pub fn start_domain(&mut self, name: &str, xml: &Path) -> anyhow::Result<()> {
        self.domains.push(name.to_owned());
        self.virsh(&["define", path_str(xml)?])?;
        self.virsh(&["start", name]).map(drop)
    }

    /// The domain's state as `virsh domstate` prints it ("running", "shut off", ...).
    pub fn domain_state(&self, name: &str) -> anyhow::Result<String> {
        Ok(self.virsh(&["domstate", name])?.trim().to_owned())
    }

    /// libvirtd's and virtlogd's logs (warnings and errors) and each domain's qemu log, for a
    /// failing test's message.
    pub fn logs(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let mut s = String::new();
        for f in ["libvirtd.log", "virtlogd.log"] {
            s += &format!("--- {f} ---\n{}", read(&self.dir.join(f)));
        }
        for d in &self.domains {
            let log = qemu_log(d);
            s += &format!("--- {} ---\n{}", log.display(), read(&log));
        }
        s
    }

    fn write_configs(&self) -> anyhow::Result<()> {
        let d = &self.dir;
        let out = |name: &str| format!("log_outputs=\"3:file:{}\"\n", d.join(name).display());
        std::fs::write(d.join("virtlogd.conf"), out("virtlogd.log"))?;
        std::fs::write(d.join("libvirtd.conf"), out("libvirtd.log"))?;
        std::fs::write(
            d.join("qemu.conf"),
            "# rvswitch test: see testbed/src/libvirt.rs\nnamespaces = []\n",
        )?;
        std::fs::set_permissions(d.join("qemu.conf"), std::fs::Permissions::from_mode(0o600))?;
        let mask = d.join("kvm-mask");
        std::fs::write(&mask, "")?;
        std::fs::set_permissions(&mask, std::fs::Permissions::from_mode(0o000))?;
        Ok(())
    }

    fn virtlogd_cmd(&self) -> Vec<String> {
        let d = &self.dir;
        vec![
            "virtlogd".into(),
            "-f".into(),
            s(&d.join("virtlogd.conf")),
            "-p".into(),
            s(&d.join("virtlogd.pid")),
        ]
    }

    /// `unshare` and `sh` exec into libvirtd, so the child's PID is libvirtd's own.
    fn libvirtd_cmd(&self) -> Vec<String> {
        let d = &self.dir;
        let script = "mount --bind \"$1\" /etc/libvirt/qemu.conf && \
                      { [ ! -e /dev/kvm ] || mount --bind \"$2\" /dev/kvm; } && \
                      exec libvirtd -f \"$3\" -p \"$4\"";
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh"]
            .into_iter()
            .map(String::from)
            .chain(
                [d.join("qemu.conf"), d.join("kvm-mask"), d.join("libvirtd.conf"), d.join("libvirtd.pid")]
                    .iter()
                    .map(|p| s(p)),
            )
            .collect()
    }

    fn spawn(&self, what: &str, argv: &[String]) -> anyhow::Result<ChildGuard> {
        let out = std::fs::File::create(self.dir.join(format!("{what}.out")))?;
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        Ok(ChildGuard::new(child))
    }

    fn wait_up(&mut self, what: &str, timeout: Duration, up: impl FnMut() -> bool) -> anyhow::Result<()> {
        if wait_until(timeout, up) {
            return Ok(());
        }
        let out = std::fs::read_to_string(self.dir.join(format!("{what}.out"))).unwrap_or_default();
        bail!("{what} did not come up within {timeout:?}; its output:\n{out}\n{}", self.logs())
    }

    /// A domain that libvirt failed to destroy must not outlive the test: its qemu (started for
    /// us through libvirt) is killed by the PID libvirt recorded.
    fn destroy_domain(&self, name: &str) {
        let pidfile = format!("/run/libvirt/qemu/{name}.pid");
        let pid = std::fs::read_to_string(&pidfile).ok().and_then(|p| p.trim().parse::<u32>().ok());
        let _ = self.virsh(&["destroy", name]);
        let _ = self.virsh(&["undefine", name]);
        if let Some(pid) = pid.filter(|&p| is_qemu_of(p, name)) {
            signal_pid(pid, libc::SIGKILL);
        }
        let _ = std::fs::remove_file(qemu_log(name));
    }
}

impl Drop for Libvirt {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for d in std::mem::take(&mut self.domains) {
            self.destroy_domain(&d);
        }
        for n in std::mem::take(&mut self.networks) {
            run_quiet_ok("virsh", &["-c", URI, "net-destroy", &n]);
            run_quiet_ok("virsh", &["-c", URI, "net-undefine", &n]);
            // libvirt leaves the network's (by now empty) port-state directories behind.
            let state = Path::new("/run/libvirt/network").join(&n);
            let _ = std::fs::remove_dir(state.join("ports"));
            let _ = std::fs::remove_dir(state);
        }
        // SIGTERM lets each daemon remove its sockets; the guard's SIGKILL follows if it hangs.
        for mut c in [self.libvirtd.take(), self.virtlogd.take()].into_iter().flatten() {
            signal_pid(c.pid(), libc::SIGTERM);
            wait_until(Duration::from_secs(10), || c.child_mut().try_wait().ok().flatten().is_some());
        }
    }
}

/// True if `pid` is a qemu process libvirt started for domain `name` (its command line says
/// `guest=NAME`), so a recycled PID is never signalled.
fn is_qemu_of(pid: u32, name: &str) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let guest = format!("guest={name},");
    args.first().is_some_and(|a| a.ends_with(b"qemu-system-x86_64"))
        && args.iter().any(|a| a.starts_with(guest.as_bytes()))
}

/// Where libvirt (through virtlogd) writes a domain's qemu log.
fn qemu_log(domain: &str) -> PathBuf {
    Path::new("/var/log/libvirt/qemu").join(format!("{domain}.log"))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().with_context(|| format!("{} is not UTF-8", p.display()))
}

fn s(p: &Path) -> String {
    p.display().to_string()
}
