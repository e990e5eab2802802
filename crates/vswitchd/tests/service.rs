//! rvswitchd as a system service: systemd's readiness and watchdog protocol (a socket this test
//! listens on stands in for systemd), the unit file as systemd-analyze sees it, Open vSwitch's
//! file locations for ovs-vsctl without --db, running as an unprivileged user, and logs without
//! colour codes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{bridge_config, have_ovs_vsctl, wait_ports_up, Daemon, Launch, Vm};
use testbed::{require_root, unique, wait_until};

/// The service manager's end of sd_notify: a datagram socket in a directory of its own.
struct Manager {
    socket: UnixDatagram,
    dir: tempfile::TempDir,
}

impl Manager {
    fn new() -> Manager {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = UnixDatagram::bind(dir.path().join("notify.sock")).expect("bind notify socket");
        socket.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
        Manager { socket, dir }
    }

    fn path(&self) -> String {
        self.dir.path().join("notify.sock").display().to_string()
    }

    /// Messages received until one contains `line` (as a whole line) or `timeout` passed.
    fn wait_for(&self, line: &str, timeout: Duration) -> (bool, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // Each receive waits at most 200 ms, so this bounds the loop by count as well.
        for _ in 0..timeout.as_millis() / 200 + 2 {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = msg.lines().any(|l| l == line);
                seen.push(msg);
                if hit {
                    return (true, seen);
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        (false, seen)
    }
}

#[test]
fn systemd_hears_ready_then_watchdog_keep_alives_then_stopping() {
    let manager = Manager::new();
    let launch = Launch {
        env: vec![("NOTIFY_SOCKET".into(), manager.path()), ("WATCHDOG_USEC".into(), "3000000".into())],
        ..Launch::default()
    };
    let br = unique("br-sd");
    let d = Daemon::start_with(launch, &bridge_config(&br, &[]));
    let (ready, seen) = manager.wait_for("READY=1", Duration::from_secs(10));
    assert!(ready, "no READY=1, got {seen:?}\n{}", d.log());
    let ready_msg = seen.last().unwrap();
    assert!(ready_msg.lines().any(|l| l.starts_with("STATUS=serving ")), "{ready_msg:?}");
    // Ready means ready: the database takes clients and the config file's bridge is applied.
    assert!(UnixStream::connect(d.db_socket()).is_ok(), "READY=1 before the database socket");
    assert!(d.show().bridges.iter().any(|b| b.name == br), "READY=1 before the first apply");

    // Keep-alives keep coming while both the forwarding and the db-sync thread beat.
    for n in 1..=3 {
        let (alive, seen) = manager.wait_for("WATCHDOG=1", Duration::from_secs(10));
        assert!(alive, "keep-alive {n} missing, got {seen:?}\n{}", d.log());
    }

    let pid = d.pid();
    assert!(d.stop(), "rvswitchd {pid} did not exit cleanly on SIGTERM");
    let (stopping, seen) = manager.wait_for("STOPPING=1", Duration::from_secs(2));
    assert!(stopping, "no STOPPING=1 after SIGTERM, got {seen:?}");
}

/// rvswitchd (not started yet) with its database and sockets in `dir`.
fn daemon_in(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rvswitchd"));
    cmd.arg("--db-file").arg(dir.join("conf.db"));
    cmd.arg("--db-socket").arg(dir.join("db.sock"));
    cmd.arg("--control-socket").arg(dir.join("ctl.sock"));
    cmd
}

#[test]
fn a_bad_notify_socket_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out =
        daemon_in(dir.path()).env("NOTIFY_SOCKET", "relative/notify.sock").output().expect("run rvswitchd");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NOTIFY_SOCKET") && err.contains("relative/notify.sock"), "{err}");
}

#[test]
fn logs_carry_no_colour_codes_off_a_terminal() {
    // stderr is a file here (common::Daemon sends it to rvswitchd.log).
    let d = Daemon::start(&bridge_config(&unique("br-lo"), &[]));
    // The control socket answers just before the "running" line is written.
    let running = wait_until(Duration::from_secs(5), || d.log().contains("rvswitchd running"));
    let stderr_log = d.log();
    assert!(running, "{stderr_log}");
    assert!(!stderr_log.contains("\x1b["), "ANSI escapes in a log file:\n{stderr_log:?}");
    drop(d);

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("rvswitchd.log");
    let launch = Launch { args: vec!["--log-file".into(), file.display().to_string()], ..Launch::default() };
    let d = Daemon::start_with(launch, &bridge_config(&unique("br-lo"), &[]));
    assert!(d.stop());
    let text = std::fs::read_to_string(&file).expect("--log-file written");
    assert!(text.contains("rvswitchd running") && text.contains("rvswitchd stopped"), "{text}");
    assert!(!text.contains("\x1b["), "ANSI escapes in --log-file:\n{text:?}");
}

/// Under systemd, stderr is the journal stream named by $JOURNAL_STREAM: no colour, and no
/// timestamp of our own (the journal stamps each line).
#[test]
fn into_the_journal_lines_carry_no_timestamp() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("journal");
    let stream = std::fs::File::create(&log).expect("stand-in journal stream");
    let meta = stream.metadata().expect("stat");
    let child = daemon_in(dir.path())
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stderr(stream)
        .spawn()
        .expect("start rvswitchd");
    let mut child = testbed::ChildGuard::new(child);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let running = wait_until(Duration::from_secs(10), || read().contains("rvswitchd running"));
    // SAFETY: kill(2) on the PID of the child this test started.
    unsafe { libc::kill(child.pid() as libc::pid_t, libc::SIGTERM) };
    let exited =
        wait_until(Duration::from_secs(10), || child.child_mut().try_wait().ok().flatten().is_some());
    let text = read();
    assert!(running && exited, "{text}");
    assert!(!text.contains("\x1b["), "ANSI escapes into the journal: {text:?}");
    let stamped: Vec<&str> = text.lines().filter(|l| l.starts_with(|c: char| c.is_ascii_digit())).collect();
    assert!(stamped.is_empty(), "timestamps into the journal: {stamped:?}");
}

/// The unit as shipped, with ExecStart pointing at the binary under test (verify insists that
/// the program exists).
#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    if !testbed::require_program("unit verify", "systemd-analyze", "--version", "systemd") {
        return;
    }
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/rvswitchd.service");
    let text = std::fs::read_to_string(&unit).expect("packaging/rvswitchd.service");
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "--ovs-compat",
        "ProtectSystem=strict",
        // The keeper (and its socket) must survive the main process's death for a restart
        // to adopt the devices (see the unit's comment).
        "KillMode=process",
        "RuntimeDirectoryPreserve=restart",
    ] {
        assert!(text.contains(needed), "unit lacks {needed}");
    }
    // A clean stop takes ~0.1 s at 1000 ports; the tests give it 10 s, so must the unit.
    let stop = text.lines().find_map(|l| l.strip_prefix("TimeoutStopSec=")).expect("TimeoutStopSec");
    let secs: u64 = stop.trim().trim_end_matches('s').parse().expect("TimeoutStopSec in seconds");
    assert!(secs >= 10, "TimeoutStopSec={stop} may SIGKILL a clean stop on a loaded host");
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("rvswitchd.service");
    std::fs::write(&copy, text.replace("/usr/sbin/rvswitchd", env!("CARGO_BIN_EXE_rvswitchd"))).unwrap();
    let out = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&copy).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");

    // The check is real: a typo in the same file is reported.
    std::fs::write(&copy, text.replace("Type=notify", "Type=notfy")).unwrap();
    let out = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&copy).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("notfy"), "typo not reported");
}

#[test]
fn ovs_compat_lets_ovs_vsctl_work_without_db() {
    if !have_ovs_vsctl() {
        return;
    }
    let mut d = Daemon::start_with(Launch { ovs_compat: true, ..Launch::default() }, "");
    let pid = d.pid().to_string();
    for daemon in ["ovs-vswitchd", "ovsdb-server"] {
        let text = std::fs::read_to_string(d.dir.join(format!("{daemon}.pid"))).expect("pid file");
        assert_eq!(text.trim(), pid, "{daemon}.pid");
    }
    // Plain ovs-vsctl, as libvirt runs it: no --db, only OVS_RUNDIR (the default would be
    // /var/run/openvswitch, which this test must not take over).
    let vsctl = |args: &[&str]| {
        let out = Command::new("ovs-vsctl")
            .env("OVS_RUNDIR", &d.dir)
            .arg("--timeout=10")
            .args(args)
            .output()
            .expect("run ovs-vsctl");
        assert!(out.status.success(), "ovs-vsctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let br = unique("br-co");
    vsctl(&["add-br", &br]);
    assert_eq!(vsctl(&["list-br"]), br);
    assert!(d.show().bridges.iter().any(|b| b.name == br));

    // A second daemon on the same run directory is refused (the pid files are locked).
    let second = Command::new(env!("CARGO_BIN_EXE_rvswitchd"))
        .arg("--ovs-compat")
        .arg("--ovs-rundir")
        .arg(&d.dir)
        .arg("--db-file")
        .arg(d.dir.join("other.db"))
        .arg("--control-socket")
        .arg(d.dir.join("other.ctl"))
        .output()
        .expect("run a second rvswitchd");
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("ovs-vswitchd.pid is locked") && err.contains(&pid), "{err}");

    assert!(d.terminate(Duration::from_secs(10)).is_some_and(|s| s.success()));
    assert!(d.dir.join("conf.db").exists(), "the directory must still be there");
    for daemon in ["ovs-vswitchd", "ovsdb-server"] {
        assert!(!d.dir.join(format!("{daemon}.pid")).exists(), "{daemon}.pid left after exit");
    }
}

/// Makes /dev/net/tun usable by any user, as stock Debian's udev rules do (0666), for as long
/// as it lives; containers often ship it 0600.
struct TunOpenToAll {
    old_mode: Option<u32>,
}

impl TunOpenToAll {
    fn new() -> TunOpenToAll {
        let path = "/dev/net/tun";
        let mode = std::fs::metadata(path).expect("/dev/net/tun").permissions().mode() & 0o777;
        if mode & 0o006 == 0o006 {
            return TunOpenToAll { old_mode: None };
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o666)).expect("chmod tun");
        TunOpenToAll { old_mode: Some(mode) }
    }
}

impl Drop for TunOpenToAll {
    fn drop(&mut self) {
        if let Some(mode) = self.old_mode {
            let _ = std::fs::set_permissions("/dev/net/tun", std::fs::Permissions::from_mode(mode));
        }
    }
}

/// `Uid:` (real, effective, saved, fs) and `CapEff:` of a process, from /proc.
fn ids_and_caps(pid: u32) -> (String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    (field("Uid:").unwrap_or_default(), field("CapEff:").unwrap_or_default())
}

/// Waits until the daemon reports the tap it creates as attached, and the device exists.
fn assert_tap_attached(d: &Daemon, tap: &str) {
    let attached = wait_until(Duration::from_secs(10), || {
        let p = d.port(tap);
        p.error.is_none() && p.ifindex.is_some()
    });
    assert!(attached, "tap {tap} not created: {:#?}\n{}", d.port(tap), d.log());
    assert!(Path::new(&format!("/sys/class/net/{tap}")).exists(), "no tap device {tap}");
}

#[test]
fn as_nobody_ports_added_later_still_attach_and_forward() {
    if !require_root("as_nobody_ports_added_later_still_attach_and_forward") {
        return;
    }
    let _tun = TunOpenToAll::new();
    // With --ovs-compat too: its pid files are written as root and must still be removed by
    // nobody at exit.
    let launch =
        Launch { args: vec!["--user".into(), "nobody".into()], ovs_compat: true, ..Launch::default() };
    let br = unique("br-no");
    let mut d = Daemon::start_with(launch, &bridge_config(&br, &[]));
    let pid_file = d.dir.join("ovs-vswitchd.pid");
    assert_eq!(std::fs::read_to_string(&pid_file).expect("pid file").trim(), d.pid().to_string());
    let (uids, caps) = ids_and_caps(d.pid());
    assert_eq!(uids, "65534 65534 65534 65534", "not running as nobody");
    // CAP_NET_ADMIN (12) and CAP_NET_RAW (13), nothing else.
    assert_eq!(caps, "0000000000003000", "effective capabilities");

    // Everything attached now is opened by the unprivileged process: AF_PACKET sockets on the
    // VMs' veths and a tap it creates itself.
    let (a, b) = (Vm::new(1), Vm::new(2));
    let tap = testbed::unique("tp");
    let ports =
        [(a.port.as_str(), "tag = 10"), (b.port.as_str(), "tag = 10"), (tap.as_str(), "type = \"tap\"")];
    d.write_config(&bridge_config(&br, &ports));
    d.reload().expect("reload as nobody");
    wait_ports_up(&d, &[&a.port, &b.port]);
    assert_tap_attached(&d, &tap);
    assert!(a.ping(&b, 3), "no forwarding after the switch to nobody\n{}", d.log());
    assert!(d.terminate(Duration::from_secs(10)).is_some_and(|s| s.success()), "unclean exit as nobody");
    assert!(d.dir.exists() && !pid_file.exists(), "nobody could not remove its pid file");
}

/// `CAP_NET_ADMIN CAP_NET_RAW ...` from the unit's CapabilityBoundingSet=, as setpriv's
/// `-all,+net_admin,+net_raw,...`.
fn units_bounding_set() -> String {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/rvswitchd.service");
    let text = std::fs::read_to_string(unit).expect("packaging/rvswitchd.service");
    let caps =
        text.lines().find_map(|l| l.strip_prefix("CapabilityBoundingSet=")).expect("bounding set in unit");
    let mut spec = "-all".to_string();
    for cap in caps.split_whitespace() {
        spec.push_str(",+");
        spec.push_str(&cap.trim_start_matches("CAP_").to_ascii_lowercase());
    }
    spec
}

/// What systemd gives the service (root, but only the unit's capability bounding set), imitated
/// with setpriv: every kind of port still attaches and forwards.
#[test]
fn with_only_the_units_capabilities_ports_attach_and_forward() {
    if !require_root("with_only_the_units_capabilities_ports_attach_and_forward") {
        return;
    }
    let bounding = units_bounding_set();
    assert!(bounding.contains("+net_admin") && bounding.contains("+net_raw"), "{bounding}");
    let (a, b) = (Vm::new(1), Vm::new(2));
    let tap = testbed::unique("tp");
    let ports = [(a.port.as_str(), ""), (b.port.as_str(), ""), (tap.as_str(), "type = \"tap\"")];
    let d = Daemon::start_under(
        &["setpriv", "--bounding-set", &bounding],
        &bridge_config(&unique("br-ca"), &ports),
    );
    let (_, caps) = ids_and_caps(d.pid());
    let caps = u64::from_str_radix(&caps, 16).expect("CapEff");
    assert_eq!(caps & (1 << 1), 0, "CAP_DAC_OVERRIDE kept: {caps:x}");
    assert_eq!(caps & (3 << 12), 3 << 12, "CAP_NET_ADMIN/CAP_NET_RAW missing: {caps:x}");
    wait_ports_up(&d, &[&a.port, &b.port]);
    assert_tap_attached(&d, &tap);
    assert!(a.ping(&b, 3), "no forwarding under the unit's capabilities\n{}", d.log());
    assert!(d.stop());
}

/// The syscalls systemd's filter expression `spec` (`@group name ...`) stands for, expanded with
/// systemd-analyze's own tables.
fn syscall_set(spec: &str) -> std::collections::BTreeSet<String> {
    let mut set = std::collections::BTreeSet::new();
    let mut todo: Vec<String> = spec.split_whitespace().map(str::to_string).collect();
    let mut seen = std::collections::BTreeSet::new();
    // Bounded: systemd has a few dozen groups.
    for _ in 0..1000 {
        let Some(item) = todo.pop() else { break };
        if !item.starts_with('@') {
            set.insert(item);
            continue;
        }
        if !seen.insert(item.clone()) {
            continue;
        }
        let out = Command::new("systemd-analyze")
            .args(["syscall-filter", &item])
            .output()
            .expect("systemd-analyze");
        assert!(out.status.success(), "unknown syscall group {item}");
        for line in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
            let entry = line.trim();
            if !entry.is_empty() && !entry.starts_with('#') {
                todo.push(entry.to_string());
            }
        }
    }
    set
}

/// The syscall names in an `strace -f` log.
fn traced_syscalls(log: &str) -> std::collections::BTreeSet<String> {
    log.lines()
        .filter_map(|l| {
            let call = l.split_once(' ').map_or(l, |(_, rest)| rest).trim_start();
            let name: String = call.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            (!name.is_empty() && call[name.len()..].starts_with('(')).then_some(name)
        })
        .collect()
}

/// Every syscall rvswitchd makes while it starts, attaches ports (veths, a tap), forwards,
/// reloads and stops passes the unit's SystemCallFilter= (seen with strace; systemd would kill
/// the service with EPERM errors otherwise).
#[test]
fn the_daemons_syscalls_pass_the_units_filter() {
    if !require_root("the_daemons_syscalls_pass_the_units_filter") {
        return;
    }
    if !testbed::require_program("syscall filter test", "strace", "-V", "strace") {
        return;
    }
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/rvswitchd.service"),
    )
    .expect("unit");
    let filters: Vec<&str> = unit.lines().filter_map(|l| l.strip_prefix("SystemCallFilter=")).collect();
    let allowed =
        syscall_set(&filters.iter().filter(|f| !f.starts_with('~')).copied().collect::<Vec<_>>().join(" "));
    let denied =
        syscall_set(&filters.iter().filter_map(|f| f.strip_prefix('~')).collect::<Vec<_>>().join(" "));
    assert!(allowed.contains("epoll_wait") && denied.contains("mount"), "filter not read from the unit");

    let trace = tempfile::tempdir().expect("temp dir");
    let log = trace.path().join("strace.log");
    let log_arg = log.display().to_string();
    let (a, b) = (Vm::new(1), Vm::new(2));
    let tap = testbed::unique("tp");
    let ports = [(a.port.as_str(), ""), (b.port.as_str(), ""), (tap.as_str(), "type = \"tap\"")];
    let d = Daemon::start_under(
        &["strace", "-f", "-qq", "-o", &log_arg],
        &bridge_config(&unique("br-sc"), &ports),
    );
    wait_ports_up(&d, &[&a.port, &b.port]);
    assert_tap_attached(&d, &tap);
    assert!(a.ping(&b, 2), "no forwarding under strace\n{}", d.log());
    d.reload().expect("reload");
    // SIGTERM to rvswitchd itself (strace's child), so its shutdown is traced too.
    let strace_pid = d.pid();
    let children = std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children")).unwrap();
    let daemon: i32 = children.split_whitespace().next().and_then(|p| p.parse().ok()).expect("rvswitchd pid");
    // SAFETY: kill(2) on the PID of the rvswitchd this test started (a positive PID).
    unsafe { libc::kill(daemon, libc::SIGTERM) };
    assert!(d.stop(), "strace/rvswitchd did not exit cleanly");

    let used = traced_syscalls(&std::fs::read_to_string(&log).expect("strace log"));
    assert!(used.contains("epoll_wait") || used.contains("epoll_pwait"), "trace looks empty: {used:?}");
    // execve is strace starting rvswitchd; systemd's filter applies after it.
    let refused: Vec<&String> =
        used.iter().filter(|s| *s != "execve" && (!allowed.contains(*s) || denied.contains(*s))).collect();
    assert!(refused.is_empty(), "syscalls the unit's filter refuses: {refused:?}");
}
