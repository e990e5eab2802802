//! Debian's real OpenVPN for the tun-uplink tests: the office's server and the host's client
//! (static key, tun mode), their key and `--up` script, and the zone bridge whose VPN port
//! is on the client's tun.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::office::*;
use super::Daemon;
use testbed::{require_program, require_root, unique, ChildGuard, Netns};

pub const OPENVPN_PORT: &str = "1194";
/// The server's end of the tunnel, inside the office namespace only.
pub const SERVER_TUN_IP: &str = "198.18.61.1";
pub const CLIENT_TUN_IP: &str = "198.18.61.2";
/// The zone subnet (common::office's ZONE_SUBNET) as OpenVPN's `--route NETWORK MASK`.
pub const ZONE_NET: &str = "198.18.50.0";
pub const ZONE_MASK: &str = "255.255.255.0";

pub fn have_tools(test: &str) -> bool {
    require_root(test)
        && require_program(test, "openvpn", "--version", "openvpn")
        && require_program(test, "iperf3", "--version", "iperf3")
        && super::have_ovs_vsctl()
}

/// Static-key mode (`--secret`, still in OpenVPN 2.6) with a modern cipher: no certificates.
/// Both ends ping every second; the client restarts after 4 s without an answer and, with
/// `--up-delay` and without `--persist-tun`, keeps its tun closed until the server answers:
/// the VPN client itself says "the tunnel is down" by having no device.
/// `direction` is the static key's: 0 on the server, 1 on the client.
fn common_args(dev: &str, key: &Path, direction: &str, log: &Path) -> Vec<String> {
    let (key, log) = (key.display().to_string(), log.display().to_string());
    let fixed =
        ["--dev-type", "tun", "--proto", "udp4", "--cipher", "AES-256-CBC", "--ping", "1", "--verb", "3"];
    let named = ["--dev", dev, "--secret", &key, direction, "--log", &log];
    fixed.into_iter().chain(named).map(String::from).collect()
}

/// An `openvpn` process and how to start it again; Drop kills it (by PID).
pub struct OpenVpn {
    args: Vec<String>,
    ns: Option<String>,
    child: Option<ChildGuard>,
}

impl OpenVpn {
    /// The office's server, in `office` (its tun gets a unique name, routes the zone subnet);
    /// `tun_ips`: its tunnel address and the client's.
    pub fn server(office: &Netns, key: &Path, log: &Path, tun_ips: (&str, &str)) -> OpenVpn {
        OpenVpn::server_routing(office, key, log, tun_ips, &[])
    }

    /// [`OpenVpn::server`] that also routes the `hosts` (/32s) into its tunnel: addresses the
    /// client may take later (a NAT zone's new tunnel address).
    pub fn server_routing(
        office: &Netns,
        key: &Path,
        log: &Path,
        tun_ips: (&str, &str),
        hosts: &[&str],
    ) -> OpenVpn {
        let mut args = common_args(&unique("ovs"), key, "0", log);
        let serve = ["--lport", OPENVPN_PORT, "--ifconfig", tun_ips.0, tun_ips.1];
        args.extend(serve.into_iter().chain(["--route", ZONE_NET, ZONE_MASK]).map(String::from));
        for h in hosts {
            args.extend(["--route", h, "255.255.255.255"].map(String::from));
        }
        let mut s = OpenVpn { args, ns: Some(office.name().to_string()), child: None };
        s.launch();
        s
    }

    /// The host's client on device `dev`, toward the office's WAN address; `up` brings its tun
    /// up. Routed mode gives the tun no address (`ifconfig` None: the host has no route into
    /// it, only the zone uses it); NAT mode gives it (ours, the server's).
    pub fn client(
        dev: &str,
        key: &Path,
        wan: &str,
        up: &Path,
        log: &Path,
        ifconfig: Option<(&str, &str)>,
    ) -> OpenVpn {
        let mut args = common_args(dev, key, "1", log);
        if let Some((ours, theirs)) = ifconfig {
            args.extend(["--ifconfig", ours, theirs].map(String::from));
        }
        let up = up.display().to_string();
        let rest = ["--remote", wan, OPENVPN_PORT, "--nobind", "--ping-restart", "4", "--up-delay"];
        args.extend(rest.into_iter().chain(["--script-security", "2", "--up", &up]).map(String::from));
        let mut c = OpenVpn { args, ns: None, child: None };
        c.launch();
        c
    }

    pub fn launch(&mut self) {
        let mut cmd = match &self.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "openvpn"]);
                c
            }
            None => Command::new("openvpn"),
        };
        let child = cmd.args(&self.args).stdin(Stdio::null()).stdout(Stdio::null()).spawn();
        self.child = Some(ChildGuard::new(child.expect("start openvpn")));
    }

    /// SIGKILL by PID, as a crashed VPN process: no goodbye to the peer.
    pub fn kill(&mut self) {
        self.child = None;
    }
}

pub fn device_up(dev: &str) -> bool {
    netdev::interface_info(dev).ok().flatten().is_some_and(|i| i.admin_up && i.carrier)
}

pub fn device_exists(dev: &str) -> bool {
    netdev::interface_info(dev).ok().flatten().is_some()
}

/// Key, `--up` script and logs in one directory that lives as long as the test.
pub struct Files {
    pub dir: tempfile::TempDir,
    pub key: PathBuf,
    pub up: PathBuf,
}

pub fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("static.key");
    let out =
        Command::new("openvpn").args(["--genkey", "secret"]).arg(&key).output().expect("openvpn --genkey");
    assert!(out.status.success(), "openvpn --genkey: {}", String::from_utf8_lossy(&out.stderr));
    // OpenVPN calls the script with the device first; without --ifconfig it leaves it down.
    let up = write_file(dir.path(), "up.sh", "#!/bin/sh\nexec ip link set dev \"$1\" up\n", 0o755);
    Files { dir, key, up }
}

impl Files {
    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn logs(&self) -> String {
        ["server.log", "client.log"]
            .iter()
            .map(|n| format!("--- {n}\n{}", std::fs::read_to_string(self.log(n)).unwrap_or_default()))
            .collect()
    }
}

/// The intranet bridge with the VM's port and the VPN port on tun `dev`, by ovs-vsctl; `extra`
/// Interface columns (e.g. `options:nat=true`).
pub fn add_zone_bridge(d: &Daemon, bridge: &str, vm_port: &str, port: &str, dev: &str, extra: &[&str]) {
    let (tun, subnet, gw) = (
        format!("options:tun={dev}"),
        format!("options:subnet={ZONE_SUBNET}"),
        format!("options:gateway={GATEWAY}"),
    );
    let add = [
        &["add-br", bridge, "--", "add-port", bridge, vm_port, "tag=10", "--"][..],
        &["add-port", bridge, port, "tag=10", "--", "set", "Interface", port, "type=rvswitch-vpn"],
        &[&tun, &subnet, &gw],
        extra,
    ];
    d.vsctl_output(&add.concat()).expect("add the bridge and the VPN port");
}

/// A NAT zone (`options:nat=true`) on the tun of a running OpenVPN client, the VM pinging the
/// office host through it. The tun's addresses are on the host (`ours`) and in its routing
/// table (the server's, `theirs`): a /30 of their own, unique per test and run like the WAN
/// link's. The server also routes `hosts` (addresses the client may take later).
pub struct NatZone {
    pub office: Office,
    pub files: Files,
    pub _server: OpenVpn,
    pub client: OpenVpn,
    pub dev: String,
    pub ours: String,
    pub theirs: String,
    pub vm: Netns,
    pub _vm_link: testbed::Veth,
    pub d: Daemon,
    pub port: String,
}

pub fn nat_zone(hosts: &[&str]) -> NatZone {
    let office = office();
    let files = files();
    let (ours, theirs) = wan_addresses();
    let server_log = files.log("server.log");
    let server = OpenVpn::server_routing(&office.office, &files.key, &server_log, (&theirs, &ours), hosts);
    let dev = unique("tun");
    let client_log = files.log("client.log");
    let client =
        OpenVpn::client(&dev, &files.key, &office.office_wan, &files.up, &client_log, Some((&ours, &theirs)));
    let waited = testbed::wait_until(std::time::Duration::from_secs(20), || device_up(&dev));
    assert!(waited, "client tun not up\n{}", files.logs());
    let want = ours.parse().ok();
    let addressed = || netdev::ipv4_address(&dev).ok().flatten() == want;
    assert!(testbed::wait_until(std::time::Duration::from_secs(10), addressed), "no address on {dev}");

    let (vm, vm_link, vm_port) = intranet_vm();
    let d = Daemon::start("");
    let (bridge, port) = (unique("bri"), unique("vpn"));
    add_zone_bridge(&d, &bridge, &vm_port, &port, &dev, &["options:nat=true"]);
    super::wait_ports_up(&d, &[&vm_port]);
    let up = wait_vpn_state(&d, &port, "up", std::time::Duration::from_secs(20));
    assert!(up, "{:?}\n{}", d.port(&port), d.log());
    assert!(vm.ping(OFFICE_HOST, 3), "ping through NAT failed: {:?}\n{}", d.port(&port), files.logs());
    NatZone { office, files, _server: server, client, dev, ours, theirs, vm, _vm_link: vm_link, d, port }
}
