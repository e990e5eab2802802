//! Issue 14, 4a, against the daemon: with 3000 idle and 500 half-sent clients on its OVSDB
//! socket, libvirt's attach line (ovs-vsctl waiting for cur_cfg, as libvirt runs it) still
//! works and the VM is switched; the daemon's RSS stays bounded and its thread count does not
//! grow with the clients.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, Vm};
use testbed::{proc_status, require_root, unique};

const IDLE: usize = 3000;
const HALF: usize = 500;

fn vsctl(d: &Daemon, args: &[&str]) -> (Result<String, String>, Duration) {
    let t0 = Instant::now();
    let out = Command::new("ovs-vsctl")
        .arg(format!("--db=unix:{}", d.db_socket().display()))
        .arg("--timeout=20")
        .args(args)
        .output();
    let r = match out {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
        Err(e) => Err(e.to_string()),
    };
    (r, t0.elapsed())
}

#[test]
fn libvirt_attach_works_beside_3000_idle_and_500_half_sent_clients() {
    if !require_root("libvirt_attach_works_beside_3000_idle_and_500_half_sent_clients")
        || !common::have_ovs_vsctl()
    {
        return;
    }
    let need = (IDLE + HALF) as u64 + 200;
    let have = testbed::raise_nofile();
    assert!(have >= need, "open-file limit {have} < {need} in the test process");
    let (vm, peer) = (Vm::new(1), Vm::new(2));
    let bridge = unique("br");
    let d = Daemon::start(&common::bridge_config(&bridge, &[(&peer.port, "tag = 10")]));
    common::wait_ports_up(&d, &[&peer.port]);
    let pid = d.pid();
    let (rss0, threads0) = (proc_status(pid, "VmRSS"), proc_status(pid, "Threads"));

    let idle: Vec<UnixStream> =
        (0..IDLE).map(|_| UnixStream::connect(d.db_socket()).expect("connect")).collect();
    let half: Vec<UnixStream> = (0..HALF)
        .map(|_| {
            let mut c = UnixStream::connect(d.db_socket()).expect("connect");
            c.write_all(b"{\"id\":1,\"method\":\"transact\",\"params\":[\"Open_vSwitch\",{\"op\":\"sel")
                .unwrap();
            c
        })
        .collect();
    let attach = common::libvirt_attach(&bridge, &vm.port, &vm.mac.to_string());
    let attach: Vec<&str> = attach.iter().map(String::as_str).collect();
    let (r, t_attach) = vsctl(&d, &attach);
    r.expect("libvirt's attach");
    let (ports, t_list) = vsctl(&d, &["list-ports", &bridge]);
    let ports = ports.expect("list-ports");
    assert!(ports.lines().any(|l| l == vm.port), "{ports}");
    assert!(vm.ping(&peer, 2), "VM not switched after libvirt's attach beside {IDLE} idle clients");
    let (rss1, threads1) = (proc_status(pid, "VmRSS"), proc_status(pid, "Threads"));
    eprintln!(
        "rvswitchd with {IDLE} idle + {HALF} half-sent OVSDB clients: libvirt attach (waiting for \
         cur_cfg) {t_attach:?}, list-ports {t_list:?}; RSS {} → {} MiB, threads {threads0} → {threads1}",
        rss0 / 1024,
        rss1 / 1024
    );
    assert!(rss1 > 0 && rss1 < 200 * 1024, "daemon RSS {} MiB", rss1 / 1024);
    // The attach may start the port's own work; the clients must not add any thread.
    assert!(threads1 <= threads0 + 2, "daemon threads grew from {threads0} to {threads1}");
    drop((idle, half));
    assert!(d.stop(), "rvswitchd did not stop cleanly");
}
