//! The leak hunt (issue 9): VMs A and C on VLAN 10, B on VLAN 20, a trunk T (10, 20). A is a
//! libvirt-style VM port (`external_ids:attached-mac` set with ovs-vsctl) bound to 198.18.0.1
//! by a DHCPACK the switch snoops from T; C is bound by `other_config:allowed-ips`. A sends
//! legitimate traffic and hostile kinds; captures on B, C and T say where each kind arrived.
//! Required: nothing reaches B, nothing reaches T outside VLAN 10, no abuse reaches C or T, and
//! every legitimate kind reaches C.

mod common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{bridge_config, have_ovs_vsctl, wait_ports_up, Daemon, Vm};
use packet::{dhcp, icmpv6, ipv6::eui64_link_local, EthernetHeader, MacAddr};
use testbed::frames::{arp, dhcp as dhcp_msg, eth, icmp6, raw, udp4, udp6};
use testbed::{frame_capture_until, require_root, send_frame, wait_until};

const BCAST: MacAddr = MacAddr::BROADCAST;
const COPIES: u32 = 50;
const FLOOD: u32 = 20_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Must reach nobody.
    Blocked,
    /// A's own frames aimed at the other VLAN: may reach C and T (tagged 10), never B.
    ZoneOnly,
    /// Must reach C.
    Legit,
}

struct Kind {
    name: &'static str,
    expect: Expect,
    frames: Vec<Vec<u8>>,
}

fn ip(d: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, d)
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// A payload that names its kind, so identical-looking L2 frames of two kinds stay apart.
fn marked(kind: usize) -> Vec<u8> {
    let mut p = vec![0u8; 46];
    p[..4].copy_from_slice(&(kind as u32 | 0x5ec0_0000).to_be_bytes());
    p
}

fn copies(f: Vec<u8>) -> Vec<Vec<u8>> {
    vec![f; COPIES as usize]
}

fn local_mac(tag: u8, n: u32) -> MacAddr {
    let b = n.to_be_bytes();
    MacAddr([0x02, tag, b[0], b[1], b[2], b[3]])
}

/// A kind built from the kind's index (for markers).
type Build<'a> = Box<dyn Fn(usize) -> Vec<Vec<u8>> + 'a>;

fn layer2_kinds<'a>(a: MacAddr, b: MacAddr, c: MacAddr) -> Vec<(&'static str, Expect, Build<'a>)> {
    use Expect::*;
    let tagged = |vid| move |k| copies(raw(eth(BCAST, a, Some(vid)), 0x88b5, &marked(k)));
    let inner = |outer_vid: Option<u16>, tpid: u16, tags: &'static [u8]| {
        move |k| copies(raw(eth(BCAST, a, outer_vid), tpid, &[tags, &marked(k)[..]].concat()))
    };
    let to = |dst: MacAddr, src: MacAddr| move |k| copies(raw(eth(dst, src, None), 0x88b5, &marked(k)));
    vec![
        ("own broadcast", Legit, Box::new(to(BCAST, a))),
        ("multicast 01:00:5e:00:00:01", ZoneOnly, Box::new(to(MacAddr([1, 0, 0x5e, 0, 0, 1]), a))),
        ("unknown unicast", ZoneOnly, Box::new(to(MacAddr([2, 0, 0, 0, 0, 0x99]), a))),
        ("unicast to B's MAC", ZoneOnly, Box::new(to(b, a))),
        ("802.1Q tag VID 20", Blocked, Box::new(tagged(20))),
        ("802.1Q tag VID 10 on access", Blocked, Box::new(tagged(10))),
        ("802.1Q tag VID 4095", Blocked, Box::new(tagged(4095))),
        ("double tag 10/20", Blocked, Box::new(inner(Some(10), 0x8100, &[0, 20, 0x88, 0xb5]))),
        ("priority tag 0 hiding 20", Blocked, Box::new(inner(Some(0), 0x8100, &[0, 20, 0x88, 0xb5]))),
        ("priority tag 0 hiding S-tag", Blocked, Box::new(inner(Some(0), 0x88a8, &[0, 20, 0x88, 0xb5]))),
        ("802.1ad S-tag 20", Blocked, Box::new(inner(None, 0x88a8, &[0, 20, 0x88, 0xb5]))),
        (
            "802.1ad S-tag 10 + C-tag 20",
            Blocked,
            Box::new(inner(None, 0x88a8, &[0, 10, 0x81, 0, 0, 20, 0x88, 0xb5])),
        ),
        (
            "STP BPDU",
            Blocked,
            Box::new(move |k| {
                copies(raw(
                    eth(MacAddr([1, 0x80, 0xc2, 0, 0, 0]), a, None),
                    0x0026,
                    &[&[0x42, 0x42, 3][..], &marked(k)].concat(),
                ))
            }),
        ),
        (
            "LLDP",
            Blocked,
            Box::new(move |k| {
                copies(raw(eth(MacAddr([1, 0x80, 0xc2, 0, 0, 0x0e]), a, None), 0x88cc, &marked(k)))
            }),
        ),
        (
            "802.3x pause",
            Blocked,
            Box::new(move |k| {
                copies(raw(
                    eth(MacAddr([1, 0x80, 0xc2, 0, 0, 1]), a, None),
                    0x8808,
                    &[&[0, 1, 0xff, 0xff][..], &marked(k)].concat(),
                ))
            }),
        ),
        ("spoofed source = B's MAC", Blocked, Box::new(to(BCAST, b))),
        ("spoofed source = C's MAC", Blocked, Box::new(to(BCAST, c))),
        (
            "random source MACs",
            Blocked,
            Box::new(move |k| {
                (0..COPIES)
                    .map(|n| raw(eth(BCAST, local_mac(0xaa, n * 7919), None), 0x88b5, &marked(k)))
                    .collect()
            }),
        ),
        ("all-zero source", Blocked, Box::new(to(BCAST, MacAddr([0; 6])))),
        ("multicast source", Blocked, Box::new(to(BCAST, MacAddr([3, 0, 0, 0, 0, 1])))),
        (
            "20 000-MAC flood",
            Blocked,
            Box::new(move |k| {
                (0..FLOOD).map(|n| raw(eth(BCAST, local_mac(0xf1, n), None), 0x88b5, &marked(k))).collect()
            }),
        ),
        ("runt 13 bytes", Blocked, Box::new(move |_| copies([&BCAST.0[..], &a.0[..], &[0x88]].concat()))),
        ("runt 10 bytes", Blocked, Box::new(move |_| copies(vec![0xff; 10]))),
        (
            "oversize 1600 bytes",
            Blocked,
            Box::new(move |k| copies(raw(eth(BCAST, a, None), 0x88b5, &[marked(k), vec![0; 1540]].concat()))),
        ),
    ]
}

fn layer3_kinds<'a>(a: MacAddr, c: MacAddr) -> Vec<(&'static str, Expect, Build<'a>)> {
    use Expect::*;
    let (lla, llc) = (eui64_link_local(a), eui64_link_local(c));
    let f = |frame: Vec<u8>| -> Build<'a> { Box::new(move |_| copies(frame.clone())) };
    let all_nodes = v6("ff02::1");
    let discover = dhcp_msg(dhcp::OP_REQUEST, dhcp::DISCOVER, a, Ipv4Addr::UNSPECIFIED, None);
    let offer = dhcp_msg(dhcp::OP_REPLY, dhcp::OFFER, c, ip(3), Some(3600));
    let ack = dhcp_msg(dhcp::OP_REPLY, dhcp::ACK, c, ip(3), Some(3600));
    let na = |target| icmp6(eth(BCAST, a, None), lla, all_nodes, icmpv6::NEIGHBOR_ADVERT, Some(target));
    vec![
        ("own ARP request", Legit, f(arp(eth(BCAST, a, None), 1, (a, ip(1)), ip(200)))),
        ("own IPv4 UDP to C", Legit, f(udp4(eth(c, a, None), ip(1), ip(3), (40000, 9), b"legit"))),
        (
            "own IPv6 link-local NS",
            Legit,
            f(icmp6(
                eth(MacAddr([0x33, 0x33, 0xff, 0, 0, 3]), a, None),
                lla,
                v6("ff02::1:ff00:3"),
                icmpv6::NEIGHBOR_SOLICIT,
                Some(llc),
            )),
        ),
        (
            "DHCP DISCOVER from 0.0.0.0",
            Legit,
            f(udp4(eth(BCAST, a, None), Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, (68, 67), &discover)),
        ),
        ("ARP reply: C's IP is at A", Blocked, f(arp(eth(c, a, None), 2, (a, ip(3)), ip(3)))),
        ("gratuitous ARP for C's IP", Blocked, f(arp(eth(BCAST, a, None), 1, (a, ip(3)), ip(3)))),
        ("ARP with C's MAC as sender", Blocked, f(arp(eth(BCAST, a, None), 2, (c, ip(1)), ip(3)))),
        ("IPv4 source = C's IP", Blocked, f(udp4(eth(c, a, None), ip(3), ip(3), (40000, 9), b"spoof"))),
        ("IPv4 source unbound .77", Blocked, f(udp4(eth(c, a, None), ip(77), ip(3), (40000, 9), b"spoof"))),
        (
            "IPv4 0.0.0.0 not DHCP",
            Blocked,
            f(udp4(eth(BCAST, a, None), Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, (5353, 5353), b"x")),
        ),
        ("IPv6 NA for C's global", Blocked, f(na(v6("2001:db8::3")))),
        ("IPv6 NA for C's link-local", Blocked, f(na(llc))),
        ("IPv6 source = C's link-local", Blocked, f(udp6(eth(BCAST, a, None), llc, all_nodes, (40000, 9)))),
        ("DHCP OFFER", Blocked, f(udp4(eth(BCAST, a, None), ip(1), Ipv4Addr::BROADCAST, (67, 68), &offer))),
        (
            "DHCPACK (rogue server)",
            Blocked,
            f(udp4(eth(BCAST, a, None), ip(1), Ipv4Addr::BROADCAST, (67, 68), &ack)),
        ),
        (
            "IPv6 Router Advertisement",
            Blocked,
            f(icmp6(
                eth(MacAddr([0x33, 0x33, 0, 0, 0, 1]), a, None),
                lla,
                all_nodes,
                icmpv6::ROUTER_ADVERT,
                None,
            )),
        ),
        ("DHCPv6 ADVERTISE", Blocked, f(udp6(eth(BCAST, a, None), lla, v6("ff02::1:2"), (547, 546)))),
    ]
}

fn kinds(a: MacAddr, b: MacAddr, c: MacAddr) -> Vec<Kind> {
    let mut all = layer2_kinds(a, b, c);
    all.extend(layer3_kinds(a, c));
    all.into_iter()
        .enumerate()
        .map(|(k, (name, expect, build))| Kind { name, expect, frames: build(k) })
        .collect()
}

/// `f` without its outer 802.1Q tag, if it has one.
fn untagged(f: &[u8]) -> Option<Vec<u8>> {
    let h = EthernetHeader::parse(f).ok()?;
    h.vlan?;
    Some([&f[..12], &f[16..]].concat())
}

#[derive(Default, Clone, Copy)]
struct Tally {
    sent: u64,
    at_b: u64,
    at_t10: u64,
    at_t_other: u64,
    at_c: u64,
}

/// Which kind a captured frame is (as sent, or with the tag the switch pushed removed).
fn kind_of(sent: &HashMap<Vec<u8>, usize>, f: &[u8]) -> Option<usize> {
    sent.get(f).copied().or_else(|| untagged(f).and_then(|u| sent.get(&u).copied()))
}

fn vid_of(f: &[u8]) -> Option<u16> {
    EthernetHeader::parse(f).ok().and_then(|h| h.vlan).map(|t| t.vid)
}

fn print_table(kinds: &[Kind], t: &[Tally]) {
    println!("{:<32} {:>8} {:>6} {:>6} {:>9} {:>6}  expect", "kind", "sent", "B", "T(10)", "T(other)", "C");
    for (k, t) in kinds.iter().zip(t) {
        println!(
            "{:<32} {:>8} {:>6} {:>6} {:>9} {:>6}  {:?}",
            k.name, t.sent, t.at_b, t.at_t10, t.at_t_other, t.at_c, k.expect
        );
    }
}

/// Sends `frames` in bursts small enough for the veth backlog (netdev_max_backlog, 1000) and
/// the switch's receive ring, and before each next burst waits (bounded) until the switch has
/// read everything sent so far (`read_by_switch`, against `total`, the running count of all
/// kinds): a fixed pace lost frames to the ring on a loaded machine. Returns how many the
/// kernel took (it refuses runts and frames over the MTU).
fn send_paced(
    tx: &mut netdev::SystemPort,
    frames: &[Vec<u8>],
    total: &mut u64,
    read_by_switch: &dyn Fn() -> u64,
) -> u64 {
    let mut sent = 0;
    for burst in frames.chunks(25) {
        let n = burst.iter().filter(|f| send_frame(tx, f).is_ok()).count() as u64;
        sent += n;
        *total += n;
        wait_until(Duration::from_secs(5), || read_by_switch() >= *total);
    }
    sent
}

/// ovs-vsctl as libvirt runs it on VM start, plus C's allowed address.
fn configure(d: &Daemon, a: &Vm, b: &Vm, c: &Vm) {
    for vm in [a, b, c] {
        let mac = format!("external_ids:attached-mac={}", vm.mac);
        d.vsctl(&["set", "Interface", &vm.port, &mac]).expect("set attached-mac");
    }
    d.vsctl(&["set", "Interface", &c.port, "other_config:allowed-ips=198.18.0.3,2001:db8::3"])
        .expect("allowed-ips");
}

/// The DHCP server behind the trunk leases 198.18.0.1 to A; the switch snoops the ACK.
fn lease_to_a(t: &Vm, a: &Vm) {
    let ack = dhcp_msg(dhcp::OP_REPLY, dhcp::ACK, a.mac, ip(1), Some(3600));
    let f = udp4(eth(a.mac, MacAddr([2, 0, 0, 0, 0, 0xfe]), Some(10)), ip(254), ip(1), (67, 68), &ack);
    send_frame(&mut t.raw(), &f).expect("inject ACK");
}

#[test]
fn leak_hunt_with_port_security() {
    if !require_root("leak_hunt_with_port_security") || !have_ovs_vsctl() {
        return;
    }
    let (a, b, c, t) = (Vm::new(1), Vm::new(2), Vm::new(3), Vm::new(4));
    let trunk = "vlan_mode = \"trunk\"\ntrunks = [10, 20]";
    let d = Daemon::start(&bridge_config(
        "br-hunt",
        &[(&a.port, "tag = 10"), (&b.port, "tag = 20"), (&c.port, "tag = 10"), (&t.port, trunk)],
    ));
    wait_ports_up(&d, &[&a.port, &b.port, &c.port, &t.port]);
    configure(&d, &a, &b, &c);
    lease_to_a(&t, &a);
    assert!(a.ping(&c, 2), "A (bound by snooping) must still reach C; log:\n{}", d.log());

    let kinds = kinds(a.mac, b.mac, c.mac);
    let mut sent_map = HashMap::new();
    for (k, kind) in kinds.iter().enumerate() {
        for f in &kind.frames {
            // Also as it would arrive with its outer tag popped (a priority tag hiding another).
            sent_map.extend(untagged(f).map(|u| (u, k)));
            sent_map.insert(f.clone(), k);
        }
    }
    let mut tally = vec![Tally::default(); kinds.len()];
    let done: OnceLock<Instant> = OnceLock::new();
    let stop = || done.get().is_some_and(|t| t.elapsed() > Duration::from_millis(800));
    let (mut cap_b, mut cap_c, mut cap_t, mut tx) = (b.raw(), c.raw(), t.raw(), a.raw());
    let rx_before = d.port(&a.port).statistics.rx_packets;
    let limit = Duration::from_secs(120);
    let (at_b, at_c, at_t) = std::thread::scope(|s| {
        let hb = s.spawn(|| frame_capture_until(&mut cap_b, limit, 200_000, stop));
        let hc = s.spawn(|| frame_capture_until(&mut cap_c, limit, 200_000, stop));
        let ht = s.spawn(|| frame_capture_until(&mut cap_t, limit, 200_000, stop));
        std::thread::sleep(Duration::from_millis(200));
        let read = || d.port(&a.port).statistics.rx_packets - rx_before;
        let mut total = 0;
        for (k, kind) in kinds.iter().enumerate() {
            tally[k].sent = send_paced(&mut tx, &kind.frames, &mut total, &read);
        }
        done.set(Instant::now()).ok();
        (hb.join().unwrap(), hc.join().unwrap(), ht.join().unwrap())
    });
    for f in &at_b {
        if let Some(k) = kind_of(&sent_map, f) {
            tally[k].at_b += 1;
        }
    }
    for f in &at_c {
        if let Some(k) = kind_of(&sent_map, f) {
            tally[k].at_c += 1;
        }
    }
    for f in &at_t {
        if let Some(k) = kind_of(&sent_map, f) {
            if vid_of(f) == Some(10) && untagged(f).is_some_and(|u| sent_map.contains_key(&u)) {
                tally[k].at_t10 += 1;
            } else {
                tally[k].at_t_other += 1;
            }
        }
    }
    print_table(&kinds, &tally);
    // A frame lost before the switch read it would look like a frame the switch blocked.
    let sent: u64 = tally.iter().map(|t| t.sent).sum();
    let st = d.port(&a.port).statistics;
    assert!(
        st.rx_packets - rx_before >= sent,
        "switch read {} of {sent} frames from A: {st:?}",
        st.rx_packets - rx_before
    );
    check(&kinds, &tally);
    check_counters(&d, &a);
}

fn check(kinds: &[Kind], tally: &[Tally]) {
    // Kinds the kernel refused to send (runts, frames over the MTU) do not count.
    let hostile = kinds.iter().zip(tally).filter(|(k, t)| k.expect != Expect::Legit && t.sent > 0).count();
    assert!(hostile >= 25, "only {hostile} hostile kinds were injected");
    let mut failures = Vec::new();
    for (k, t) in kinds.iter().zip(tally) {
        if t.at_b > 0 || t.at_t_other > 0 {
            failures.push(format!(
                "{}: leaked across VLANs (B {}, T outside VLAN 10 {})",
                k.name, t.at_b, t.at_t_other
            ));
        }
        match k.expect {
            Expect::Blocked if t.at_c + t.at_t10 > 0 => {
                failures.push(format!("{}: abuse reached C {} / T {}", k.name, t.at_c, t.at_t10))
            }
            Expect::Legit if t.sent == 0 || t.at_c == 0 => {
                failures.push(format!("{}: legitimate, sent {} but reached C {}", k.name, t.sent, t.at_c))
            }
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let sent: u64 = tally.iter().map(|t| t.sent).sum();
    assert!(sent > u64::from(FLOOD), "the injections did not go out ({sent} sent)");
}

/// Every port-security reason was counted on A, in `rvsctl show` and in Interface statistics.
fn check_counters(d: &Daemon, a: &Vm) {
    let reasons =
        ["spoofed-mac", "spoofed-arp", "spoofed-ip", "spoofed-nd", "rogue-dhcp", "rogue-ra", "hidden-tag"];
    let drops = d.port(&a.port).statistics.drops;
    println!("drops on A: {drops:?}");
    for r in reasons {
        assert!(drops.get(r).copied().unwrap_or(0) > 0, "no {r} drops on A: {drops:?}");
    }
    assert!(drops["spoofed-mac"] >= u64::from(FLOOD), "the flood is counted: {drops:?}");
    let key = "statistics:drop_spoofed-mac";
    let written = wait_until(Duration::from_secs(15), || {
        d.vsctl(&["get", "Interface", &a.port, key]).is_ok_and(|v| v.parse::<u64>().is_ok_and(|n| n > 0))
    });
    assert!(
        written,
        "Interface statistics lack drop_spoofed-mac: {:?}",
        d.vsctl(&["list", "Interface", &a.port])
    );
}
