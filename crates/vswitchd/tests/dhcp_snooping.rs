//! Legitimate life under port security (issue 9): Debian's dnsmasq behind a trunk port leases an
//! address to a libvirt-style VM port through DHCP snooping; the VM then pings and runs iperf3
//! TCP, and takes over a VIP listed in `other_config:allowed-ips` with a gratuitous ARP. The
//! lease is a binding: before it, a frame from an unowned source passes (the port is
//! unbound); after it, the same frame is dropped as `spoofed-ip`. The same for IPv6: dnsmasq's
//! stateful DHCPv6 leases an address to ISC dhclient through DHCPv6 snooping.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use common::{bridge_config, have_ovs_vsctl, wait_ports_up, Daemon, Vm};
use ctl::protocol::{BindingSource, PortSecurityEntry};
use testbed::frames::{eth, udp4, udp6};
use testbed::{require_program, require_root, send_frame, unique, wait_until, ChildGuard};

const SERVER_IP: &str = "198.18.0.254";
/// The server's port: a trunk carrying VLAN 10 untagged and 20 tagged. Untagged because this
/// CI kernel has no 802.1Q devices (no `8021q` module) for the server namespace to tag with;
/// the tagged path of snooping is covered by the leak hunt's injected DHCPACK.
const TRUNK: &str = "vlan_mode = \"native-untagged\"\ntag = 10\ntrunks = [10, 20]";

/// udhcpc's event script: configure the leased address (busybox passes $ip and $mask).
const UDHCPC_SCRIPT: &str = "#!/bin/sh\ncase \"$1\" in bound|renew) ip addr flush dev \"$interface\"; \
ip addr add \"$ip/$mask\" dev \"$interface\" ;; esac\n";

/// dhclient's event script: configure the leased IPv6 address (dhclient passes $reason and
/// $new_ip6_address). /64 makes the server's subnet on-link without a router advertisement;
/// no DAD, since the snooped lease is what the test is about.
const DHCLIENT_SCRIPT: &str = "#!/bin/sh\ncase \"$reason\" in BOUND6|RENEW6|REBIND6|REBOOT6) \
ip -6 addr replace \"$new_ip6_address/64\" dev \"$interface\" nodad ;; esac\nexit 0\n";

fn spoofed_ip_drops(d: &Daemon, port: &str) -> u64 {
    d.port(port).statistics.drops.get("spoofed-ip").copied().unwrap_or(0)
}

/// `probe` injected on `port`'s VM is dropped as `spoofed-ip`.
fn assert_refused(d: &Daemon, port: &str, raw: &mut netdev::SystemPort, probe: &[u8]) {
    let before = spoofed_ip_drops(d, port);
    send_frame(raw, probe).expect("inject");
    assert!(
        wait_until(Duration::from_secs(2), || spoofed_ip_drops(d, port) > before),
        "after the lease the probe's source must be refused: {:?}",
        d.port(port).statistics
    );
}

/// An executable file `name` in `dir` holding `text`; its path.
fn script(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// Debian's dnsmasq as the DHCP server on the server VM's eth0, serving `range`; no DNS, no
/// lease file, stopped with its guard.
fn dnsmasq(server: &Vm, dir: &Path, range: &str) -> ChildGuard {
    let pid_file = dir.join("dnsmasq.pid");
    server
        .ns
        .spawn(&[
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--interface=eth0",
            "--except-interface=lo",
            "--user=root",
            "--leasefile-ro",
            &format!("--dhcp-range={range}"),
            &format!("--pid-file={}", pid_file.display()),
        ])
        .expect("start dnsmasq")
}

/// `port`'s entry in `rvsctl security show`.
fn security_entry(d: &Daemon, port: &str) -> PortSecurityEntry {
    let sec = d.security(None);
    sec.bridges.iter().flat_map(|b| &b.ports).find(|p| p.port == port).expect("port listed").clone()
}

#[test]
fn dnsmasq_leases_through_snooping_then_ping_and_iperf3() {
    if !require_root("dnsmasq_leases_through_snooping")
        || !have_ovs_vsctl()
        || !require_program("dnsmasq_leases_through_snooping", "dnsmasq", "--version", "dnsmasq-base")
        || !require_program("dnsmasq_leases_through_snooping", "busybox", "--help", "busybox-static")
        || !require_program("dnsmasq_leases_through_snooping", "iperf3", "--version", "iperf3")
    {
        return;
    }
    let (a, s) = (Vm::new(100), Vm::new(254));
    let d = Daemon::start(&bridge_config(&unique("br-dh"), &[(&a.port, "tag = 10"), (&s.port, TRUNK)]));
    wait_ports_up(&d, &[&a.port, &s.port]);
    d.vsctl(&["set", "Interface", &a.port, &format!("external_ids:attached-mac={}", a.mac)]).expect("vsctl");
    a.ns.exec(&["ip", "addr", "flush", "dev", "eth0"]).expect("flush");

    // Unbound: a source nobody owns passes.
    let probe = udp4(
        eth(s.mac, a.mac, None),
        Ipv4Addr::new(198, 18, 0, 77),
        Ipv4Addr::new(198, 18, 0, 254),
        (40000, 9),
        b"x",
    );
    let mut raw = a.raw();
    let before = spoofed_ip_drops(&d, &a.port);
    send_frame(&mut raw, &probe).expect("inject");
    assert!(wait_until(Duration::from_secs(2), || d.port(&a.port).statistics.rx_packets > 0));
    assert_eq!(spoofed_ip_drops(&d, &a.port), before, "an unbound port's sources are not checked");

    let dir = d.dir.join("dhcp");
    std::fs::create_dir_all(&dir).unwrap();
    let _dnsmasq = dnsmasq(&s, &dir, "198.18.0.100,198.18.0.110,255.255.255.0,600");
    let script = script(&dir, "udhcpc.sh", UDHCPC_SCRIPT);
    let out = a
        .ns
        .exec(&["busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "10", "-T", "1", "-s", &script]);
    assert!(out.is_ok(), "no lease: {out:?}\n{}", d.log());
    let addrs = a.ns.exec(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).unwrap();
    let leased = addrs.split_whitespace().skip_while(|w| *w != "inet").nth(1).unwrap_or_default().to_string();
    println!("leased {leased}");
    assert!(leased.starts_with("198.18.0.1"), "{addrs}");

    assert!(a.ns.ping(SERVER_IP, 3), "the leased VM cannot ping the server; log:\n{}", d.log());
    let _server = s.ns.spawn(&["iperf3", "-s", "-1", "-B", SERVER_IP]).expect("iperf3 -s");
    let ok = wait_until(Duration::from_secs(10), || {
        a.ns.exec(&["iperf3", "-c", SERVER_IP, "-t", "2", "-4"]).inspect(|o| println!("{o}")).is_ok()
    });
    assert!(ok, "iperf3 TCP failed; log:\n{}", d.log());

    // A keepalived-style VIP: refused while not allowed, usable once allowed-ips lists it.
    a.ns.exec(&["ip", "addr", "add", "198.18.0.50/24", "dev", "eth0"]).expect("vip");
    assert!(!s.ns.ping("198.18.0.50", 1), "a VIP the port may not use must not answer");
    d.vsctl(&["set", "Interface", &a.port, "other_config:allowed-ips=198.18.0.50"]).expect("allowed-ips");
    let garp =
        a.ns.exec(&["busybox", "arping", "-U", "-c", "1", "-I", "eth0", "-s", "198.18.0.50", "198.18.0.50"]);
    assert!(garp.is_ok(), "{garp:?}");
    assert!(s.ns.ping("198.18.0.50", 2), "the allowed VIP must answer; log:\n{}", d.log());

    // `rvsctl security show`: the VIP as a static binding, the lease as a dhcp one with time left.
    let entry = security_entry(&d, &a.port);
    let ip = leased.split('/').next().unwrap_or_default();
    let has = |addr: &str, source| entry.bindings.iter().any(|b| b.address == addr && b.source == source);
    assert!(has("198.18.0.50/32", BindingSource::Static), "{entry:?}");
    assert!(has(&format!("{ip}/32"), BindingSource::Dhcp), "{entry:?}");
    assert!(
        entry.bindings.iter().any(|b| b.source == BindingSource::Dhcp && b.expires_in.is_some()),
        "{entry:?}"
    );
    assert_eq!(entry.mode, "on");

    // Bound by the snooped lease: the same unowned source is now a spoof.
    assert_refused(&d, &a.port, &mut raw, &probe);
}

const SERVER_IP6: &str = "2001:db8:5::1";

/// A VM's global IPv6 addresses on eth0, with their prefix lengths cut off.
fn global_v6(vm: &Vm) -> Vec<String> {
    let out =
        vm.ns.exec(&["ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global"]).unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet6").nth(1))
        .filter_map(|a| a.split('/').next().map(str::to_string))
        .collect()
}

/// The VM's link-local address has passed DAD (dhclient sends from it).
fn link_local_ready(vm: &Vm) -> bool {
    let out =
        vm.ns.exec(&["ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"]).unwrap_or_default();
    out.contains("fe80::") && !out.contains("tentative")
}

#[test]
fn dnsmasq_leases_v6_through_snooping_then_ping6() {
    let test = "dnsmasq_leases_v6_through_snooping";
    if !require_root(test)
        || !have_ovs_vsctl()
        || !require_program(test, "dnsmasq", "--version", "dnsmasq-base")
        || !require_program(test, "dhclient", "--version", "isc-dhcp-client")
    {
        return;
    }
    let (a, s) = (Vm::new(101), Vm::new(253));
    let d = Daemon::start(&bridge_config(&unique("br-d6"), &[(&a.port, "tag = 10"), (&s.port, TRUNK)]));
    wait_ports_up(&d, &[&a.port, &s.port]);
    d.vsctl(&["set", "Interface", &a.port, &format!("external_ids:attached-mac={}", a.mac)]).expect("vsctl");
    for vm in [&a, &s] {
        vm.ns.enable_ipv6().expect("ipv6 on");
    }
    s.ns.exec(&["ip", "-6", "addr", "add", &format!("{SERVER_IP6}/64"), "dev", "eth0", "nodad"])
        .expect("addr");
    assert!(wait_until(Duration::from_secs(10), || link_local_ready(&a)), "no link-local on A");

    // Unbound: an IPv6 source nobody owns passes.
    let spoof: Ipv6Addr = "2001:db8:5::77".parse().unwrap();
    let probe = udp6(eth(s.mac, a.mac, None), spoof, SERVER_IP6.parse().unwrap(), (40000, 9));
    let mut raw = a.raw();
    let (before, rx) = (spoofed_ip_drops(&d, &a.port), d.port(&a.port).statistics.rx_packets);
    send_frame(&mut raw, &probe).expect("inject");
    assert!(wait_until(Duration::from_secs(2), || d.port(&a.port).statistics.rx_packets > rx));
    assert_eq!(spoofed_ip_drops(&d, &a.port), before, "an unbound port's IPv6 sources are not checked");

    let dir = d.dir.join("dhcp6");
    std::fs::create_dir_all(&dir).unwrap();
    let _dnsmasq = dnsmasq(&s, &dir, "2001:db8:5::100,2001:db8:5::1ff,64,600");
    let conf = script(&dir, "dhclient.conf", "");
    let script = script(&dir, "dhclient.sh", DHCLIENT_SCRIPT);
    let (lease_file, pid_file) = (dir.join("dhclient6.leases"), dir.join("dhclient6.pid"));
    let _dhclient =
        a.ns.spawn(&[
            "dhclient",
            "-6",
            "-d",
            "-v",
            "-cf",
            &conf,
            "-lf",
            &lease_file.display().to_string(),
            "-pf",
            &pid_file.display().to_string(),
            "-sf",
            &script,
            "eth0",
        ])
        .expect("start dhclient");
    assert!(
        wait_until(Duration::from_secs(30), || !global_v6(&a).is_empty()),
        "no DHCPv6 lease; log:\n{}",
        d.log()
    );
    let leased = global_v6(&a).remove(0);
    println!("leased {leased}");
    assert!(leased.starts_with("2001:db8:5::1"), "{leased}");

    // `rvsctl security show`: the snooped lease as a dhcp binding with time left.
    let entry = security_entry(&d, &a.port);
    let bound = entry.bindings.iter().find(|b| b.address == format!("{leased}/128"));
    assert!(bound.is_some_and(|b| b.source == BindingSource::Dhcp && b.expires_in.is_some()), "{entry:?}");

    assert!(a.ns.ping(SERVER_IP6, 3), "the leased VM cannot ping6 the server; log:\n{}", d.log());

    // Bound by the snooped lease: the same unowned IPv6 source is now a spoof.
    assert_refused(&d, &a.port, &mut raw, &probe);
}
