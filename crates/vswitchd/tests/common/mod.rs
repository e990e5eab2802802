//! Shared pieces of the daemon's integration tests: a running rvswitchd behind a guard, and
//! namespace "VMs" on veth ports.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use ctl::client;
use ctl::protocol::{FdbReply, PortStatus, ReloadReply, Request, ShowReply};
use packet::MacAddr;
use testbed::{unique, wait_until, ChildGuard, Netns, Veth};

const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// rvswitchd started on a config file of its own in a private directory. Drop stops it (SIGTERM,
/// then SIGKILL by the guard) and removes the directory.
pub struct Daemon {
    child: Option<ChildGuard>,
    /// Program (and its arguments) that runs rvswitchd, e.g. `prlimit ... --`; empty: none.
    wrapper: Vec<String>,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
}

impl Daemon {
    /// The OVSDB socket, for `ovs-vsctl --db=unix:...`.
    pub fn db_socket(&self) -> PathBuf {
        self.dir.join("db.sock")
    }

    pub fn db_file(&self) -> PathBuf {
        self.dir.join("conf.db")
    }
}

impl Daemon {
    pub fn start(config: &str) -> Daemon {
        Daemon::start_under(&[], config)
    }

    /// Like [`Daemon::start`], with rvswitchd run by `wrapper` (a program that execs the rest of
    /// its command line, such as `prlimit --nofile=256 --`).
    pub fn start_under(wrapper: &[&str], config: &str) -> Daemon {
        let dir = std::env::temp_dir().join(unique("rvsd"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let socket = dir.join("ctl.sock");
        let config_path = dir.join("rvswitch.toml");
        std::fs::write(&config_path, config).expect("write config");
        let wrapper = wrapper.iter().map(|s| s.to_string()).collect();
        let mut d = Daemon { child: None, wrapper, dir, socket, config: config_path };
        d.spawn();
        d
    }

    /// Kills the daemon with SIGKILL (no cleanup on its side) and waits for it to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            send_signal(c.pid(), libc::SIGKILL);
            let _ = c.child_mut().wait();
        }
    }

    /// Starts the daemon again on the same config, database and sockets.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    fn spawn(&mut self) {
        let (dir, socket, config_path) = (self.dir.clone(), self.socket.clone(), self.config.clone());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("rvswitchd.log"))
            .expect("log file");
        let daemon = env!("CARGO_BIN_EXE_rvswitchd");
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(daemon);
                c
            }
            None => Command::new(daemon),
        };
        let child = cmd
            .arg("--config")
            .arg(&config_path)
            .arg("--control-socket")
            .arg(&socket)
            .arg("--db-socket")
            .arg(dir.join("db.sock"))
            .arg("--db-file")
            .arg(dir.join("conf.db"))
            .arg("--log")
            .arg("debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start rvswitchd");
        self.child = Some(ChildGuard::new(child));
        let up = wait_until(Duration::from_secs(10), || {
            client::call_raw(&socket, &Request::Show, CALL_TIMEOUT).is_ok()
        });
        if !up {
            let status = self.child.as_mut().and_then(|c| c.child_mut().try_wait().ok().flatten());
            panic!("rvswitchd did not come up (exit: {status:?}); log:\n{}", self.log());
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rvswitchd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.pid()).unwrap_or(0)
    }

    pub fn show(&self) -> ShowReply {
        client::call(&self.socket, &Request::Show, CALL_TIMEOUT).expect("show")
    }

    pub fn port(&self, name: &str) -> PortStatus {
        self.show()
            .bridges
            .into_iter()
            .flat_map(|b| b.ports)
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no port {name} in show"))
    }

    pub fn fdb(&self, bridge: &str) -> FdbReply {
        client::call(&self.socket, &Request::FdbShow { bridge: bridge.into() }, CALL_TIMEOUT).expect("fdb")
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config, text).expect("rewrite config");
    }

    pub fn reload(&self) -> anyhow::Result<ReloadReply> {
        client::call(&self.socket, &Request::Reload, CALL_TIMEOUT)
    }

    pub fn signal(&self, sig: libc::c_int) {
        send_signal(self.pid(), sig);
    }

    /// SIGTERM and wait (bounded) for a clean exit; returns whether it exited with status 0.
    pub fn stop(mut self) -> bool {
        let mut guard = self.child.take().expect("running");
        send_signal(guard.pid(), libc::SIGTERM);
        let mut status = None;
        wait_until(Duration::from_secs(10), || {
            status = guard.child_mut().try_wait().ok().flatten();
            status.is_some()
        });
        status.is_some_and(|s| s.success())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            send_signal(c.pid(), libc::SIGTERM);
            wait_until(Duration::from_secs(5), || c.child_mut().try_wait().ok().flatten().is_some());
            if std::thread::panicking() {
                eprintln!("--- rvswitchd log ---\n{}", self.log());
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// kill(2) for a PID this test started; never for 0 or negative values (process groups).
fn send_signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        if pid > 0 {
            // SAFETY: plain kill(2) on a positive PID of a child we started.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

/// A "VM": a namespace with one NIC `eth0`, whose peer `port` in the root namespace is the
/// switch port.
pub struct Vm {
    pub port: String,
    pub ip: String,
    pub mac: MacAddr,
    pub veth: Veth,
    pub ns: Netns,
}

impl Vm {
    /// `n` picks the address 198.18.0.n/24 and MAC 02:00:00:00:00:n.
    pub fn new(n: u8) -> Vm {
        let ns = Netns::new("vm").expect("netns");
        let port = unique("p");
        let ip = format!("198.18.0.{n}");
        let mac = MacAddr([0x02, 0, 0, 0, 0, n]);
        let veth =
            Veth::to_ns(&port, &ns, "eth0", Some(&format!("{ip}/24")), Some(&mac.to_string())).expect("veth");
        Vm { port, ip, mac, veth, ns }
    }

    pub fn ping(&self, other: &Vm, count: u32) -> bool {
        self.ns.ping(&other.ip, count)
    }

    /// An AF_PACKET socket on the VM's NIC, to inject and capture raw frames.
    pub fn raw(&self) -> netdev::SystemPort {
        self.ns.open_port("eth0").expect("raw socket in VM")
    }

    /// Re-creates the veth (after a test deleted it) with the same names, MAC and address.
    pub fn recreate_link(&mut self) {
        self.veth = Veth::to_ns(
            &self.port,
            &self.ns,
            "eth0",
            Some(&format!("{}/24", self.ip)),
            Some(&self.mac.to_string()),
        )
        .expect("veth again");
    }
}

/// A config with one bridge and the given `(port, extra TOML)` ports.
pub fn bridge_config(bridge: &str, ports: &[(&str, &str)]) -> String {
    let mut s = format!("[[bridge]]\nname = \"{bridge}\"\n");
    for (name, extra) in ports {
        s.push_str(&format!("[[bridge.port]]\nname = \"{name}\"\n{extra}\n"));
    }
    s
}

/// Waits until every listed port reports link up (the daemon attaches ports asynchronously).
pub fn wait_ports_up(d: &Daemon, ports: &[&str]) {
    let ok = wait_until(Duration::from_secs(10), || {
        let show = d.show();
        ports
            .iter()
            .all(|p| show.bridges.iter().flat_map(|b| &b.ports).any(|s| s.name == *p && s.link_state == "up"))
    });
    assert!(ok, "ports {ports:?} not up: {:#?}", d.show());
}

/// The exact ovs-vsctl arguments libvirt 9.0 runs when a VM with
/// `<virtualport type='openvswitch'/>` starts (only bridge and device differ; no --db).
pub fn libvirt_attach(bridge: &str, port: &str) -> Vec<String> {
    let ids = [
        "attached-mac=\"52:54:00:aa:bb:01\"",
        "iface-id=\"80f52381-6de8-4f6f-b502-d16fc1a8bce9\"",
        "vm-id=\"83a78cd4-3fe6-4b97-b0e0-5b025b8f5604\"",
        "iface-status=active",
    ];
    let mut args: Vec<String> =
        ["--", "--may-exist", "add-port", bridge, port, "tag=10"].map(String::from).into();
    for id in ids {
        args.extend(["--", "set", "Interface", port].map(String::from));
        args.push(format!("external-ids:{id}"));
    }
    args
}

/// True if Debian's ovs-vsctl is installed; without it a test skips, except under CI=true.
pub fn have_ovs_vsctl() -> bool {
    if Command::new("ovs-vsctl").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "ovs-vsctl missing (.ci/run installs openvswitch-switch)"
    );
    eprintln!("skipping: ovs-vsctl not installed");
    false
}
