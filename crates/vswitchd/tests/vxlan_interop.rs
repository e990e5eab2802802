//! Tunnel ports against real peers: the Linux kernel's own vxlan device, Debian's OvS userspace
//! vxlan port, and rvswitchd itself (two hosts over Geneve; a zone stretched by `zones apply`). rvswitchd runs in namespace "host
//! A", wired to "host B" by an underlay veth; host B bridges kernel vxlan devices (VNI 100 and
//! 200) to namespace VMs with a Linux bridge, as a plain Linux host would. Checked: ping and
//! iperf3 TCP both ways, the remote MAC learned on the tunnel port, statistics and link state in
//! the database, and the leak hunt (the VNI 200 VMs see nothing of VNI 100's traffic). A second
//! test: an underlay too small for 1500-byte packets is said in Interface `error`, and frames
//! too big for it are dropped and counted as such.

mod common;

use std::time::Duration;

use common::underlay::{hosts, HostVm as Vm, A_UNDERLAY, B_UNDERLAY};
use common::{bridge_config, iperf_tcp, Daemon};
use packet::{EthernetHeader, MacAddr};
use testbed::{frame_capture, require_program, require_root, wait_until, Netns};

/// In host B: kernel vxlan `vni` in Linux bridge `br<vni>` with the VM port `port`.
fn kernel_vxlan(b: &Netns, vni: u32, port: &str) {
    let (vx, id) = (format!("vx{vni}"), vni.to_string());
    b.exec(&[
        "ip", "link", "add", &vx, "type", "vxlan", "id", &id, "dstport", "4789", "remote", A_UNDERLAY,
        "local", B_UNDERLAY, "dev", "ul0",
    ])
    .unwrap();
    bridge_in(b, &vx, vni, port);
}

fn bridge_in(b: &Netns, tunnel: &str, vni: u32, port: &str) {
    let br = format!("br{vni}");
    b.exec(&["ip", "link", "add", &br, "type", "bridge"]).unwrap();
    for dev in [tunnel, port] {
        b.exec(&["ip", "link", "set", dev, "master", &br]).unwrap();
        b.exec(&["ip", "link", "set", dev, "up"]).unwrap();
    }
    b.exec(&["ip", "link", "set", &br, "up"]).unwrap();
}

/// rvswitchd in host A on bridge `br-a` with `ports` (name, tag).
fn daemon_in(a: &Netns, ports: &[(&str, &str)]) -> Daemon {
    Daemon::start_under(&["ip", "netns", "exec", a.name()], &bridge_config("br-a", ports))
}

fn add_vxlan(d: &Daemon, name: &str, vni: u32, tag: u16) {
    add_tunnel(d, "vxlan", name, (vni, tag), B_UNDERLAY);
}

/// Adds tunnel port `name` of type `kind` carrying `(vni, VLAN tag)` to `remote`.
fn add_tunnel(d: &Daemon, kind: &str, name: &str, (vni, tag): (u32, u16), remote: &str) {
    let (tag, key, kind) = (format!("tag={tag}"), format!("options:key={vni}"), format!("type={kind}"));
    let remote = format!("options:remote_ip={remote}");
    d.vsctl(&["add-port", "br-a", name, &tag, "--", "set", "Interface", name, &kind, &remote, &key])
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log()));
}

fn wait_up(d: &Daemon, port: &str) {
    let up = wait_until(Duration::from_secs(10), || d.port(port).link_state == "up");
    assert!(up, "{port} not up: {:?}\n{}", d.port(port), d.log());
}

/// Frames from `macs` among what `raw` (a VM's NIC) captures for `secs` while the caller's
/// traffic runs: (all frames, frames from `macs`).
fn capture_from(mut raw: netdev::SystemPort, macs: &[MacAddr], secs: u64) -> (usize, usize) {
    let frames = frame_capture(&mut raw, Duration::from_secs(secs), 10_000);
    let from =
        frames.iter().filter(|f| EthernetHeader::parse(f).is_ok_and(|h| macs.contains(&h.src))).count();
    (frames.len(), from)
}

#[test]
fn rvswitch_vxlan_talks_to_the_kernel_vxlan_device() {
    if !require_root("rvswitch_vxlan_talks_to_the_kernel_vxlan_device")
        || !require_program("vxlan interop", "iperf3", "--version", "iperf3")
        || !require_program("vxlan interop", "ovs-vsctl", "--version", "openvswitch-switch")
        || !require_program("vxlan interop", "ethtool", "--version", "ethtool")
    {
        return;
    }
    let (a, b, _ul) = hosts("1600");
    let (a1, a2) = (Vm::new(&a, "a1", 1), Vm::new(&a, "a2", 3));
    let (b1, b2) = (Vm::new(&b, "b1", 2), Vm::new(&b, "b2", 4));
    kernel_vxlan(&b, 100, "b1");
    kernel_vxlan(&b, 200, "b2");
    let d = daemon_in(&a, &[("a1", "tag = 10"), ("a2", "tag = 20")]);
    add_vxlan(&d, "vx100", 100, 10);
    add_vxlan(&d, "vx200", 200, 20);
    // VNI 200 with UDP checksums and a fixed ToS/TTL: host B's kernel checks the checksum (a
    // wrong one fails VNI 200's ping below) and the capture on B's underlay shows all three.
    d.vsctl(&["set", "Interface", "vx200", "options:csum=true", "options:tos=0x20", "options:ttl=9"])
        .unwrap();
    for p in ["a1", "a2", "vx100", "vx200"] {
        wait_up(&d, p);
    }

    // VNI 200 works too (else "sees nothing" below would prove nothing).
    let mut raw = b.open_port("ul0").expect("raw socket on B's underlay");
    let (pinged, outer) = std::thread::scope(|s| {
        let cap = s.spawn(|| frame_capture(&mut raw, Duration::from_secs(4), 1000));
        (a2.ns.ping(&b2.ip, 3), cap.join().unwrap())
    });
    assert!(pinged, "VNI 200 ping failed\n{}", d.log());
    // Ethernet 14 + IPv4 20 + UDP 8, then VXLAN: the frames A sent on VNI 200.
    let vni200: Vec<&Vec<u8>> = outer
        .iter()
        .filter(|f| {
            f.len() > 50 && f[12..14] == [8, 0] && f[26..30] == [198, 19, 0, 1] && f[46..49] == [0, 0, 200]
        })
        .collect();
    assert!(!vni200.is_empty(), "no VNI 200 packets from A captured ({} frames)", outer.len());
    for f in vni200 {
        assert_eq!((f[15], f[22]), (0x20, 9), "outer ToS and TTL");
        assert_ne!(&f[40..42], &[0, 0], "UDP checksum filled in");
        assert!(u16::from_be_bytes([f[34], f[35]]) >= 49152, "source port from the flow hash");
    }
    // The leak hunt: VNI 100 traffic (ARP broadcasts included) while both VNI 200 VMs listen.
    a1.ns.exec(&["ip", "neigh", "flush", "all"]).ok();
    // b1's own capture is the control: the same method must see the VNI 100 traffic there.
    let [ra, rb, control] = [&a2, &b2, &b1].map(|vm| vm.ns.open_port("eth0").expect("raw socket"));
    let macs = [a1.mac, b1.mac];
    let (leak_a, leak_b, seen, pinged) = std::thread::scope(|s| {
        let ca = s.spawn(|| capture_from(ra, &macs, 6));
        let cb = s.spawn(|| capture_from(rb, &macs, 6));
        let cc = s.spawn(|| capture_from(control, &[a1.mac], 6));
        let pinged = a1.ns.ping(&b1.ip, 5) && b1.ns.ping(&a1.ip, 5);
        (ca.join().unwrap(), cb.join().unwrap(), cc.join().unwrap(), pinged)
    });
    assert!(pinged, "VNI 100 ping failed\n{}", d.log());
    assert!(seen.1 >= 10, "the control capture on b1 saw only {seen:?} of a1's frames");
    assert_eq!((leak_a.1, leak_b.1), (0, 0), "VNI 200 VMs saw VNI 100 frames: {leak_a:?} {leak_b:?}");

    let fdb = d.fdb("br-a");
    let b1_mac = b1.mac.to_string();
    assert!(
        fdb.entries.iter().any(|e| e.port == "vx100" && e.vlan == 10 && e.mac.eq_ignore_ascii_case(&b1_mac)),
        "b1 not learned on vx100: {fdb:?}"
    );
    for (client, server, ip) in [(&a1.ns, &b1.ns, &b1.ip), (&b1.ns, &a1.ns, &a1.ip)] {
        let bytes = iperf_tcp(client, server, ip).unwrap_or_else(|e| panic!("iperf3: {e}\n{}", d.log()));
        eprintln!("iperf3 TCP over VXLAN: {} Mbit/s", bytes * 8 / 2 / 1_000_000);
        assert!(bytes > 1 << 20, "only {bytes} bytes in 2 s");
    }
    let st = d.port("vx100").statistics;
    assert!(st.rx_packets > 0 && st.tx_packets > 0, "{st:?}");
    assert_eq!(st.drops.get("tx-failed"), None, "{st:?}");
    let link = d.vsctl(&["get", "Interface", "vx100", "link_state"]).unwrap();
    assert_eq!(link, "up");
    let error = d.vsctl(&["get", "Interface", "vx100", "error"]).unwrap();
    assert_eq!(error, "[]", "an underlay of 1600 is large enough");
}

#[test]
fn small_underlay_is_reported_and_big_frames_are_counted() {
    if !require_root("small_underlay_is_reported_and_big_frames_are_counted")
        || !require_program("vxlan mtu", "ovs-vsctl", "--version", "openvswitch-switch")
        || !require_program("vxlan mtu", "ethtool", "--version", "ethtool")
    {
        return;
    }
    let (a, _b, _ul) = hosts("1500");
    let a1 = Vm::new(&a, "a1", 1);
    let d = daemon_in(&a, &[("a1", "tag = 10")]);
    add_vxlan(&d, "vx100", 100, 10);
    wait_up(&d, "a1");
    wait_up(&d, "vx100");
    let error = d.vsctl(&["get", "Interface", "vx100", "error"]).unwrap();
    assert!(error.contains("underlay MTU 1500 leaves 1450 bytes"), "{error}");

    // 1472 bytes of ICMP = a 1514-byte frame: 50 more than the underlay carries. Small pings
    // go out (nobody answers them; host B has no vxlan device here, hence the static neighbour).
    a1.ns
        .exec(&["ip", "neigh", "replace", "198.18.10.2", "lladdr", "02:00:00:00:10:02", "dev", "eth0"])
        .unwrap();
    a1.ns.exec_status(&["ping", "-c", "3", "-i", "0.2", "-W", "1", "-s", "1472", "198.18.10.2"]).ok();
    a1.ns.exec_status(&["ping", "-c", "2", "-i", "0.2", "-W", "1", "198.18.10.2"]).ok();
    let counted = wait_until(Duration::from_secs(5), || {
        d.port("vx100").statistics.drops.get("too-big-for-underlay").is_some_and(|n| *n >= 3)
    });
    let st = d.port("vx100").statistics;
    assert!(counted, "big frames not counted: {st:?}");
    assert!(st.tx_packets >= 2, "small frames were sent: {st:?}");
    assert_eq!(st.drops.get("tx-failed"), None, "{st:?}");
}

/// Two rvswitchd "hosts", each with a VM on VLAN 10 and a Geneve port to the other (this
/// kernel has no geneve module, so the peer is rvswitch itself; the VXLAN test covers interop).
#[test]
fn two_rvswitch_hosts_over_geneve() {
    if !require_root("two_rvswitch_hosts_over_geneve")
        || !require_program("geneve hosts", "iperf3", "--version", "iperf3")
        || !require_program("geneve hosts", "ovs-vsctl", "--version", "openvswitch-switch")
        || !require_program("geneve hosts", "ethtool", "--version", "ethtool")
    {
        return;
    }
    let (a, b, _ul) = hosts("1600");
    let (a1, b1) = (Vm::new(&a, "a1", 1), Vm::new(&b, "b1", 2));
    let da = daemon_in(&a, &[("a1", "tag = 10")]);
    let db = Daemon::start_under(
        &["ip", "netns", "exec", b.name()],
        &bridge_config("br-a", &[("b1", "tag = 10")]),
    );
    add_tunnel(&da, "geneve", "gnv100", (100, 10), B_UNDERLAY);
    add_tunnel(&db, "geneve", "gnv100", (100, 10), A_UNDERLAY);
    for (d, vm) in [(&da, "a1"), (&db, "b1")] {
        wait_up(d, vm);
        wait_up(d, "gnv100");
    }
    assert!(a1.ns.ping(&b1.ip, 3) && b1.ns.ping(&a1.ip, 3), "geneve ping failed\n{}\n{}", da.log(), db.log());
    let bytes = iperf_tcp(&a1.ns, &b1.ns, &b1.ip).unwrap_or_else(|e| panic!("iperf3: {e}\n{}", da.log()));
    assert!(bytes > 1 << 20, "only {bytes} bytes in 2 s");
    for d in [&da, &db] {
        let st = d.port("gnv100").statistics;
        assert!(st.rx_packets > 0 && st.tx_packets > 0, "{st:?}");
        assert_eq!(st.drops.get("tx-failed"), None, "{st:?}");
    }
}

/// The zone file of a host whose one peer is `peer`: zone corp, VLAN 10 carried as VNI 100.
fn stretched_zone(dir: &std::path::Path, host: &str, peer: &str) -> std::path::PathBuf {
    let text = format!(
        "[[zone]]\nname = \"corp\"\npeers = [\"{peer}\"]\n\
         [[zone.portgroup]]\nname = \"v10\"\nvlan = 10\ndefault = true\nvni = 100\n"
    );
    let p = dir.join(format!("{host}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// One zone stretched between two rvswitchd hosts by `rvsctl zones apply` on each: the VMs
/// attached to the zone's bridge on either host reach each other through the tunnel it made.
#[test]
fn a_zone_stretched_between_two_rvswitch_hosts() {
    use ctl::zones_cli::{self, Globals, ZonesCommand};
    if !require_root("a_zone_stretched_between_two_rvswitch_hosts")
        || !require_program("stretched zone", "ovs-vsctl", "--version", "openvswitch-switch")
        || !require_program("stretched zone", "ethtool", "--version", "ethtool")
    {
        return;
    }
    let (a, b, _ul) = hosts("1600");
    let (a1, b1) = (Vm::new(&a, "a1", 1), Vm::new(&b, "b1", 2));
    let dir = tempfile::tempdir().unwrap();
    let mut daemons = Vec::new();
    for (ns, host, peer, vm) in [(&a, "a", B_UNDERLAY, "a1"), (&b, "b", A_UNDERLAY, "b1")] {
        // A daemon with no bridges of its own: the zone makes br-corp.
        let d = Daemon::start_under(&["ip", "netns", "exec", ns.name()], "");
        let g = Globals { db: format!("unix:{}", d.db_socket().display()), json: false, timeout: 20 };
        let apply = ZonesCommand::Apply { file: stretched_zone(dir.path(), host, peer), no_wait: false };
        let out = zones_cli::run(&apply, &g).unwrap_or_else(|e| panic!("zones apply: {e:#}\n{}", d.log()));
        let vx = zones::tunnel_port_name("corp", 100, peer.parse().unwrap());
        assert!(
            out.stdout.contains(&format!("+ port {vx} on br-corp (tunnel, zone corp)")),
            "{}",
            out.stdout
        );
        d.vsctl(&["add-port", "br-corp", vm, "tag=10"]).unwrap();
        assert_eq!(zones_cli::run(&ZonesCommand::Verify, &g).unwrap().code, 0, "one zone: isolated");
        daemons.push((d, vx));
    }
    for (d, vx) in &daemons {
        wait_up(d, vx);
    }
    let logs = || daemons.iter().map(|(d, _)| d.log()).collect::<Vec<_>>().join("\n----\n");
    assert!(a1.ns.ping(&b1.ip, 3) && b1.ns.ping(&a1.ip, 3), "ping across the stretched zone\n{}", logs());
    let st = daemons[0].0.port(&daemons[0].1).statistics;
    assert!(st.rx_packets > 0 && st.tx_packets > 0, "{st:?}");
}

/// Debian's ovsdb-server + ovs-vswitchd (userspace `netdev` datapath, no kernel module) in a
/// namespace, started by hand as bench/run does. Dropping it stops both (ChildGuard).
struct OvsUserspace {
    dir: tempfile::TempDir,
    _db: testbed::ChildGuard,
    _vswitchd: testbed::ChildGuard,
}

impl OvsUserspace {
    fn start(ns: &Netns) -> OvsUserspace {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let env = [format!("OVS_RUNDIR={d}"), format!("OVS_LOGDIR={d}"), format!("OVS_DBDIR={d}")];
        let conf = format!("{d}/conf.db");
        testbed::run("ovsdb-tool", &["create", &conf, "/usr/share/openvswitch/vswitch.ovsschema"]).unwrap();
        let with_env = |args: &[&str]| -> Vec<String> {
            let mut v = vec!["env".to_string()];
            v.extend(env.iter().cloned());
            v.extend(args.iter().map(|s| s.to_string()));
            v
        };
        let spawn =
            |args: Vec<String>| ns.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        let (remote, log) =
            (format!("--remote=punix:{d}/db.sock"), format!("--log-file={d}/ovsdb-server.log"));
        let db = spawn(with_env(&["ovsdb-server", &conf, &remote, &log, "-vconsole:off"]));
        assert!(wait_until(Duration::from_secs(10), || dir.path().join("db.sock").exists()), "ovsdb-server");
        vsctl_at(dir.path(), &["--no-wait", "init"]);
        let (db_arg, log, ctl) = (
            format!("unix:{d}/db.sock"),
            format!("--log-file={d}/vswitchd.log"),
            format!("--unixctl={d}/vswitchd.ctl"),
        );
        let vswitchd =
            spawn(with_env(&["ovs-vswitchd", &db_arg, &ctl, &log, "--disable-system", "-vconsole:off"]));
        assert!(
            wait_until(Duration::from_secs(15), || dir.path().join("vswitchd.ctl").exists()),
            "ovs-vswitchd"
        );
        OvsUserspace { dir, _db: db, _vswitchd: vswitchd }
    }

    fn vsctl(&self, args: &[&str]) -> String {
        vsctl_at(self.dir.path(), args)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("vswitchd.log")).unwrap_or_default()
    }
}

/// ovs-vsctl against the database in `dir`.
fn vsctl_at(dir: &std::path::Path, args: &[&str]) -> String {
    let db = format!("--db=unix:{}/db.sock", dir.display());
    let mut all = vec![db.as_str(), "--timeout=20"];
    all.extend_from_slice(args);
    let log = || std::fs::read_to_string(dir.join("vswitchd.log")).unwrap_or_default();
    testbed::run("ovs-vsctl", &all).unwrap_or_else(|e| panic!("{e}\n{}", log()))
}

/// rvswitchd against Open vSwitch's own userspace VXLAN (native tunnelling: the underlay NIC
/// on a netdev bridge br-phy that holds host B's address, the vxlan port on br-int).
#[test]
fn rvswitch_vxlan_talks_to_ovs_userspace_vxlan() {
    if !require_root("rvswitch_vxlan_talks_to_ovs_userspace_vxlan")
        || !require_program("ovs interop", "ovs-vswitchd", "--version", "openvswitch-switch")
        || !require_program("ovs interop", "iperf3", "--version", "iperf3")
        || !require_program("ovs interop", "ethtool", "--version", "ethtool")
    {
        return;
    }
    let (a, b, _ul) = hosts("1600");
    let (a1, b1) = (Vm::new(&a, "a1", 1), Vm::new(&b, "b1", 2));
    // OvS's netdev datapath reads AF_PACKET without offload metadata: the VM must send frames
    // with complete checksums (a known limit of OvS userspace on veths).
    b1.ns.exec(&["ethtool", "-K", "eth0", "tx", "off"]).unwrap();
    let ovs = OvsUserspace::start(&b);
    ovs.vsctl(&["add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev"]);
    ovs.vsctl(&["add-port", "br-phy", "ul0"]);
    b.exec(&["ip", "addr", "flush", "dev", "ul0"]).unwrap();
    assert!(wait_until(Duration::from_secs(10), || b.exec(&["ip", "link", "show", "br-phy"]).is_ok()));
    b.addr_up("br-phy", &format!("{B_UNDERLAY}/24")).unwrap();
    ovs.vsctl(&["add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev"]);
    ovs.vsctl(&["add-port", "br-int", "b1"]);
    let remote = format!("options:remote_ip={A_UNDERLAY}");
    ovs.vsctl(&[
        "add-port",
        "br-int",
        "vx100",
        "--",
        "set",
        "Interface",
        "vx100",
        "type=vxlan",
        &remote,
        "options:key=100",
    ]);

    let d = daemon_in(&a, &[("a1", "tag = 10")]);
    add_vxlan(&d, "vx100", 100, 10);
    wait_up(&d, "a1");
    wait_up(&d, "vx100");
    // OvS resolves the next hop by ARP on br-phy first: allow a few pings for that.
    let reached = (0..5).any(|_| a1.ns.ping(&b1.ip, 2));
    assert!(reached && b1.ns.ping(&a1.ip, 3), "ping rvswitch <-> OvS\n{}\n{}", d.log(), ovs.log());
    for (client, server, ip) in [(&a1.ns, &b1.ns, &b1.ip), (&b1.ns, &a1.ns, &a1.ip)] {
        let bytes = iperf_tcp(client, server, ip).unwrap_or_else(|e| panic!("iperf3: {e}\n{}", ovs.log()));
        eprintln!("iperf3 TCP rvswitch/OvS VXLAN: {} Mbit/s", bytes * 8 / 2 / 1_000_000);
        assert!(bytes > 1 << 20, "only {bytes} bytes in 2 s");
    }
    let st = d.port("vx100").statistics;
    assert!(st.rx_packets > 0 && st.tx_packets > 0, "{st:?}");
}
