//! Debian's own ovsdb-server, started by hand in a temporary directory (standalone, or as one
//! member of a Raft cluster on loopback TCP), for rvswitchd's `--db` tests. Each server runs in
//! the foreground as our child: it is stopped by its PID (SIGKILL, as a crash), never by name.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ovsdb::client::Client;
use serde_json::json;
use testbed::{unique, wait_until, ChildGuard};

/// ovs-vsctl on `db` (one remote or several, comma-separated), waiting for `cur_cfg` unless
/// the arguments say `--no-wait`.
pub fn vsctl(db: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("ovs-vsctl")
        .arg(format!("--db={db}"))
        .arg("--timeout=30")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(format!("ovs-vsctl {args:?}: {}", text(&out.stderr)))
    }
}

/// Debian's Open_vSwitch schema (openvswitch-common), or the reference copy beside the project.
pub fn schema() -> &'static str {
    ["/usr/share/openvswitch/vswitch.ovsschema", "/work/shared/reference/vswitch.ovsschema"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or("/usr/share/openvswitch/vswitch.ovsschema")
}

/// Whether ovsdb-server and ovsdb-tool are there (under CI they must be).
pub fn have_ovsdb_server(test: &str) -> bool {
    testbed::require_program(test, "ovsdb-server", "--version", "openvswitch-switch")
        && testbed::require_program(test, "ovsdb-tool", "--version", "openvswitch-common")
        && testbed::require_file(test, schema(), "openvswitch-common")
}

/// A free loopback TCP port (bound and released; the kernel does not hand it out again at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

pub struct OvsdbServer {
    pub dir: PathBuf,
    /// What clients connect to (`unix:...` / `tcp:127.0.0.1:N`).
    pub remote: String,
    /// The same server on a unix socket: reachable from every network namespace (a daemon run
    /// in a "host" namespace has a loopback of its own).
    pub unix: String,
    /// ovsdb-server's `--remote`s (`punix:...`, and `ptcp:N:127.0.0.1` for a Raft member).
    listen: Vec<String>,
    child: Option<ChildGuard>,
    owns_dir: bool,
}

fn tool(args: &[&str]) {
    let out = Command::new("ovsdb-tool").args(args).output().expect("run ovsdb-tool");
    assert!(out.status.success(), "ovsdb-tool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl OvsdbServer {
    /// A standalone database (`ovsdb-tool create`) served on a unix socket.
    pub fn standalone() -> OvsdbServer {
        let dir = std::env::temp_dir().join(unique("ovsdb"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        tool(&["create", &dir.join("conf.db").to_string_lossy(), schema()]);
        let sock = dir.join("db.sock");
        let mut s = OvsdbServer {
            remote: format!("unix:{}", sock.display()),
            unix: format!("unix:{}", sock.display()),
            listen: vec![format!("punix:{}", sock.display())],
            dir,
            child: None,
            owns_dir: true,
        };
        s.start();
        s
    }

    /// One Raft member in `dir`, its database already made by `ovsdb-tool create-cluster` or
    /// `join-cluster`, serving clients on loopback `port` and on a unix socket in `dir`.
    fn member(dir: PathBuf, port: u16) -> OvsdbServer {
        let sock = dir.join("db.sock");
        let mut s = OvsdbServer {
            remote: format!("tcp:127.0.0.1:{port}"),
            unix: format!("unix:{}", sock.display()),
            listen: vec![format!("ptcp:{port}:127.0.0.1"), format!("punix:{}", sock.display())],
            dir,
            child: None,
            owns_dir: false,
        };
        s.start();
        s
    }

    /// Starts (again) on the same database file and remote; returns once it answers.
    pub fn start(&mut self) {
        let log = self.dir.join("ovsdb-server.log");
        let child = Command::new("ovsdb-server")
            .arg(self.dir.join("conf.db"))
            .args(self.listen.iter().map(|l| format!("--remote={l}")))
            .arg(format!("--unixctl={}", self.dir.join("ovsdb-server.ctl").display()))
            .arg(format!("--log-file={}", log.display()))
            .args(["--no-chdir", "-vconsole:off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ovsdb-server");
        self.child = Some(ChildGuard::new(child));
        let remote = self.remote.clone();
        let up =
            wait_until(Duration::from_secs(10), || Client::connect(&remote, Duration::from_secs(2)).is_ok());
        assert!(up, "ovsdb-server on {remote} does not answer; log:\n{}", self.log());
    }

    /// SIGKILL by PID (a crash, no clean-up on its side) and reaped.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            testbed::signal_pid(c.pid(), libc::SIGKILL);
            let _ = c.child_mut().wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("ovsdb-server.log")).unwrap_or_default()
    }

    /// This member's `_Server` row for Open_vSwitch: (connected, leader), `None` if it does not
    /// answer.
    pub fn raft_state(&self) -> Option<(bool, bool)> {
        let mut c = Client::connect(&self.remote, Duration::from_secs(2)).ok()?;
        let q = [json!({"op": "select", "table": "Database", "where": [["name", "==", "Open_vSwitch"]],
            "columns": ["connected", "leader"]})];
        let rows = c.transact("_Server", &q).ok()?;
        let row = &rows[0]["rows"][0];
        Some((row["connected"].as_bool()?, row["leader"].as_bool()?))
    }
}

impl Drop for OvsdbServer {
    fn drop(&mut self) {
        self.kill();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A Raft cluster of Debian ovsdb-servers on loopback (`ovsdb-tool create-cluster` for the
/// first member, `join-cluster` for the others).
pub struct Cluster {
    pub members: Vec<OvsdbServer>,
    dir: PathBuf,
}

impl Cluster {
    /// `n` members, returned once every one is connected to the cluster and there is a leader.
    pub fn new(n: usize) -> Cluster {
        let dir = std::env::temp_dir().join(unique("raft"));
        let raft: Vec<String> = (0..n).map(|_| format!("tcp:127.0.0.1:{}", free_port())).collect();
        let mut members = Vec::new();
        for (i, addr) in raft.iter().enumerate() {
            let mdir = dir.join(format!("m{i}"));
            std::fs::create_dir_all(&mdir).expect("member dir");
            let db = mdir.join("conf.db").to_string_lossy().into_owned();
            if i == 0 {
                tool(&["create-cluster", &db, schema(), addr]);
            } else {
                tool(&["join-cluster", &db, "Open_vSwitch", addr, &raft[0]]);
            }
            members.push(OvsdbServer::member(mdir, free_port()));
        }
        let cluster = Cluster { members, dir };
        // Joining takes a few seconds (members need > 2 s); bounded.
        let ready = wait_until(Duration::from_secs(60), || {
            cluster.members.iter().all(|m| m.raft_state().is_some_and(|(c, _)| c))
                && cluster.leader().is_some()
        });
        assert!(ready, "cluster did not form; member 0 log:\n{}", cluster.members[0].log());
        cluster
    }

    /// The index of the member that says it is the connected leader.
    pub fn leader(&self) -> Option<usize> {
        self.members.iter().position(|m| m.raft_state() == Some((true, true)))
    }

    /// All members' client remotes, comma-separated (for `--db`).
    pub fn remotes(&self) -> String {
        self.members.iter().map(|m| m.remote.as_str()).collect::<Vec<_>>().join(",")
    }

    /// All members' unix-socket remotes, comma-separated (for a daemon in another namespace).
    pub fn unix_remotes(&self) -> String {
        self.members.iter().map(|m| m.unix.as_str()).collect::<Vec<_>>().join(",")
    }

    /// The leader, then SIGKILL for it; returns its index once another member leads (bounded).
    pub fn kill_leader(&mut self) -> usize {
        let old = self.leader().expect("a leader");
        self.members[old].kill();
        let elected = wait_until(Duration::from_secs(30), || self.leader().is_some_and(|l| l != old));
        assert!(elected, "no new leader after killing member {old}");
        old
    }

    /// The client remotes of every member but `gone`, comma-separated.
    pub fn remotes_but(&self, gone: usize) -> String {
        let rest: Vec<&str> = self
            .members
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != gone)
            .map(|(_, m)| m.remote.as_str())
            .collect();
        rest.join(",")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.members.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
