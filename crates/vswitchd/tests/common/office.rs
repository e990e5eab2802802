//! The office a zone's VPN reaches, shared by the VPN tests (built-in WireGuard, OpenVPN on a
//! tun uplink): a WAN link from the host to an office namespace, the office LAN host behind it,
//! the intranet VM namespace, and the checks both kill-switch tests make.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ctl::protocol::VpnStatus;
use packet::{ipv4, ipv6, EthernetHeader, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use testbed::{frame_capture, unique, wait_until, Netns, Veth};

use super::Daemon;

pub const ZONE_SUBNET: &str = "198.18.50.0/24";
pub const GATEWAY: &str = "198.18.50.1";
pub const VM_IP: &str = "198.18.50.2";
pub const OFFICE_HOST: &str = "198.18.60.10";
pub const OFFICE_PORT: u16 = 51820;
/// IPv6 (documentation prefixes, inside the test's namespaces only): the zone's routed
/// `subnet6` with its gateway, and the office LAN with its router and host.
pub const ZONE6: &str = "2001:db8:50::/64";
pub const GATEWAY6: &str = "2001:db8:50::1";
pub const OFFICE_LAN6: &str = "2001:db8:60::/64";
pub const OFFICE_HOST6: &str = "2001:db8:60::10";
/// The office's IPv6 DNS server, as the wg-quick file's `DNS` line names it (nothing answers
/// on it: the tests read what the gateway's RAs tell the VM).
pub const OFFICE_DNS6: &str = "2001:db8:60::53";
/// The WAN link's /30 in the root namespace (the only addresses this test puts there): one per
/// test and process, from 198.19.128.0/17, so parallel tests and runs do not share a route.
pub fn wan_addresses() -> (String, String) {
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
pub struct Office {
    pub office: Netns,
    pub lan: Netns,
    pub _wan: Veth,
    pub _lan_link: Veth,
    /// The host's and the office's WAN addresses.
    pub host_wan: String,
    pub office_wan: String,
}

pub fn office() -> Office {
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
    office.enable_ipv6().unwrap();
    lan.enable_ipv6().unwrap();
    office.exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]).unwrap();
    office.exec(&["ip", "-6", "addr", "add", "2001:db8:60::1/64", "dev", "lan0", "nodad"]).unwrap();
    lan.exec(&["ip", "-6", "addr", "add", &format!("{OFFICE_HOST6}/64"), "dev", "eth0", "nodad"]).unwrap();
    lan.exec(&["ip", "-6", "route", "add", "default", "via", "2001:db8:60::1"]).unwrap();
    Office { office, lan, _wan: wan, _lan_link: lan_link, host_wan, office_wan }
}

/// Writes `text` to `dir/name` with `mode` (testbed's, failing the test on an error).
pub fn write_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    testbed::write_file(dir, name, text, mode).expect("write a test file")
}

/// The intranet VM: a namespace on an access port of the zone's VLAN, default route via the
/// zone gateway, MTU 1500 as a VM has it (the gateway clamps TCP's MSS to the tunnel's 1420 and
/// answers bigger DF packets with fragmentation-needed). Offloads stay on: its TCP sends
/// super-frames with partial checksums, which the gateway port segments and completes.
pub fn intranet_vm() -> (Netns, Veth, String) {
    let ns = Netns::new("vm").expect("vm netns");
    let port = unique("p");
    let veth = Veth::to_ns(&port, &ns, "eth0", Some(&format!("{VM_IP}/24")), None).expect("vm veth");
    ns.exec(&["ip", "route", "add", "default", "via", GATEWAY]).unwrap();
    (ns, veth, port)
}

/// Frames that carry the intranet VM's address in the clear (as IPv4 source or destination),
/// or any address of the zone's IPv6 subnet.
pub fn intranet_packets(frames: &[Vec<u8>]) -> usize {
    let vm: std::net::Ipv4Addr = VM_IP.parse().unwrap();
    let zone6: gateway::Prefix = ZONE6.parse().unwrap();
    frames
        .iter()
        .filter(|f| {
            let Ok(h) = EthernetHeader::parse(f) else { return false };
            let l3 = f.get(h.payload_offset..).unwrap_or_default();
            match h.ethertype {
                ETHERTYPE_IPV4 => {
                    ipv4::Frame::new_checked(l3).is_ok_and(|ip| ip.src() == vm || ip.dst() == vm)
                }
                ETHERTYPE_IPV6 => ipv6::Frame::new_checked(l3)
                    .is_ok_and(|ip| zone6.contains(ip.src().into()) || zone6.contains(ip.dst().into())),
                _ => false,
            }
        })
        .count()
}

/// iperf3 TCP from the VM to the office host; the server's JSON says whom it accepted.
pub fn iperf(vm: &Netns, lan: &Netns, host: &str) -> (f64, String) {
    let mut server = lan.spawn(&["iperf3", "-s", "-1", "-J", "-B", host]).expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(500));
    let out = vm.exec(&["iperf3", "-c", host, "-t", "3", "-J"]).expect("iperf3 client");
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

pub fn vpn_status(d: &Daemon, port: &str) -> VpnStatus {
    d.port(port).vpn.unwrap_or_default()
}

pub fn wait_vpn_state(d: &Daemon, port: &str, state: &str, limit: Duration) -> bool {
    wait_until(limit, || vpn_status(d, port).state == state)
}

/// What a capture of `limit` on each wire shows while the kill switch holds: the WAN link
/// (from the office's end), the bridge's internal port (the host stack's leg) and another
/// zone's VM.
pub struct LeakCaptures {
    pub wan: Vec<Vec<u8>>,
    pub host_leg: Vec<Vec<u8>>,
    pub other_zone: Vec<Vec<u8>>,
}

pub fn capture_leaks(office: &Office, bridge: &str, other: &Netns, limit: Duration) -> LeakCaptures {
    let mut wan = office.office.open_port("wan0").expect("capture on the WAN link");
    let mut host_leg = netdev::SystemPort::open(bridge).expect("capture on the bridge's internal port");
    let mut other_zone = other.open_port("eth0").expect("capture in the other zone");
    std::thread::scope(|sc| {
        let a = sc.spawn(|| frame_capture(&mut wan, limit, 10_000));
        let b = sc.spawn(|| frame_capture(&mut host_leg, limit, 10_000));
        let c = frame_capture(&mut other_zone, limit, 10_000);
        LeakCaptures { wan: a.join().unwrap(), host_leg: b.join().unwrap(), other_zone: c }
    })
}

impl LeakCaptures {
    /// None of the captures holds an intranet packet in the clear.
    pub fn assert_no_zone_packets(&self) {
        assert_eq!(intranet_packets(&self.wan), 0, "intranet packets in the clear on the host's WAN link");
        assert_eq!(intranet_packets(&self.host_leg), 0, "intranet packets reached the host stack");
        assert_eq!(intranet_packets(&self.other_zone), 0, "intranet packets reached another zone");
    }
}

/// The VPN port's `vpn-down` drops so far.
pub fn vpn_down_drops(d: &Daemon, port: &str) -> u64 {
    vpn_status(d, port).drops.get("vpn-down").copied().unwrap_or(0)
}
