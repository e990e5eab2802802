//! Issue 10's acceptance with the real guest: a qemu (TCG) VM booted by Debian's libvirtd on the
//! `<interface>` that `rvsctl zones libvirt-xml` wrote for a VPN zone (wireguard uplink, DHCP
//! range, one `[[vm]]`), on the libvirt network from the same file. libvirt attaches it with
//! ovs-vsctl (attached-mac: port security on). Inside, busybox udhcpc leases an address from the
//! zone's DHCP server (snooped: the port gets a `dhcp` binding), and the guest pings the office
//! host behind Debian's wireguard-go and runs iperf3 TCP to it (iperf3 and its libraries are
//! packed into the initramfs); the office's iperf3 server sees the leased address (routed mode).
//! While the guest runs, a capture on the zone bridge's internal device hears none of its frames
//! and `zones verify` proves the zone's VLAN reaches only the guest's port and the gateway.

mod common;
mod libvirt;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::office::*;
use common::wg_office::*;
use common::{rvsctl_path, Daemon};
use ctl::protocol::BindingSource;
use ctl::zones_cli::ZonesCommand;
use libvirt::guest::{boot_with, Booted};
use libvirt::validate;
use testbed::{build_initramfs_with, guest_init, require_program, run, socket_answers, unique, vm_assets};
use testbed::{wait_until, HostLock, Libvirt};

/// Where libvirt's ovs-vsctl looks for the database (it passes no --db).
const OVS_DB: &str = "/var/run/openvswitch/db.sock";
const GUEST_MAC: &str = "52:54:00:50:00:31";
/// Bound on the guest's whole run: TCG boot, DHCP, ping, a 5 s iperf3, under CI load.
const GUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// The console marks, in the order the guest prints them.
const MARKS: [&str; 4] = ["RVS-UP", "RVS-LEASE ", "RVS-PING-", "RVS-DONE"];

fn tools_present(test: &str) -> bool {
    if !have_tools(test) || !require_program(test, "busybox", "--help", "busybox-static") {
        return false;
    }
    let mut missing = Libvirt::missing_tools();
    for t in ["virt-xml-validate", "ldd"] {
        if run("sh", &["-c", &format!("command -v {t}")]).is_err() {
            missing.push(t);
        }
    }
    if !rvsctl_path().exists() {
        missing.push("rvsctl beside rvswitchd (cargo build -p ctl; cargo test --workspace builds it)");
    }
    if missing.is_empty() && vm_assets().is_some() {
        return true;
    }
    let why = format!(
        "missing {missing:?}{} (.ci/run installs libvirt-daemon-system libvirt-clients libxml2-utils \
         qemu-system-x86 busybox-static iperf3 wireguard-go wireguard-tools and runs scripts/vm-assets.sh)",
        if vm_assets().is_some() { "" } else { ", VM assets ($RVSWITCH_VM_ASSETS)" }
    );
    testbed::skip(test, &why)
}

/// The guest's /init: lease, ping, iperf3, each result on the console; then it idles until the
/// test has looked at its port and destroys it.
fn init_script() -> String {
    guest_init(&format!(
        "cat > /bin/lease.sh <<'EOS'\n{UDHCPC_SCRIPT}EOS\nchmod 755 /bin/lease.sh\n\
         ip link set eth0 up\necho RVS-UP\n\
         if udhcpc -i eth0 -f -q -n -t 20 -T 3 -s /bin/lease.sh; then\n  \
         echo \"RVS-LEASE $(ip -4 -o addr show dev eth0 | awk '{{print $4}}')\"\nelse echo RVS-LEASE-FAIL; fi\n\
         if ping -c 5 -W 5 {OFFICE_HOST} > /tmp/ping.txt 2>&1; then echo RVS-PING-OK; else echo RVS-PING-FAIL; fi\n\
         echo \"RVS-PING-STATS $(tail -n 1 /tmp/ping.txt)\"\n\
         iperf3 -c {OFFICE_HOST} -t 5 -f m > /tmp/iperf.txt 2>&1\necho \"RVS-IPERF-EXIT $?\"\ncat /tmp/iperf.txt\n\
         echo \"RVS-IPERF $(grep receiver /tmp/iperf.txt)\"\necho RVS-DONE\nsleep 600\npoweroff -f\n"
    ))
}

/// The value after `mark` on the console (first such line), trimmed.
fn console_value(text: &str, mark: &str) -> Option<String> {
    text.lines().find_map(|l| l.trim().strip_prefix(mark)).map(|v| v.trim().to_string())
}

/// Waits (bounded) for RVS-DONE; prints how long after `virsh start` each mark appeared.
fn wait_guest(b: &Booted) -> String {
    let mut seen: Vec<Option<Duration>> = vec![None; MARKS.len()];
    wait_until(GUEST_TIMEOUT, || {
        let text = b.console();
        for (i, m) in MARKS.iter().enumerate() {
            if seen[i].is_none() && text.contains(m) {
                seen[i] = Some(b.elapsed());
            }
        }
        seen[MARKS.len() - 1].is_some()
    });
    let times: Vec<String> = MARKS
        .iter()
        .zip(&seen)
        .map(|(m, t)| {
            format!("{} {}", m.trim(), t.map_or("never".into(), |d| format!("{:.1} s", d.as_secs_f64())))
        })
        .collect();
    eprintln!("guest console marks after virsh start: {}", times.join(", "));
    let text = b.console();
    assert!(
        seen[MARKS.len() - 1].is_some(),
        "the guest did not finish in {GUEST_TIMEOUT:?}; console:\n{text}"
    );
    text
}

/// The zones file, applied; the libvirt network defined from `zones libvirt-xml`; returns the
/// guest's `<interface>` snippet.
fn zones_and_network(lv: &mut Libvirt, file: &Path, zone: &str, xml_dir: &Path) -> String {
    let db = format!("unix:{OVS_DB}");
    let out = zones_cmd(&db, ZonesCommand::Apply { file: file.to_path_buf(), no_wait: false });
    assert_eq!(out.code, 0, "zones apply: {}", out.stdout);
    let cmd = ZonesCommand::LibvirtXml {
        file: file.to_path_buf(),
        zone: None,
        out: Some(xml_dir.into()),
        define: false,
    };
    assert_eq!(zones_cmd(&db, cmd).code, 0);
    let net = xml_dir.join(format!("{zone}.network.xml"));
    validate(&net, "network");
    lv.define_network(zone, &net).unwrap_or_else(|e| panic!("{e}\n{}", lv.logs()));
    let iface = std::fs::read_dir(xml_dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".interface.xml"))
        .expect("an interface snippet");
    std::fs::read_to_string(iface).unwrap()
}

/// With the guest attached: its port (found by attached-mac, as libvirt marks it) has port
/// security on and the leased address bound by DHCP snooping; `zones verify` proves the zone.
fn check_attached(d: &Daemon, leased: &str, zone: &str) -> String {
    let cond = format!("external_ids:attached-mac=\"{GUEST_MAC}\"");
    let port =
        d.vsctl(&["--bare", "--columns=name", "find", "Interface", &cond]).expect("find").trim().to_string();
    assert!(!port.is_empty(), "libvirt attached no port for the guest");
    let bound = || {
        let sec = d.security(None);
        let entry = sec.bridges.iter().flat_map(|b| &b.ports).find(|p| p.port == port).cloned();
        entry.filter(|e| {
            e.mode == "on"
                && e.bindings
                    .iter()
                    .any(|b| b.address == format!("{leased}/32") && b.source == BindingSource::Dhcp)
        })
    };
    assert!(wait_until(Duration::from_secs(10), || bound().is_some()), "{:#?}", d.security(None));
    let v = zones_cmd(&format!("unix:{OVS_DB}"), ZonesCommand::Verify);
    eprintln!("zones verify with the guest attached (exit {}):\n{}", v.code, v.stdout);
    assert_eq!(v.code, 0, "{}", v.stdout);
    assert!(
        v.stdout.contains(&format!("VPN zone {zone}: VLAN 10"))
            && v.stdout.contains(&format!("VM ports ({port})"))
    );
    port
}

/// The iperf3 server in the office LAN: one test, JSON; the accepted peer's address, if it ended.
fn iperf_peer(server: &mut testbed::ChildGuard) -> Option<String> {
    use std::io::Read;
    let ended =
        wait_until(Duration::from_secs(15), || server.child_mut().try_wait().ok().flatten().is_some());
    let mut text = String::new();
    let _ = ended.then(|| server.child_mut().stdout.take().map(|mut s| s.read_to_string(&mut text)));
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["start"]["accepted_connection"]["host"].as_str().map(str::to_string)
}

/// The guest's own results: a lease from the zone's range, the ping, iperf3 TCP with some
/// throughput (printed with the ping times). Returns the leased address.
fn check_console(text: &str, name: &str, d: &Daemon, gw: &str) -> String {
    let leased = console_value(text, "RVS-LEASE ")
        .unwrap_or_else(|| panic!("no lease; console:\n{text}\n{}", d.log()));
    let ip = leased.split('/').next().unwrap_or_default().to_string();
    let in_range = ip.parse::<std::net::Ipv4Addr>().is_ok_and(|a| {
        (DHCP_FIRST.parse::<std::net::Ipv4Addr>().unwrap()..=DHCP_LAST.parse().unwrap()).contains(&a)
    });
    assert!(in_range && leased.ends_with("/24"), "lease {leased} outside the zone's range");
    assert!(
        text.contains("RVS-PING-OK"),
        "the guest could not ping the office; console:\n{text}\n{:?}",
        d.port(gw)
    );
    let iperf = console_value(text, "RVS-IPERF ").unwrap_or_default();
    let mbits = iperf
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| w[1] == "Mbits/sec")
        .and_then(|w| w[0].parse::<f64>().ok());
    eprintln!(
        "guest {name}: lease {leased}; ping {}; iperf3 TCP guest → office host: {}",
        console_value(text, "RVS-PING-STATS").unwrap_or_default(),
        mbits.map_or("none".into(), |m| format!("{m} Mb/s"))
    );
    assert_eq!(
        console_value(text, "RVS-IPERF-EXIT").as_deref(),
        Some("0"),
        "iperf3 failed; console:\n{text}"
    );
    assert!(mbits.is_some_and(|m| m > 0.0), "no TCP throughput: {iperf}");
    ip
}

#[test]
fn libvirt_guest_leases_in_a_vpn_zone_and_reaches_the_office() {
    let test = "libvirt_guest_leases_in_a_vpn_zone_and_reaches_the_office";
    if !tools_present(test) {
        return;
    }
    // First and dropped last: another test run on this host's db.sock (and libvirt's system
    // sockets) waits until this one is done.
    let _host = HostLock::ovs_db(test);
    assert!(!socket_answers(Path::new(OVS_DB)), "{OVS_DB} answers: another OVSDB server runs");
    let assets = vm_assets().expect("checked above");
    let s = setup();
    let _server = OfficeServer::start(&s.office.office, s.server_conf.clone());
    // Declared before the libvirt guard, so it is dropped after it: libvirt's del-port for the
    // domain it destroys still reaches the database.
    let d = Daemon::start_with_db_socket("", Path::new(OVS_DB));
    let work: PathBuf = d.dir.join("vpn-guest");
    std::fs::create_dir_all(&work).unwrap();
    let (zone, bridge, name) = (unique("z"), unique("brg"), unique("vpnguest"));
    let file = work.join("zones.toml");
    let vm = format!("[[vm]]\nname = \"{name}\"\nzone = \"{zone}\"\nmac = \"{GUEST_MAC}\"\n");
    std::fs::write(&file, vpn_zones_file(&zone, &bridge, &s.our_conf, &vm)).unwrap();
    let mut lv = Libvirt::start(&work.join("libvirt")).expect("libvirt");
    let iface = zones_and_network(&mut lv, &file, &zone, &work.join("xml"));
    let gw = zones::vpn_port_name(&zone);
    assert!(wait_vpn_state(&d, &gw, "up", Duration::from_secs(30)), "{:?}\n{}", d.port(&gw), d.log());
    let mut iperf_server =
        s.office.lan.spawn(&["iperf3", "-s", "-1", "-J", "-B", OFFICE_HOST]).expect("iperf3 -s");

    let dir = work.join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let initrd =
        build_initramfs_with(&assets, &dir, &init_script(), &[Path::new("/usr/bin/iperf3")]).unwrap();
    let mut text = String::new();
    let mut port = String::new();
    let (from_guest, heard) =
        heard_while(&bridge, GUEST_MAC.parse().unwrap(), GUEST_TIMEOUT + Duration::from_secs(30), || {
            let booted = boot_with(&mut lv, &name, &iface, &assets, &dir, &initrd);
            text = wait_guest(&booted);
            if let Some(leased) = console_value(&text, "RVS-LEASE ") {
                port = check_attached(&d, leased.split('/').next().unwrap_or_default(), &zone);
            }
        });
    lv.virsh(&["destroy", &name]).unwrap();

    let ip = check_console(&text, &name, &d, &gw);
    assert_eq!(
        iperf_peer(&mut iperf_server).as_deref(),
        Some(ip.as_str()),
        "the office sees the leased address"
    );
    eprintln!("host leg: {from_guest} of the guest's frames among {heard} captured on {bridge}");
    assert_eq!(from_guest, 0, "the guest's frames reached the host's IP stack through {bridge}");
    assert!(!port.is_empty());
}
