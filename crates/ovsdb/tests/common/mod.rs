//! Shared helpers for the acceptance tests: a server in a temp dir, running
//! the real OvS client binaries against it, and process guards.
#![allow(dead_code)]

use ovsdb::server::{Limits, SchemaSource, Server, ServerConfig, ServerHandle};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A server on a temp unix socket with a temp db file.
pub struct TestServer {
    pub handle: Option<ServerHandle>,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = start_in(dir.path(), Limits::default());
        TestServer { handle: Some(handle), dir }
    }

    pub fn with_limits(limits: Limits) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = start_in(dir.path(), limits);
        TestServer { handle: Some(handle), dir }
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.path().join("db.sock")
    }

    pub fn db_file(&self) -> PathBuf {
        self.dir.path().join("conf.db")
    }

    pub fn db_arg(&self) -> String {
        format!("--db=unix:{}", self.sock().display())
    }

    pub fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().expect("running")
    }

    /// Stops the server, keeping the directory (to reopen the file).
    pub fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.handle = Some(start_in(self.dir.path(), Limits::default()));
    }

    /// Runs `ovs-vsctl --no-wait --timeout=10 <args>`; Ok(stdout) or Err(stderr).
    pub fn vsctl(&self, args: &[&str]) -> Result<String, String> {
        let mut full = vec![self.db_arg(), "--no-wait".into(), "--timeout=10".into()];
        full.extend(args.iter().map(|s| s.to_string()));
        run("ovs-vsctl", &full)
    }

    /// Like `vsctl` but panics with the stderr on failure.
    pub fn ok(&self, args: &[&str]) -> String {
        match self.vsctl(args) {
            Ok(s) => s,
            Err(e) => panic!("ovs-vsctl {args:?} failed: {e}"),
        }
    }

    pub fn client(&self, args: &[&str]) -> Result<String, String> {
        let mut full: Vec<String> = vec!["--timeout=10".into()];
        full.extend(args.iter().map(|s| s.replace("SOCK", &format!("unix:{}", self.sock().display()))));
        run("ovsdb-client", &full)
    }
}

fn start_in(dir: &Path, limits: Limits) -> ServerHandle {
    Server::start(ServerConfig {
        schema: SchemaSource::Vswitch,
        db_file: dir.join("conf.db"),
        unix_socket: dir.join("db.sock"),
        socket_mode: 0o660,
        tcp: None,
        limits,
    })
    .expect("server starts")
}

/// Runs a program with a hard timeout; the child is killed by PID on expiry.
pub fn run(prog: &str, args: &[String]) -> Result<String, String> {
    let child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {prog}: {e}"))?;
    let guard = ChildGuard(Some(child));
    let out = guard.wait_output(Duration::from_secs(20))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{prog} exited {:?}: {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

/// Kills the child by PID when dropped.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        ChildGuard(Some(cmd.spawn().expect("spawn")))
    }

    pub fn pid(&self) -> u32 {
        self.0.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    fn wait_output(mut self, limit: Duration) -> Result<std::process::Output, String> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let Some(c) = self.0.as_mut() else { return Err("no child".into()) };
            match c.try_wait() {
                Ok(Some(_)) => {
                    let c = self.0.take().ok_or("gone")?;
                    return c.wait_with_output().map_err(|e| e.to_string());
                }
                Ok(None) if std::time::Instant::now() > deadline => return Err("timed out".into()),
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// True if the OvS clients are installed. Without them tests skip through
/// [`testbed::skip`] (a failure under CI).
pub fn have_ovs_clients() -> bool {
    let found = ["ovs-vsctl", "ovsdb-client", "ovsdb-tool"].iter().all(|p| {
        Command::new(p)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    found
        || testbed::skip(
            "OvS client tests",
            "ovs-vsctl/ovsdb-client/ovsdb-tool not installed (Debian package openvswitch-switch)",
        )
}

/// A minimal JSON-RPC client over the unix socket for protocol tests.
pub struct RawClient {
    pub stream: std::os::unix::net::UnixStream,
    splitter: ovsdb::jsonrpc::Splitter,
    queue: std::collections::VecDeque<serde_json::Value>,
}

impl RawClient {
    pub fn connect(path: &Path) -> RawClient {
        let stream = std::os::unix::net::UnixStream::connect(path).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        RawClient { stream, splitter: ovsdb::jsonrpc::Splitter::new(1 << 30), queue: Default::default() }
    }

    pub fn send(&mut self, v: &serde_json::Value) {
        use std::io::Write;
        self.stream.write_all(v.to_string().as_bytes()).expect("write");
    }

    pub fn send_raw(&mut self, b: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.stream.write_all(b)
    }

    /// Next message, or None on EOF/timeout. The server's `echo` probes are answered here and
    /// not returned.
    pub fn recv(&mut self) -> Option<serde_json::Value> {
        use std::io::Read;
        loop {
            if let Some(v) = self.queue.pop_front() {
                return Some(v);
            }
            let mut buf = [0u8; 65536];
            let n = match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            let mut msgs = Vec::new();
            self.splitter.feed(&buf[..n], &mut |m| msgs.push(m)).ok()?;
            for m in msgs {
                let v: serde_json::Value = serde_json::from_slice(&m).ok()?;
                if v["method"] == "echo" && !v["id"].is_null() {
                    // The server's inactivity probe: answer it, as every OvS client does.
                    self.send(&serde_json::json!({"id": v["id"], "result": v["params"], "error": null}));
                    continue;
                }
                self.queue.push_back(v);
            }
        }
    }

    /// Sends a request and returns its reply, queueing notifications seen meanwhile.
    pub fn call(&mut self, method: &str, params: serde_json::Value, id: u64) -> serde_json::Value {
        self.send(&serde_json::json!({"method": method, "params": params, "id": id}));
        let mut skipped = Vec::new();
        let reply = loop {
            let m = self.recv().unwrap_or_else(|| panic!("no reply to {method}"));
            if m.get("id") == Some(&serde_json::json!(id)) && m.get("method").is_none() {
                break m;
            }
            skipped.push(m);
        };
        for s in skipped.into_iter().rev() {
            self.queue.push_front(s);
        }
        reply
    }

    /// Like `call` but returns `result`, panicking on an error reply.
    pub fn result(&mut self, method: &str, params: serde_json::Value, id: u64) -> serde_json::Value {
        let r = self.call(method, params, id);
        assert!(r["error"].is_null(), "{method} failed: {r}");
        r["result"].clone()
    }

    /// Waits for the next notification with the given method.
    pub fn notification(&mut self, method: &str) -> serde_json::Value {
        loop {
            let m = self.recv().unwrap_or_else(|| panic!("no {method} notification"));
            if m.get("method").and_then(|x| x.as_str()) == Some(method) {
                return m;
            }
        }
    }
}

/// libvirt 9.0's exact lines (the repository's copy: a test never reads outside the repository).
pub fn libvirt_lines() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/libvirt-9.0-ovs-vsctl-argv.txt");
    let text = std::fs::read_to_string(path).expect("libvirt argv reference");
    text.lines().filter(|l| l.starts_with("ovs-vsctl ")).map(str::to_string).collect()
}

/// Splits a shell line with double quotes (enough for libvirt's lines).
pub fn shell_split(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            _ => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}
