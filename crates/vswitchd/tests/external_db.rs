//! rvswitchd on an existing database (`--db`), as ovs-vswitchd runs on ovsdb-server: Debian's
//! own ovsdb-server, standalone and as a 3-member Raft cluster on loopback. ovs-vsctl against
//! that server configures the switch and waits for rvswitchd's `cur_cfg`; the database going
//! away (killed server, killed leader) stops no traffic — counted pings, none lost — and a change
//! made once a member answers again is applied.

mod common;

use std::time::Duration;

use common::ovsdb_server::{have_ovsdb_server, vsctl, Cluster, OvsdbServer};
use common::{Daemon, Vm};
use testbed::{require_root, unique, wait_until, BackgroundPing};

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
    let old = cluster.kill_leader();
    let rest = cluster.remotes_but(old);
    vsctl(&rest, &["add-port", &br, &c.port, "tag=10"]).unwrap();
    assert!(wait_port_up(&d, &c.port), "not applied after the failover\n{}", d.log());
    assert!(c.ping(&b, 3), "no traffic on the port added after the failover\n{}", d.log());
    let report = ping.finish();
    assert_eq!((report.transmitted, report.received), (100, 100), "pings lost over the failover: {report:?}");
    // The new leader still had our last transaction: the monitor resumed, no full resync.
    assert!(d.log().contains("resumed=true"), "{}", d.log());
    assert!(d.log().contains("database session ended"), "the leader's loss went unseen\n{}", d.log());
}

/// One host's share of the test: its daemon, its bridge and three VMs on it.
struct Host {
    d: Daemon,
    br: String,
    vms: [Vm; 3],
}

impl Host {
    /// A daemon named `--system-id` on the cluster, and its bridge marked as its own.
    fn new(cluster: &Cluster, first_vm: u8) -> Host {
        let id = unique("host");
        let d = Daemon::on_database(&cluster.remotes(), &["--system-id", &id]);
        let br = unique("brh");
        let vms = [Vm::new(first_vm), Vm::new(first_vm + 1), Vm::new(first_vm + 2)];
        let key = format!("external_ids:rvswitch-system-id={id}");
        let all = cluster.remotes();
        vsctl(&all, &["--no-wait", "add-br", &br, "--", "set", "Bridge", &br, &key]).unwrap();
        for vm in &vms[..2] {
            vsctl(&all, &["--no-wait", "add-port", &br, &vm.port, "tag=10"]).unwrap();
        }
        Host { d, br, vms }
    }

    fn bridges(&self) -> Vec<String> {
        self.d.show().bridges.into_iter().map(|b| b.name).collect()
    }
}

/// The full picture: two rvswitchd "hosts" (their own daemons, system-ids and namespaces) on
/// one 3-member cluster, each applying only its own bridge; the leader dies, a change for each
/// host goes through the surviving members and both apply theirs; no ping lost on either.
#[test]
fn two_hosts_share_a_raft_cluster_and_each_applies_only_its_own_bridge() {
    let t = "two_hosts_share_a_raft_cluster_and_each_applies_only_its_own_bridge";
    if !prerequisites(t) {
        return;
    }
    let mut cluster = Cluster::new(3);
    let hosts = [Host::new(&cluster, 1), Host::new(&cluster, 4)];
    for h in &hosts {
        for vm in &h.vms[..2] {
            assert!(wait_port_up(&h.d, &vm.port), "{} not applied\n{}", vm.port, h.d.log());
        }
        assert_eq!(h.bridges(), vec![h.br.clone()], "a host applied another's bridge");
        assert!(h.vms[0].ping(&h.vms[1], 3), "no traffic on {}\n{}", h.br, h.d.log());
    }
    let pings: Vec<BackgroundPing> = hosts.iter().map(|h| counted_ping(&h.vms[0], &h.vms[1], 100)).collect();
    std::thread::sleep(Duration::from_secs(1));
    let old = cluster.kill_leader();
    let rest = cluster.remotes_but(old);
    for h in &hosts {
        vsctl(&rest, &["--no-wait", "add-port", &h.br, &h.vms[2].port, "tag=10"]).unwrap();
    }
    for h in &hosts {
        assert!(wait_port_up(&h.d, &h.vms[2].port), "not applied after the failover\n{}", h.d.log());
        assert!(h.vms[2].ping(&h.vms[1], 3), "no traffic on the new port of {}", h.br);
        assert_eq!(h.bridges(), vec![h.br.clone()]);
    }
    for (h, p) in hosts.iter().zip(pings) {
        let r = p.finish();
        assert_eq!((r.transmitted, r.received), (100, 100), "{}: pings lost over the failover: {r:?}", h.br);
    }
}

/// `--config` with `--db` and no server yet: the daemon starts anyway and seeds the file into
/// the database once a server answers (then ovs-vsctl sees the file's bridge and its status).
#[test]
fn a_config_file_is_seeded_once_the_database_answers() {
    let t = "a_config_file_is_seeded_once_the_database_answers";
    if !prerequisites(t) {
        return;
    }
    let mut srv = OvsdbServer::standalone();
    srv.kill();
    let (a, b) = (Vm::new(1), Vm::new(2));
    let br = unique("brc");
    let config = srv.dir.join("rvswitch.toml");
    let ports = [(a.port.as_str(), "tag = 10"), (b.port.as_str(), "tag = 10")];
    std::fs::write(&config, common::bridge_config(&br, &ports)).unwrap();
    let d = Daemon::on_database(&srv.remote, &["--config", &config.to_string_lossy()]);
    assert!(d.show().bridges.is_empty(), "a bridge before the database answered");
    srv.start();
    assert!(wait_port_up(&d, &a.port) && wait_port_up(&d, &b.port), "not seeded\n{}", d.log());
    assert!(a.ping(&b, 3), "no traffic on the seeded bridge");
    let ofport = wait_until(Duration::from_secs(30), || {
        vsctl(&srv.remote, &["get", "Interface", &a.port, "ofport"])
            .is_ok_and(|o| o.parse::<i64>().is_ok_and(|n| n > 0))
    });
    assert!(ofport, "no status written for the seeded port\n{}", d.log());
}
