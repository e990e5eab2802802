//! Shared pieces of the daemon's integration tests: a running rvswitchd behind a guard, and
//! namespace "VMs" on veth ports.
#![allow(dead_code)] // each test binary uses a different subset

pub mod office;
pub mod openvpn;
pub mod ovsdb_server;
pub mod underlay;
pub mod wg_office;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use ctl::client;
use ctl::protocol::{FdbReply, PortStatus, ReloadReply, Request, SecurityReply, ShowReply};
use packet::MacAddr;
use testbed::{unique, wait_until, ChildGuard, Netns, Veth};

const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// rvswitchd started on a config file of its own in a private directory. Drop stops it (SIGTERM,
/// then SIGKILL by the guard) and removes the directory.
pub struct Daemon {
    child: Option<ChildGuard>,
    /// Program (and its arguments) that runs rvswitchd, e.g. `prlimit ... --`; empty: none.
    wrapper: Vec<String>,
    launch: Launch,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    /// Whether rvswitchd is started with `--config` (else on the database alone).
    with_config: bool,
}

impl Daemon {
    /// The OVSDB socket, for `ovs-vsctl --db=unix:...`.
    pub fn db_socket(&self) -> PathBuf {
        self.launch.db_socket.clone().unwrap_or_else(|| self.dir.join("db.sock"))
    }

    pub fn db_file(&self) -> PathBuf {
        self.dir.join("conf.db")
    }

    /// Runs Debian's ovs-vsctl against this daemon's database, waiting for cur_cfg like a
    /// user's call does. Ok: stdout and stderr (ovs-vsctl reports a port's setup error as a
    /// warning on stderr and still exits 0).
    pub fn vsctl_output(&self, args: &[&str]) -> Result<(String, String), String> {
        let db = format!("--db=unix:{}", self.db_socket().display());
        let out = Command::new("ovs-vsctl")
            .arg(&db)
            .arg("--timeout=10")
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
        if out.status.success() {
            Ok((text(&out.stdout), text(&out.stderr)))
        } else {
            Err(format!("ovs-vsctl {args:?}: {}", text(&out.stderr)))
        }
    }

    /// [`Daemon::vsctl_output`]'s stdout.
    pub fn vsctl(&self, args: &[&str]) -> Result<String, String> {
        self.vsctl_output(args).map(|(out, _)| out)
    }
}

/// Extra ways to start rvswitchd (service integration tests).
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// More command-line arguments.
    pub args: Vec<String>,
    /// More environment variables.
    pub env: Vec<(String, String)>,
    /// `--ovs-compat` with the test's directory as OVS_RUNDIR (instead of `--db-socket`): the
    /// database socket is then at the same [`Daemon::db_socket`] path.
    pub ovs_compat: bool,
    /// Serve OVSDB here instead of in the test's directory.
    pub db_socket: Option<PathBuf>,
}

impl Daemon {
    pub fn start(config: &str) -> Daemon {
        Daemon::start_under(&[], config)
    }

    /// Like [`Daemon::start`], with the extra arguments and environment of `launch`.
    pub fn start_with(launch: Launch, config: &str) -> Daemon {
        Daemon::start_full(&[], launch, config)
    }

    /// Like [`Daemon::start`], with rvswitchd run by `wrapper` (a program that execs the rest of
    /// its command line, such as `prlimit --nofile=256 --`).
    pub fn start_under(wrapper: &[&str], config: &str) -> Daemon {
        Daemon::start_full(wrapper, Launch::default(), config)
    }

    /// Like [`Daemon::start`], serving OVSDB at `db_socket` instead of in its own directory:
    /// libvirt runs ovs-vsctl without --db, i.e. on /var/run/openvswitch/db.sock.
    pub fn start_with_db_socket(config: &str, db_socket: &std::path::Path) -> Daemon {
        let launch = Launch { db_socket: Some(db_socket.to_path_buf()), ..Launch::default() };
        Daemon::start_full(&[], launch, config)
    }

    fn start_full(wrapper: &[&str], launch: Launch, config: &str) -> Daemon {
        let dir = std::env::temp_dir().join(unique("rvsd"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let socket = dir.join("ctl.sock");
        let config_path = dir.join("rvswitch.toml");
        std::fs::write(&config_path, config).expect("write config");
        let wrapper = wrapper.iter().map(|s| s.to_string()).collect();
        let mut d =
            Daemon { child: None, wrapper, launch, dir, socket, config: config_path, with_config: true };
        d.spawn();
        d
    }

    /// rvswitchd without `--config` on a fresh database, returned as soon as the process runs
    /// (not waiting for it to come up): for tests of what clients see at the very start.
    pub fn start_fresh() -> Daemon {
        let dir = std::env::temp_dir().join(unique("rvsd"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (socket, config) = (dir.join("ctl.sock"), dir.join("rvswitch.toml"));
        let mut d = Daemon {
            child: None,
            wrapper: Vec::new(),
            launch: Launch::default(),
            dir,
            socket,
            config,
            with_config: false,
        };
        d.spawn_process();
        d
    }

    /// rvswitchd without `--config` on an existing ovsdb-server (`--db remotes`), with `args`
    /// more; returned once its control socket answers (the database may still be connecting).
    pub fn on_database(remotes: &str, args: &[&str]) -> Daemon {
        Daemon::on_database_under(&[], remotes, args)
    }

    /// Like [`Daemon::on_database`], run by `wrapper` (e.g. `ip netns exec HOST`: a "host"
    /// whose tunnel sockets bind in its own namespace).
    pub fn on_database_under(wrapper: &[&str], remotes: &str, args: &[&str]) -> Daemon {
        let dir = std::env::temp_dir().join(unique("rvsd"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (socket, config) = (dir.join("ctl.sock"), dir.join("rvswitch.toml"));
        let mut extra = vec!["--db".to_string(), remotes.to_string()];
        extra.extend(args.iter().map(|a| a.to_string()));
        let launch = Launch { args: extra, ..Launch::default() };
        let wrapper = wrapper.iter().map(|s| s.to_string()).collect();
        let mut d = Daemon { child: None, wrapper, launch, dir, socket, config, with_config: false };
        d.spawn();
        d
    }

    /// Kills the daemon with SIGKILL (no cleanup on its side) and waits for it to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            testbed::signal_pid(c.pid(), libc::SIGKILL);
            let _ = c.child_mut().wait();
        }
    }

    /// From the next (re)start on, rvswitchd runs with these extra arguments instead.
    pub fn set_args(&mut self, args: Vec<String>) {
        self.launch.args = args;
    }

    /// Starts the daemon again on the same config, database and sockets.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    fn spawn(&mut self) {
        self.spawn_process();
        let socket = self.socket.clone();
        let up = wait_until(Duration::from_secs(10), || {
            client::call_raw(&socket, &Request::Show, CALL_TIMEOUT).is_ok()
        });
        if !up {
            let status = self.child.as_mut().and_then(|c| c.child_mut().try_wait().ok().flatten());
            panic!("rvswitchd did not come up (exit: {status:?}); log:\n{}", self.log());
        }
    }

    /// Starts the process and returns at once.
    fn spawn_process(&mut self) {
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
        if self.with_config {
            cmd.arg("--config").arg(&config_path);
        }
        if self.launch.ovs_compat {
            cmd.arg("--ovs-compat").arg("--ovs-rundir").arg(&dir);
        } else {
            cmd.arg("--db-socket").arg(self.db_socket());
        }
        cmd.args(&self.launch.args).envs(self.launch.env.iter().map(|(k, v)| (k, v)));
        // The suites run once per datapath mode (CI sets this; unset: the daemon's default).
        let chosen = self.launch.args.iter().any(|a| a.starts_with("--datapath"));
        if let Some(mode) = std::env::var("RVSWITCH_TEST_DATAPATH").ok().filter(|_| !chosen) {
            cmd.arg("--datapath").arg(mode);
        }
        let child = cmd
            .arg("--control-socket")
            .arg(&socket)
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

    /// `rvsctl security show [BRIDGE]` through the control socket.
    pub fn security(&self, bridge: Option<&str>) -> SecurityReply {
        let req = Request::SecurityShow { bridge: bridge.map(str::to_string) };
        client::call(&self.socket, &req, CALL_TIMEOUT).expect("security show")
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config, text).expect("rewrite config");
    }

    pub fn reload(&self) -> anyhow::Result<ReloadReply> {
        client::call(&self.socket, &Request::Reload, CALL_TIMEOUT)
    }

    pub fn signal(&self, sig: libc::c_int) {
        testbed::signal_pid(self.pid(), sig);
    }

    /// SIGTERM and wait (bounded) for a clean exit; returns whether it exited with status 0.
    pub fn stop(mut self) -> bool {
        self.terminate(Duration::from_secs(10)).is_some_and(|s| s.success())
    }

    /// SIGTERM, then waits up to `limit` for the process to end; its exit status if it did. The
    /// directory (and what the daemon left in it) stays until drop.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.terminate(limit);
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// Waits up to `limit` for the process to end by itself (no signal sent); its exit status
    /// if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let guard = self.child.as_mut()?;
        let mut status = None;
        wait_until(limit, || {
            status = guard.child_mut().try_wait().ok().flatten();
            status.is_some()
        });
        if status.is_some() {
            self.child = None;
        }
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            testbed::signal_pid(c.pid(), libc::SIGTERM);
            wait_until(Duration::from_secs(5), || c.child_mut().try_wait().ok().flatten().is_some());
            if std::thread::panicking() {
                eprintln!("--- rvswitchd log ---\n{}", self.log());
            }
        }
        // A kernel-mode daemon killed last (-9) left its fast path pinned: take it away.
        let pins = fastpath::pins::PinDir::new(vswitchd::datapath::default_pin_dir(&self.socket));
        let _ = pins.remove();
        let _ = std::fs::remove_dir_all(&self.dir);
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
/// `<virtualport type='openvswitch'/>` starts (only bridge, device and the VM's MAC differ; no
/// --db). The MAC must be the VM's own: with port security on, any other is a spoof.
pub fn libvirt_attach(bridge: &str, port: &str, mac: &str) -> Vec<String> {
    let attached = format!("attached-mac=\"{mac}\"");
    let ids = [
        attached.as_str(),
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

/// rvsctl, built beside rvswitchd by the same workspace build (`cargo test --workspace` or
/// `cargo build -p ctl`); a test binary cannot name another package's binary otherwise.
pub fn rvsctl_path() -> PathBuf {
    std::path::Path::new(env!("CARGO_BIN_EXE_rvswitchd")).with_file_name("rvsctl")
}

/// Runs rvsctl against `d`'s control socket; its stdout (it must succeed).
pub fn rvsctl(d: &Daemon, args: &[&str]) -> String {
    let out = Command::new(rvsctl_path()).arg("--socket").arg(&d.socket).args(args).output().expect("rvsctl");
    assert!(out.status.success(), "rvsctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What `rvsctl show` prints for `d`: the rvsctl binary's output where it is built (always
/// under CI: the workspace build makes it), else, outside CI, the same rendering
/// (`ctl::render::show`) of the daemon's reply, so `cargo test -p vswitchd` still checks it.
pub fn rvsctl_show(d: &Daemon) -> String {
    if rvsctl_path().exists() || testbed::under_ci() {
        return rvsctl(d, &["show"]);
    }
    eprintln!("rvsctl not built beside rvswitchd (cargo build -p ctl): rendering the show reply in-process");
    ctl::render::show(&d.show())
}

/// Whether rvsctl is there to run (under CI it must be); else a skip for `test`.
pub fn have_rvsctl(test: &str) -> bool {
    rvsctl_path().exists() || testbed::skip(test, "rvsctl not built beside rvswitchd (cargo build -p ctl)")
}

/// Whether Debian's ovs-vsctl is there (under CI it must be: .ci/run installs it).
pub fn have_ovs_vsctl() -> bool {
    testbed::require_program("ovs-vsctl tests", "ovs-vsctl", "--version", "openvswitch-switch")
}

/// Two VMs on access VLAN 10 of `bridge`, the daemon started with `launch`, ports up and a
/// ping through (so both MACs are learned).
pub fn pinging_pair(bridge: &str, launch: Launch) -> (Vm, Vm, Daemon) {
    let (a, b) = (Vm::new(1), Vm::new(2));
    let d =
        Daemon::start_with(launch, &bridge_config(bridge, &[(&a.port, "tag = 10"), (&b.port, "tag = 10")]));
    wait_ports_up(&d, &[&a.port, &b.port]);
    assert!(a.ping(&b, 3), "log:\n{}", d.log());
    (a, b, d)
}

/// Runs a 2-second iperf3 TCP test from `client` to `server_ip` (served from `server`) and
/// returns the bytes received, or the failure text.
pub fn iperf_tcp(client: &Netns, server: &Netns, server_ip: &str) -> Result<u64, String> {
    let _srv = server.spawn(&["iperf3", "-s", "-1", "-B", server_ip]).map_err(|e| e.to_string())?;
    let mut last = String::new();
    // The server needs a moment to listen; a few bounded attempts.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(200));
        match client.exec(&["iperf3", "-c", server_ip, "-t", "2", "-J", "--connect-timeout", "1000"]) {
            Ok(json) => {
                let v: serde_json::Value =
                    serde_json::from_str(&json).map_err(|e| format!("iperf3 JSON: {e}"))?;
                if let Some(err) = v.get("error") {
                    return Err(format!("iperf3 error: {err}"));
                }
                return v["end"]["sum_received"]["bytes"]
                    .as_u64()
                    .ok_or_else(|| format!("no byte count in {json}"));
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}
