//! The demo's second act, the reason rvswitch exists: a zone whose uplink is rvswitch's own
//! WireGuard. An "office" namespace runs Debian's wireguard-go as the company's VPN server with
//! an office LAN host behind it. The zone's VM reaches that host, and the host sees the VM's own
//! address, as if the VM sat in the office. Then the office server dies: the kill switch holds
//! (nothing of the zone on the WAN link in the clear, `vpn-down` counted) and traffic resumes
//! when the server is back. Skipped, with the reason, when wireguard-go or wg is missing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ctl::protocol::{Request, ShowReply, VpnStatus};
use packet::{ipv4, EthernetHeader, ETHERTYPE_IPV4};
use testbed::{frame_capture, unique, wait_until, wg_keypair, write_file, ChildGuard, Netns, Veth};

use super::{attach, Attachment, Ctl, Vm};

const ZONE: &str = "office";
const GATEWAY_PORT: &str = "wg-office";
const VM_NAME: &str = "vpn-1";
const VM_IP: &str = "198.18.50.10";
const OFFICE_HOST: &str = "198.18.60.10";
/// The WAN link between the host and the office (the one address the demo puts in the host's
/// namespace, so rvswitchd's UDP socket reaches the office).
const HOST_WAN: &str = "198.19.250.1";
const OFFICE_WAN: &str = "198.19.250.2";
const OFFICE_PORT: u16 = 51820;

/// The office: its namespace (WAN and LAN side), the LAN host, the VPN server.
struct Office {
    office: Netns,
    lan: Netns,
    _wan: Veth,
    _lan_link: Veth,
    ifname: String,
    server_conf: PathBuf,
    server: Option<ChildGuard>,
}

impl Office {
    fn build(server_conf: PathBuf) -> anyhow::Result<Office> {
        let office = Netns::new("demo-off")?;
        let lan = Netns::new("demo-lan")?;
        let wan_if = unique("wan");
        let wan = Veth::to_ns(&wan_if, &office, "wan0", Some(&format!("{OFFICE_WAN}/30")), None)?;
        testbed::run("ip", &["addr", "add", &format!("{HOST_WAN}/30"), "dev", &wan_if])?;
        let lan_link = Veth::between(&office, "lan0", &lan, "eth0")?;
        office.addr_up("lan0", "198.18.60.1/24")?;
        lan.addr_up("eth0", &format!("{OFFICE_HOST}/24"))?;
        lan.exec(&["ip", "route", "add", "default", "via", "198.18.60.1"])?;
        office.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        let mut o = Office {
            office,
            lan,
            _wan: wan,
            _lan_link: lan_link,
            ifname: unique("wgoff"),
            server_conf,
            server: None,
        };
        o.start_server()?;
        Ok(o)
    }

    fn socket(&self) -> PathBuf {
        Path::new("/var/run/wireguard").join(format!("{}.sock", self.ifname))
    }

    /// wireguard-go in the office namespace, configured by `wg setconf`, routing the zone's
    /// subnet into the tunnel.
    fn start_server(&mut self) -> anyhow::Result<()> {
        let _ = std::fs::remove_file(self.socket());
        let env = "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1";
        self.server = Some(self.office.spawn(&["env", env, "wireguard-go", "-f", &self.ifname])?);
        let sock = self.socket();
        anyhow::ensure!(wait_until(Duration::from_secs(10), || sock.exists()), "wireguard-go did not start");
        let conf = self.server_conf.display().to_string();
        self.office.exec(&["wg", "setconf", &self.ifname, &conf])?;
        self.office.exec(&["ip", "link", "set", &self.ifname, "up"])?;
        self.office.exec(&["ip", "route", "add", "198.18.50.0/24", "dev", &self.ifname])?;
        Ok(())
    }

    /// Kills the server as a crash would (by PID, through its guard): no goodbye to the peer.
    fn kill_server(&mut self) {
        self.server = None;
        let _ = std::fs::remove_file(self.socket());
    }
}

impl Drop for Office {
    fn drop(&mut self) {
        self.kill_server();
    }
}

pub fn tools_missing() -> Option<&'static str> {
    let have = |p: &str| testbed::run_quiet_ok("sh", &["-c", &format!("command -v {p}")]);
    (!have("wireguard-go") || !have("wg")).then_some("wireguard-go and wireguard-tools")
}

/// What the act leaves standing until the daemon has stopped (so its last log lines are not
/// about a VM's link vanishing under it).
pub struct Leftovers {
    _vm_link: Veth,
    _vm: Netns,
    _office: Office,
}

/// Runs the act; true if everything behaved as promised.
pub fn act(ctl: &Ctl, dir: &Path, zones: &str, others: &[Vm]) -> anyhow::Result<(bool, Option<Leftovers>)> {
    if let Some(missing) = tools_missing() {
        println!("\n== VPN egress: skipped ({missing} not installed; demo.sh installs them)");
        return Ok((true, None));
    }
    println!("\n== VPN egress: zone {ZONE}, uplink = rvswitch's built-in WireGuard to an office server");
    let (server_key, server_pub) = wg_keypair()?;
    let (our_key, our_pub) = wg_keypair()?;
    let server_conf = write_file(
        dir,
        "office-server.conf",
        &format!("[Interface]\nPrivateKey = {server_key}\nListenPort = {OFFICE_PORT}\n\n[Peer]\nPublicKey = {our_pub}\nAllowedIPs = 198.18.50.0/24\n"),
        0o600,
    )?;
    let mut office = Office::build(server_conf)?;
    println!(
        "   office namespace: wireguard-go at {OFFICE_WAN}:{OFFICE_PORT}, office LAN host {OFFICE_HOST}"
    );
    // The wg-quick file a company hands its staff; rvswitch refuses it unless it is 0600.
    let wg_quick = write_file(
        dir,
        "office.conf",
        &format!(
            "[Interface]\nPrivateKey = {our_key}\nAddress = {VM_IP}/32\nDNS = 198.18.60.53\n\n\
             [Peer]\nPublicKey = {server_pub}\nEndpoint = {OFFICE_WAN}:{OFFICE_PORT}\n\
             AllowedIPs = 198.18.60.0/24\nPersistentKeepalive = 25\n"
        ),
        0o600,
    )?;
    let zone = format!(
        "\n[[zone]]\nname = \"{ZONE}\"\ndescription = \"Company LAN over WireGuard\"\n\
         uplink = {{ wireguard = \"{}\" }}\nsubnet = \"198.18.50.0/24\"\ngateway = \"198.18.50.1\"\n\
         \x20 [[zone.portgroup]]\n  name = \"vlan-10\"\n  vlan = 10\n  default = true\n",
        wg_quick.display()
    );
    println!("   zones file += {}", zone.trim().replace('\n', "\n                 "));
    let zones_file = dir.join("zones-vpn.toml");
    std::fs::write(&zones_file, format!("{zones}{zone}"))?;
    println!("\n== rvsctl zones apply (the two zones above plus {ZONE})");
    print!("{}", ctl.run(&["zones", "apply", &zones_file.display().to_string()])?.0);

    let vm = Netns::new("demo")?;
    let vm_link = Veth::to_ns(VM_NAME, &vm, "eth0", Some(&format!("{VM_IP}/24")), Some("52:54:00:00:00:50"))?;
    vm.exec(&["ip", "route", "add", "default", "via", "198.18.50.1"])?;
    attach(
        &ctl.db,
        &[Attachment {
            port: VM_NAME.into(),
            vm_id: VM_NAME.into(),
            mac: "52:54:00:00:00:50".into(),
            bridge: format!("br-{ZONE}"),
            vlan: 10,
            allowed_ips: Some(VM_IP.into()),
        }],
    )?;
    println!("== attached VM {VM_NAME} ({VM_IP}, default route via the zone gateway 198.18.50.1)");
    let mut ok = reachability(ctl, &vm, &office, others);
    ok &= kill_switch(ctl, &vm, &mut office)?;
    Ok((ok, Some(Leftovers { _vm_link: vm_link, _vm: vm, _office: office })))
}

/// Who reaches the office, and what the office sees.
fn reachability(ctl: &Ctl, vm: &Netns, office: &Office, others: &[Vm]) -> bool {
    let came_up = wait_until(Duration::from_secs(20), || vm.ping(OFFICE_HOST, 1));
    let mut ok = came_up;
    let mut line = |what: &str, got: bool, want: bool| {
        ok &= got == want;
        let verdict = if got { "reach" } else { "blocked" };
        println!("   {what:<72} {verdict}{}", if got == want { "" } else { " (!)" });
    };
    println!("\n== through the tunnel");
    line(&format!("{VM_NAME} → office host {OFFICE_HOST}"), came_up && vm.ping(OFFICE_HOST, 3), true);
    line(
        &format!("office host → {VM_NAME} {VM_IP} (the office sees the VM's own address)"),
        office.lan.ping(VM_IP, 3),
        true,
    );
    line(
        &format!("{VM_NAME} → {} {} (another zone)", others[0].name, others[0].ip),
        vm.ping(&others[0].ip, 2),
        false,
    );
    line(&format!("{VM_NAME} → the host's WAN address {HOST_WAN}"), vm.ping(HOST_WAN, 2), false);
    if let Some(v) = vpn_status(ctl) {
        println!(
            "   {GATEWAY_PORT}: vpn {}, endpoint {}, last handshake {} s ago, tx {} B, rx {} B",
            v.state,
            v.endpoint,
            v.last_handshake_secs.unwrap_or(0),
            v.tx_bytes,
            v.rx_bytes
        );
    }
    // `wg show IF latest-handshakes`: "<peer key>\t<unix time>".
    let office_view = office.office.exec(&["wg", "show", &office.ifname, "latest-handshakes"]).ok();
    let at = office_view.and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs());
    if let (Some(at), Ok(now)) = (at, now) {
        println!(
            "   the office's wireguard-go (wg show): last handshake with rvswitch {} s ago",
            now.saturating_sub(at)
        );
    }
    ok
}

/// Kills the office server mid-traffic, proves the zone stays closed, brings it back.
fn kill_switch(ctl: &Ctl, vm: &Netns, office: &mut Office) -> anyhow::Result<bool> {
    println!("\n== kill switch: the office VPN server dies (kill -9)");
    office.kill_server();
    let t = Instant::now();
    let down = wait_until(Duration::from_secs(40), || {
        let _ = vm.ping(OFFICE_HOST, 1);
        vpn_status(ctl).is_some_and(|v| v.state == "down")
    });
    println!(
        "   rvswitch declared the tunnel down after {:.0} s (WireGuard: data unanswered for 15 s)",
        t.elapsed().as_secs_f64()
    );
    let before = vpn_down_drops(ctl);
    let mut wan = office.office.open_port("wan0")?;
    // Long enough for rvswitch's handshake retries (every 5 s) to show on the wire: the
    // capture sees the tunnel's own traffic, and none of the zone's.
    let (frames, reached) = std::thread::scope(|s| {
        let capture = s.spawn(|| frame_capture(&mut wan, Duration::from_secs(7), 10_000));
        let reached =
            vm.exec_status(&["ping", "-c", "6", "-W", "1", "-q", OFFICE_HOST]).is_ok_and(|s| s.success());
        (capture.join().unwrap_or_default(), reached)
    });
    let clear = zone_packets_in_clear(&frames);
    let wireguard = frames.iter().filter(|f| is_wireguard(f)).count();
    let dropped = vpn_down_drops(ctl).saturating_sub(before);
    println!("   {VM_NAME} → office host (6 pings): {}", if reached { "reach (!)" } else { "blocked" });
    println!(
        "   captured on the WAN link meanwhile: {} frames ({wireguard} WireGuard handshake attempts to the office), {clear} carrying {VM_IP} in the clear",
        frames.len()
    );
    println!("   counted as vpn-down by the gateway: {dropped} packets");
    let held = down && !reached && clear == 0 && dropped > 0;

    println!("\n== the office server comes back");
    office.start_server()?;
    let t = Instant::now();
    let resumed = wait_until(Duration::from_secs(40), || vm.ping(OFFICE_HOST, 1));
    println!(
        "   {VM_NAME} → office host: {} after {:.0} s",
        if resumed { "reach again" } else { "still blocked (!)" },
        t.elapsed().as_secs_f64()
    );
    Ok(held && resumed)
}

fn vpn_status(ctl: &Ctl) -> Option<VpnStatus> {
    let show: ShowReply = ctl::client::call(&ctl.socket, &Request::Show, Duration::from_secs(5)).ok()?;
    show.bridges.into_iter().flat_map(|b| b.ports).find(|p| p.name == GATEWAY_PORT)?.vpn
}

fn vpn_down_drops(ctl: &Ctl) -> u64 {
    vpn_status(ctl).and_then(|v| v.drops.get("vpn-down").copied()).unwrap_or(0)
}

/// IPv4 frames with the VM's address as source or destination: what a leak would look like.
fn zone_packets_in_clear(frames: &[Vec<u8>]) -> usize {
    let vm: std::net::Ipv4Addr = VM_IP.parse().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
    frames
        .iter()
        .filter(|f| {
            EthernetHeader::parse(f).is_ok_and(|h| {
                h.ethertype == ETHERTYPE_IPV4
                    && ipv4::Frame::new_checked(&f[h.payload_offset..])
                        .is_ok_and(|ip| ip.src() == vm || ip.dst() == vm)
            })
        })
        .count()
}

/// A UDP datagram to the office server's port: rvswitch's handshake attempts.
fn is_wireguard(f: &[u8]) -> bool {
    EthernetHeader::parse(f).is_ok_and(|h| {
        h.ethertype == ETHERTYPE_IPV4
            && ipv4::Frame::new_checked(&f[h.payload_offset..]).is_ok_and(|ip| {
                ip.protocol() == 17 && ip.payload().get(2..4) == Some(&OFFICE_PORT.to_be_bytes()[..])
            })
    })
}
