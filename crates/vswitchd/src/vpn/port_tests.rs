//! The port against an in-process boringtun peer on loopback: ARP answered, the handshake
//! made, a zone frame arrives at the peer as the VM's IP packet and the peer's reply comes back
//! as a frame to the VM; garbage is counted.

use std::io::IoSlice;
use std::net::{Ipv4Addr, UdpSocket};

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use gateway::{Gateway, GatewaySpec, GatewayV6};
use netdev::{Netdev, RxBatch, TxFrame, VnetHdr};
use packet::MacAddr;

use super::*;
use crate::vpn::{VpnPort, WireGuard};

const VM_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 2];

fn pair() -> (VpnPort, Tunn, UdpSocket) {
    let (ours, theirs) = (StaticSecret::from([1u8; 32]), StaticSecret::from([2u8; 32]));
    let peer_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer_sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let tunn = Tunn::new(ours.clone(), PublicKey::from(&theirs), None, None, 0, None);
    let peer = Tunn::new(theirs, PublicKey::from(&ours), None, None, 1, None);
    let gw = Gateway::new(GatewaySpec {
        mac: MacAddr([2, 0, 0, 0, 0, 1]),
        ip: Ipv4Addr::new(198, 18, 0, 1),
        subnet: "198.18.0.0/24".parse().unwrap(),
        allowed: vec!["198.18.9.0/24".parse().unwrap(), "fd00:9::/64".parse().unwrap()],
        mtu: 1420,
        // Routed IPv6 (as a zone's subnet6/gateway6), for the IPv6 super-frames.
        v6: Some(GatewayV6 { ip: "fd00::1".parse().unwrap(), subnet: "fd00::/64".parse().unwrap() }),
    });
    let wg = WireGuard::new(tunn, sock, peer_sock.local_addr().unwrap());
    let port = VpnPort::new("wg-test", wg, gw).unwrap();
    (port, peer, peer_sock)
}

fn send(port: &mut VpnPort, frame: &[u8]) {
    let parts = [IoSlice::new(frame)];
    port.transmit(&[TxFrame { vnet: VnetHdr::default(), parts: &parts }]).unwrap();
}

/// Receives until `pred` holds for a frame or 200 tries passed (the port is non-blocking).
fn recv_until(port: &mut VpnPort, batch: &mut RxBatch, pred: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    for _ in 0..200 {
        port.recv_batch(batch).unwrap();
        if let Some(f) = (0..batch.len()).map(|i| batch.frame(i).to_vec()).find(|f| pred(f)) {
            return Some(f);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// ICMP echo 198.18.0.2 → 198.18.9.10 to the gateway MAC (checksums as in gateway's tests).
fn echo() -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1];
    f.extend(VM_MAC);
    f.extend([0x08, 0x00, 0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 1, 0xa5, 0xaf, 198, 18, 0, 2, 198, 18, 9, 10]);
    f.extend([8, 0, 0xf7, 0xff, 0, 0, 0, 0]);
    f
}

/// The peer's side of one datagram: decapsulate it, send back what boringtun says to.
fn peer_round(peer: &mut Tunn, sock: &UdpSocket) -> Option<Vec<u8>> {
    let (mut buf, mut out) = (vec![0u8; 2048], vec![0u8; 2048]);
    let (n, from) = sock.recv_from(&mut buf).ok()?;
    match peer.decapsulate(Some(from.ip()), &buf[..n], &mut out) {
        TunnResult::WriteToNetwork(p) => {
            sock.send_to(p, from).unwrap();
            None
        }
        TunnResult::WriteToTunnelV4(p, _) => Some(p.to_vec()),
        _ => None,
    }
}

#[test]
fn arp_handshake_and_both_directions_through_a_real_tunnel() {
    let (mut port, mut peer, peer_sock) = pair();
    let mut batch = RxBatch::new(8);
    let mut buf = [0u8; 64];
    let n = packet::arp_request(&mut buf, MacAddr(VM_MAC), None, [198, 18, 0, 2], [198, 18, 0, 1]).unwrap();
    send(&mut port, &buf[..n]);
    let reply = recv_until(&mut port, &mut batch, |f| f.len() >= 42 && f[12..14] == [8, 6] && f[21] == 2);
    assert_eq!(reply.expect("ARP reply")[..6], VM_MAC);

    // The port started a handshake when it opened; the peer answers it.
    assert_eq!(peer_round(&mut peer, &peer_sock), None);
    assert!(recv_until(&mut port, &mut batch, |_| false).is_none());
    assert!(port.is_up(Instant::now()), "handshake done: {:?}", port.shared().get());

    send(&mut port, &echo());
    // The keepalive that confirms the session may come first.
    let ip = (0..3).find_map(|_| peer_round(&mut peer, &peer_sock).filter(|p| !p.is_empty()));
    let ip = ip.expect("the peer got the VM's packet");
    assert_eq!((&ip[12..16], &ip[16..20], ip[8]), (&[198, 18, 0, 2][..], &[198, 18, 9, 10][..], 63));

    let mut back = vec![0x45, 0, 0, 28, 0, 2, 0, 0, 63, 1, 0xe6, 0xae, 198, 18, 9, 10, 198, 18, 0, 2];
    back.extend([0, 0, 0xff, 0xff, 0, 0, 0, 0]);
    let mut out = vec![0u8; 2048];
    let TunnResult::WriteToNetwork(d) = peer.encapsulate(&back, &mut out) else { panic!("peer cannot send") };
    peer_sock.send_to(d, port.uplink.sock.local_addr().unwrap()).unwrap();
    let frame =
        recv_until(&mut port, &mut batch, |f| f.len() > 14 && f[12..14] == [8, 0]).expect("reply frame");
    assert_eq!(frame[..6], VM_MAC);
    assert_eq!(frame[14 + 12..14 + 16], [198, 18, 9, 10]);

    for junk in [&[1u8, 0, 0, 0, 9][..], &[4u8; 40][..], &[0xffu8; 200][..]] {
        peer_sock.send_to(junk, port.uplink.sock.local_addr().unwrap()).unwrap();
    }
    recv_until(&mut port, &mut batch, |_| false);
    assert_eq!(port.uplink.bad_datagrams, 3);
}

#[test]
fn nothing_is_routed_before_the_handshake() {
    let (mut port, _peer, peer_sock) = pair();
    send(&mut port, &echo());
    assert_eq!(port.gw.drops().get(gateway::DropReason::VpnDown), 1);
    // Only the handshake initiation (148 bytes, type 1) reached the peer: no data.
    let mut buf = [0u8; 2048];
    let (n, _) = peer_sock.recv_from(&mut buf).unwrap();
    assert_eq!((n, buf[0]), (148, 1));
    peer_sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(peer_sock.recv_from(&mut buf).is_err(), "nothing else was sent");
}

/// The port's published status as `rvsctl show` carries it, on bridge `br-z`.
fn show_of(port: &VpnPort) -> Vec<ctl::protocol::BridgeStatus> {
    let p = ctl::protocol::PortStatus {
        name: port.name.clone(),
        kind: "rvswitch-vpn".into(),
        vlan_mode: "access".into(),
        tag: None,
        trunks: vec![],
        link_state: "up".into(),
        ifindex: None,
        error: None,
        statistics: Default::default(),
        vpn: Some(port.shared().get()),
    };
    vec![ctl::protocol::BridgeStatus {
        name: "br-z".into(),
        mac_aging_time: 300,
        mac_table_size: 8192,
        ports: vec![p],
        mirrors: vec![],
    }]
}

/// The real tunnel's state through the event source and the metrics exposition: down before
/// the handshake (no age series), up after it (a `vpn-up` event with the peer's endpoint, an
/// age, the tunnel's bytes, the garbage counted), and promtool accepts both scrapes.
#[test]
fn tunnel_state_reaches_events_and_metrics() {
    use crate::events::vpn::{VpnState, VpnWatch};
    use crate::metrics::{sample::Sample, vpn::VpnSample};
    if !testbed::require_program("vpn metrics", "promtool", "--version", "prometheus") {
        return;
    }
    let (mut port, mut peer, peer_sock) = pair();
    let mut batch = RxBatch::new(8);
    let mut watch = VpnWatch::default();
    let state = |port: &VpnPort| {
        let v = port.shared().get();
        vec![VpnState {
            bridge: "br-z".into(),
            port: port.name.clone(),
            up: v.state == "up",
            endpoint: v.endpoint,
        }]
    };
    assert!(watch.changes(state(&port)).is_empty(), "down from the start: {:?}", port.shared().get());
    let before = Sample { vpns: VpnSample::from_show(&show_of(&port)), ..Default::default() }.render();
    let (ok, said) = testbed::promtool_check_metrics(&before);
    assert!(ok, "promtool rejects: {said}\n{before}");
    assert!(before.contains(r#"rvswitch_vpn_up{bridge="br-z",port="wg-test"} 0"#), "{before}");
    assert!(!before.contains("rvswitch_vpn_last_handshake_age_seconds{"), "never handshaken: {before}");

    assert_eq!(peer_round(&mut peer, &peer_sock), None);
    recv_until(&mut port, &mut batch, |_| false);
    send(&mut port, &echo());
    let got = (0..3).find_map(|_| peer_round(&mut peer, &peer_sock).filter(|p| !p.is_empty()));
    assert!(got.is_some(), "the peer got the VM's packet");
    for junk in [&[1u8, 0, 0, 0, 9][..], &[0xffu8; 200][..]] {
        peer_sock.send_to(junk, port.uplink.sock.local_addr().unwrap()).unwrap();
    }
    recv_until(&mut port, &mut batch, |_| false);
    port.tick(Instant::now());
    let v = port.shared().get();
    let endpoint = peer_sock.local_addr().unwrap().to_string();
    let ev: Vec<_> = watch.changes(state(&port)).into_iter().map(|p| (p.port, p.kind)).collect();
    assert_eq!(ev, vec![("wg-test".to_string(), ctl::protocol::EventKind::VpnUp { endpoint })], "{v:?}");

    let after = Sample { vpns: VpnSample::from_show(&show_of(&port)), ..Default::default() }.render();
    let (ok, said) = testbed::promtool_check_metrics(&after);
    assert!(ok, "promtool rejects: {said}\n{after}");
    let l = r#"{bridge="br-z",port="wg-test"}"#;
    let age = v.last_handshake_secs.expect("handshake done");
    assert!(v.tx_bytes > 0 && v.bad_datagrams == 2, "{v:?}");
    for want in [
        format!("rvswitch_vpn_up{l} 1"),
        format!("rvswitch_vpn_last_handshake_age_seconds{l} {age}"),
        format!("rvswitch_vpn_tx_bytes_total{l} {}", v.tx_bytes),
        format!("rvswitch_vpn_rx_bytes_total{l} {}", v.rx_bytes),
        format!("rvswitch_vpn_bad_datagrams_total{l} 2"),
        r#"rvswitch_vpn_drops_total{bridge="br-z",port="wg-test",reason="vpn-down"} 0"#.to_string(),
    ] {
        assert!(after.contains(&want), "missing {want:?} in:\n{after}");
    }
}

/// The peer's side until `n` data packets (v4 or v6) came through, keepalives and handshake
/// traffic answered on the way; at most 4n datagrams are read.
fn peer_packets(peer: &mut Tunn, sock: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    let (mut buf, mut out) = (vec![0u8; 2048], vec![0u8; 2048]);
    let mut got = Vec::new();
    for _ in 0..4 * n {
        let Ok((len, from)) = sock.recv_from(&mut buf) else { break };
        match peer.decapsulate(Some(from.ip()), &buf[..len], &mut out) {
            TunnResult::WriteToNetwork(p) => drop(sock.send_to(p, from)),
            TunnResult::WriteToTunnelV4(p, _) | TunnResult::WriteToTunnelV6(p, _) if !p.is_empty() => {
                got.push(p.to_vec())
            }
            _ => {}
        }
        if got.len() == n {
            break;
        }
    }
    got
}

/// A port whose tunnel is up, its peer and the peer's socket.
fn up_pair() -> (VpnPort, Tunn, UdpSocket) {
    let (mut port, mut peer, peer_sock) = pair();
    assert_eq!(peer_round(&mut peer, &peer_sock), None, "the peer answers the handshake");
    recv_until(&mut port, &mut RxBatch::new(8), |_| false);
    assert!(port.is_up(Instant::now()), "handshake done: {:?}", port.shared().get());
    (port, peer, peer_sock)
}

/// Ethernet (to the gateway) + `ip` header + `l4` header + `n` payload bytes.
fn frame_of(ethertype: [u8; 2], ip: &[u8], l4: &[u8], n: usize) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1];
    f.extend(VM_MAC);
    f.extend(ethertype);
    f.extend_from_slice(ip);
    f.extend_from_slice(l4);
    f.extend((0..n).map(|i| i as u8));
    f
}

fn ipv4_header(proto: u8, len: usize) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0, 198, 18, 0, 2, 198, 18, 9, 10];
    h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    let c = packet::checksum::internet(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

fn transmit_gso(port: &mut VpnPort, frame: &[u8], gso_type: u8, gso_size: u16, l4: usize, csum: u16) {
    let vnet = VnetHdr {
        flags: netdev::VNET_F_NEEDS_CSUM,
        gso_type,
        hdr_len: 0,
        gso_size,
        csum_start: l4 as u16,
        csum_offset: csum,
    };
    let parts = [IoSlice::new(frame)];
    assert_eq!(port.transmit(&[TxFrame { vnet, parts: &parts }]).unwrap(), 1);
}

#[test]
fn udp_super_frames_leave_as_datagrams() {
    let (mut port, mut peer, peer_sock) = up_pair();
    let udp = [0x0f, 0xa0, 0, 9, 0, 0, 0, 0];
    let f = frame_of([8, 0], &ipv4_header(17, 20 + 8 + 2500), &udp, 2500);
    transmit_gso(&mut port, &f, packet::gso::GSO_UDP_L4, 1000, 34, 6);
    let got = peer_packets(&mut peer, &peer_sock, 3);
    let lens: Vec<usize> = got.iter().map(|p| p.len()).collect();
    assert_eq!(lens, [1028, 1028, 528], "one IP datagram per 1000 bytes: {:?}", port.shared().get());
    for p in &got {
        assert_eq!(usize::from(u16::from_be_bytes([p[24], p[25]])), p.len() - 20, "UDP length");
        assert_eq!(p[8], 63, "routed: one hop less");
    }
    assert_eq!(port.unsegmented, 0);
}

#[test]
fn tcp_super_frames_over_ipv4_and_ipv6_leave_as_segments() {
    let (mut port, mut peer, peer_sock) = up_pair();
    let tcp = [0x1f, 0x90, 0x14, 0x51, 0, 0, 0x03, 0xe8, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0];
    let v4 = frame_of([8, 0], &ipv4_header(6, 20 + 20 + 3000), &tcp, 3000);
    transmit_gso(&mut port, &v4, packet::gso::GSO_TCPV4, 1300, 34, 16);
    let lens: Vec<usize> = peer_packets(&mut peer, &peer_sock, 3).iter().map(|p| p.len()).collect();
    assert_eq!(lens, [1340, 1340, 440]);

    let mut ip6 = vec![0x60, 0, 0, 0];
    ip6.extend(((20 + 3000) as u16).to_be_bytes());
    ip6.extend([6, 64]);
    ip6.extend("fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
    ip6.extend("fd00:9::10".parse::<std::net::Ipv6Addr>().unwrap().octets());
    let v6 = frame_of([0x86, 0xdd], &ip6, &tcp, 3000);
    // The ECN bit on the GSO type (0x80) does not change how it is cut.
    transmit_gso(&mut port, &v6, packet::gso::GSO_TCPV6 | 0x80, 1300, 54, 16);
    let got = peer_packets(&mut peer, &peer_sock, 3);
    let lens: Vec<usize> = got.iter().map(|p| p.len()).collect();
    assert_eq!(lens, [1360, 1360, 460], "{:?}", port.shared().get());
    assert!(got.iter().all(|p| p[0] >> 4 == 6 && p[7] == 63), "IPv6, one hop less");
    assert_eq!(port.unsegmented, 0);
}

#[test]
fn udp_fragmentation_offload_is_counted_not_sent() {
    let (mut port, _peer, peer_sock) = up_pair();
    let f = frame_of([8, 0], &ipv4_header(17, 20 + 8 + 2500), &[0x0f, 0xa0, 0, 9, 0, 0, 0, 0], 2500);
    transmit_gso(&mut port, &f, 3, 1000, 34, 6);
    assert_eq!(port.unsegmented, 1);
    peer_sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 2048];
    let data = std::iter::from_fn(|| peer_sock.recv_from(&mut buf).ok()).filter(|&(n, _)| n > 32).count();
    assert_eq!(data, 0, "no data datagram left");
}
