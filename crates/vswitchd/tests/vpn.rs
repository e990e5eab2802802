//! A zone's VPN egress through rvswitch's built-in WireGuard, against Debian's real
//! wireguard-go + wg as the office server: an intranet VM reaches an office LAN host with its
//! own address (routed mode), the kill switch holds while the server is gone (nothing of the
//! zone appears anywhere else; drops counted `vpn-down`) and traffic resumes when it returns;
//! garbage at the WireGuard port is counted, not fatal; a readable key file is refused.

mod common;

use std::io::Write;
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{bridge_config, wait_ports_up, Daemon};
use ctl::protocol::{BindingSource, VpnStatus};
use packet::{ipv4, EthernetHeader, ETHERTYPE_IPV4};
use testbed::{frame_capture, require_program, require_root, unique, wait_until, BackgroundPing, ChildGuard};
use testbed::{Netns, Veth};

const ZONE_SUBNET: &str = "198.18.50.0/24";
const GATEWAY: &str = "198.18.50.1";
const VM_IP: &str = "198.18.50.2";
const OFFICE_HOST: &str = "198.18.60.10";
const OFFICE_PORT: u16 = 51820;
/// The tunnel address the office gives a NAT-mode zone (outside the zone subnet).
const NAT_ADDRESS: &str = "198.18.51.2";
const NAT_NET: &str = "198.18.51.0/24";

fn have_tools(test: &str) -> bool {
    require_root(test)
        && require_program(test, "wireguard-go", "--version", "wireguard-go")
        && require_program(test, "wg", "--version", "wireguard-tools")
        && require_program(test, "iperf3", "--version", "iperf3")
        && common::have_ovs_vsctl()
}

/// A WireGuard key pair from `wg genkey` / `wg pubkey`.
fn keypair() -> (String, String) {
    let private = Command::new("wg").arg("genkey").output().expect("wg genkey");
    let private = String::from_utf8(private.stdout).unwrap().trim().to_string();
    let mut child = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("wg pubkey");
    child.stdin.take().unwrap().write_all(private.as_bytes()).unwrap();
    let public = child.wait_with_output().expect("wg pubkey output");
    (private, String::from_utf8(public.stdout).unwrap().trim().to_string())
}

/// A UDP port free on the host right now (for our ListenPort, so the test can aim at it).
fn free_udp_port() -> u16 {
    UdpSocket::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

/// The office's WireGuard server: wireguard-go in the office namespace, configured by `wg
/// setconf`, routing the zone subnet to its peer (us). Drop kills it and removes its socket.
struct OfficeServer<'a> {
    ns: &'a Netns,
    ifname: String,
    conf: PathBuf,
    child: Option<ChildGuard>,
}

impl<'a> OfficeServer<'a> {
    fn start(ns: &'a Netns, conf: PathBuf) -> OfficeServer<'a> {
        let mut s = OfficeServer { ns, ifname: unique("wg"), conf, child: None };
        s.launch();
        s
    }

    fn socket(&self) -> PathBuf {
        Path::new("/var/run/wireguard").join(format!("{}.sock", self.ifname))
    }

    fn launch(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let child = self
            .ns
            .spawn(&[
                "env",
                "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1",
                "wireguard-go",
                "-f",
                &self.ifname,
            ])
            .expect("wireguard-go");
        self.child = Some(child);
        let sock = self.socket();
        assert!(wait_until(Duration::from_secs(10), || sock.exists()), "wireguard-go made no control socket");
        let conf = self.conf.display().to_string();
        self.ns.exec(&["wg", "setconf", &self.ifname, &conf]).expect("wg setconf");
        self.ns.exec(&["ip", "link", "set", &self.ifname, "up"]).expect("wg up");
        self.ns.exec(&["ip", "route", "add", ZONE_SUBNET, "dev", &self.ifname]).expect("route to the zone");
        self.ns
            .exec(&["ip", "route", "add", NAT_NET, "dev", &self.ifname])
            .expect("route to the NAT address");
    }

    /// Stops the server (by PID) as a crashed VPN server would: no goodbye to the peer.
    fn kill(&mut self) {
        self.child = None;
        let _ = std::fs::remove_file(self.socket());
    }
}

impl Drop for OfficeServer<'_> {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The WAN link's /30 in the root namespace (the only addresses this test puts there): one per
/// test and process, from 198.19.128.0/17, so parallel tests and runs do not share a route.
fn wan_addresses() -> (String, String) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = std::process::id()
        .wrapping_mul(7)
        .wrapping_add(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let slot = n % 8192; // 8192 /30s in a /17
    let base = (198u32 << 24) | (19 << 16) | (128 << 8) | (slot * 4);
    let ip = |k: u32| std::net::Ipv4Addr::from(base + k).to_string();
    (ip(1), ip(2))
}

/// The office (WAN side toward the host, LAN side toward the office host) and its LAN host.
struct Office {
    office: Netns,
    lan: Netns,
    _wan: Veth,
    _lan_link: Veth,
    /// The host's and the office's WAN addresses.
    host_wan: String,
    office_wan: String,
}

fn office() -> Office {
    let office = Netns::new("off").expect("office netns");
    let lan = Netns::new("lan").expect("lan netns");
    let wan_if = unique("wan");
    let (host_wan, office_wan) = wan_addresses();
    let wan = Veth::to_ns(&wan_if, &office, "wan0", Some(&format!("{office_wan}/30")), None).expect("wan");
    testbed::run("ip", &["addr", "add", &format!("{host_wan}/30"), "dev", &wan_if])
        .expect("host wan address");
    let lan_link = Veth::between(&office, "lan0", &lan, "eth0").expect("lan link");
    office.exec(&["ip", "addr", "add", "198.18.60.1/24", "dev", "lan0"]).unwrap();
    lan.exec(&["ip", "addr", "add", &format!("{OFFICE_HOST}/24"), "dev", "eth0"]).unwrap();
    lan.exec(&["ip", "route", "add", "default", "via", "198.18.60.1"]).unwrap();
    office.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]).unwrap();
    Office { office, lan, _wan: wan, _lan_link: lan_link, host_wan, office_wan }
}

/// Writes `text` to `dir/name` with `mode`.
fn write_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// The intranet VM: a namespace on an access port of the zone's VLAN, default route via the
/// zone gateway, MTU 1500 as a VM has it (the gateway clamps TCP's MSS to the tunnel's 1420 and
/// answers bigger DF packets with fragmentation-needed). Offloads stay on: its TCP sends
/// super-frames with partial checksums, which the gateway port segments and completes.
fn intranet_vm() -> (Netns, Veth, String) {
    let ns = Netns::new("vm").expect("vm netns");
    let port = unique("p");
    let veth = Veth::to_ns(&port, &ns, "eth0", Some(&format!("{VM_IP}/24")), None).expect("vm veth");
    ns.exec(&["ip", "route", "add", "default", "via", GATEWAY]).unwrap();
    (ns, veth, port)
}

fn vpn_status(d: &Daemon, port: &str) -> VpnStatus {
    d.port(port).vpn.unwrap_or_default()
}

fn wait_vpn_state(d: &Daemon, port: &str, state: &str, limit: Duration) -> bool {
    wait_until(limit, || vpn_status(d, port).state == state)
}

/// Frames that carry the intranet VM's address in the clear (as IPv4 source or destination).
fn intranet_packets(frames: &[Vec<u8>]) -> usize {
    let vm: std::net::Ipv4Addr = VM_IP.parse().unwrap();
    frames
        .iter()
        .filter(|f| {
            let Ok(h) = EthernetHeader::parse(f) else { return false };
            let ip = f.get(h.payload_offset..).and_then(|b| ipv4::Frame::new_checked(b).ok());
            h.ethertype == ETHERTYPE_IPV4 && ip.is_some_and(|ip| ip.src() == vm || ip.dst() == vm)
        })
        .count()
}

/// WireGuard messages to the office, by type: 1 handshake initiation, 4 data (only those
/// longer than a 32-byte keepalive, i.e. encrypted zone traffic).
fn wireguard_to_office(frames: &[Vec<u8>], kind: u8) -> usize {
    frames
        .iter()
        .filter(|f| {
            let Ok(h) = EthernetHeader::parse(f) else { return false };
            let Some(ip) = f.get(h.payload_offset..).and_then(|b| ipv4::Frame::new_checked(b).ok()) else {
                return false;
            };
            let udp = ip.payload();
            ip.protocol() == ipv4::PROTO_UDP
                && udp.len() > 8
                && u16::from_be_bytes([udp[2], udp[3]]) == OFFICE_PORT
                && udp[8] == kind
                && (kind != 4 || udp.len() > 8 + 32)
        })
        .count()
}

struct Setup {
    office: Office,
    /// Holds the key files until the test ends.
    _dir: tempfile::TempDir,
    server_conf: PathBuf,
    our_conf: PathBuf,
    listen_port: u16,
}

/// Keys, the office server's `wg setconf` file and our wg-quick file (0600), whose Address is
/// the VM's own (routed mode).
fn setup() -> Setup {
    setup_with(VM_IP)
}

/// The same with [Interface] Address `address` (NAT mode's tunnel address).
fn setup_with(address: &str) -> Setup {
    let office = office();
    let dir = tempfile::tempdir().unwrap();
    let (office_priv, office_pub) = keypair();
    let (our_priv, our_pub) = keypair();
    let server = format!(
        "[Interface]\nPrivateKey = {office_priv}\nListenPort = {OFFICE_PORT}\n\n\
         [Peer]\nPublicKey = {our_pub}\nAllowedIPs = {ZONE_SUBNET}, {NAT_NET}\n"
    );
    let server_conf = write_file(dir.path(), "server.conf", &server, 0o600);
    let listen_port = free_udp_port();
    let ours = format!(
        "[Interface]\nPrivateKey = {our_priv}\nAddress = {address}/32\nListenPort = {listen_port}\n\
         DNS = 198.18.60.53\nMTU = 1420\n\n[Peer]\nPublicKey = {office_pub}\n\
         Endpoint = {}:{OFFICE_PORT}\nAllowedIPs = 198.18.60.0/24\nPersistentKeepalive = 25\n",
        office.office_wan
    );
    let our_conf = write_file(dir.path(), "office.conf", &ours, 0o600);
    Setup { office, _dir: dir, server_conf, our_conf, listen_port }
}

/// Adds the zone's gateway port to `bridge` on VLAN 10 through ovs-vsctl, with `extra`
/// Interface columns (e.g. `options:dhcp_range=...`).
fn add_vpn_port(d: &Daemon, bridge: &str, port: &str, conf: &Path) -> Result<(String, String), String> {
    add_vpn_port_with(d, bridge, port, conf, &[])
}

fn add_vpn_port_with(
    d: &Daemon,
    bridge: &str,
    port: &str,
    conf: &Path,
    extra: &[&str],
) -> Result<(String, String), String> {
    let wg = format!("options:wireguard={}", conf.display());
    let subnet = format!("options:subnet={ZONE_SUBNET}");
    let gw = format!("options:gateway={GATEWAY}");
    let mut args =
        vec!["add-port", bridge, port, "tag=10", "--", "set", "Interface", port, "type=rvswitch-vpn", &wg];
    args.extend([subnet.as_str(), gw.as_str()]);
    args.extend(extra);
    d.vsctl_output(&args)
}

/// iperf3 TCP from the VM to the office host; the server's JSON says whom it accepted.
fn iperf(vm: &Netns, lan: &Netns) -> (f64, String) {
    let mut server = lan.spawn(&["iperf3", "-s", "-1", "-J", "-B", OFFICE_HOST]).expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(500));
    let out = vm.exec(&["iperf3", "-c", OFFICE_HOST, "-t", "3", "-J"]).expect("iperf3 client");
    let client: serde_json::Value = serde_json::from_str(&out).expect("iperf3 client JSON");
    let mut text = String::new();
    if let Some(mut s) = server.child_mut().stdout.take() {
        use std::io::Read;
        let _ = s.read_to_string(&mut text);
    }
    let served: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let bps = client["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0);
    let peer = served["start"]["accepted_connection"]["host"].as_str().unwrap_or("").to_string();
    (bps, peer)
}

/// The kill switch with the server gone and the VM still pinging: `vpn-down` drops grow, and
/// captures on the WAN wire, the bridge's internal port (the host stack's leg) and another zone
/// show nothing of the zone (no clear-text packet, no tunnel data).
fn check_kill_switch(d: &Daemon, vpn_port: &str, s: &Setup, bridge: &str, other: &Netns) {
    assert!(wait_vpn_state(d, vpn_port, "down", Duration::from_secs(40)), "{:?}", d.port(vpn_port));
    let down_before = vpn_status(d, vpn_port).drops.get("vpn-down").copied().unwrap_or(0);
    // What leaves the host on the WAN link, seen from the office's end of the wire.
    let mut wan = s.office.office.open_port("wan0").expect("capture on the WAN link");
    let mut host_leg = netdev::SystemPort::open(bridge).expect("capture on the bridge's internal port");
    let mut other_zone = other.open_port("eth0").expect("capture in the other zone");
    let caught = std::thread::scope(|sc| {
        let a = sc.spawn(|| frame_capture(&mut wan, Duration::from_secs(8), 10_000));
        let b = sc.spawn(|| frame_capture(&mut host_leg, Duration::from_secs(8), 10_000));
        let c = frame_capture(&mut other_zone, Duration::from_secs(8), 10_000);
        (a.join().unwrap(), b.join().unwrap(), c)
    });
    let down_after = vpn_status(d, vpn_port).drops.get("vpn-down").copied().unwrap_or(0);
    let (wan_f, host_f, other_f) = caught;
    assert_eq!(intranet_packets(&wan_f), 0, "intranet packets in the clear on the host's WAN link");
    assert_eq!(wireguard_to_office(&wan_f, 4), 0, "zone data went into a tunnel that is down");
    // The capture works: it saw our handshake retries (one every 5 s while down).
    assert!(
        wireguard_to_office(&wan_f, 1) >= 1,
        "no handshake initiation seen in {} WAN frames",
        wan_f.len()
    );
    assert_eq!(intranet_packets(&host_f), 0, "intranet packets reached the host stack");
    assert_eq!(intranet_packets(&other_f), 0, "intranet packets reached another zone");
    assert!(
        down_after > down_before,
        "ping ran on, so vpn-down drops must grow: {down_before} → {down_after}"
    );
    eprintln!(
        "kill switch: {} frames on the WAN link, {} on the host's leg, {} in the other zone, none of the zone's; vpn-down drops {down_before} → {down_after}",
        wan_f.len(),
        host_f.len(),
        other_f.len()
    );
}

/// `rvsctl events` told the tunnel's life: up, down (the server died), up again, each with
/// the peer's endpoint.
fn check_vpn_events(d: &Daemon, vpn_port: &str, endpoint: &str) {
    use ctl::protocol::{EventKind, EventsReply, Request};
    let kinds = || {
        let req = Request::Events { from: 0, wait_ms: 0 };
        let r: EventsReply = ctl::client::call(&d.socket, &req, Duration::from_secs(5)).expect("events");
        let vpn = r.events.into_iter().filter(|e| e.port == vpn_port);
        vpn.filter_map(|e| match e.kind {
            EventKind::VpnUp { endpoint } => Some(("vpn-up", endpoint)),
            EventKind::VpnDown { endpoint } => Some(("vpn-down", endpoint)),
            _ => None,
        })
        .collect::<Vec<_>>()
    };
    let want: Vec<_> = ["vpn-up", "vpn-down", "vpn-up"].map(|k| (k, endpoint.to_string())).into();
    assert!(wait_until(Duration::from_secs(10), || kinds() == want), "VPN events: {:?}", kinds());
}

/// Garbage and truncated WireGuard messages at our port, from the office: counted as bad
/// datagrams, dropped; the daemon goes on.
fn send_garbage(d: &Daemon, vpn_port: &str, s: &Setup) {
    let bad_before = vpn_status(d, vpn_port).bad_datagrams;
    let target = format!("{}:{}", s.office.host_wan, s.listen_port);
    s.office
        .office
        .run_in(|| {
            let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
            let mut sent = 0;
            for i in 0..100u8 {
                let garbage: Vec<u8> = match i % 4 {
                    0 => vec![i; usize::from(i) + 1],              // random-looking bytes
                    1 => [&[1u8, 0, 0, 0][..], &[i; 40]].concat(), // truncated handshake initiation
                    2 => [&[4u8, 0, 0, 0][..], &[i; 60]].concat(), // data for an unknown session
                    _ => vec![2, 0, 0, 0, i],                      // runt handshake response
                };
                sent += usize::from(sock.send_to(&garbage, &target).is_ok());
            }
            sent
        })
        .expect("send garbage");
    assert!(
        wait_until(Duration::from_secs(10), || vpn_status(d, vpn_port).bad_datagrams >= bad_before + 100),
        "garbage not counted: {:?}",
        vpn_status(d, vpn_port)
    );
}

#[test]
fn intranet_vm_reaches_the_office_and_the_kill_switch_holds() {
    if !have_tools("intranet_vm_reaches_the_office_and_the_kill_switch_holds") {
        return;
    }
    let s = setup();
    let mut server = OfficeServer::start(&s.office.office, s.server_conf.clone());
    let (vm, _vm_link, vm_port) = intranet_vm();
    // Another zone on its own bridge, to show nothing of the intranet reaches it.
    let other = Netns::new("inet").expect("other zone netns");
    let other_port = unique("q");
    let _other_link = Veth::to_ns(&other_port, &other, "eth0", Some("198.18.70.2/24"), None).unwrap();
    let (bridge, other_bridge) = (unique("bri"), unique("brx"));
    let config = format!(
        "{}{}",
        bridge_config(&bridge, &[(&vm_port, "tag = 10")]),
        bridge_config(&other_bridge, &[(&other_port, "tag = 20")])
    );
    let d = Daemon::start(&config);
    let vpn_port = unique("vpn");
    add_vpn_port(&d, &bridge, &vpn_port, &s.our_conf).expect("add the VPN port");
    wait_ports_up(&d, &[&vm_port, &other_port]);
    assert!(
        wait_vpn_state(&d, &vpn_port, "up", Duration::from_secs(20)),
        "tunnel not up: {:?}\n{}",
        d.port(&vpn_port),
        d.log()
    );

    // Routed mode: the VM reaches the office host, which sees the VM's own address.
    assert!(vm.ping(OFFICE_HOST, 3), "ping through the tunnel failed: {:#?}", d.port(&vpn_port));
    let (bps, peer) = iperf(&vm, &s.office.lan);
    eprintln!("iperf3 TCP VM → office host through rvswitch's WireGuard: {:.1} Mb/s", bps / 1e6);
    assert!(bps > 0.0, "no TCP throughput");
    assert_eq!(peer, VM_IP, "the office host sees the VM's own address");
    // A DF ping bigger than the tunnel: the gateway answers fragmentation-needed (ping -M do
    // reports the MTU it learnt), and the drop is counted too-big.
    let cmd = format!("ping -c 1 -W 2 -M do -s 1472 {OFFICE_HOST} 2>&1; true");
    let big = vm.exec(&["sh", "-c", &cmd]).expect("ping -M do");
    assert!(big.contains("mtu = 1420") || big.contains("mtu=1420"), "no frag-needed: {big}");
    let st = vpn_status(&d, &vpn_port);
    assert!(st.rx_bytes > 0 && st.tx_bytes > 0, "{st:?}");
    assert!(!st.drops.contains_key("gso-unsegmented") && !st.drops.contains_key("malformed"), "{st:?}");
    let too_big = || vpn_status(&d, &vpn_port).drops.get("too-big").copied().unwrap_or(0);
    assert!(wait_until(Duration::from_secs(5), || too_big() >= 1), "{:?}", vpn_status(&d, &vpn_port));
    assert_eq!(st.endpoint, format!("{}:{OFFICE_PORT}", s.office.office_wan));
    let (db_status, _) = d.vsctl_output(&["get", "Interface", &vpn_port, "status"]).unwrap();
    assert!(db_status.contains("vpn_state=up"), "Interface status: {db_status}");

    // Kill switch: the server dies mid-traffic.
    let ping = BackgroundPing::start(&vm, OFFICE_HOST, Duration::from_millis(100), 120).expect("ping");
    server.kill();
    check_kill_switch(&d, &vpn_port, &s, &bridge, &other);
    drop(ping);

    // The server returns (same key): traffic resumes.
    server.launch();
    assert!(
        wait_vpn_state(&d, &vpn_port, "up", Duration::from_secs(60)),
        "tunnel not back: {:?}",
        d.port(&vpn_port)
    );
    assert!(vm.ping(OFFICE_HOST, 3), "no traffic after the server returned");
    check_vpn_events(&d, &vpn_port, &format!("{}:{OFFICE_PORT}", s.office.office_wan));

    send_garbage(&d, &vpn_port, &s);
    assert!(vm.ping(OFFICE_HOST, 2), "the tunnel must survive garbage");
}

#[test]
fn a_readable_key_file_is_refused_with_a_clear_message() {
    if !have_tools("a_readable_key_file_is_refused_with_a_clear_message") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (private, _) = keypair();
    let (_, peer) = keypair();
    let text = format!(
        "[Interface]\nPrivateKey = {private}\n[Peer]\nPublicKey = {peer}\nEndpoint = 198.19.0.1:{OFFICE_PORT}\nAllowedIPs = 198.18.60.0/24\n"
    );
    let conf = write_file(dir.path(), "office.conf", &text, 0o644);
    let bridge = unique("brk");
    let d = Daemon::start(&bridge_config(&bridge, &[]));
    let port = unique("vpn");
    let (_, warning) = add_vpn_port(&d, &bridge, &port, &conf).expect("ovs-vsctl itself succeeds");
    let (error, _) = d.vsctl_output(&["get", "Interface", &port, "error"]).unwrap();
    let expected = "mode 0644 lets group or others read the private key";
    assert!(error.contains(expected), "Interface error: {error} (ovs-vsctl said: {warning})");
    assert!(d.port(&port).error.unwrap_or_default().contains(expected));
    assert!(d.port(&port).vpn.is_none(), "no tunnel was opened");
}

/// The zones file's `uplink = { wireguard = ... }` makes the gateway port: the same tunnel,
/// configured declaratively.
#[test]
fn zones_apply_gives_a_vpn_zone_its_gateway_port() {
    if !have_tools("zones_apply_gives_a_vpn_zone_its_gateway_port") {
        return;
    }
    let s = setup();
    let mut server = OfficeServer::start(&s.office.office, s.server_conf.clone());
    let (vm, _vm_link, vm_port) = intranet_vm();
    let (zone, bridge) = (unique("z"), unique("brz"));
    let file = s._dir.path().join("zones.toml");
    std::fs::write(
        &file,
        format!(
            "[[zone]]\nname = \"{zone}\"\nbridge = \"{bridge}\"\nuplink = {{ wireguard = \"{}\" }}\n\
             subnet = \"{ZONE_SUBNET}\"\ngateway = \"{GATEWAY}\"\n\
             [[zone.portgroup]]\nname = \"vlan-10\"\nvlan = 10\ndefault = true\n",
            s.our_conf.display()
        ),
    )
    .unwrap();
    let mut d = Daemon::start("");
    let globals =
        ctl::zones_cli::Globals { db: format!("unix:{}", d.db_socket().display()), json: false, timeout: 20 };
    let cmd = ctl::zones_cli::ZonesCommand::Apply { file, no_wait: false };
    let out = ctl::zones_cli::run(&cmd, &globals).expect("zones apply");
    let port = zones::vpn_port_name(&zone);
    assert!(
        out.stdout.contains(&format!("+ port {port} on {bridge} (uplink, zone {zone})")),
        "{}",
        out.stdout
    );
    d.vsctl(&["add-port", &bridge, &vm_port, "tag=10"]).expect("VM port");
    wait_ports_up(&d, &[&vm_port]);
    assert!(wait_vpn_state(&d, &port, "up", Duration::from_secs(20)), "{:?}\n{}", d.port(&port), d.log());
    assert!(vm.ping(OFFICE_HOST, 3), "ping through the zone's tunnel failed: {:?}", d.port(&port));
    assert_eq!(d.port(&port).tag, Some(10), "the gateway sits on the default portgroup's VLAN");

    // rvswitchd restarted while the VPN is down: the zone stays closed. (Traffic is what shows
    // a dead peer: an idle tunnel stays up, and nothing is sent through it either.)
    let ping = BackgroundPing::start(&vm, OFFICE_HOST, Duration::from_millis(200), 60).expect("ping");
    server.kill();
    assert!(wait_vpn_state(&d, &port, "down", Duration::from_secs(40)), "{:?}", d.port(&port));
    drop(ping);
    d.restart();
    wait_ports_up(&d, &[&vm_port]);
    assert!(!vm.ping(OFFICE_HOST, 2), "traffic passed after a restart with the VPN down");
    let st = vpn_status(&d, &port);
    assert_eq!(st.state, "down", "{st:?}");
    assert!(
        st.drops.get("vpn-down").copied().unwrap_or(0) > 0,
        "the pings must be dropped as vpn-down: {st:?}"
    );
    server.launch();
    assert!(wait_vpn_state(&d, &port, "up", Duration::from_secs(60)), "{:?}", d.port(&port));
    assert!(vm.ping(OFFICE_HOST, 3), "no traffic after the server returned");
}

/// udhcpc's event script: the leased address and the default route (busybox passes $ip, $mask
/// as a prefix length, $router).
const UDHCPC_SCRIPT: &str = "#!/bin/sh\ncase \"$1\" in bound|renew) ip addr flush dev \"$interface\"; \
ip addr add \"$ip/$mask\" dev \"$interface\"; ip route replace default via \"$router\" ;; esac\n";

/// The zone's DHCP server: a secured VM port (attached-mac, as libvirt sets it) with no
/// address gets one from the range by busybox udhcpc, the gateway port's DHCPACK binds it
/// through snooping (`security show` lists it as `dhcp`), and the VM pings the office host
/// through the tunnel with it. The lease is kept in a file next to the database.
#[test]
fn the_zone_dhcp_server_leases_and_snooping_binds() {
    if !have_tools("the_zone_dhcp_server_leases_and_snooping_binds")
        || !require_program(
            "the_zone_dhcp_server_leases_and_snooping_binds",
            "busybox",
            "--help",
            "busybox-static",
        )
    {
        return;
    }
    let s = setup();
    let _server = OfficeServer::start(&s.office.office, s.server_conf.clone());
    let vm = Netns::new("vm").expect("vm netns");
    let vm_port = unique("p");
    let _vm_link = Veth::to_ns(&vm_port, &vm, "eth0", None, None).expect("vm veth");
    let mac = "52:54:00:50:00:07";
    vm.exec(&["ip", "link", "set", "eth0", "address", mac]).unwrap();
    let bridge = unique("brd");
    let d = Daemon::start(&bridge_config(&bridge, &[(&vm_port, "tag = 10")]));
    d.vsctl(&["set", "Interface", &vm_port, &format!("external_ids:attached-mac={mac}")])
        .expect("attached-mac");
    let vpn_port = unique("vpn");
    let extra = ["options:dhcp_range=198.18.50.100-198.18.50.110"];
    add_vpn_port_with(&d, &bridge, &vpn_port, &s.our_conf, &extra).expect("add the VPN port");
    wait_ports_up(&d, &[&vm_port]);
    assert!(
        wait_vpn_state(&d, &vpn_port, "up", Duration::from_secs(20)),
        "{:?}\n{}",
        d.port(&vpn_port),
        d.log()
    );

    let script = write_file(s._dir.path(), "udhcpc.sh", UDHCPC_SCRIPT, 0o755).display().to_string();
    let out =
        vm.exec(&["busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "10", "-T", "1", "-s", &script]);
    assert!(out.is_ok(), "no lease: {out:?}\n{:?}\n{}", d.port(&vpn_port), d.log());
    let addrs = vm.exec(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).unwrap();
    let leased = addrs.split_whitespace().skip_while(|w| *w != "inet").nth(1).unwrap_or_default().to_string();
    eprintln!("udhcpc leased {leased} from the zone's gateway");
    let ip = leased.split('/').next().unwrap_or_default().to_string();
    let in_range = ip.parse::<std::net::Ipv4Addr>().is_ok_and(|a| {
        (std::net::Ipv4Addr::new(198, 18, 50, 100)..=std::net::Ipv4Addr::new(198, 18, 50, 110)).contains(&a)
    });
    assert!(in_range && leased.ends_with("/24"), "{addrs}");
    assert!(
        vm.ping(OFFICE_HOST, 3),
        "the leased VM cannot reach the office: {:?}\n{}",
        d.port(&vpn_port),
        d.log()
    );

    let sec = d.security(None);
    let entry =
        sec.bridges.iter().flat_map(|b| &b.ports).find(|p| p.port == vm_port).expect("VM port listed");
    assert_eq!(entry.mode, "on");
    assert!(
        entry.bindings.iter().any(|b| b.address == format!("{ip}/32") && b.source == BindingSource::Dhcp),
        "{entry:?}"
    );
    let file = d.db_file().parent().unwrap().join(format!("dhcp-{vpn_port}.leases"));
    let kept = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(kept.contains(mac) && kept.contains(&ip), "lease file {}: {kept:?}", file.display());
}

/// NAT mode (`options:nat=true`): the VM leaves as the wg-quick Address; the office host sees
/// that address, not the VM's, for iperf3 TCP, and ping works.
#[test]
fn nat_mode_shows_the_office_the_tunnel_address() {
    if !have_tools("nat_mode_shows_the_office_the_tunnel_address") {
        return;
    }
    let s = setup_with(NAT_ADDRESS);
    let _server = OfficeServer::start(&s.office.office, s.server_conf.clone());
    let (vm, _vm_link, vm_port) = intranet_vm();
    let bridge = unique("brn");
    let d = Daemon::start(&bridge_config(&bridge, &[(&vm_port, "tag = 10")]));
    let vpn_port = unique("vpn");
    add_vpn_port_with(&d, &bridge, &vpn_port, &s.our_conf, &["options:nat=true"]).expect("add the VPN port");
    wait_ports_up(&d, &[&vm_port]);
    assert!(
        wait_vpn_state(&d, &vpn_port, "up", Duration::from_secs(20)),
        "{:?}\n{}",
        d.port(&vpn_port),
        d.log()
    );
    assert!(vm.ping(OFFICE_HOST, 3), "ping through the NAT failed: {:?}", d.port(&vpn_port));
    let (bps, peer) = iperf(&vm, &s.office.lan);
    eprintln!(
        "iperf3 TCP VM → office host through rvswitch's NAT + WireGuard: {:.1} Mb/s, seen as {peer}",
        bps / 1e6
    );
    assert!(bps > 0.0, "no TCP throughput");
    assert_eq!(peer, NAT_ADDRESS, "the office host sees the tunnel address");
    let st = vpn_status(&d, &vpn_port);
    assert!(!st.drops.contains_key("nat"), "{st:?}");
}

/// Receives UDP on the office host for `secs` seconds; prints each datagram's length, one a line.
const UDP_SINK: &str = "import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9999))
s.settimeout(0.5)
print('ready', flush=True)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    try:
        print(len(s.recv(65535)), flush=True)
    except socket.timeout:
        pass
";

/// Sends `count` UDP_SEGMENT (socket option 103) super-datagrams of 3500 bytes cut at 1000
/// (UDP GSO, as QUIC stacks send), 0.1 s apart.
const UDP_GSO_SENDER: &str = "import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(17, 103, 1000)
for _ in range(int(sys.argv[2])):
    s.sendto(b'x' * 3500, (sys.argv[1], 9999))
    time.sleep(0.1)
";

/// A VM sending with UDP GSO hands the bridge UDP super-frames (virtio-net GSO_UDP_L4); the
/// gateway port cuts them into the datagrams the sender asked for before encrypting: the
/// office host receives 1000+1000+1000+500 bytes per send, none is counted unsegmented, and
/// the bridge passed the port fewer frames than the office received (so they were super-frames).
#[test]
fn udp_super_frames_from_the_vm_arrive_as_datagrams() {
    let test = "udp_super_frames_from_the_vm_arrive_as_datagrams";
    if !have_tools(test) || !require_program(test, "/usr/bin/python3", "--version", "python3") {
        return;
    }
    let s = setup();
    let _server = OfficeServer::start(&s.office.office, s.server_conf.clone());
    let (vm, _vm_link, vm_port) = intranet_vm();
    let bridge = unique("bru");
    let d = Daemon::start(&bridge_config(&bridge, &[(&vm_port, "tag = 10")]));
    let vpn_port = unique("vpn");
    add_vpn_port(&d, &bridge, &vpn_port, &s.our_conf).expect("add the VPN port");
    wait_ports_up(&d, &[&vm_port]);
    assert!(wait_vpn_state(&d, &vpn_port, "up", Duration::from_secs(20)), "{:?}", d.port(&vpn_port));
    assert!(vm.ping(OFFICE_HOST, 3), "ping through the tunnel failed: {:#?}", d.port(&vpn_port));

    let mut sink = s.office.lan.spawn(&["/usr/bin/python3", "-c", UDP_SINK, OFFICE_HOST, "4"]).expect("sink");
    let mut out = std::io::BufReader::new(sink.child_mut().stdout.take().expect("sink stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).expect("sink ready");
    let frames_before = d.port(&vpn_port).statistics.tx_packets;
    vm.exec(&["/usr/bin/python3", "-c", UDP_GSO_SENDER, OFFICE_HOST, "5"]).expect("UDP GSO sender");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut out, &mut text).expect("sink output");
    let lens: Vec<usize> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let frames = d.port(&vpn_port).statistics.tx_packets - frames_before;

    assert!(lens.len() >= 8, "at least two sends arrive whole: {lens:?}\n{:?}", d.port(&vpn_port));
    assert!(lens.chunks(4).all(|c| c == [1000, 1000, 1000, 500]), "cut as the sender asked: {lens:?}");
    assert!(frames < lens.len() as u64, "{frames} frames for {} datagrams: no super-frames", lens.len());
    let st = vpn_status(&d, &vpn_port);
    assert!(!st.drops.contains_key("gso-unsegmented") && !st.drops.contains_key("malformed"), "{st:?}");
}
