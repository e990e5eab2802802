use std::net::Ipv4Addr;

use packet::{dhcp, ipv4, udp, MacAddr};

use super::persist::{PersistError, Restored};
use super::*;
use crate::testpkt::{addr, checksums_ok};

/// A DHCPDISCOVER as busybox udhcpc 1.35 sends it (`udhcpc -x hostname:vm1` from
/// 52:54:00:10:00:01), captured on a veth: IPv4 0.0.0.0 → 255.255.255.255, UDP 68 → 67,
/// xid cd50e21e, options 53 (DISCOVER), 57 (max size 576), 55 (1 3 6 12 15 28 42),
/// 12 "vm1", 60 "udhcp 1.35.0", 61, end, padding. (The gateway's tests use the same file.)
const UDHCPC_DISCOVER: &[u8] = include_bytes!("../../testdata/udhcpc-discover.bin");

const VM1: MacAddr = MacAddr([0x52, 0x54, 0, 0x10, 0, 1]);
const VM2: MacAddr = MacAddr([0x52, 0x54, 0, 0x10, 0, 2]);
const T0: UnixSecs = 1_764_590_000;

fn config() -> DhcpConfig {
    DhcpConfig {
        server: addr("198.18.0.1"),
        prefix_len: 24,
        range: (addr("198.18.0.100"), addr("198.18.0.102")),
        dns: vec![addr("198.19.0.53"), addr("198.19.0.54")],
        mtu: Some(1420),
        lease_secs: 3600,
        statics: vec![(MacAddr([0x52, 0x54, 0, 0x10, 0, 9]), addr("198.18.0.9"))],
    }
}

fn server() -> DhcpServer {
    DhcpServer::new(config()).unwrap()
}

/// The udhcpc DISCOVER turned into another message: type, client MAC, ciaddr, and options
/// appended before the end option.
fn msg(typ: u8, mac: MacAddr, ciaddr: Ipv4Addr, extra: &[u8]) -> Vec<u8> {
    let ip = UDHCPC_DISCOVER.to_vec();
    let mut m = ip[28..].to_vec();
    m[dhcp::field::CHADDR].copy_from_slice(&mac.0);
    m[dhcp::field::CIADDR].copy_from_slice(&ciaddr.octets());
    let opts = dhcp::field::OPTIONS;
    assert_eq!(&m[opts..opts + 3], &[53, 1, 1]);
    m[opts + 2] = typ;
    let end = m.iter().rposition(|b| *b == dhcp::OPT_END).unwrap();
    m.splice(end..end, extra.iter().copied());
    crate::testpkt::udp((ciaddr, 68), (Ipv4Addr::BROADCAST, 67), &m)
}

fn opt_addr(code: u8, a: &str) -> Vec<u8> {
    let mut v = vec![code, 4];
    v.extend_from_slice(&addr(a).octets());
    v
}

fn selecting(mac: MacAddr, ip: &str) -> Vec<u8> {
    let extra = [opt_addr(dhcp::OPT_REQUESTED_IP, ip), opt_addr(dhcp::OPT_SERVER_ID, "198.18.0.1")].concat();
    msg(dhcp::REQUEST, mac, Ipv4Addr::UNSPECIFIED, &extra)
}

/// The reply's IPv4 destination and DHCP message.
fn parsed(r: &DhcpReply) -> (Ipv4Addr, Vec<u8>) {
    assert!(checksums_ok(&r.packet), "IP and UDP checksums verify");
    let ip = ipv4::Frame::new_checked(&r.packet[..]).unwrap();
    assert_eq!(ip.src(), addr("198.18.0.1"));
    let u = udp::Frame::new_checked(ip.payload()).unwrap();
    assert_eq!((u.src_port(), u.dst_port()), (67, 68));
    (ip.dst(), u.payload().to_vec())
}

#[test]
fn udhcpc_discover_gets_a_full_offer() {
    let mut s = server();
    let out = s.handle(UDHCPC_DISCOVER, T0).unwrap();
    assert_eq!(out.event, None, "an offer binds nothing");
    let r = out.reply.unwrap();
    assert_eq!(r.dst_mac, VM1, "udhcpc did not ask for broadcast: unicast to its MAC");
    let (dst, m) = parsed(&r);
    assert_eq!(dst, addr("198.18.0.100"));
    let d = dhcp::Frame::new_checked(&m[..]).unwrap();
    assert_eq!((d.op(), d.xid(), d.client_mac(), d.yiaddr()), (2, 0xcd50_e21e, VM1, addr("198.18.0.100")));
    assert_eq!(d.message_type(), Some(dhcp::OFFER));
    assert_eq!(d.option_addr(dhcp::OPT_SERVER_ID), Some(addr("198.18.0.1")));
    assert_eq!(d.option_addr(dhcp::OPT_SUBNET_MASK), Some(addr("255.255.255.0")));
    assert_eq!(d.option_addr(dhcp::OPT_ROUTER), Some(addr("198.18.0.1")));
    assert_eq!(d.option(dhcp::OPT_DNS), Some(&[198, 19, 0, 53, 198, 19, 0, 54][..]));
    assert_eq!(d.option(dhcp::OPT_MTU), Some(&[0x05, 0x8c][..]));
    assert_eq!(d.lease_secs(), Some(3600));
    assert_eq!(d.option(dhcp::OPT_RENEWAL_TIME), Some(&1800u32.to_be_bytes()[..]));
    assert_eq!(d.option(dhcp::OPT_REBINDING_TIME), Some(&3150u32.to_be_bytes()[..]));
    assert!(m.len() >= 300, "BOOTP minimum");
    assert_eq!(s.counters().offers, 1);
}

#[test]
fn request_binds_and_reports() {
    let mut s = server();
    s.handle(UDHCPC_DISCOVER, T0).unwrap();
    let out = s.handle(&selecting(VM1, "198.18.0.100"), T0 + 1).unwrap();
    let b = Binding { mac: VM1, ip: addr("198.18.0.100"), expires: T0 + 1 + 3600 };
    assert_eq!(out.event, Some(BindingEvent::Bound(b)));
    let (_, m) = parsed(out.reply.as_ref().unwrap());
    assert_eq!(dhcp::Frame::new_checked(&m[..]).unwrap().message_type(), Some(dhcp::ACK));
    assert_eq!(s.bindings(T0 + 2), vec![b]);
    assert_eq!((b.remaining_secs(T0 + 2), b.remaining_secs(T0 + 9999)), (3599, 0));
    // Renewing: unicast from its address, no requested-address option.
    let renew = msg(dhcp::REQUEST, VM1, addr("198.18.0.100"), &[]);
    let out = s.handle(&renew, T0 + 1800).unwrap();
    let (dst, _) = parsed(out.reply.as_ref().unwrap());
    assert_eq!(dst, addr("198.18.0.100"));
    assert_eq!(s.bindings(T0 + 3700)[0].expires, T0 + 1800 + 3600, "renewed");
    assert_eq!(s.counters().acks, 2);
}

#[test]
fn another_servers_request_and_wrong_addresses() {
    let mut s = server();
    s.handle(UDHCPC_DISCOVER, T0).unwrap();
    let other =
        [opt_addr(dhcp::OPT_REQUESTED_IP, "10.0.0.5"), opt_addr(dhcp::OPT_SERVER_ID, "10.0.0.1")].concat();
    assert_eq!(s.handle(&msg(dhcp::REQUEST, VM1, Ipv4Addr::UNSPECIFIED, &other), T0), Err(DhcpDrop::NotOurs));
    // INIT-REBOOT for an address of another network: NAK, broadcast.
    let reboot =
        msg(dhcp::REQUEST, VM1, Ipv4Addr::UNSPECIFIED, &opt_addr(dhcp::OPT_REQUESTED_IP, "10.0.0.5"));
    let r = s.handle(&reboot, T0).unwrap().reply.unwrap();
    assert_eq!(r.dst_mac, MacAddr::BROADCAST);
    let (dst, m) = parsed(&r);
    assert_eq!(dst, Ipv4Addr::BROADCAST);
    let d = dhcp::Frame::new_checked(&m[..]).unwrap();
    assert_eq!(
        (d.message_type(), d.lease_secs(), d.yiaddr()),
        (Some(dhcp::NAK), None, Ipv4Addr::UNSPECIFIED)
    );
    // Another client's address: NAK too.
    s.handle(&selecting(VM2, "198.18.0.100"), T0).unwrap();
    let r = s.handle(&selecting(VM1, "198.18.0.100"), T0).unwrap();
    assert_eq!((r.event, s.counters().naks), (None, 2));
}

#[test]
fn release_and_decline_free_the_address() {
    let mut s = server();
    s.handle(&selecting(VM1, "198.18.0.100"), T0).unwrap();
    let rel = msg(dhcp::RELEASE, VM1, addr("198.18.0.100"), &opt_addr(dhcp::OPT_SERVER_ID, "198.18.0.1"));
    let out = s.handle(&rel, T0 + 5).unwrap();
    assert_eq!(
        (out.reply, out.event),
        (None, Some(BindingEvent::Ended { mac: VM1, ip: addr("198.18.0.100") }))
    );
    assert!(s.bindings(T0 + 5).is_empty());
    assert_eq!(s.handle(&rel, T0 + 6), Err(DhcpDrop::NotOurs), "nothing left to release");
    // VM2 takes .100 and finds it in use (ARP): declined, it is not offered for 10 min.
    s.handle(&selecting(VM2, "198.18.0.100"), T0 + 10).unwrap();
    let dec =
        msg(dhcp::DECLINE, VM2, Ipv4Addr::UNSPECIFIED, &opt_addr(dhcp::OPT_REQUESTED_IP, "198.18.0.100"));
    assert!(s.handle(&dec, T0 + 11).unwrap().event.is_some());
    let offer = |s: &mut DhcpServer, now| {
        let r = s.handle(&msg(dhcp::DISCOVER, VM2, Ipv4Addr::UNSPECIFIED, &[]), now).unwrap().reply.unwrap();
        dhcp::Frame::new_checked(&parsed(&r).1[..]).unwrap().yiaddr()
    };
    assert_eq!(offer(&mut s, T0 + 12), addr("198.18.0.101"));
    s.expire(T0 + 12 + DECLINE_HOLD_SECS);
    assert_eq!(offer(&mut s, T0 + 12 + DECLINE_HOLD_SECS), addr("198.18.0.100"), "the decline hold ended");
    assert_eq!((s.counters().releases, s.counters().declines), (1, 1));
}

#[test]
fn inform_gets_options_without_a_lease() {
    let mut s = server();
    let r = s.handle(&msg(dhcp::INFORM, VM1, addr("198.18.0.50"), &[]), T0).unwrap().reply.unwrap();
    let (dst, m) = parsed(&r);
    assert_eq!((dst, r.dst_mac), (addr("198.18.0.50"), VM1));
    let d = dhcp::Frame::new_checked(&m[..]).unwrap();
    assert_eq!(
        (d.message_type(), d.yiaddr(), d.ciaddr()),
        (Some(dhcp::ACK), Ipv4Addr::UNSPECIFIED, addr("198.18.0.50"))
    );
    assert_eq!((d.lease_secs(), d.option_addr(dhcp::OPT_ROUTER)), (None, Some(addr("198.18.0.1"))));
    assert!(s.bindings(T0).is_empty());
}

#[test]
fn static_leases_are_kept_for_their_mac() {
    let mut s = server();
    let fixed = MacAddr([0x52, 0x54, 0, 0x10, 0, 9]);
    let r = s.handle(&msg(dhcp::DISCOVER, fixed, Ipv4Addr::UNSPECIFIED, &[]), T0).unwrap().reply.unwrap();
    assert_eq!(dhcp::Frame::new_checked(&parsed(&r).1[..]).unwrap().yiaddr(), addr("198.18.0.9"));
    assert!(s.handle(&selecting(fixed, "198.18.0.9"), T0).unwrap().event.is_some());
    assert_eq!(s.handle(&selecting(fixed, "198.18.0.101"), T0).unwrap().event, None, "only its own");
    assert_eq!(s.handle(&selecting(VM1, "198.18.0.9"), T0).unwrap().event, None, "not for others");
}

#[test]
fn a_full_pool_is_a_counted_drop() {
    let mut s = server();
    for i in 0..3 {
        let mac = MacAddr([0x52, 0x54, 0, 0x20, 0, i]);
        s.handle(&msg(dhcp::DISCOVER, mac, Ipv4Addr::UNSPECIFIED, &[]), T0).unwrap();
    }
    let late = msg(dhcp::DISCOVER, VM2, Ipv4Addr::UNSPECIFIED, &[]);
    assert_eq!(s.handle(&late, T0), Err(DhcpDrop::PoolExhausted));
    assert!(s.handle(&late, T0 + OFFER_HOLD_SECS).is_ok(), "unclaimed offers lapse");
    assert_eq!(s.counters().pool_exhausted, 1);
}

#[test]
fn leases_expire_with_an_event() {
    let mut s = server();
    s.handle(&selecting(VM1, "198.18.0.101"), T0).unwrap();
    assert!(s.expire(T0 + 3599).is_empty());
    assert_eq!(s.expire(T0 + 3600), vec![BindingEvent::Ended { mac: VM1, ip: addr("198.18.0.101") }]);
}

#[test]
fn leases_survive_a_restart() {
    let mut s = server();
    s.handle(&selecting(VM1, "198.18.0.101"), T0).unwrap();
    s.handle(&selecting(VM2, "198.18.0.102"), T0 - 3000).unwrap();
    s.handle(&msg(dhcp::DISCOVER, MacAddr([2; 6]), Ipv4Addr::UNSPECIFIED, &[]), T0).unwrap();
    let text = s.save(T0);
    assert_eq!(text.matches("\"mac\"").count(), 2, "bound leases only: {text}");
    let mut again = server();
    let r = again.restore(&text, T0 + 100).unwrap();
    assert_eq!(r, Restored { bindings: s.bindings(T0 + 100), skipped: 0 });
    assert_eq!(again.bindings(T0 + 100), s.bindings(T0 + 100));
    // 700 s later VM2's lease has ended, and a new range no longer holds .101.
    let mut narrowed =
        DhcpServer::new(DhcpConfig { range: (addr("198.18.0.102"), addr("198.18.0.110")), ..config() })
            .unwrap();
    assert_eq!(narrowed.restore(&text, T0 + 700).unwrap(), Restored { bindings: vec![], skipped: 2 });
}

#[test]
fn bad_lease_files_change_nothing() {
    let mut s = server();
    assert!(matches!(s.restore("{", T0), Err(PersistError::Json(_))));
    assert!(matches!(s.restore(r#"{"version":2,"leases":[]}"#, T0), Err(PersistError::Version(2))));
    let bad_mac = r#"{"version":1,"leases":[{"mac":"nope","ip":"198.18.0.100","expires":9999999999}]}"#;
    assert_eq!(s.restore(bad_mac, T0).unwrap().skipped, 1);
    let twice = r#"{"version":1,"leases":[{"mac":"52:54:00:10:00:01","ip":"198.18.0.100","expires":9999999999},
                                         {"mac":"52:54:00:10:00:02","ip":"198.18.0.100","expires":9999999999}]}"#;
    assert_eq!(s.restore(twice, T0).unwrap().skipped, 1, "one address, one holder");
    assert!(matches!(s.restore(&" ".repeat(persist::MAX_BYTES + 1), T0), Err(PersistError::TooLarge(_))));
}

#[test]
fn malformed_and_relayed_requests_are_counted() {
    let mut s = server();
    let mut relayed = UDHCPC_DISCOVER.to_vec();
    relayed[28 + 24] = 10; // giaddr 10.0.0.0
    relayed[26..28].fill(0); // no UDP checksum: the server does not need one
    assert_eq!(s.handle(&relayed, T0), Err(DhcpDrop::Relayed));
    let mut reply = UDHCPC_DISCOVER.to_vec();
    reply[28] = dhcp::OP_REPLY;
    assert_eq!(s.handle(&reply, T0), Err(DhcpDrop::Malformed));
    assert_eq!(s.handle(&UDHCPC_DISCOVER[..200], T0), Err(DhcpDrop::Malformed), "cut short");
    assert_eq!(s.handle(&msg(9, VM1, Ipv4Addr::UNSPECIFIED, &[]), T0), Err(DhcpDrop::Unexpected));
    assert_eq!((s.counters().relayed, s.counters().malformed, s.counters().unexpected), (1, 2, 1));
}

/// Found by the `l3` fuzz target: a DISCOVER/REQUEST from a multicast chaddr was bound, and
/// the lease then vanished on save/restore (restore refuses multicast MACs).
#[test]
fn multicast_client_macs_get_no_lease() {
    let mut s = server();
    let group = MacAddr([0xff, 0x54, 0, 0, 0, 0x42]);
    assert_eq!(
        s.handle(&msg(dhcp::DISCOVER, group, Ipv4Addr::UNSPECIFIED, &[]), T0),
        Err(DhcpDrop::Malformed)
    );
    assert_eq!(s.handle(&selecting(group, "198.18.0.100"), T0), Err(DhcpDrop::Malformed));
    assert!(s.bindings(T0).is_empty());
    assert_eq!(s.counters().malformed, 2);
}

#[test]
fn config_rules() {
    let bad = |f: fn(&mut DhcpConfig)| {
        let mut c = config();
        f(&mut c);
        DhcpServer::new(c).unwrap_err()
    };
    assert_eq!(
        bad(|c| c.range = (addr("198.18.0.9"), addr("198.18.0.5"))),
        DhcpConfigError::Reversed(addr("198.18.0.9"), addr("198.18.0.5"))
    );
    assert!(matches!(bad(|c| c.range.1 = addr("198.18.1.1")), DhcpConfigError::OutsideSubnet(..)));
    assert_eq!(bad(|c| c.range.1 = addr("198.18.0.255")), DhcpConfigError::Reserved(addr("198.18.0.255")));
    assert_eq!(bad(|c| c.range.0 = addr("198.18.0.1")), DhcpConfigError::Reserved(addr("198.18.0.1")));
    assert_eq!(bad(|c| c.prefix_len = 31), DhcpConfigError::Prefix(31));
    assert_eq!(bad(|c| c.lease_secs = 0), DhcpConfigError::ZeroLease);
    assert!(matches!(
        bad(|c| {
            c.prefix_len = 8;
            c.range = (addr("198.1.0.1"), addr("198.3.0.1"));
            c.statics.clear()
        }),
        DhcpConfigError::TooLarge(..)
    ));
    assert!(matches!(bad(|c| c.statics.push((VM1, addr("198.18.0.9")))), DhcpConfigError::StaticTwice(_)));
    assert!(matches!(
        bad(|c| c.statics.push((c.statics[0].0, addr("198.18.0.8")))),
        DhcpConfigError::MacTwice(_)
    ));
    assert_eq!(config().netmask(), addr("255.255.255.0"));
}

proptest::proptest! {
    #[test]
    fn random_options_never_panic(opts in proptest::collection::vec(proptest::num::u8::ANY, 0..80), typ in 0u8..10) {
        let mut s = server();
        let p = msg(typ, VM1, Ipv4Addr::UNSPECIFIED, &opts);
        let _ = s.handle(&p, T0);
        let _ = s.handle(&p[..p.len() / 2], T0);
    }
}
