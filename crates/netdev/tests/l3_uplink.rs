//! Root tests for `L3Uplink` on a tun device this test holds itself (standing in for a VPN
//! client), always inside a private namespace.

mod common;

use std::os::fd::OwnedFd;
use std::time::Duration;

use common::ip::{
    echo_request, ipv6_packet, open_tun, open_tun_pi, tun_read_until, tun_write, udp_packet, uplink_recv_n,
    uplink_recv_until,
};
use netdev::{L3Uplink, LinkState, NetdevError};
use testbed::{require_root, unique, Netns, Veth};

const WAIT: Duration = Duration::from_secs(5);
const A: [u8; 4] = [198, 18, 77, 1];
const B: [u8; 4] = [198, 18, 77, 2];

/// A namespace with tun `name` held by the returned descriptor, up.
fn tun_in_ns(prefix: &str) -> (Netns, String, OwnedFd) {
    tun_in_ns_with(prefix, open_tun)
}

/// [`tun_in_ns`] with the tun opened by `open`.
fn tun_in_ns_with(prefix: &str, open: fn(&str) -> std::io::Result<OwnedFd>) -> (Netns, String, OwnedFd) {
    let ns = Netns::new(prefix).unwrap();
    let name = unique("tun");
    let fd = ns.run_in(|| open(&name)).unwrap().unwrap();
    ns.exec(&["ip", "link", "set", &name, "up"]).unwrap();
    (ns, name, fd)
}

#[test]
fn packets_cross_between_tun_fd_and_uplink() {
    if !require_root("packets_cross_between_tun_fd_and_uplink") {
        return;
    }
    let (ns, name, tun) = tun_in_ns("l3x");
    let mut up = ns.run_in(|| L3Uplink::open(&name)).unwrap().unwrap();
    assert_eq!(up.state(), LinkState::Up);

    // VPN client → host: what it writes into its tun fd is received by the uplink.
    let from_vpn = udp_packet(B, A, b"from-the-vpn");
    tun_write(&tun, &from_vpn).unwrap();
    assert_eq!(uplink_recv_until(&mut up, WAIT, |p| p == from_vpn), Some(from_vpn));

    // uplink → VPN client: what the uplink sends is read from the tun fd, unchanged.
    let to_vpn = udp_packet(A, B, b"into-the-vpn");
    assert!(up.send_ip(&to_vpn).unwrap());
    assert_eq!(tun_read_until(&tun, WAIT, |p| p == to_vpn), Some(to_vpn));

    // A batch of 20 arrives whole and in order, across calls of at most 8.
    let batch: Vec<Vec<u8>> = (0..20u8).map(|i| udp_packet(B, A, &[b'b', i])).collect();
    for p in &batch {
        tun_write(&tun, p).unwrap();
    }
    let got = uplink_recv_n(&mut up, WAIT, batch.len());
    assert_eq!(got, batch);
    assert_eq!(up.drops().rx_truncated, 0);
}

#[test]
fn the_hosts_own_traffic_into_the_tun_is_not_received() {
    if !require_root("the_hosts_own_traffic_into_the_tun_is_not_received") {
        return;
    }
    let (ns, name, tun) = tun_in_ns("l3o");
    ns.exec(&["ip", "addr", "add", "198.18.77.1", "peer", "198.18.77.2", "dev", &name]).unwrap();
    let mut up = ns.run_in(|| L3Uplink::open(&name)).unwrap().unwrap();
    // The host stack routes a ping out of the tun (the VPN client would read it)...
    assert!(ns.exec_status(&["ping", "-c", "1", "-W", "1", "198.18.77.2"]).is_ok());
    let ping = tun_read_until(&tun, WAIT, |p| p.len() > 20 && p[9] == 1 && p[16..20] == B);
    assert!(ping.is_some(), "the host's ping reached the tun fd");
    // ...and the uplink, whose tap saw it before the tun did, returns nothing of it.
    let mut bufs = vec![vec![0u8; 2048]; 4];
    let mut lens = [0; 4];
    assert_eq!(up.recv_ip(&mut bufs, &mut lens).unwrap(), 0);
}

#[test]
fn oversize_and_non_ip_are_counted_drops() {
    if !require_root("oversize_and_non_ip_are_counted_drops") {
        return;
    }
    let (ns, name, tun) = tun_in_ns("l3d");
    let mut up = ns.run_in(|| L3Uplink::open(&name)).unwrap().unwrap();
    assert!(!up.send_ip(&[0x55; 40]).unwrap());
    assert!(!up.send_ip(&[]).unwrap());
    assert_eq!(up.drops().tx_not_ip, 2);

    let big = udp_packet(B, A, &[7u8; 300]);
    let small = udp_packet(B, A, b"fits");
    tun_write(&tun, &big).unwrap();
    tun_write(&tun, &small).unwrap();
    let mut bufs = vec![vec![0u8; 200]; 4];
    let mut lens = [0; 4];
    let mut got = Vec::new();
    testbed::wait_until(WAIT, || {
        let n = up.recv_ip(&mut bufs, &mut lens).unwrap();
        got.extend(bufs[..n].iter().zip(&lens).map(|(b, &l)| b[..l].to_vec()));
        !got.is_empty()
    });
    assert_eq!(got, vec![small], "the cut packet is dropped, the next one kept");
    assert_eq!(up.drops().rx_truncated, 1);
}

#[test]
fn link_down_is_down_and_deletion_is_gone() {
    if !require_root("link_down_is_down_and_deletion_is_gone") {
        return;
    }
    let (ns, name, _tun) = tun_in_ns("l3s");
    let mut up = ns.run_in(|| L3Uplink::open(&name)).unwrap().unwrap();
    assert_eq!(up.state(), LinkState::Up);
    ns.exec(&["ip", "link", "set", &name, "down"]).unwrap();
    assert_eq!(up.state(), LinkState::Down);
    let p = udp_packet(A, B, b"while-down");
    assert!(!up.send_ip(&p).unwrap(), "a send while down is a counted drop");
    assert_eq!(up.drops().tx_dropped, 1);
    ns.exec(&["ip", "link", "set", &name, "up"]).unwrap();
    assert_eq!(up.state(), LinkState::Up);

    ns.exec(&["ip", "link", "del", &name]).unwrap();
    assert_eq!(up.state(), LinkState::Gone);
    assert!(up.send_ip(&p).unwrap_err().is_gone());
    let mut bufs = vec![vec![0u8; 2048]; 2];
    assert!(up.recv_ip(&mut bufs, &mut [0; 2]).unwrap_err().is_gone());
}

#[test]
fn vpn_client_exit_is_gone_and_a_send_notices_by_itself() {
    if !require_root("vpn_client_exit_is_gone_and_a_send_notices_by_itself") {
        return;
    }
    let (ns, name, tun) = tun_in_ns("l3g");
    let mut up = ns.run_in(|| L3Uplink::open(&name)).unwrap().unwrap();
    // The client exits: its descriptor closes and the (non-persistent) device goes with it.
    drop(tun);
    assert!(testbed::wait_until(WAIT, || ns
        .exec_status(&["ip", "link", "show", &name])
        .is_ok_and(|s| !s.success())));
    // Without asking state() first, the send's own error says gone.
    let err = up.send_ip(&udp_packet(A, B, b"after-exit")).unwrap_err();
    assert!(err.is_gone(), "{err}");
    assert_eq!(up.state(), LinkState::Gone);
}

#[test]
fn ethernet_devices_are_refused() {
    if !require_root("ethernet_devices_are_refused") {
        return;
    }
    let ns = Netns::new("l3e").unwrap();
    let (a, b) = (unique("vea"), unique("veb"));
    let _veth = Veth::between(&ns, &a, &ns, &b).unwrap();
    match ns.run_in(|| L3Uplink::open(&a)).unwrap() {
        Err(NetdevError::NotL3Device { link_type: 1, .. }) => {}
        other => panic!("veth opened as L3 uplink: {:?}", other.map(|u| u.name().to_owned())),
    }
    let missing = ns.run_in(|| L3Uplink::open("rvsw-nonexist")).unwrap();
    assert!(matches!(missing, Err(NetdevError::NoSuchDevice(_))));
}

#[test]
fn the_host_stack_never_sees_what_arrives_while_the_uplink_is_open() {
    if !require_root("the_host_stack_never_sees_what_arrives_while_the_uplink_is_open") {
        return;
    }
    let (ns, name, tun) = tun_in_ns("l3h");
    ns.exec(&["ip", "addr", "add", "198.18.77.1", "peer", "198.18.77.2", "dev", &name]).unwrap();
    let reply_to =
        |seq: u16| move |p: &[u8]| p.len() >= 28 && p[9] == 1 && p[20] == 0 && p[26..28] == seq.to_be_bytes();
    let mut up = ns.run_in(|| L3Uplink::open(&name)).unwrap().unwrap();

    // An echo request to the host's own tunnel address: the uplink gets it...
    let first = echo_request(B, A, 7, 1, b"hidden");
    tun_write(&tun, &first).unwrap();
    assert_eq!(uplink_recv_until(&mut up, WAIT, |p| p == first), Some(first));
    // ...and once the uplink is closed (its ingress drop with it) the host answers the next one,
    // but never answered the first.
    // A child another test forks meanwhile may hold the link descriptor until it execs, which
    // delays the detach a little: keep asking (bounded by WAIT) until the host answers.
    drop(up);
    let mut replies = Vec::new();
    let mut seq = 1u16;
    let answered = testbed::wait_until(WAIT, || {
        seq += 1;
        tun_write(&tun, &echo_request(B, A, 7, seq, b"seen")).unwrap();
        tun_read_until(&tun, Duration::from_millis(100), |p| {
            replies.push(p.to_vec());
            (2..=seq).any(|k| reply_to(k)(p))
        })
        .is_some()
    });
    assert!(answered, "the host answers once the uplink is gone");
    assert!(!replies.iter().any(|p| reply_to(1)(p)), "the host answered a packet the uplink hid");
}

#[test]
fn sends_carry_the_protocol_of_their_version_nibble_and_ipv6_arrives() {
    if !require_root("sends_carry_the_protocol_of_their_version_nibble_and_ipv6_arrives") {
        return;
    }
    let (ns, name, tun) = tun_in_ns_with("l3p", open_tun_pi);
    let mut up = ns.run_in(|| L3Uplink::open(&name)).unwrap().unwrap();
    // The tun's packet information header (flags, then EtherType) says what the kernel was told.
    for (pkt, proto) in [(udp_packet(A, B, b"v4"), 0x0800u16), (ipv6_packet(b"v6-out"), 0x86dd)] {
        assert!(up.send_ip(&pkt).unwrap());
        let got = tun_read_until(&tun, WAIT, |p| p.len() > 4 && p[4..] == pkt[..]);
        let got = got.unwrap_or_else(|| panic!("{proto:#06x} packet not read from the tun"));
        assert_eq!(u16::from_be_bytes([got[2], got[3]]), proto);
    }
    // IPv6 from the VPN client is received too (the namespace's own IPv6 is off: it does not
    // matter to the uplink).
    let v6 = ipv6_packet(b"v6-in");
    let mut framed = vec![0, 0, 0x86, 0xdd];
    framed.extend(&v6);
    tun_write(&tun, &framed).unwrap();
    assert_eq!(uplink_recv_until(&mut up, WAIT, |p| p == v6), Some(v6));
}

/// What the VPN client changes on its device is what `facts` reads next (the zone's MTU and
/// NAT address follow it); a packet bigger than the device's MTU is a counted drop
/// (EMSGSIZE: the client lowered the MTU since the caller last read it).
#[test]
fn facts_follow_the_device_and_an_oversize_send_is_a_counted_drop() {
    if !require_root("facts_follow_the_device_and_an_oversize_send_is_a_counted_drop") {
        return;
    }
    let (ns, name, _tun) = tun_in_ns("l3f");
    let mut up = ns.run_in(|| L3Uplink::open(&name)).unwrap().unwrap();
    assert_eq!(up.facts(), netdev::DeviceFacts { mtu: Some(1500), ipv4: None });
    ns.exec(&["ip", "link", "set", &name, "mtu", "1280"]).unwrap();
    ns.exec(&["ip", "addr", "add", "198.18.77.1/32", "peer", "198.18.77.2", "dev", &name]).unwrap();
    let want = netdev::DeviceFacts { mtu: Some(1280), ipv4: Some(std::net::Ipv4Addr::from(A)) };
    assert_eq!(up.facts(), want);
    let big = udp_packet(A, B, &[0xab; 1372]);
    assert_eq!(big.len(), 1400);
    assert!(!up.send_ip(&big).unwrap(), "bigger than the MTU: dropped, not an error");
    assert_eq!(up.drops().tx_dropped, 1);
    assert!(up.send_ip(&udp_packet(A, B, b"fits")).unwrap(), "a small one still goes");
}
