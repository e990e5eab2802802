//! Port mirroring (SPAN) driven by Debian's real ovs-vsctl through rvswitchd's OVSDB server:
//! Mirror rows with select_all, select_src_port, select_vlan and output_port copy exactly the
//! frames OvS would to the monitor port (captured on its peer inside a namespace), clearing
//! Bridge `mirrors` stops the copies, the output port is reserved (no normal flooding to it,
//! frames sent into it dropped), and Mirror `statistics` grow. Run in the default datapath mode
//! (`auto`: the kernel fast path where BPF is available), so mirrored ports must stay off the
//! fast path for the copies to be complete.

mod common;

use std::time::Duration;

use common::{Daemon, Launch, Vm};
use packet::{EthernetHeader, MacAddr, VlanTag};
use testbed::{frame_capture, marked_frame, markers_in, require_root, send_frame, unique, wait_until, Netns};

/// Echo requests (ICMP type 8) and replies (type 0) among `frames`: (type, sequence, tag).
fn icmp_echoes(frames: &[Vec<u8>]) -> Vec<(u8, u16, Option<VlanTag>)> {
    frames
        .iter()
        .filter_map(|f| {
            let h = EthernetHeader::parse(f).ok()?;
            let ip = f.get(h.payload_offset..)?;
            if h.ethertype != 0x0800 || *ip.get(9)? != 1 {
                return None;
            }
            let icmp = ip.get(usize::from(ip[0] & 0x0f) * 4..)?;
            let seq = u16::from_be_bytes([*icmp.get(6)?, *icmp.get(7)?]);
            matches!(icmp[0], 0 | 8).then_some((icmp[0], seq, h.vlan))
        })
        .collect()
}

/// Pings `count` times from `a` to `b`; returns how many were answered.
fn ping(a: &Vm, b: &Vm, count: u32) -> u32 {
    ping_ip(&a.ns, &b.ip, count)
}

fn ping_ip(from: &Netns, ip: &str, count: u32) -> u32 {
    let n = count.to_string();
    let text = match from.exec(&["ping", "-c", &n, "-i", "0.2", "-W", "2", ip]) {
        Ok(t) => t,
        Err(e) => e.to_string(),
    };
    let received = text.split(',').find_map(|p| p.trim().strip_suffix(" received"));
    received.and_then(|r| r.trim().parse().ok()).unwrap_or(0)
}

/// The echoes a ping of `count` from `a` to `b` put on `mon` (its socket opened before).
fn mirrored_ping(a: &Vm, b: &Vm, mon: &Vm, count: u32) -> (u32, Vec<(u8, u16, Option<VlanTag>)>) {
    let mut raw = mon.raw();
    let answered = ping(a, b, count);
    let frames = frame_capture(&mut raw, Duration::from_millis(1500), 1000);
    (answered, icmp_echoes(&frames))
}

/// How many of each (type, sequence) there are.
fn counts(echoes: &[(u8, u16, Option<VlanTag>)], kind: u8) -> Vec<(u16, usize)> {
    let mut seqs: Vec<u16> = echoes.iter().filter(|e| e.0 == kind).map(|e| e.1).collect();
    seqs.sort_unstable();
    let mut out: Vec<(u16, usize)> = Vec::new();
    for s in seqs {
        match out.last_mut() {
            Some((last, n)) if *last == s => *n += 1,
            _ => out.push((s, 1)),
        }
    }
    out
}

/// Whether a marked broadcast from `from` reaches `to`.
fn broadcast_reaches(from: &Vm, to: &Vm, marker: u32) -> bool {
    let (mut tx, mut rx) = (from.raw(), to.raw());
    send_frame(&mut tx, &marked_frame(from.mac, MacAddr::BROADCAST, None, marker)).unwrap();
    let got = frame_capture(&mut rx, Duration::from_millis(500), 200);
    markers_in(&got).iter().any(|(m, _)| *m == marker)
}

/// The `Mirror NAME` block of `rvsctl show` text (its heading and the lines indented under it);
/// empty if there is none.
fn mirror_block(text: &str, name: &str) -> String {
    let heading = format!("    Mirror {name}");
    let mut lines = text.lines().skip_while(|l| *l != heading);
    let Some(first) = lines.next() else { return String::new() };
    let body = lines.take_while(|l| l.starts_with("        "));
    std::iter::once(first).chain(body).map(|l| format!("{l}\n")).collect()
}

/// `(packets, bytes)` of a mirror block's `tx: N pkts M bytes` line.
fn mirror_tx(block: &str) -> Option<(u64, u64)> {
    let line = block.lines().find_map(|l| l.trim().strip_prefix("tx: "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    match words[..] {
        [p, "pkts", b, "bytes"] => Some((p.parse().ok()?, b.parse().ok()?)),
        _ => None,
    }
}

struct Setup {
    d: Daemon,
    br: String,
    a: Vm,
    b: Vm,
    c: Vm,
    mon: Vm,
}

impl Setup {
    /// a, b: access 10; c: access 20; mon: a trunk (every VLAN), the monitor port. `args`:
    /// more rvswitchd arguments (none: the default datapath mode).
    fn new(args: &[&str]) -> Setup {
        let (a, b, c, mon) = (Vm::new(1), Vm::new(2), Vm::new(3), Vm::new(9));
        let launch = Launch { args: args.iter().map(|a| a.to_string()).collect(), ..Launch::default() };
        let d = Daemon::start_with(launch, "");
        let br = unique("brm");
        d.vsctl(&["add-br", &br]).unwrap();
        for (vm, tag) in [(&a, "tag=10"), (&b, "tag=10"), (&c, "tag=20")] {
            d.vsctl(&["add-port", &br, &vm.port, tag]).unwrap();
        }
        d.vsctl(&["add-port", &br, &mon.port]).unwrap();
        common::wait_ports_up(&d, &[&a.port, &b.port, &c.port, &mon.port]);
        assert_eq!(ping(&a, &b, 2), 2, "no traffic before any mirror; log:\n{}", d.log());
        Setup { d, br, a, b, c, mon }
    }

    fn vsctl(&self, args: &[&str]) {
        if let Err(e) = self.d.vsctl(args) {
            panic!("{e}\nlog:\n{}", self.d.log());
        }
    }

    /// `ovs-vsctl -- --id=@p get Port MON -- --id=@s get Port A -- --id=@d get Port B
    /// -- --id=@m create Mirror name=NAME COLUMNS output-port=@p -- add Bridge BR mirrors @m`
    /// (`set Bridge BR mirrors=@m` unless `add`).
    fn mirror(&self, name: &str, columns: &[&str], add: bool) {
        let name = format!("name={name}");
        let mut args = vec!["--", "--id=@p", "get", "Port", &self.mon.port, "--", "--id=@s", "get", "Port"];
        args.extend([self.a.port.as_str(), "--", "--id=@d", "get", "Port", &self.b.port]);
        args.extend(["--", "--id=@m", "create", "Mirror", &name]);
        args.extend(columns);
        args.extend(["output-port=@p", "--"]);
        if add {
            args.extend(["add", "Bridge", &self.br, "mirrors", "@m"]);
        } else {
            args.extend(["set", "Bridge", &self.br, "mirrors=@m"]);
        }
        self.vsctl(&args);
    }

    /// The mirror's block in `rvsctl show`, which must be there.
    fn shown(&self, name: &str) -> String {
        let text = common::rvsctl_show(&self.d);
        let block = mirror_block(&text, name);
        assert!(!block.is_empty(), "no Mirror {name} in rvsctl show:\n{text}");
        block
    }

    fn fast_rx(&self, vm: &Vm) -> u64 {
        self.d.port(&vm.port).statistics.fast_rx_packets
    }

    fn kernel(&self) -> bool {
        self.d.log().contains("kernel fast path loaded")
    }
}

const ONCE: [(u16, usize); 5] = [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1)];

/// select_all: 5 pings a → b put each echo request and reply on the monitor port once, tagged
/// VLAN 10; Mirror statistics count them; the output port's own frames are dropped.
fn select_all_copies_each_frame_once(s: &Setup) {
    let (a, b, mon) = (&s.a, &s.b, &s.mon);
    s.mirror("m0", &["select-all=true"], false);
    let fast_before = s.fast_rx(a);
    let (answered, echoes) = mirrored_ping(a, b, mon, 5);
    assert_eq!(answered, 5, "log:\n{}", s.d.log());
    assert_eq!(counts(&echoes, 8), ONCE, "requests on the monitor port: {echoes:?}");
    assert_eq!(counts(&echoes, 0), ONCE, "replies on the monitor port: {echoes:?}");
    assert!(echoes.iter().all(|e| e.2.map(|t| t.vid) == Some(10)), "{echoes:?}");
    assert_eq!(s.fast_rx(a), fast_before, "a mirrored port stays off the kernel fast path");

    // Mirror statistics are written back (every 5 s) and count the copies.
    let tx = || s.d.vsctl(&["get", "Mirror", "m0", "statistics:tx_packets"]).ok()?.parse::<u64>().ok();
    assert!(wait_until(Duration::from_secs(12), || tx().is_some_and(|n| n >= 10)), "statistics {:?}", tx());
    let bytes = s.d.vsctl(&["get", "Mirror", "m0", "statistics:tx_bytes"]).unwrap();
    assert!(bytes.parse::<u64>().is_ok_and(|n| n >= 10 * 98), "tx_bytes {bytes}");

    // rvsctl show lists it under the bridge, with the live counters (at least what the
    // database was last told).
    let block = s.shown("m0");
    let want = format!("    Mirror m0\n        select_all: true\n        output_port: {}\n", mon.port);
    assert!(block.starts_with(&want), "{block}");
    let (pkts, bytes) = mirror_tx(&block).unwrap_or_else(|| panic!("no tx line: {block}"));
    assert!(pkts >= tx().unwrap_or(u64::MAX) && bytes >= pkts * 60, "{block}");
    println!("rvsctl show:\n{block}");

    // Frames sent into the output port are dropped and counted, not flooded.
    assert!(!broadcast_reaches(mon, b, 1), "a frame from the monitor port was forwarded");
    let drops = s.d.port(&mon.port).statistics.drops.get("mirror-output").copied().unwrap_or(0);
    assert!(drops >= 1, "{:?}", s.d.port(&mon.port).statistics);

    // A second mirror to the same port that also selects a's frames: still one copy each.
    s.mirror("m0b", &["select-src-port=@s"], true);
    let (answered, echoes) = mirrored_ping(a, b, mon, 5);
    assert_eq!(answered, 5);
    assert_eq!((counts(&echoes, 8), counts(&echoes, 0)), (ONCE.to_vec(), ONCE.to_vec()), "{echoes:?}");
}

#[test]
fn ovs_vsctl_select_all_mirror_copies_each_frame_once() {
    if !require_root("ovs_vsctl_select_all_mirror_copies_each_frame_once") || !common::have_ovs_vsctl() {
        return;
    }
    let s = Setup::new(&[]);
    println!("kernel fast path: {}", s.kernel());
    select_all_copies_each_frame_once(&s);
}

#[test]
fn select_all_mirror_in_userspace_mode() {
    if !require_root("select_all_mirror_in_userspace_mode") || !common::have_ovs_vsctl() {
        return;
    }
    let s = Setup::new(&["--datapath=userspace"]);
    assert!(!s.kernel());
    select_all_copies_each_frame_once(&s);
}

#[test]
fn ovs_vsctl_mirror_selectors_and_clear() {
    if !require_root("ovs_vsctl_mirror_selectors_and_clear") || !common::have_ovs_vsctl() {
        return;
    }
    let s = Setup::new(&[]);
    let (a, b, mon) = (&s.a, &s.b, &s.mon);
    let kernel = s.kernel();
    let clear = || s.vsctl(&["clear", "Bridge", &s.br, "mirrors"]);

    // select_src_port only: a → b requests, not b → a replies. b's broadcasts (not selected)
    // reach a but not the reserved monitor port.
    s.mirror("m1", &["select-src-port=@s"], false);
    let (answered, echoes) = mirrored_ping(a, b, mon, 5);
    assert_eq!(answered, 5, "log:\n{}", s.d.log());
    assert_eq!(counts(&echoes, 8), ONCE, "{echoes:?}");
    assert_eq!(counts(&echoes, 0), vec![], "replies are not received on a: {echoes:?}");
    assert!(broadcast_reaches(b, a, 2));
    assert!(!broadcast_reaches(b, mon, 3), "normal flooding reached the mirror's output port");

    // select_dst_port only: what the switch sends to a (the replies).
    clear();
    s.mirror("m2", &["select-dst-port=@s"], false);
    let (_, echoes) = mirrored_ping(a, b, mon, 5);
    assert_eq!((counts(&echoes, 8), counts(&echoes, 0)), (vec![], ONCE.to_vec()), "{echoes:?}");

    // Both on a (the README's example), and a request matching src a and dst b: once each.
    clear();
    s.mirror("m3", &["select-src-port=@s", "select-dst-port=@s,@d"], true);
    let (_, echoes) = mirrored_ping(a, b, mon, 5);
    assert_eq!((counts(&echoes, 8), counts(&echoes, 0)), (ONCE.to_vec(), ONCE.to_vec()), "{echoes:?}");
    let mut both = [a.port.clone(), b.port.clone()];
    both.sort();
    let want = format!(
        "    Mirror m3\n        select_src_port: {}\n        select_dst_port: {}\n        output_port: {}\n",
        a.port,
        both.join(" "),
        mon.port
    );
    let block = s.shown("m3");
    assert!(block.starts_with(&want), "{block}");
    assert!(mirror_tx(&block).is_some_and(|(p, _)| p >= 10), "10 echoes copied: {block}");
    let listed: Vec<_> =
        s.d.show().bridges.into_iter().filter(|b| b.name == s.br).flat_map(|b| b.mirrors).collect();
    assert_eq!(listed.len(), 1, "the --json form has it too: {listed:?}");
    assert_eq!((listed[0].name.as_str(), &listed[0].select_dst_port[..]), ("m3", &both[..]));

    // select_vlan=20: VLAN 10 pings are not copied, VLAN 20 frames are (tagged 20).
    clear();
    s.mirror("m4", &["select-all=true", "select-vlan=20"], false);
    let (answered, echoes) = mirrored_ping(a, b, mon, 3);
    assert_eq!((answered, echoes.len()), (3, 0), "{echoes:?}");
    let mut raw = mon.raw();
    send_frame(&mut s.c.raw(), &marked_frame(s.c.mac, MacAddr::BROADCAST, None, 4)).unwrap();
    let got = markers_in(&frame_capture(&mut raw, Duration::from_millis(500), 200));
    assert_eq!(got, vec![(4, Some(VlanTag::vid(20).unwrap()))], "VLAN 20 copy");
    let block = s.shown("m4");
    assert!(block.contains("        select_all: true\n        select_vlan: 20\n"), "{block}");

    // Clearing the mirrors stops the copies; the monitor port is a plain trunk again (normal
    // flooding reaches it) and, with the kernel fast path, a ↔ b goes back to the kernel.
    clear();
    assert_eq!(s.d.vsctl(&["list", "Mirror"]).unwrap(), "", "the unreferenced Mirror rows are gone");
    let text = common::rvsctl_show(&s.d);
    assert!(!text.contains("    Mirror "), "no mirror is listed after clear:\n{text}");
    let fast_before = s.fast_rx(a);
    let (answered, echoes) = mirrored_ping(a, b, mon, 5);
    assert_eq!((answered, echoes.len()), (5, 0), "copies after clear: {echoes:?}");
    assert!(broadcast_reaches(a, mon, 5), "no flooding to the former output port");
    if kernel {
        assert!(s.fast_rx(a) > fast_before, "a ↔ b not back on the kernel fast path");
    }
}

/// A Mirror with only `output_vlan` (RSPAN) is not supported: it copies nothing, and the log
/// says so.
#[test]
fn rspan_mirror_has_no_effect_and_says_so() {
    if !require_root("rspan_mirror_has_no_effect_and_says_so") || !common::have_ovs_vsctl() {
        return;
    }
    let s = Setup::new(&[]);
    let args = ["--", "--id=@m", "create", "Mirror", "name=rspan", "select-all=true", "output-vlan=99"];
    let mut args = args.to_vec();
    args.extend(["--", "set", "Bridge", &s.br, "mirrors=@m"]);
    s.vsctl(&args);
    let (answered, echoes) = mirrored_ping(&s.a, &s.b, &s.mon, 3);
    assert_eq!((answered, echoes.len()), (3, 0), "{echoes:?}");
    let said = "mirror rspan: output_vlan 99 (RSPAN) is not supported by rvswitch";
    assert!(wait_until(Duration::from_secs(5), || s.d.log().contains(said)), "log:\n{}", s.d.log());
    assert_eq!(s.d.vsctl(&["get", "Mirror", "rspan", "statistics"]).unwrap(), "{}");
    let text = common::rvsctl_show(&s.d);
    assert!(mirror_block(&text, "rspan").is_empty(), "a mirror without effect is not listed:\n{text}");
}

/// Turns `a`'s namespace into a hub segment behind its switch port: a Linux bridge with ageing
/// 0 (it floods every frame, as a hub) joins a's link to the switch and veths to two new hosts,
/// 198.18.0.6 and .7. (Not a itself: the bridge would keep frames for its own MAC.)
fn hub_behind(a: &Vm) -> [Netns; 2] {
    let ip = |args: &[&str]| a.ns.exec(args).unwrap_or_else(|e| panic!("{e}"));
    ip(&["ip", "addr", "flush", "dev", "eth0"]);
    ip(&["ip", "link", "add", "seg", "type", "bridge", "ageing_time", "0"]);
    ip(&["ip", "link", "set", "eth0", "master", "seg"]);
    ip(&["ip", "link", "set", "seg", "up"]);
    [6u8, 7].map(|n| {
        let host = Netns::new("hub").expect("netns");
        let link = format!("x{n}");
        ip(&["ip", "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", host.name()]);
        ip(&["ip", "link", "set", &link, "master", "seg", "up"]);
        host.exec(&["ip", "link", "set", "eth0", "address", &format!("02:00:00:00:00:0{n}")]).expect("mac");
        host.addr_up("eth0", &format!("198.18.0.{n}/24")).expect("address");
        host
    })
}

/// Two hosts behind one switch port (a hub): the switch drops what one sends the other (the
/// destination was learned on the ingress port), and a mirror selecting that port as a source
/// still copies every such frame, as OvS's does.
#[test]
fn frames_between_two_hosts_behind_one_port_are_mirrored_by_source() {
    if !require_root("frames_between_two_hosts_behind_one_port_are_mirrored_by_source")
        || !common::have_ovs_vsctl()
    {
        return;
    }
    let s = Setup::new(&[]);
    let [h1, _h2] = hub_behind(&s.a);
    assert_eq!(ping_ip(&h1, "198.18.0.7", 2), 2, "the hub segment works");
    s.mirror("hub", &["select-src-port=@s"], false);
    let hairpin = || s.d.port(&s.a.port).statistics.drops.get("destination-on-ingress").copied().unwrap_or(0);
    let before = hairpin();
    let mut raw = s.mon.raw();
    let answered = ping_ip(&h1, "198.18.0.7", 5);
    let echoes = icmp_echoes(&frame_capture(&mut raw, Duration::from_millis(1500), 1000));
    assert_eq!(answered, 5, "log:\n{}", s.d.log());
    assert_eq!(counts(&echoes, 8), ONCE, "requests between the hub's hosts on the monitor: {echoes:?}");
    assert_eq!(counts(&echoes, 0), ONCE, "replies between the hub's hosts on the monitor: {echoes:?}");
    assert!(echoes.iter().all(|e| e.2.map(|t| t.vid) == Some(10)), "{echoes:?}");
    let drops = hairpin();
    assert!(
        drops >= before + 10,
        "the switch forwarded none of them: destination-on-ingress {before} → {drops}"
    );
}
