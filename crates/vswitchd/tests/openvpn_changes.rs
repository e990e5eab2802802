//! What the VPN client changes on its tun while the zone runs, against Debian's real OpenVPN
//! (the office's server and the host's client of `common::openvpn`): a new MTU (`ip link set
//! mtu`) is followed by the zone's fragmentation-needed errors and MSS clamp, and shown (the
//! port's Interface `mtu` as Debian's ovs-vsctl reads it, `rvsctl show`); a new address
//! (`ip addr`) by a NAT zone's new flows, the old address's translations dropped and counted.
//! And DNS for a tun zone: the zones file's `dhcp.dns` reaches a DHCP client in the VM, its
//! queries reach the office's resolver through the tunnel, and nowhere while the tun is gone.

mod common;

use std::process::Command;
use std::time::Duration;

use ctl::zones_cli::ZonesCommand;
use packet::{ipv4, tcp, EthernetHeader, ETHERTYPE_IPV4};
use testbed::{frame_capture_until, require_program, unique, wait_until, Netns, Veth};

use common::office::*;
use common::openvpn::*;
use common::wg_office::{dhcp_vm, udhcpc_script_recording_dns, zones_cmd};
use common::{bridge_config, rvsctl_show, wait_ports_up, Daemon};

/// A second address of the office LAN host: a destination the VM has no path-MTU for yet, so
/// the MSS its SYNs carry is its own 1460 and what the office sees is the gateway's clamp.
const OFFICE_HOST2: &str = "198.18.60.11";
/// The office's resolver, on the LAN host (dnsmasq), and the name it answers.
const OFFICE_DNS: &str = "198.18.60.53";
const OFFICE_NAME: &str = "intranet.office.test";

fn tools(test: &str) -> bool {
    have_tools(test) && require_program(test, "busybox", "--help", "busybox-static")
}

/// `ping` in `ns` with DF set and `size` bytes of ICMP data; its output whatever the exit.
fn df_ping(ns: &Netns, dst: &str, size: u32) -> String {
    let size = size.to_string();
    let args = ["netns", "exec", ns.name(), "ping", "-c", "1", "-W", "2", "-M", "do", "-s", &size, dst];
    let out = Command::new("ip").args(args).output().expect("ping");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The MSS option of the first SYN to `dst` port 9 that the office LAN host sees while the
/// VM tries to connect there (a closed port: the SYN is all we need).
fn office_sees_syn_mss(lan: &Netns, vm: &Netns, dst: &str) -> Option<u16> {
    let dst_ip: std::net::Ipv4Addr = dst.parse().unwrap();
    let mut cap = lan.open_port("eth0").expect("capture on the office LAN");
    std::thread::scope(|sc| {
        let frames = sc.spawn(|| frame_capture_until(&mut cap, Duration::from_secs(8), 1000, || false));
        std::thread::sleep(Duration::from_millis(300));
        for _ in 0..3 {
            let _ = vm.exec(&["busybox", "nc", "-w", "1", dst, "9"]);
        }
        frames.join().unwrap().iter().find_map(|f| syn_mss(f, dst_ip))
    })
}

fn syn_mss(frame: &[u8], dst: std::net::Ipv4Addr) -> Option<u16> {
    let eth = EthernetHeader::parse(frame).ok().filter(|e| e.ethertype == ETHERTYPE_IPV4)?;
    let ip = ipv4::Frame::new_checked(&frame[eth.payload_offset..]).ok()?;
    if ip.protocol() != ipv4::PROTO_TCP || ip.dst() != dst {
        return None;
    }
    let seg = tcp::Frame::new_checked(ip.payload()).ok()?;
    if seg.flags() & (tcp::SYN | tcp::ACK) != tcp::SYN || seg.dst_port() != 9 {
        return None;
    }
    let at = seg.mss_offset()?;
    let b = ip.payload().get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// NAT mode on the client's tun: the MTU and then the address change under the running zone.
#[test]
fn a_nat_zone_follows_the_tuns_new_mtu_and_new_address() {
    if !tools("a_nat_zone_follows_the_tuns_new_mtu_and_new_address") {
        return;
    }
    let (later, third) = (wan_addresses().0, wan_addresses().0);
    // Every part bound by name, so each lives as long as the test.
    let NatZone { office, files, _server, mut client, dev, ours, theirs, vm, _vm_link, d, port } =
        nat_zone(&[&later, &third]);
    office.lan.exec(&["ip", "addr", "add", &format!("{OFFICE_HOST2}/24"), "dev", "eth0"]).unwrap();
    // The MTU: OpenVPN's tun starts at 1500, so a 1400-byte DF ping passes; SYNs keep 1460
    // but for OpenVPN's own `--mssfix` (its default: ~1359 for this cipher), above 1260.
    let before = df_ping(&vm, OFFICE_HOST, 1372);
    assert!(before.contains(" 0% packet loss"), "a 1400-byte DF ping at MTU 1500: {before}");
    let unclamped = office_sees_syn_mss(&office.lan, &vm, OFFICE_HOST2);
    assert!(unclamped.is_some_and(|m| m > 1260), "at MTU 1500: {unclamped:?}");
    let mtu_of = |d: &Daemon| d.vsctl(&["get", "Interface", &port, "mtu"]).unwrap_or_else(|e| e);
    let at_open = wait_until(Duration::from_secs(10), || mtu_of(&d) == "1500");
    assert!(at_open, "Interface mtu at open: {:?}", mtu_of(&d));
    testbed::run("ip", &["link", "set", "dev", &dev, "mtu", "1300"]).expect("set the tun's MTU");
    let mut said = String::new();
    let frag_needed = wait_until(Duration::from_secs(10), || {
        said = df_ping(&vm, OFFICE_HOST, 1372);
        said.contains("Frag needed and DF set (mtu = 1300)")
    });
    assert!(frag_needed, "the gateway must answer with the new MTU: {said}\n{}", d.log());
    // Shown where users look: ovs-vsctl (the status write-back) and rvsctl show.
    let shown = format!("vpn: up  tun device: {dev}  mtu: 1300\n");
    let followed =
        wait_until(Duration::from_secs(10), || mtu_of(&d) == "1300" && rvsctl_show(&d).contains(&shown));
    assert!(
        followed,
        "ovs-vsctl get Interface {port} mtu: {:?}; rvsctl show:\n{}",
        mtu_of(&d),
        rvsctl_show(&d)
    );
    eprintln!("ovs-vsctl get Interface {port} mtu: {}; rvsctl show: {}", mtu_of(&d), shown.trim());
    eprintln!("tun MTU 1500 → 1300: a 1400-byte DF ping now gets: {}", said.lines().nth(1).unwrap_or(""));
    let clamped = office_sees_syn_mss(&office.lan, &vm, OFFICE_HOST2);
    assert_eq!(clamped, Some(1260), "the office sees the SYN clamped to the new MTU − 40");
    eprintln!("SYN MSS at the office: {unclamped:?} at MTU 1500 (OpenVPN's mssfix), {clamped:?} at 1300");
    assert!(vm.ping(OFFICE_HOST, 3), "small packets still pass");

    // The address: the client's tun now has `later`; the old one's mappings go.
    let readdressed = || vpn_status(&d, &port).services.get("nat-readdressed").copied().unwrap_or(0);
    let active = vpn_status(&d, &port).services.get("nat-active").copied().unwrap_or(0);
    assert!(active > 0, "the pings and SYNs hold translations: {:?}", vpn_status(&d, &port));
    testbed::run("ip", &["addr", "flush", "dev", &dev]).unwrap();
    testbed::run("ip", &["addr", "add", &later, "peer", &theirs, "dev", &dev]).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || readdressed() > 0),
        "no readdress: {:?}\n{}",
        vpn_status(&d, &port),
        d.log()
    );
    assert!(vm.ping(OFFICE_HOST, 3), "no traffic on the new address: {:?}", vpn_status(&d, &port));
    let (bps, peer) = iperf(&vm, &office.lan, OFFICE_HOST);
    eprintln!(
        "tun address {ours} → {later}: {} translations of the old one dropped; iperf3 {:.1} Mb/s as {peer}",
        readdressed(),
        bps / 1e6
    );
    assert_eq!(peer, later, "new flows leave as the tun's new address");
    assert!(bps > 0.0);

    // A reconnect with yet another address: the client's new tun (MTU 1500 again) is opened
    // afresh, and the zone follows both.
    client.kill();
    assert!(wait_until(Duration::from_secs(10), || !device_exists(&dev)), "tun outlived its client");
    let client_log = files.log("client.log");
    let _client = OpenVpn::client(
        &dev,
        &files.key,
        &office.office_wan,
        &files.up,
        &client_log,
        Some((&third, &theirs)),
    );
    let want = third.parse().ok();
    assert!(wait_until(Duration::from_secs(20), || netdev::ipv4_address(&dev).ok().flatten() == want));
    assert!(wait_vpn_state(&d, &port, "up", Duration::from_secs(20)), "{:?}\n{}", d.port(&port), d.log());
    let again =
        wait_until(Duration::from_secs(10), || df_ping(&vm, OFFICE_HOST2, 1372).contains(" 0% packet loss"));
    assert!(again, "MTU 1500 again after the reconnect: {}", df_ping(&vm, OFFICE_HOST2, 1372));
    assert!(wait_until(Duration::from_secs(10), || mtu_of(&d) == "1500"), "Interface mtu {:?}", mtu_of(&d));
    let (_, peer) = iperf(&vm, &office.lan, OFFICE_HOST);
    eprintln!("reconnected as {third}: the office sees {peer}; nat-readdressed {}", readdressed());
    assert_eq!(peer, third, "after a reconnect, new flows leave as the new tun's address");
}

/// dnsmasq on the office LAN host, answering [`OFFICE_NAME`] with the host's address; killed
/// (by PID) with the guard.
fn office_resolver(lan: &Netns, dir: &std::path::Path) -> testbed::ChildGuard {
    lan.exec(&["ip", "addr", "add", &format!("{OFFICE_DNS}/24"), "dev", "eth0"]).unwrap();
    let (pid, listen, answer) = (
        format!("--pid-file={}", dir.join("dnsmasq.pid").display()),
        format!("--listen-address={OFFICE_DNS}"),
        format!("--address=/{OFFICE_NAME}/{OFFICE_HOST}"),
    );
    let args = ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces"];
    let more = ["--port=53", "--conf-file=/dev/null", "--user=root", &pid, &listen, &answer];
    let guard = lan.spawn(&[&args[..], &more].concat()).expect("dnsmasq");
    let up = || {
        lan.exec(&["busybox", "nslookup", "-type=a", OFFICE_NAME, OFFICE_DNS])
            .is_ok_and(|o| o.contains(OFFICE_HOST))
    };
    assert!(wait_until(Duration::from_secs(10), up), "the office resolver does not answer");
    guard
}

/// A routed tun zone from a zones file: `dhcp = { range, dns }` is what the VM's DHCP client
/// is offered, and its DNS goes into the tunnel only.
#[test]
fn a_tun_zones_dhcp_offers_the_zones_file_dns_which_goes_only_into_the_tunnel() {
    let test = "a_tun_zones_dhcp_offers_the_zones_file_dns_which_goes_only_into_the_tunnel";
    if !tools(test) || !require_program(test, "dnsmasq", "--version", "dnsmasq-base") {
        return;
    }
    let office = office();
    let files = files();
    let _resolver = office_resolver(&office.lan, files.dir.path());
    let server_log = files.log("server.log");
    let _server = OpenVpn::server(&office.office, &files.key, &server_log, (SERVER_TUN_IP, CLIENT_TUN_IP));
    let dev = unique("tun");
    let client_log = files.log("client.log");
    let mut client = OpenVpn::client(&dev, &files.key, &office.office_wan, &files.up, &client_log, None);
    assert!(wait_until(Duration::from_secs(20), || device_up(&dev)), "client tun not up\n{}", files.logs());

    let mac = "52:54:00:50:00:31";
    let (vm, _vm_link, vm_port) = dhcp_vm(mac);
    let other = Netns::new("inet").expect("other zone netns");
    let other_port = unique("q");
    let _other_link = Veth::to_ns(&other_port, &other, "eth0", Some("198.18.70.2/24"), None).unwrap();
    let (zone, bridge, other_bridge) = (unique("z"), unique("brt"), unique("brx"));
    // The range is the one address VM_IP, so the leak captures know the VM's address.
    let zones = format!(
        "[[zone]]\nname = \"{zone}\"\nbridge = \"{bridge}\"\nuplink = {{ tun = \"{dev}\" }}\n\
         subnet = \"{ZONE_SUBNET}\"\ngateway = \"{GATEWAY}\"\n\
         dhcp = {{ range = [\"{VM_IP}\", \"{VM_IP}\"], dns = [\"{OFFICE_DNS}\"] }}\n\
         [[zone.portgroup]]\nname = \"vlan-10\"\nvlan = 10\ndefault = true\n"
    );
    let file = files.dir.path().join("zones.toml");
    std::fs::write(&file, zones).unwrap();
    let d = Daemon::start(&bridge_config(&other_bridge, &[(&other_port, "tag = 20")]));
    let db = format!("unix:{}", d.db_socket().display());
    let applied = zones_cmd(&db, ZonesCommand::Apply { file: file.clone(), no_wait: false });
    assert_eq!(applied.code, 0, "{}", applied.stdout);
    d.vsctl(&["add-port", &bridge, &vm_port, "tag=10"]).expect("VM port");
    wait_ports_up(&d, &[&vm_port, &other_port]);
    let gw = zones::vpn_port_name(&zone);
    let (opts, _) = d.vsctl_output(&["get", "Interface", &gw, "options:dhcp_dns"]).unwrap();
    assert_eq!(opts.trim().trim_matches('"'), OFFICE_DNS, "the zones file's dns reaches the port");
    assert!(wait_vpn_state(&d, &gw, "up", Duration::from_secs(20)), "{:?}\n{}", d.port(&gw), d.log());

    let (script, offered) = udhcpc_script_recording_dns(files.dir.path());
    let lease =
        vm.exec(&["busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "10", "-T", "1", "-s", &script]);
    assert!(lease.is_ok(), "no lease: {lease:?}\n{:?}\n{}", d.port(&gw), d.log());
    let offered = std::fs::read_to_string(offered).unwrap_or_default();
    eprintln!("udhcpc in the VM was offered DNS {offered:?}");
    assert_eq!(offered.trim(), OFFICE_DNS, "DHCP option 6 is the zones file's dns");
    let answer = vm.exec(&["busybox", "nslookup", "-type=a", OFFICE_NAME, OFFICE_DNS]).unwrap_or_default();
    assert!(answer.contains(OFFICE_HOST), "the office resolver through the tunnel: {answer}");

    // The tun gone: the VM keeps asking; none of it appears anywhere, all of it is vpn-down.
    client.kill();
    assert!(wait_until(Duration::from_secs(10), || !device_exists(&dev)), "tun outlived its client");
    assert!(wait_vpn_state(&d, &gw, "down", Duration::from_secs(30)), "{:?}", d.port(&gw));
    let before = vpn_down_drops(&d, &gw);
    let caught = std::thread::scope(|sc| {
        let asking = sc.spawn(|| {
            let mut answered = 0;
            for _ in 0..5 {
                let q = ["timeout", "1", "busybox", "nslookup", "-type=a", OFFICE_NAME, OFFICE_DNS];
                answered += usize::from(vm.exec(&q).is_ok_and(|o| o.contains(OFFICE_HOST)));
            }
            answered
        });
        let caught = capture_leaks(&office, &bridge, &other, Duration::from_secs(6));
        (caught, asking.join().unwrap())
    });
    let (caught, answered) = caught;
    caught.assert_no_zone_packets();
    let after = vpn_down_drops(&d, &gw);
    eprintln!(
        "DNS with the tun gone: {answered} of 5 queries answered; {} / {} / {} frames on the WAN link, host leg, other zone, none of the zone's; vpn-down {before} → {after}",
        caught.wan.len(),
        caught.host_leg.len(),
        caught.other_zone.len()
    );
    assert_eq!(answered, 0, "no answer without the tunnel");
    assert!(after > before, "the queries are vpn-down drops: {before} → {after}");
}
