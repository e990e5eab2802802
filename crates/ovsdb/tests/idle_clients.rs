//! Issue 14, 4a: 3000 idle clients and 500 that sent half a request hold the socket, and Debian's
//! ovs-vsctl — libvirt's exact add-port line included — is still served; the half-sent ones are
//! dropped after the stall bound; memory stays bounded and the thread count does not grow.
//! (With a thread per connection and a cap of 1024, ovs-vsctl got "Connection reset by peer".)
//!
//! Alone in its own test binary so /proc/self/status speaks of this server only.

mod common;
use common::TestServer;
use ovsdb::server::Limits;
use serde_json::json;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const IDLE: usize = 3000;
const HALF: usize = 500;
/// A transact cut off in the middle of a string: the server must keep it until the stall bound.
const HALF_REQUEST: &[u8] =
    b"{\"id\":1,\"method\":\"transact\",\"params\":[\"Open_vSwitch\",{\"op\":\"insert\",\"table\":\"Bridge\",\"row\":{\"name\":\"half";

/// A number from this process's /proc status (`VmRSS` in kB, `Threads`).
fn status(key: &str) -> u64 {
    testbed::proc_status(0, key)
}

fn wait_for_connections(s: &TestServer, n: usize, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    while s.handle().connections() != n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    s.handle().connections()
}

fn connect(s: &TestServer) -> UnixStream {
    let c = UnixStream::connect(s.sock()).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    c
}

/// Runs ovs-vsctl and returns its output and how long it took (printed, never asserted).
fn timed(s: &TestServer, args: &[&str]) -> (String, Duration) {
    let t0 = Instant::now();
    let out = s.ok(args);
    (out, t0.elapsed())
}

#[test]
fn ovs_vsctl_is_served_beside_3000_idle_and_500_half_sent_clients() {
    if !common::have_ovs_clients() {
        return;
    }
    let need = 2 * (IDLE + HALF) as u64 + 200;
    let have = testbed::raise_nofile();
    if have < need {
        let why = format!("open-file limit {have} < {need}: raise the hard limit (ulimit -Hn)");
        testbed::skip("ovs_vsctl_is_served_beside_3000_idle_and_500_half_sent_clients", &why);
        return;
    }
    // A probe longer than the test, so the idle clients stay; a short stall bound for the others.
    let limits = Limits {
        probe_interval: Some(Duration::from_secs(600)),
        stall_timeout: Duration::from_secs(3),
        ..Limits::default()
    };
    let s = TestServer::with_limits(limits);
    s.ok(&["init"]);
    s.ok(&["add-br", "br-intranet"]);
    let (rss0, threads0) = (status("VmRSS"), status("Threads"));

    let idle: Vec<UnixStream> = (0..IDLE).map(|_| connect(&s)).collect();
    let mut half: Vec<UnixStream> = (0..HALF).map(|_| connect(&s)).collect();
    for c in half.iter_mut() {
        c.write_all(HALF_REQUEST).expect("half a request");
    }
    assert_eq!(wait_for_connections(&s, IDLE + HALF, Duration::from_secs(60)), IDLE + HALF);

    let (_, t_add) = timed(&s, &["add-br", "br0"]);
    let (list, t_list) = timed(&s, &["list-br"]);
    assert_eq!(list.split_whitespace().collect::<Vec<_>>(), ["br-intranet", "br0"]);
    let line = common::libvirt_lines().into_iter().find(|l| l.contains("add-port")).expect("add-port line");
    let argv = common::shell_split(&line);
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    let (_, t_port) = timed(&s, &args);
    let (ports, t_ports) = timed(&s, &["list-ports", "br-intranet"]);
    assert_eq!(ports.trim(), "vnet0");
    let (rss1, threads1) = (status("VmRSS"), status("Threads"));
    eprintln!(
        "{IDLE} idle + {HALF} half-sent clients: ovs-vsctl add-br {t_add:?}, list-br {t_list:?}, \
         libvirt add-port {t_port:?}, list-ports {t_ports:?}; RSS {} → {} MiB, threads {threads0} → {threads1}",
        rss0 / 1024,
        rss1 / 1024
    );
    assert!(rss1 < 200 * 1024, "RSS {} MiB with {} clients", rss1 / 1024, IDLE + HALF);
    assert!(threads1 <= threads0 + 1, "threads grew from {threads0} to {threads1} with the clients");

    // The half-sent ones go after the stall bound; the idle ones stay and are served.
    let t0 = Instant::now();
    assert_eq!(
        wait_for_connections(&s, IDLE, Duration::from_secs(60)),
        IDLE,
        "half-sent clients not dropped"
    );
    eprintln!("half-sent clients dropped {:?} after ovs-vsctl finished", t0.elapsed());
    for c in half.iter_mut().take(5) {
        let mut b = [0u8; 16];
        let r = c.read(&mut b);
        let closed =
            matches!(&r, Ok(0)) || r.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset);
        assert!(closed, "a half-sent client is still connected: {r:?}");
    }
    for mut c in [&idle[0], &idle[IDLE - 1]] {
        c.write_all(json!({"method": "echo", "params": ["x"], "id": 9}).to_string().as_bytes()).unwrap();
        let mut b = [0u8; 256];
        let n = c.read(&mut b).expect("echo reply");
        let reply: serde_json::Value = serde_json::from_slice(&b[..n]).expect("one reply");
        assert_eq!(reply["result"], json!(["x"]));
    }
}
