//! rvswitchd on an existing database (`--db`), as ovs-vswitchd runs on ovsdb-server: Debian's
//! own ovsdb-server, standalone and as a 3-member Raft cluster on loopback. ovs-vsctl against
//! that server configures the switch and waits for rvswitchd's `cur_cfg`; the database going
//! away (killed server, killed leader) stops no traffic — counted pings, none lost — and a change
//! made once a member answers again is applied.

mod common;

use std::process::Command;
use std::time::Duration;

use common::ovsdb_server::{have_ovsdb_server, Cluster, OvsdbServer};
use common::{Daemon, Vm};
use testbed::{require_root, unique, wait_until, BackgroundPing};

/// ovs-vsctl on `db` (one remote or several, comma-separated), waiting for `cur_cfg` unless
/// the arguments say `--no-wait`.
fn vsctl(db: &str, args: &[&str]) -> Result<String, String> {
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

fn prerequisites(test: &str) -> bool {
    require_root(test) && common::have_ovs_vsctl() && have_ovsdb_server(test)
}

/// Pings every 100 ms, `count` of them (bounded by a generous deadline).
fn counted_ping(from: &Vm, to: &Vm, count: u32) -> BackgroundPing {
    BackgroundPing::counted(&from.ns, &to.ip, Duration::from_millis(100), count, count / 10 + 60)
        .expect("background ping")
}

/// Waits (bounded) until the daemon shows `port` with link up.
fn wait_port_up(d: &Daemon, port: &str) -> bool {
    wait_until(Duration::from_secs(30), || {
        d.show().bridges.iter().flat_map(|b| &b.ports).any(|p| p.name == port && p.link_state == "up")
    })
}

#[test]
fn a_debian_ovsdb_server_drives_rvswitchd_and_its_outage_stops_no_traffic() {
    let t = "a_debian_ovsdb_server_drives_rvswitchd_and_its_outage_stops_no_traffic";
    if !prerequisites(t) {
        return;
    }
    let mut srv = OvsdbServer::standalone();
    let d = Daemon::on_database(&srv.remote, &[]);
    let (a, b, c) = (Vm::new(1), Vm::new(2), Vm::new(3));
    let br = unique("brx");
    let db = srv.remote.clone();
    // Without --no-wait: each returns only once rvswitchd wrote cur_cfg back.
    vsctl(&db, &["add-br", &br]).unwrap();
    vsctl(&db, &["add-port", &br, &a.port, "tag=10"]).unwrap();
    vsctl(&db, &["add-port", &br, &b.port, "tag=10"]).unwrap();
    assert!(a.ping(&b, 3), "no traffic after add-port\n{}", d.log());
    let ofport: i64 = vsctl(&db, &["get", "Interface", &a.port, "ofport"]).unwrap().parse().unwrap();
    assert!((1..65279).contains(&ofport), "ofport {ofport}");
    assert_eq!(vsctl(&db, &["get", "Interface", &a.port, "link_state"]).unwrap(), "up");
    assert!(!d.db_socket().exists(), "an embedded server was started besides --db");

    let ping = counted_ping(&a, &b, 80);
    std::thread::sleep(Duration::from_secs(1));
    srv.kill();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(d.port(&a.port).link_state, "up", "the configuration went with the database");
    srv.start();
    // Applied (and acknowledged through cur_cfg) once rvswitchd is back on the restarted server.
    vsctl(&db, &["add-port", &br, &c.port, "tag=10"]).unwrap();
    assert!(c.ping(&b, 3), "the change after the restart is not applied\n{}", d.log());
    let report = ping.finish();
    assert_eq!((report.transmitted, report.received), (80, 80), "pings lost over the outage: {report:?}");
    assert!(d.log().matches("database monitor running").count() >= 2, "{}", d.log());
}

#[test]
fn a_raft_cluster_loses_its_leader_and_rvswitchd_follows_the_new_one() {
    let t = "a_raft_cluster_loses_its_leader_and_rvswitchd_follows_the_new_one";
    if !prerequisites(t) {
        return;
    }
    let mut cluster = Cluster::new(3);
    let d = Daemon::on_database(&cluster.remotes(), &[]);
    let (a, b, c) = (Vm::new(1), Vm::new(2), Vm::new(3));
    let br = unique("brr");
    let all = cluster.remotes();
    vsctl(&all, &["add-br", &br]).unwrap();
    vsctl(&all, &["add-port", &br, &a.port, "tag=10"]).unwrap();
    vsctl(&all, &["add-port", &br, &b.port, "tag=10"]).unwrap();
    assert!(a.ping(&b, 3), "no traffic after add-port\n{}", d.log());

    let ping = counted_ping(&a, &b, 100);
    std::thread::sleep(Duration::from_secs(1));
    let old = cluster.leader().expect("a leader");
    cluster.members[old].kill();
    let rest: Vec<String> = (0..3).filter(|i| *i != old).map(|i| cluster.members[i].remote.clone()).collect();
    let elected = wait_until(Duration::from_secs(30), || cluster.leader().is_some_and(|l| l != old));
    assert!(elected, "no new leader");
    vsctl(&rest.join(","), &["add-port", &br, &c.port, "tag=10"]).unwrap();
    assert!(wait_port_up(&d, &c.port), "not applied after the failover\n{}", d.log());
    assert!(c.ping(&b, 3), "no traffic on the port added after the failover\n{}", d.log());
    let report = ping.finish();
    assert_eq!((report.transmitted, report.received), (100, 100), "pings lost over the failover: {report:?}");
    // The new leader still had our last transaction: the monitor resumed, no full resync.
    assert!(d.log().contains("resumed=true"), "{}", d.log());
    assert!(d.log().contains("database session ended"), "the leader's loss went unseen\n{}", d.log());
}
