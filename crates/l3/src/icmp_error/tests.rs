use super::*;
use crate::testpkt::{self, addr, checksums_ok};

const GW4: &str = "198.18.0.1";

fn errors() -> IcmpErrors {
    IcmpErrors::new(addr(GW4), "fe80::1".parse().unwrap(), 0)
}

/// A 1500-byte TCP segment with DF from a VM.
fn big(df: bool) -> Vec<u8> {
    let mut p = testpkt::tcp((addr("198.18.0.10"), 40000), (addr("198.19.9.9"), 443), 0x10, &[], &[7; 1460]);
    if !df {
        p[6] = 0;
        p[10..12].fill(0);
        let c = packet::checksum::internet(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    p
}

#[test]
fn frag_needed_quotes_576_bytes_with_the_mtu() {
    let mut e = errors();
    let p = big(true);
    let Oversize::Reply(r) = e.check(&p, 1420, 0) else { panic!("no error built") };
    assert_eq!(r.len(), 576);
    assert!(checksums_ok(&r), "IP and ICMP checksums verify from scratch");
    let ip = ipv4::Frame::new_checked(&r[..]).unwrap();
    assert_eq!((ip.src(), ip.dst(), ip.protocol()), (addr(GW4), addr("198.18.0.10"), ipv4::PROTO_ICMP));
    assert_eq!(&r[20..28], &[3, 4, r[22], r[23], 0, 0, 0x05, 0x8c], "type 3 code 4, MTU 1420");
    assert_eq!(&r[28..], &p[..548], "the quote is the original's first bytes");
    assert_eq!(e.counters().sent, 1);
}

#[test]
fn fits_and_no_df() {
    let mut e = errors();
    assert_eq!(e.check(&big(true), 1500, 0), Oversize::Fits);
    assert_eq!(e.check(&big(false), 1420, 0), Oversize::Fragmentable);
    assert_eq!(e.check(&[0x45, 0], 1420, 0), Oversize::Drop(IcmpDrop::Malformed));
    assert_eq!(e.check(&[], 1420, 0), Oversize::Drop(IcmpDrop::Malformed));
    assert_eq!(e.counters(), IcmpCounters { malformed: 2, ..Default::default() });
}

#[test]
fn no_error_about_errors_or_odd_sources() {
    let mut e = errors();
    let mut err = testpkt::icmp(addr("198.18.0.10"), addr("198.19.9.9"), 3, 1, [0; 4], &[0; 1500]);
    assert_eq!(e.check(&err, 1420, 0), Oversize::Drop(IcmpDrop::NotEligible));
    err[20] = icmpv4::ECHO_REQUEST;
    assert!(matches!(e.check(&err, 1420, 0), Oversize::Reply(_)), "a big ping does get one");
    let bcast = testpkt::udp((addr("0.0.0.0"), 68), (addr("255.255.255.255"), 67), &[0; 1500]);
    let mut bcast = bcast;
    bcast[6] = 0x40;
    assert_eq!(e.check(&bcast, 1420, 0), Oversize::Drop(IcmpDrop::NotEligible));
    assert_eq!(e.counters().not_eligible, 2);
}

#[test]
fn rate_limited_by_the_bucket() {
    let mut e = IcmpErrors::with_rate(addr(GW4), Ipv6Addr::LOCALHOST, 2, 1, 0);
    let p = big(true);
    let sent = |e: &mut IcmpErrors, now| {
        (0..5).filter(|_| matches!(e.check(&p, 1420, now), Oversize::Reply(_))).count()
    };
    assert_eq!(sent(&mut e, 0), 2);
    assert_eq!(e.counters().rate_limited, 3);
    assert_eq!(sent(&mut e, 1000), 1, "one more a second later");
}

/// 2001:db8::10 → 2001:db8::1, next header UDP, 1460 bytes of payload: 1500 on the wire.
fn big6() -> Vec<u8> {
    let mut p = vec![0u8; 1500];
    let (s, d) = ("2001:db8::10".parse().unwrap(), "2001:db8::1".parse().unwrap());
    ipv6::write_header(&mut p, (s, d), 17, 64, 1460).unwrap();
    p
}

#[test]
fn packet_too_big_quotes_up_to_1280() {
    let mut e = errors();
    let p = big6();
    assert_eq!(e.check(&p, 1500, 0), Oversize::Fits);
    let Oversize::Reply(r) = e.check(&p, 1420, 0) else { panic!("no error built") };
    assert_eq!(r.len(), 1280);
    let ip = ipv6::Frame::new_checked(&r[..]).unwrap();
    assert_eq!((ip.src(), ip.dst(), ip.next_header()), (e.v6, "2001:db8::10".parse().unwrap(), 58));
    assert_eq!(&r[40..48], &[2, 0, r[42], r[43], 0, 0, 0x05, 0x8c], "type 2, MTU 1420");
    let pseudo = checksum::pseudo_v6(ip.src(), ip.dst(), 58, ip.payload().len());
    assert_eq!(checksum::finish(pseudo + checksum::sum(ip.payload())), 0, "ICMPv6 checksum verifies");
    assert_eq!(&r[48..], &p[..1232]);
}

#[test]
fn v6_rules() {
    let mut e = errors();
    let mut multicast = big6();
    multicast[24] = 0xff; // ff..: Packet Too Big still answers a multicast destination
    assert!(matches!(e.check(&multicast, 1420, 0), Oversize::Reply(_)));
    let mut err = big6();
    err[6] = 58;
    err[40] = icmpv6::DEST_UNREACHABLE;
    assert_eq!(e.check(&err, 1420, 0), Oversize::Drop(IcmpDrop::NotEligible));
    let mut unspecified = big6();
    unspecified[8..24].fill(0);
    assert_eq!(e.check(&unspecified, 1420, 0), Oversize::Drop(IcmpDrop::NotEligible));
}
