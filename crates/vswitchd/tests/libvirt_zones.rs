//! The seed's scenario end to end, with the real programs: Debian's libvirtd 9.0 (started by
//! the test, stopped by PID), libvirt networks for two zones on rvswitchd bridges, two qemu
//! (TCG) guests booted through libvirt on the networks' `<interface>`s, and proof by capture:
//! the intranet VM (portgroup vlan-10) reaches the VLAN-10 host and nothing in the guest VLAN
//! (20) or the internet zone; the internet VM reaches only its zone. libvirt attaches each VM
//! with ovs-vsctl (no --db, so rvswitchd serves /var/run/openvswitch/db.sock) and removes the
//! ports again when the VM ends, by guest poweroff or `virsh destroy`.
//!
//! Every host, guest and VM-facing address is in 198.18.0.0/24, so a frame that leaked into the
//! wrong zone or VLAN would also be answered; the captures count frames by source MAC.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Daemon, Vm};
use packet::{ethernet_frame, EthernetHeader, FrameSpec, MacAddr, VlanTag};
use testbed::{
    build_initramfs, frame_capture_until, guest_init, require_root, run, send_frame, socket_answers,
    vm_assets, wait_until, ChildGuard, Libvirt,
};

/// Where libvirt's ovs-vsctl looks for the database (it passes no --db).
const OVS_DB: &str = "/var/run/openvswitch/db.sock";
/// A MAC no port has: frames to it are flooded inside their VLAN (unknown unicast).
const NOBODY_MAC: &str = "02:00:00:00:77:77";
/// Bound on each guest's run: TCG boot (~5 s of guest time) plus its pings, under CI load.
const GUEST_TIMEOUT: Duration = Duration::from_secs(150);

/// One of the two VMs: what libvirt calls it, where it sits and what it must (not) reach.
struct Guest {
    name: &'static str,
    network: &'static str,
    bridge: &'static str,
    mac: &'static str,
    ip: &'static str,
    /// The VLAN its port must carry (the portgroup's tag); `None`: untagged zone.
    tag: Option<u16>,
    /// (address, reachable?) — pinged from inside the guest.
    targets: &'static [(&'static str, bool)],
    /// The host whose HTTP server tells the guest to power off.
    poweroff_from: &'static str,
}

const OFFICE: Guest = Guest {
    name: "office-desktop",
    network: "intranet",
    bridge: "br-intranet",
    mac: "52:54:00:10:00:01",
    ip: "198.18.0.50",
    tag: Some(10),
    targets: &[("198.18.0.1", true), ("198.18.0.2", false), ("198.18.0.3", false), ("198.18.0.60", false)],
    poweroff_from: "198.18.0.1",
};

const WEB: Guest = Guest {
    name: "web-browser",
    network: "internet",
    bridge: "br-internet",
    mac: "52:54:00:20:00:01",
    ip: "198.18.0.60",
    tag: None,
    targets: &[("198.18.0.3", true), ("198.18.0.1", false), ("198.18.0.2", false), ("198.18.0.50", false)],
    poweroff_from: "198.18.0.3",
};

/// The hosts around the VMs: on VLAN 10 and VLAN 20 of the intranet bridge, and in the
/// internet zone. Vm::new(n) gives 198.18.0.n and MAC 02:00:00:00:00:0n.
struct Hosts {
    vlan10: Vm,
    vlan20: Vm,
    internet: Vm,
}

fn tools_present() -> bool {
    let mut missing = Libvirt::missing_tools();
    for t in ["ovs-vsctl", "virt-xml-validate", "/usr/bin/python3"] {
        if run("sh", &["-c", &format!("command -v {t}")]).is_err() {
            missing.push(t);
        }
    }
    let assets = vm_assets().is_some();
    if missing.is_empty() && assets {
        return true;
    }
    let why = format!(
        "missing {missing:?}{} (.ci/run installs libvirt-daemon-system libvirt-clients libxml2-utils \
         openvswitch-switch qemu-system-x86 busybox-static python3 and runs scripts/vm-assets.sh)",
        if assets { "" } else { ", VM assets ($RVSWITCH_VM_ASSETS)" }
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
    eprintln!("skipping: {why}");
    false
}

fn vsctl(args: &[&str]) -> String {
    let db = format!("--db=unix:{OVS_DB}");
    let mut full = vec![db.as_str(), "--timeout=10"];
    full.extend_from_slice(args);
    run("ovs-vsctl", &full).unwrap_or_else(|e| panic!("{e}")).trim().to_owned()
}

/// Stage 1 of the scenario (before `rvsctl zones apply`): the zones' bridges by hand.
fn make_bridges() {
    vsctl(&["add-br", "br-intranet"]);
    vsctl(&["add-br", "br-internet"]);
}

fn attach_hosts(h: &Hosts) {
    vsctl(&["add-port", "br-intranet", &h.vlan10.port, "tag=10"]);
    vsctl(&["add-port", "br-intranet", &h.vlan20.port, "tag=20"]);
    vsctl(&["add-port", "br-internet", &h.internet.port]);
}

/// The libvirt XML for the zones: `{zone}.network.xml` and `{vm}.interface.xml` in `dir`, the
/// files `rvsctl zones libvirt-xml --out DIR` writes. Hand-written here, as the issue gives it.
fn write_libvirt_xml(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let files = [
        (
            "intranet.network.xml",
            "<network><name>intranet</name><forward mode='bridge'/><bridge name='br-intranet'/>\
             <virtualport type='openvswitch'/><portgroup name='vlan-10' default='yes'><vlan><tag id='10'/></vlan>\
             </portgroup><portgroup name='guest'><vlan><tag id='20'/></vlan></portgroup></network>\n"
                .to_owned(),
        ),
        (
            "internet.network.xml",
            "<network><name>internet</name><forward mode='bridge'/><bridge name='br-internet'/>\
             <virtualport type='openvswitch'/></network>\n"
                .to_owned(),
        ),
        ("office-desktop.interface.xml", interface_xml(&OFFICE, Some("vlan-10"))),
        ("web-browser.interface.xml", interface_xml(&WEB, None)),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn interface_xml(g: &Guest, portgroup: Option<&str>) -> String {
    let pg = portgroup.map(|p| format!(" portgroup='{p}'")).unwrap_or_default();
    format!(
        "<interface type='network'>\n  <source network='{}'{pg}/>\n  <mac address='{}'/>\n  <model type='virtio'/>\n</interface>\n",
        g.network, g.mac
    )
}

fn validate(file: &Path, kind: &str) {
    if let Err(e) = run("virt-xml-validate", &[file.to_str().unwrap(), kind]) {
        panic!("{e}\n{}", std::fs::read_to_string(file).unwrap_or_default());
    }
}

/// The guest's /init: address, reachability of each target, a flood to an unknown MAC, then it
/// waits (bounded) until its host's HTTP server offers /poweroff and powers off.
fn guest_script(g: &Guest) -> String {
    let targets: Vec<&str> = g.targets.iter().map(|(ip, _)| *ip).collect();
    guest_init(&format!(
        "ip link set eth0 up\nip addr add {ip}/24 dev eth0\necho \"RVS-UP $(cut -d' ' -f1 /proc/uptime)\"\n\
         for t in {targets}; do\n  if ping -c 2 -W 3 $t >/dev/null 2>&1; then echo \"RVS-REACH $t yes\"; \
         else echo \"RVS-REACH $t no\"; fi\ndone\n\
         arp -s 198.18.0.77 {NOBODY_MAC}\n\
         ping -c 3 -W 1 198.18.0.77 >/dev/null 2>&1\necho RVS-DONE\n\
         i=0; while [ $i -lt 300 ]; do wget -q -O /dev/null http://{srv}:8000/poweroff && break; sleep 1; i=$((i+1)); done\n\
         echo RVS-POWEROFF\npoweroff -f\n",
        ip = g.ip,
        targets = targets.join(" "),
        srv = g.poweroff_from,
    ))
}

/// A domain around the `<interface>` snippet: TCG, the cloud kernel and the guest's initramfs,
/// ACPI (so the guest's poweroff ends the domain), serial console into a file.
fn domain_xml(g: &Guest, interface: &str, kernel: &Path, initrd: &Path, console: &Path) -> String {
    format!(
        "<domain type='qemu'>\n  <name>{name}</name>\n  <memory unit='MiB'>256</memory>\n  <vcpu>1</vcpu>\n  \
         <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n    <kernel>{k}</kernel>\n    <initrd>{i}</initrd>\n    \
         <cmdline>console=ttyS0 panic=-1 quiet</cmdline>\n  </os>\n  <features><acpi/></features>\n  \
         <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n  <on_crash>destroy</on_crash>\n  \
         <devices>\n{interface}    <serial type='file'><source path='{c}'/><target port='0'/></serial>\n  </devices>\n</domain>\n",
        name = g.name,
        k = kernel.display(),
        i = initrd.display(),
        c = console.display(),
    )
}

/// A booted guest's files.
struct Booted {
    console: PathBuf,
    started: Instant,
}

/// Builds the guest's initramfs and domain around `{name}.interface.xml` from `xml_dir`,
/// validates the domain, defines and starts it.
fn boot(lv: &mut Libvirt, g: &Guest, assets: &Path, xml_dir: &Path, work: &Path) -> Booted {
    let dir = work.join(g.name);
    std::fs::create_dir_all(&dir).unwrap();
    // Private copies: libvirt hands the files to the libvirt-qemu user while the VM runs.
    let kernel = dir.join("vmlinuz");
    std::fs::copy(assets.join("vmlinuz"), &kernel).unwrap();
    let initrd = build_initramfs(assets, &dir, &guest_script(g)).unwrap();
    let interface = std::fs::read_to_string(xml_dir.join(format!("{}.interface.xml", g.name))).unwrap();
    let console = dir.join("console.log");
    let xml = dir.join("domain.xml");
    std::fs::write(&xml, domain_xml(g, &interface, &kernel, &initrd, &console)).unwrap();
    validate(&xml, "domain");
    let started = Instant::now();
    lv.start_domain(g.name, &xml).unwrap_or_else(|e| panic!("{e}\n{}", lv.logs()));
    Booted { console, started }
}

fn console(b: &Booted) -> String {
    std::fs::read_to_string(&b.console).unwrap_or_default()
}

/// Waits (bounded) until every guest printed RVS-DONE, watching them together so each one's
/// boot time is measured: host wall clock from `virsh start` until its RVS-UP line, and the
/// guest's own uptime at that line.
fn wait_done(guests: &[(&Guest, &Booted)]) {
    let mut up_at = vec![None; guests.len()];
    let mut done_at = vec![None; guests.len()];
    let all = wait_until(GUEST_TIMEOUT, || {
        for (i, (_, b)) in guests.iter().enumerate() {
            let text = console(b);
            if up_at[i].is_none() && text.contains("RVS-UP") {
                up_at[i] = Some(b.started.elapsed());
            }
            if done_at[i].is_none() && text.contains("RVS-DONE") {
                done_at[i] = Some(b.started.elapsed());
            }
        }
        done_at.iter().all(Option::is_some)
    });
    for (i, (g, b)) in guests.iter().enumerate() {
        let text = console(b);
        assert!(
            all || done_at[i].is_some(),
            "{} did not finish its checks in {GUEST_TIMEOUT:?}; console:\n{text}",
            g.name
        );
        let uptime = text.lines().find_map(|l| l.strip_prefix("RVS-UP ")).unwrap_or("?").trim().to_owned();
        let secs = |d: Option<Duration>| d.unwrap_or_default().as_secs_f64();
        eprintln!(
            "{}: up {:.1} s after virsh start (guest uptime then {uptime} s), checks done after {:.1} s",
            g.name,
            secs(up_at[i]),
            secs(done_at[i])
        );
    }
}

/// The guest's own verdicts, in target order: (address, reached?).
fn reach_marks(text: &str) -> Vec<(String, bool)> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("RVS-REACH "))
        .filter_map(|l| l.split_once(' '))
        .map(|(ip, v)| (ip.to_owned(), v.trim() == "yes"))
        .collect()
}

/// Raw captures on the hosts' NICs, running until stopped (or bounded by time).
struct Captures {
    stop: Arc<AtomicBool>,
    threads: Vec<(&'static str, JoinHandle<Vec<Vec<u8>>>)>,
}

impl Captures {
    fn start(h: &Hosts) -> Captures {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = [("vlan10", &h.vlan10), ("vlan20", &h.vlan20), ("internet", &h.internet)]
            .into_iter()
            .map(|(name, vm)| {
                let mut port = vm.raw();
                let stop = stop.clone();
                let t = std::thread::spawn(move || {
                    frame_capture_until(&mut port, 2 * GUEST_TIMEOUT, 100_000, || {
                        stop.load(Ordering::Relaxed)
                    })
                });
                (name, t)
            })
            .collect();
        Captures { stop, threads }
    }

    /// Stops the captures; the frames each host received, by host name.
    fn finish(mut self) -> Vec<(&'static str, Vec<Vec<u8>>)> {
        self.stop.store(true, Ordering::Relaxed);
        std::mem::take(&mut self.threads)
            .into_iter()
            .map(|(n, t)| (n, t.join().expect("capture thread")))
            .collect()
    }
}

impl Drop for Captures {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn mac(s: &str) -> MacAddr {
    s.parse().expect("MAC")
}

/// Headers of the frames sent by `src`.
fn frames_from(frames: &[Vec<u8>], src: &str) -> Vec<EthernetHeader> {
    let src = mac(src);
    frames.iter().filter_map(|f| EthernetHeader::parse(f).ok()).filter(|h| h.src == src).collect()
}

/// Sends one broadcast probe into VLAN `vid` (or untagged) through the bridge's own internal
/// port (a trunk of every VLAN, as in OvS): proof that each capture is alive and sits in the
/// VLAN the test believes, so "zero frames from the VM" cannot pass on a dead capture.
fn send_probe(bridge: &str, src: &str, vid: Option<u16>) {
    let mut port = netdev::SystemPort::open(bridge).expect("raw socket on the bridge's internal port");
    let spec = FrameSpec {
        dst: MacAddr::BROADCAST,
        src: mac(src),
        vlan: vid.map(|v| VlanTag::vid(v).unwrap()),
        ethertype: 0x88b5,
    };
    let mut buf = [0u8; 64];
    let n = ethernet_frame(&mut buf, &spec, &[0x5a; 46]).unwrap();
    send_frame(&mut port, &buf[..n]).unwrap();
}

/// The VM's port, found the way libvirt marks it (Interface external_ids:attached-mac), on the
/// right bridge with the portgroup's VLAN.
fn attached_port(g: &Guest) -> String {
    let cond = format!("external_ids:attached-mac=\"{}\"", g.mac);
    let name = vsctl(&["--bare", "--columns=name", "find", "Interface", &cond]);
    assert!(!name.is_empty() && !name.contains(char::is_whitespace), "{}: no single port: {name:?}", g.name);
    assert_eq!(vsctl(&["port-to-br", &name]), g.bridge, "{}: port {name} on the wrong bridge", g.name);
    let want_tag = g.tag.map(|t| t.to_string()).unwrap_or_else(|| "[]".into());
    assert_eq!(vsctl(&["get", "Port", &name, "tag"]), want_tag, "{}: port {name} VLAN", g.name);
    name
}

fn wait_shut_off(lv: &Libvirt, g: &Guest) {
    let off = wait_until(Duration::from_secs(60), || lv.domain_state(g.name).is_ok_and(|s| s == "shut off"));
    assert!(off, "{} did not shut off: {:?}\n{}", g.name, lv.domain_state(g.name), lv.logs());
}

/// libvirt ran `ovs-vsctl del-port` when the VM ended: no row, no device left.
fn assert_port_gone(g: &Guest, port: &str) {
    let cond = format!("external_ids:attached-mac=\"{}\"", g.mac);
    let gone = wait_until(Duration::from_secs(10), || {
        vsctl(&["--bare", "--columns=name", "find", "Interface", &cond]).is_empty()
    });
    assert!(gone, "{}: its Interface row is still in the database after shutdown", g.name);
    assert!(!vsctl(&["list-ports", g.bridge]).lines().any(|p| p == port), "{}: port {port} left", g.name);
    assert!(!Path::new(&format!("/sys/class/net/{port}")).exists(), "{}: tap {port} left", g.name);
}

fn http_server(host: &Vm, dir: &Path) -> ChildGuard {
    std::fs::create_dir_all(dir).unwrap();
    let args = [
        "/usr/bin/python3",
        "-m",
        "http.server",
        "8000",
        "--bind",
        &host.ip,
        "--directory",
        dir.to_str().unwrap(),
    ];
    host.ns.spawn(&args).unwrap()
}

fn assert_reach(g: &Guest, b: &Booted) {
    let text = console(b);
    let want: Vec<(String, bool)> = g.targets.iter().map(|(ip, ok)| (ip.to_string(), *ok)).collect();
    assert_eq!(
        reach_marks(&text),
        want,
        "{}: reachability (address, reached) differs; console:\n{text}",
        g.name
    );
}

const PROBE10: &str = "02:00:00:00:ee:10";
const PROBE20: &str = "02:00:00:00:ee:20";
const PROBE_INET: &str = "02:00:00:00:ee:01";

/// Who must have heard whom: (capture, source MAC, frames expected?).
fn expectations() -> [(&'static str, &'static str, bool); 15] {
    [
        ("vlan10", OFFICE.mac, true),
        ("vlan10", WEB.mac, false),
        ("vlan10", PROBE10, true),
        ("vlan10", PROBE20, false),
        ("vlan10", PROBE_INET, false),
        ("vlan20", OFFICE.mac, false),
        ("vlan20", WEB.mac, false),
        ("vlan20", PROBE10, false),
        ("vlan20", PROBE20, true),
        ("vlan20", PROBE_INET, false),
        ("internet", OFFICE.mac, false),
        ("internet", WEB.mac, true),
        ("internet", PROBE10, false),
        ("internet", PROBE20, false),
        ("internet", PROBE_INET, true),
    ]
}

/// Checks the captures against [`expectations`]; where frames are expected, the guest's
/// broadcasts (ARP) and its unknown-unicast flood must be among them.
fn assert_captures(captured: &[(&str, Vec<Vec<u8>>)]) {
    let mut report = String::new();
    let mut bad = Vec::new();
    for (host, src, expected) in expectations() {
        let frames = &captured.iter().find(|(n, _)| *n == host).expect("capture").1;
        let heard = frames_from(frames, src);
        report.push_str(&format!("{host:>8} heard {src}: {} frames\n", heard.len()));
        if heard.is_empty() == expected {
            bad.push(format!(
                "{host} from {src}: {} frames, expected {}",
                heard.len(),
                if expected { ">0" } else { "0" }
            ));
        }
        if expected && [OFFICE.mac, WEB.mac].contains(&src) {
            let bcast = heard.iter().any(|h| h.dst.is_broadcast());
            let flood = heard.iter().any(|h| h.dst == mac(NOBODY_MAC));
            if !(bcast && flood) {
                bad.push(format!(
                    "{host} from {src}: broadcast seen {bcast}, unknown-unicast flood seen {flood}"
                ));
            }
        }
    }
    eprint!("{report}");
    assert!(bad.is_empty(), "isolation by capture failed:\n{}\n{report}", bad.join("\n"));
}

#[test]
fn libvirt_vms_in_two_zones_reach_only_their_own() {
    if !require_root("libvirt_vms_in_two_zones_reach_only_their_own") || !tools_present() {
        return;
    }
    let t0 = Instant::now();
    let assets = vm_assets().expect("checked above");
    assert!(
        !socket_answers(Path::new(OVS_DB)),
        "{OVS_DB} answers: another OVSDB server (a real ovsdb-server?) runs"
    );
    let hosts = Hosts { vlan10: Vm::new(1), vlan20: Vm::new(2), internet: Vm::new(3) };
    // Declared before the libvirt guard, so it is dropped after it: libvirt's del-port for the
    // VMs it destroys still reaches the database.
    let d = Daemon::start_with_db_socket("", Path::new(OVS_DB));
    let work = d.dir.join("e2e");
    make_bridges();
    attach_hosts(&hosts);
    let xml_dir = work.join("xml");
    write_libvirt_xml(&xml_dir);
    for zone in ["intranet", "internet"] {
        validate(&xml_dir.join(format!("{zone}.network.xml")), "network");
    }

    let mut lv = Libvirt::start(&work.join("libvirt")).expect("libvirt");
    eprintln!("libvirtd up {:.1} s into the test", t0.elapsed().as_secs_f64());
    for zone in ["intranet", "internet"] {
        let file = xml_dir.join(format!("{zone}.network.xml"));
        lv.define_network(zone, &file).unwrap_or_else(|e| panic!("{e}\n{}", lv.logs()));
    }
    let _www10 = http_server(&hosts.vlan10, &work.join("www-office"));
    let _www_inet = http_server(&hosts.internet, &work.join("www-web"));
    let captures = Captures::start(&hosts);
    let office = boot(&mut lv, &OFFICE, &assets, &xml_dir, &work);
    let web = boot(&mut lv, &WEB, &assets, &xml_dir, &work);
    wait_done(&[(&OFFICE, &office), (&WEB, &web)]);

    let office_port = attached_port(&OFFICE);
    let web_port = attached_port(&WEB);
    // Sent now, so they have arrived long before the captures stop (after the shutdowns).
    send_probe("br-intranet", PROBE10, Some(10));
    send_probe("br-intranet", PROBE20, Some(20));
    send_probe("br-internet", PROBE_INET, None);

    // The office VM ends itself (guest poweroff through ACPI), the web VM by `virsh destroy`.
    std::fs::write(work.join("www-office/poweroff"), "now\n").unwrap();
    wait_shut_off(&lv, &OFFICE);
    lv.virsh(&["destroy", WEB.name]).unwrap();
    wait_shut_off(&lv, &WEB);
    assert_port_gone(&OFFICE, &office_port);
    assert_port_gone(&WEB, &web_port);

    let captured = captures.finish();
    assert_captures(&captured);
    assert_reach(&OFFICE, &office);
    assert_reach(&WEB, &web);
    eprintln!("libvirt end-to-end test took {:.1} s", t0.elapsed().as_secs_f64());
}
