//! Issue 12's acceptance across hosts: two rvswitchd "hosts" (namespaces A and B, each its own
//! daemon whose VXLAN socket binds its own underlay address) on one 3-member Debian ovsdb-server
//! Raft cluster, configured by ovs-vsctl through the cluster alone. A VM on each host, VLAN 10,
//! VNI 100 between them. The Raft leader is killed while A's VM pings B's every 20 ms; a port
//! added on both hosts through the surviving members is applied on both and carries traffic;
//! the ping had replies before and after the kill and lost none.
//!
//! The members listen on loopback TCP (their Raft links and ovs-vsctl) and on unix sockets:
//! a daemon in a host namespace has a loopback of its own, a unix socket reaches across.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::ovsdb_server::{have_ovsdb_server, vsctl, Cluster};
use common::underlay::{hosts, HostVm, A_UNDERLAY, B_UNDERLAY};
use common::Daemon;
use testbed::{require_program, require_root, unique, wait_until, BackgroundPing, Netns};

/// One host: its daemon (in `ns`) on the cluster, its own bridge, and VMs cabled into `ns`.
struct Host {
    d: Daemon,
    br: String,
    /// The vxlan port (names are unique in the one database both hosts share).
    vx: String,
    /// (switch port name, VM) — the first on the bridge from the start, the second added later.
    vms: [(String, HostVm); 2],
}

impl Host {
    /// Bridge with VM port (VLAN 10) and vxlan port (VNI 100) to `peer`, via ovs-vsctl on `db`.
    fn new(ns: &Netns, cluster: &Cluster, peer: &str, first_vm: u8) -> Host {
        let id = unique("host");
        let d = Daemon::on_database_under(
            &["ip", "netns", "exec", ns.name()],
            &cluster.unix_remotes(),
            &["--system-id", &id],
        );
        let br = unique("brv");
        let vms = [first_vm, first_vm + 2].map(|n| {
            let port = unique("p");
            let vm = HostVm::new(ns, &port, n);
            (port, vm)
        });
        let (db, key) = (cluster.remotes(), format!("external_ids:rvswitch-system-id={id}"));
        vsctl(&db, &["--no-wait", "add-br", &br, "--", "set", "Bridge", &br, &key]).unwrap();
        vsctl(&db, &["--no-wait", "add-port", &br, &vms[0].0, "tag=10"]).unwrap();
        let (vx, remote) = (unique("vx"), format!("options:remote_ip={peer}"));
        let vxlan = ["type=vxlan", &remote, "options:key=100"];
        let mut args = vec!["--no-wait", "add-port", &br, &vx, "tag=10", "--", "set", "Interface", &vx];
        args.extend(vxlan);
        vsctl(&db, &args).unwrap();
        Host { d, br, vx, vms }
    }

    /// Waits (bounded) until this host's daemon shows `port` with link up.
    fn applied(&self, port: &str) -> bool {
        wait_until(Duration::from_secs(30), || {
            self.d
                .show()
                .bridges
                .iter()
                .flat_map(|b| &b.ports)
                .any(|p| p.name == port && p.link_state == "up")
        })
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[test]
fn two_hosts_over_vxlan_on_a_raft_cluster_survive_the_leaders_loss() {
    let t = "two_hosts_over_vxlan_on_a_raft_cluster_survive_the_leaders_loss";
    if !require_root(t)
        || !common::have_ovs_vsctl()
        || !have_ovsdb_server(t)
        || !require_program(t, "ethtool", "--version", "ethtool")
    {
        return;
    }
    let (a, b, _ul) = hosts("1600");
    let mut cluster = Cluster::new(3);
    let hosts = [Host::new(&a, &cluster, B_UNDERLAY, 1), Host::new(&b, &cluster, A_UNDERLAY, 2)];
    for h in &hosts {
        assert!(h.applied(&h.vms[0].0) && h.applied(&h.vx), "{} not applied\n{}", h.br, h.d.log());
    }
    let [(_, a1), (_, a2)] = &hosts[0].vms;
    let [(_, b1), (_, b2)] = &hosts[1].vms;
    assert!(a1.ns.ping(&b1.ip, 3), "no traffic over VXLAN\n{}\n{}", hosts[0].d.log(), hosts[1].d.log());

    let ping = BackgroundPing::counted(&a1.ns, &b1.ip, Duration::from_millis(20), 10_000, 200)
        .expect("background ping");
    std::thread::sleep(Duration::from_secs(1));
    let killed_at = now();
    let old = cluster.kill_leader();
    let rest = cluster.remotes_but(old);
    for h in &hosts {
        vsctl(&rest, &["--no-wait", "add-port", &h.br, &h.vms[1].0, "tag=10"]).unwrap();
    }
    for h in &hosts {
        assert!(h.applied(&h.vms[1].0), "not applied after the failover\n{}", h.d.log());
    }
    let applied_at = now();
    assert!(a2.ns.ping(&b2.ip, 3), "no traffic between the ports added after the failover");
    std::thread::sleep(Duration::from_secs(1));
    let r = ping.stop();
    // Requests still in flight when the ping was stopped are not losses.
    let lost = r.lost_before_last_reply;
    eprintln!(
        "cluster_vxlan: {} sent, {} received, {lost} lost before the last reply, longest gap {:?}, \
         applied {:.1} s after the kill",
        r.transmitted,
        r.received,
        r.longest_gap,
        applied_at - killed_at
    );
    assert!(r.replies.iter().any(|t| *t < killed_at), "no replies before the kill: {r:?}");
    assert!(r.replies.iter().any(|t| *t > applied_at), "no replies after the failover: {r:?}");
    assert_eq!(lost, 0, "pings lost over the failover: {r:?}");
}
