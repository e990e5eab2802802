//! The hunt's frame kinds (issue 9's list): what A sends, and where each kind may arrive.

use std::net::{Ipv4Addr, Ipv6Addr};

use packet::{dhcp, icmpv6, ipv6::eui64_link_local, MacAddr};
use testbed::frames::{arp, dhcp as dhcp_msg, eth, icmp6, raw, udp4, udp6};

const BCAST: MacAddr = MacAddr::BROADCAST;
const COPIES: u32 = 50;
pub const FLOOD: u32 = 20_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Expect {
    /// Must reach nobody; the switch's VLAN and link-local rules drop it, port security or not.
    Blocked,
    /// Must reach nobody; port security drops it (without it, it reaches C: the hunt's proof
    /// that it can see an abuse).
    Guarded,
    /// A's own frames aimed at the other VLAN: may reach C and T (tagged 10), never B.
    ZoneOnly,
    /// Must reach C.
    Legit,
}

pub struct Kind {
    pub name: &'static str,
    pub expect: Expect,
    pub frames: Vec<Vec<u8>>,
}

pub fn ip(d: u8) -> Ipv4Addr {
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
    // To 01:80:c2:00:00:`last` (802.1D reserved), `head` before the marker.
    let link_local = |last: u8, ethertype: u16, head: &'static [u8]| {
        move |k| {
            copies(raw(
                eth(MacAddr([1, 0x80, 0xc2, 0, 0, last]), a, None),
                ethertype,
                &[head, &marked(k)].concat(),
            ))
        }
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
        ("priority tag 0 hiding 20", Guarded, Box::new(inner(Some(0), 0x8100, &[0, 20, 0x88, 0xb5]))),
        ("priority tag 0 hiding S-tag", Guarded, Box::new(inner(Some(0), 0x88a8, &[0, 20, 0x88, 0xb5]))),
        ("802.1ad S-tag 20", Guarded, Box::new(inner(None, 0x88a8, &[0, 20, 0x88, 0xb5]))),
        (
            "802.1ad S-tag 10 + C-tag 20",
            Guarded,
            Box::new(inner(None, 0x88a8, &[0, 10, 0x81, 0, 0, 20, 0x88, 0xb5])),
        ),
        ("STP BPDU", Blocked, Box::new(link_local(0, 0x0026, &[0x42, 0x42, 3]))),
        ("LLDP", Blocked, Box::new(link_local(0x0e, 0x88cc, &[]))),
        ("802.3x pause", Blocked, Box::new(link_local(1, 0x8808, &[0, 1, 0xff, 0xff]))),
        ("spoofed source = B's MAC", Guarded, Box::new(to(BCAST, b))),
        ("spoofed source = C's MAC", Guarded, Box::new(to(BCAST, c))),
        (
            "random source MACs",
            Guarded,
            Box::new(move |k| {
                (0..COPIES)
                    .map(|n| raw(eth(BCAST, local_mac(0xaa, n * 7919), None), 0x88b5, &marked(k)))
                    .collect()
            }),
        ),
        ("all-zero source", Guarded, Box::new(to(BCAST, MacAddr([0; 6])))),
        ("multicast source", Blocked, Box::new(to(BCAST, MacAddr([3, 0, 0, 0, 0, 1])))),
        (
            "20 000-MAC flood",
            Guarded,
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
        ("ARP reply: C's IP is at A", Guarded, f(arp(eth(c, a, None), 2, (a, ip(3)), ip(3)))),
        ("gratuitous ARP for C's IP", Guarded, f(arp(eth(BCAST, a, None), 1, (a, ip(3)), ip(3)))),
        ("ARP with C's MAC as sender", Guarded, f(arp(eth(BCAST, a, None), 2, (c, ip(1)), ip(3)))),
        ("IPv4 source = C's IP", Guarded, f(udp4(eth(c, a, None), ip(3), ip(3), (40000, 9), b"spoof"))),
        ("IPv4 source unbound .77", Guarded, f(udp4(eth(c, a, None), ip(77), ip(3), (40000, 9), b"spoof"))),
        (
            "IPv4 0.0.0.0 not DHCP",
            Guarded,
            f(udp4(eth(BCAST, a, None), Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, (5353, 5353), b"x")),
        ),
        ("IPv6 NA for C's global", Guarded, f(na(v6("2001:db8::3")))),
        ("IPv6 NA for C's link-local", Guarded, f(na(llc))),
        ("IPv6 source = C's link-local", Guarded, f(udp6(eth(BCAST, a, None), llc, all_nodes, (40000, 9)))),
        ("DHCP OFFER", Guarded, f(udp4(eth(BCAST, a, None), ip(1), Ipv4Addr::BROADCAST, (67, 68), &offer))),
        (
            "DHCPACK (rogue server)",
            Guarded,
            f(udp4(eth(BCAST, a, None), ip(1), Ipv4Addr::BROADCAST, (67, 68), &ack)),
        ),
        (
            "IPv6 Router Advertisement",
            Guarded,
            f(icmp6(
                eth(MacAddr([0x33, 0x33, 0, 0, 0, 1]), a, None),
                lla,
                all_nodes,
                icmpv6::ROUTER_ADVERT,
                None,
            )),
        ),
        ("DHCPv6 ADVERTISE", Guarded, f(udp6(eth(BCAST, a, None), lla, v6("ff02::1:2"), (547, 546)))),
    ]
}

pub fn kinds(a: MacAddr, b: MacAddr, c: MacAddr) -> Vec<Kind> {
    let mut all = layer2_kinds(a, b, c);
    all.extend(layer3_kinds(a, c));
    all.into_iter()
        .enumerate()
        .map(|(k, (name, expect, build))| Kind { name, expect, frames: build(k) })
        .collect()
}
