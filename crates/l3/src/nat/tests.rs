use std::net::Ipv4Addr;

use packet::{icmpv4, ipv4, tcp, udp};

use super::*;
use crate::testpkt::{self, addr, checksums_ok};

fn nat() -> Nat {
    Nat::new(NatConfig::new(addr("198.19.0.2")))
}

fn ports(p: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16) {
    let ip = ipv4::Frame::new_checked(p).unwrap();
    let u = udp::Frame::new_unchecked(ip.payload());
    (ip.src(), u.src_port(), ip.dst(), u.dst_port())
}

/// UDP 198.18.0.10:5353 → 198.19.9.9:53, DF, payload "hi"; IP checksum 0xa595 and UDP
/// checksum 0xed19 computed outside this code base (a Python one-liner over the bytes).
const DNS_OUT: [u8; 30] = [
    0x45, 0, 0, 30, 0, 1, 0x40, 0, 64, 17, 0xa5, 0x95, 198, 18, 0, 10, 198, 19, 9, 9, 0x14, 0xe9, 0, 53, 0,
    10, 0xed, 0x19, b'h', b'i',
];

#[test]
fn literal_udp_goes_out_as_the_tunnel_address() {
    assert!(checksums_ok(&DNS_OUT), "the literal itself is right");
    let mut n = nat();
    let mut p = DNS_OUT;
    n.outbound(&mut p, 0).unwrap();
    assert_eq!(ports(&p), (addr("198.19.0.2"), 5353, addr("198.19.9.9"), 53), "port preserved");
    assert!(checksums_ok(&p));
    assert_eq!(p[28..], *b"hi");
    let mut reply = testpkt::udp((addr("198.19.9.9"), 53), (addr("198.19.0.2"), 5353), b"ok");
    assert_eq!(n.inbound(&mut reply, 10), Ok(addr("198.18.0.10")));
    assert_eq!(ports(&reply), (addr("198.19.9.9"), 53, addr("198.18.0.10"), 5353));
    assert!(checksums_ok(&reply));
    assert_eq!((n.counters().outbound, n.counters().inbound), (1, 1));
}

#[test]
fn a_new_address_drops_the_old_mappings_and_new_flows_use_it() {
    let mut n = nat();
    let mut p = DNS_OUT;
    n.outbound(&mut p, 0).unwrap();
    assert_eq!(n.readdress(addr("198.19.0.2")), 0, "the same address changes nothing");
    assert_eq!(n.len(), 1);
    assert_eq!(n.readdress(addr("198.19.0.6")), 1, "the one mapping on the old address goes");
    assert_eq!((n.len(), n.counters().readdressed, n.counters().created), (0, 1, 1));
    let mut late = testpkt::udp((addr("198.19.9.9"), 53), (addr("198.19.0.2"), 5353), b"ok");
    assert_eq!(n.inbound(&mut late, 10), Err(NatDrop::NoMapping), "a reply to the old address");
    let mut p = DNS_OUT;
    n.outbound(&mut p, 20).unwrap();
    assert_eq!(ports(&p).0, addr("198.19.0.6"), "a new flow leaves as the new address");
    assert!(checksums_ok(&p));
    let mut reply = testpkt::udp((addr("198.19.9.9"), 53), (addr("198.19.0.6"), 5353), b"ok");
    assert_eq!(n.inbound(&mut reply, 30), Ok(addr("198.18.0.10")));
    assert_eq!(n.counters().created, 2);
}

#[test]
fn two_vms_on_one_port_get_two_mappings() {
    let mut n = nat();
    let far = (addr("198.19.9.9"), 80);
    let mut a = testpkt::tcp((addr("198.18.0.10"), 40000), far, tcp::SYN, &[], &[]);
    let mut b = testpkt::tcp((addr("198.18.0.11"), 40000), far, tcp::SYN, &[], &[]);
    n.outbound(&mut a, 0).unwrap();
    n.outbound(&mut b, 0).unwrap();
    let (pa, pb) = (ports(&a).1, ports(&b).1);
    assert_eq!(pa, 40000);
    assert_ne!(pa, pb);
    for (port, vm) in [(pa, "198.18.0.10"), (pb, "198.18.0.11")] {
        let mut r = testpkt::tcp(far, (addr("198.19.0.2"), port), tcp::SYN | tcp::ACK, &[], &[]);
        assert_eq!(n.inbound(&mut r, 1), Ok(addr(vm)));
        assert_eq!(ports(&r).3, 40000);
        assert!(checksums_ok(&r));
    }
}

#[test]
fn unmapped_inbound_is_dropped_and_counted() {
    let mut n = nat();
    let mut p = testpkt::udp((addr("198.19.9.9"), 53), (addr("198.19.0.2"), 5353), b"x");
    let before = p.clone();
    assert_eq!(n.inbound(&mut p, 0), Err(NatDrop::NoMapping));
    assert_eq!(p, before, "a dropped packet is left as it was");
    let mut other = testpkt::udp((addr("198.19.9.9"), 53), (addr("198.19.0.3"), 5353), b"x");
    assert_eq!(n.inbound(&mut other, 0), Err(NatDrop::NoMapping), "not our address");
    assert_eq!(n.counters().no_mapping, 2);
    assert_eq!(n.counters().drops()[1], ("nat-no-mapping", 2));
}

#[test]
fn full_table_drops_new_flows_until_one_expires() {
    let mut cfg = NatConfig::new(addr("198.19.0.2"));
    cfg.capacity = 2;
    let mut n = Nat::new(cfg);
    let out = |port| testpkt::udp((addr("198.18.0.10"), port), (addr("198.19.9.9"), 53), b"q");
    n.outbound(&mut out(2000), 0).unwrap();
    n.outbound(&mut out(2001), 100_000).unwrap();
    assert_eq!(n.outbound(&mut out(2002), 200_000), Err(NatDrop::TableFull));
    assert_eq!(n.counters().table_full, 1);
    n.outbound(&mut out(2000), 200_000).unwrap(); // an existing flow still passes
                                                  // At 5 min + 100 s the second mapping (last seen at 100 s) has expired, the first not.
    n.outbound(&mut out(2002), 400_000).unwrap();
    assert_eq!(n.counters().expired, 1);
    let mut late = testpkt::udp((addr("198.19.9.9"), 53), (addr("198.19.0.2"), 2001), b"r");
    assert_eq!(n.inbound(&mut late, 400_000), Err(NatDrop::NoMapping));
    let c = n.counters();
    assert_eq!((c.created, c.refused(), n.len()), (3, 2, 2), "2000, 2001, 2002; full and no mapping");
}

#[test]
fn tcp_timeouts_follow_the_connection_state() {
    let mut n = nat();
    let (vm, far, us) = ((addr("198.18.0.10"), 40000), (addr("198.19.9.9"), 22), (addr("198.19.0.2"), 40000));
    n.outbound(&mut testpkt::tcp(vm, far, tcp::SYN, &[], &[]), 0).unwrap();
    let m = |n: &Nat| n.mappings().next().copied().unwrap().tcp;
    assert_eq!(m(&n), TcpState::Opening);
    n.inbound(&mut testpkt::tcp(far, us, tcp::SYN | tcp::ACK, &[], &[]), 1).unwrap();
    n.outbound(&mut testpkt::tcp(vm, far, tcp::ACK, &[], &[]), 2).unwrap();
    assert_eq!(m(&n), TcpState::Established);
    assert_eq!(n.expire(2 + 240_000), 0, "established outlives the transitory timer");
    n.outbound(&mut testpkt::tcp(vm, far, tcp::FIN | tcp::ACK, &[], &[]), 3_600_000).unwrap();
    assert_eq!(m(&n), TcpState::Closing);
    assert_eq!(n.expire(3_600_000 + 240_000), 1, "closing lasts 4 min");
}

#[test]
fn echo_identifier_and_icmp_error_quotes_are_translated() {
    let mut n = nat();
    let (vm, far, us) = (addr("198.18.0.10"), addr("198.19.9.9"), addr("198.19.0.2"));
    let mut ping = testpkt::icmp(vm, far, icmpv4::ECHO_REQUEST, 0, [0x12, 0x34, 0, 1], b"ping");
    n.outbound(&mut ping, 0).unwrap();
    assert!(checksums_ok(&ping));
    let mut pong = testpkt::icmp(far, us, icmpv4::ECHO_REPLY, 0, [ping[24], ping[25], 0, 1], b"ping");
    assert_eq!(n.inbound(&mut pong, 1), Ok(vm));
    assert_eq!((&pong[24..26], checksums_ok(&pong)), (&[0x12, 0x34][..], true));

    // A router on the far side says a TCP segment the VM sent was too big.
    let mut seg = testpkt::tcp((vm, 40000), (far, 443), tcp::ACK, &[], &[0; 64]);
    n.outbound(&mut seg, 2).unwrap();
    let quote = &seg[..48]; // header + 28 bytes of TCP: the checksum is in the quote
    let mut err = testpkt::icmp(addr("198.19.5.1"), us, icmpv4::DEST_UNREACHABLE, 4, [0, 0, 5, 0xdc], quote);
    assert_eq!(n.inbound(&mut err, 3), Ok(vm));
    assert!(checksums_ok(&err), "outer ICMP checksum");
    let inner = &err[28..];
    assert_eq!(packet::checksum::internet(&inner[..20]), 0, "quoted IP header checksum");
    let ip = ipv4::Frame::new_checked(inner).unwrap();
    assert_eq!((ip.src(), u16::from_be_bytes([inner[20], inner[21]])), (vm, 40000));
    assert_eq!(n.counters().inbound, 2);
    // An error quoting a datagram that did not come from the tunnel address is not ours.
    let mut foreign = quote.to_vec();
    foreign[12..16].copy_from_slice(&[198, 19, 0, 3]);
    let mut err =
        testpkt::icmp(addr("198.19.5.1"), us, icmpv4::DEST_UNREACHABLE, 4, [0, 0, 5, 0xdc], &foreign);
    assert_eq!(n.inbound(&mut err, 4), Err(NatDrop::NoMapping));
}

#[test]
fn a_vms_icmp_error_about_an_inbound_datagram_goes_out_translated() {
    let mut n = nat();
    let (vm, far, us) = (addr("198.18.0.10"), addr("198.19.9.9"), addr("198.19.0.2"));
    n.outbound(&mut testpkt::udp((vm, 5000), (far, 53), b"q"), 0).unwrap();
    let mut answer = testpkt::udp((far, 53), (us, 5000), b"late answer");
    n.inbound(&mut answer, 1).unwrap();
    // The VM's socket is closed: it answers port unreachable, quoting what it received.
    let mut err = testpkt::icmp(vm, far, icmpv4::DEST_UNREACHABLE, 3, [0; 4], &answer);
    n.outbound(&mut err, 2).unwrap();
    assert!(checksums_ok(&err));
    assert_eq!(ipv4::Frame::new_checked(&err[..]).unwrap().src(), us);
    let quote = &err[28..];
    assert!(checksums_ok(quote), "the quoted UDP datagram is whole here, so its checksum verifies too");
    assert_eq!(ports(quote), (far, 53, us, 5000));
    let mut stray =
        testpkt::icmp(vm, far, icmpv4::DEST_UNREACHABLE, 3, [0; 4], &testpkt::udp((far, 1), (vm, 9), b""));
    assert_eq!(n.outbound(&mut stray, 3), Err(NatDrop::NoMapping), "an error about no mapping leaks nothing");
}

#[test]
fn a_segment_cut_before_its_checksum_is_malformed() {
    let mut n = nat();
    let mut p = testpkt::tcp((addr("198.18.0.10"), 1), (addr("198.19.9.9"), 2), tcp::SYN, &[], &[]);
    p.truncate(20 + 12);
    p[2..4].copy_from_slice(&32u16.to_be_bytes());
    assert_eq!(n.outbound(&mut p, 0), Err(NatDrop::Malformed));
}

#[test]
fn fragments_and_garbage_are_counted_drops() {
    let mut n = nat();
    let mut frag = testpkt::udp((addr("198.18.0.10"), 1), (addr("198.19.9.9"), 2), b"x");
    frag[6] = 0x20; // MF
    assert_eq!(n.outbound(&mut frag, 0), Err(NatDrop::Fragment));
    let mut short = DNS_OUT[..24].to_vec();
    assert_eq!(n.outbound(&mut short, 0), Err(NatDrop::Malformed), "total length past the end");
    let mut gre = testpkt::ipv4(addr("198.18.0.10"), addr("198.19.9.9"), 47, &[0; 4]);
    assert_eq!(n.outbound(&mut gre, 0), Err(NatDrop::Unsupported));
    let mut junk = [0u8; 3];
    assert_eq!(n.outbound(&mut junk, 0), Err(NatDrop::Malformed));
    assert_eq!((n.counters().fragment, n.counters().malformed, n.counters().unsupported), (1, 2, 1));
    assert!(n.is_empty());
}

/// A datagram of `proto` (0 UDP, 1 TCP, 2 ICMP echo) from `src` to `dst`; for echo the
/// identifier is the sender's port going `out`, the receiver's coming in.
fn datagram(proto: u8, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), out: bool, data: &[u8]) -> Vec<u8> {
    match proto {
        0 => testpkt::udp(src, dst, data),
        1 => testpkt::tcp(src, dst, tcp::ACK, &[], data),
        _ => {
            let (typ, id) = if out { (icmpv4::ECHO_REQUEST, src.1) } else { (icmpv4::ECHO_REPLY, dst.1) };
            let id = id.to_be_bytes();
            testpkt::icmp(src.0, dst.0, typ, 0, [id[0], id[1], 0, 7], data)
        }
    }
}

/// The (address, port) at one end of `p`, the echo identifier standing in for ICMP's port.
fn end(p: &[u8], src: bool) -> (Ipv4Addr, u16) {
    let ip = ipv4::Frame::new_checked(p).unwrap();
    let l4 = ip.payload();
    let port = match (ip.protocol(), src) {
        (ipv4::PROTO_ICMP, _) => u16::from_be_bytes([l4[4], l4[5]]),
        (_, true) => u16::from_be_bytes([l4[0], l4[1]]),
        (_, false) => u16::from_be_bytes([l4[2], l4[3]]),
    };
    (if src { ip.src() } else { ip.dst() }, port)
}

proptest::proptest! {
    /// Out, then the far side's reply back in: the VM sees exactly its own addresses and
    /// ports again, and every checksum verifies when summed from scratch.
    #[test]
    fn round_trip_restores_endpoints(vm in 1u8..255, vport in proptest::num::u16::ANY, fport in 1u16..,
                                     proto in 0u8..3, data in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
        let mut n = nat();
        let (vm, far) = ((Ipv4Addr::new(198, 18, 0, vm), vport), (addr("198.19.9.9"), fport));
        let mut out = datagram(proto, vm, far, true, &data);
        n.outbound(&mut out, 0).unwrap();
        proptest::prop_assert!(checksums_ok(&out));
        let mapped = end(&out, true);
        proptest::prop_assert_eq!(mapped.0, addr("198.19.0.2"));
        let mut back = datagram(proto, far, mapped, false, &data);
        proptest::prop_assert_eq!(n.inbound(&mut back, 1), Ok(vm.0));
        proptest::prop_assert!(checksums_ok(&back));
        proptest::prop_assert_eq!(end(&back, false), vm);
        if proto != 2 {
            proptest::prop_assert_eq!(end(&back, true), far);
        }
    }
}
