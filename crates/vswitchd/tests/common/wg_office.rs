//! The office's WireGuard side for the VPN tests: Debian's wireguard-go + wg as the office's
//! server in its namespace (see office.rs), keys, the wg-quick file and zones file the host's
//! zone uses, DHCP VMs. Shared by vpn.rs (namespace VMs), vpn_host_leg.rs and vpn_real_vm.rs.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use packet::{EthernetHeader, MacAddr};
use testbed::{
    frame_capture_until, require_program, require_root, unique, wait_until, ChildGuard, Netns, Veth,
};

use super::office::*;

/// The tunnel address the office gives a NAT-mode zone (outside the zone subnet).
pub const NAT_ADDRESS: &str = "198.18.51.2";
pub const NAT_NET: &str = "198.18.51.0/24";

pub fn have_tools(test: &str) -> bool {
    require_root(test)
        && require_program(test, "wireguard-go", "--version", "wireguard-go")
        && require_program(test, "wg", "--version", "wireguard-tools")
        && require_program(test, "iperf3", "--version", "iperf3")
        && super::have_ovs_vsctl()
}

/// A WireGuard key pair (testbed's, failing the test on an error).
pub fn keypair() -> (String, String) {
    testbed::wg_keypair().expect("wg genkey / wg pubkey")
}

/// A UDP port free on the host right now (for our ListenPort, so the test can aim at it).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

/// The office's WireGuard server: wireguard-go in the office namespace, configured by `wg
/// setconf`, routing the zone subnet to its peer (us). Drop kills it and removes its socket.
pub struct OfficeServer<'a> {
    pub ns: &'a Netns,
    pub ifname: String,
    pub conf: PathBuf,
    pub child: Option<ChildGuard>,
}

impl<'a> OfficeServer<'a> {
    pub fn start(ns: &'a Netns, conf: PathBuf) -> OfficeServer<'a> {
        let mut s = OfficeServer { ns, ifname: unique("wg"), conf, child: None };
        s.launch();
        s
    }

    pub fn socket(&self) -> PathBuf {
        Path::new("/var/run/wireguard").join(format!("{}.sock", self.ifname))
    }

    pub fn launch(&mut self) {
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
        self.ns
            .exec(&["ip", "-6", "route", "add", ZONE6, "dev", &self.ifname])
            .expect("IPv6 route to the zone");
    }

    /// Stops the server (by PID) as a crashed VPN server would: no goodbye to the peer.
    pub fn kill(&mut self) {
        self.child = None;
        let _ = std::fs::remove_file(self.socket());
    }
}

impl Drop for OfficeServer<'_> {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Setup {
    pub office: Office,
    /// Holds the key files until the test ends.
    pub _dir: tempfile::TempDir,
    pub server_conf: PathBuf,
    pub our_conf: PathBuf,
    pub listen_port: u16,
}

/// Keys, the office server's `wg setconf` file and our wg-quick file (0600), whose Address is
/// the VM's own (routed mode).
pub fn setup() -> Setup {
    setup_with(VM_IP)
}

/// The same with [Interface] Address `address` (NAT mode's tunnel address).
pub fn setup_with(address: &str) -> Setup {
    let office = office();
    let dir = tempfile::tempdir().unwrap();
    let (office_priv, office_pub) = keypair();
    let (our_priv, our_pub) = keypair();
    let server = format!(
        "[Interface]\nPrivateKey = {office_priv}\nListenPort = {OFFICE_PORT}\n\n\
         [Peer]\nPublicKey = {our_pub}\nAllowedIPs = {ZONE_SUBNET}, {NAT_NET}, {ZONE6}\n"
    );
    let server_conf = write_file(dir.path(), "server.conf", &server, 0o600);
    let listen_port = free_udp_port();
    let ours = format!(
        "[Interface]\nPrivateKey = {our_priv}\nAddress = {address}/32, 2001:db8:50::2/128\n\
         ListenPort = {listen_port}\nDNS = 198.18.60.53, {OFFICE_DNS6}\nMTU = 1420\n\n[Peer]\nPublicKey = {office_pub}\n\
         Endpoint = {}:{OFFICE_PORT}\nAllowedIPs = 198.18.60.0/24, {OFFICE_LAN6}\nPersistentKeepalive = 25\n",
        office.office_wan
    );
    let our_conf = write_file(dir.path(), "office.conf", &ours, 0o600);
    Setup { office, _dir: dir, server_conf, our_conf, listen_port }
}

/// udhcpc's event script: the leased address and the default route (busybox passes $ip, $mask
/// as a prefix length, $router).
pub const UDHCPC_SCRIPT: &str = "#!/bin/sh\ncase \"$1\" in bound|renew) ip addr flush dev \"$interface\"; \
ip addr add \"$ip/$mask\" dev \"$interface\"; ip route replace default via \"$router\" ;; esac\n";

/// [`UDHCPC_SCRIPT`] that also writes the DNS servers it was offered (busybox's `$dns`) to
/// `dir/dns.txt`; returns the script's path and that file's.
pub fn udhcpc_script_recording_dns(dir: &Path) -> (String, std::path::PathBuf) {
    let record = dir.join("dns.txt");
    let text = UDHCPC_SCRIPT.replace(" ;; esac", &format!("; echo \"$dns\" > {} ;; esac", record.display()));
    (write_file(dir, "udhcpc-dns.sh", &text, 0o755).display().to_string(), record)
}

/// The DHCP range of the zones file's VPN zone.
pub const DHCP_FIRST: &str = "198.18.50.100";
pub const DHCP_LAST: &str = "198.18.50.110";

/// A zones file with one VPN zone: `uplink = { wireguard = conf }`, the zone's subnet and
/// gateway, a DHCP range, portgroup vlan-10 (default), and `vms` (`[[vm]]` tables) appended.
pub fn vpn_zones_file(zone: &str, bridge: &str, conf: &Path, vms: &str) -> String {
    format!(
        "[[zone]]\nname = \"{zone}\"\nbridge = \"{bridge}\"\nuplink = {{ wireguard = \"{}\" }}\n\
         subnet = \"{ZONE_SUBNET}\"\ngateway = \"{GATEWAY}\"\n\
         dhcp = {{ range = [\"{DHCP_FIRST}\", \"{DHCP_LAST}\"] }}\n\
         [[zone.portgroup]]\nname = \"vlan-10\"\nvlan = 10\ndefault = true\n\n{vms}",
        conf.display()
    )
}

/// Runs an `rvsctl zones` command against `db` (a `unix:PATH` remote); a command that could
/// not run at all panics with its error.
pub fn zones_cmd(db: &str, cmd: ctl::zones_cli::ZonesCommand) -> ctl::zones_cli::Outcome {
    let globals = ctl::zones_cli::Globals { db: db.to_string(), json: false, timeout: 20 };
    ctl::zones_cli::run(&cmd, &globals).unwrap_or_else(|e| panic!("rvsctl zones: {e:#}"))
}

/// Frames captured on `ifname` (host namespace) while `drive` runs, for at most `limit`:
/// (frames from `mac`, all frames).
pub fn heard_while(ifname: &str, mac: MacAddr, limit: Duration, drive: impl FnOnce()) -> (usize, usize) {
    let mut port = netdev::SystemPort::open(ifname).expect("capture on the bridge's internal device");
    let stop = AtomicBool::new(false);
    let frames = std::thread::scope(|sc| {
        let t = sc.spawn(|| frame_capture_until(&mut port, limit, 10_000, || stop.load(Ordering::Relaxed)));
        drive();
        // Late copies still arrive: keep listening a moment after the VM is done.
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
        t.join().expect("capture thread")
    });
    let from_vm = frames.iter().filter(|f| EthernetHeader::parse(f).is_ok_and(|h| h.src == mac)).count();
    (from_vm, frames.len())
}

/// A VM namespace with no address yet (it leases one by DHCP) and MAC `mac` on `eth0`, the
/// peer of a new host-side veth: (namespace, link, host-side port name).
pub fn dhcp_vm(mac: &str) -> (Netns, Veth, String) {
    let vm = Netns::new("vm").expect("vm netns");
    let port = unique("p");
    let link = Veth::to_ns(&port, &vm, "eth0", None, None).expect("vm veth");
    vm.exec(&["ip", "link", "set", "eth0", "address", mac]).unwrap();
    (vm, link, port)
}
