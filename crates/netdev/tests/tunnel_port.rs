//! Root tests for `TunnelPort`, inside a private namespace with two "hosts" on loopback
//! (198.18.0.1 and .2): the shared socket demultiplexes by VNI (frames read by the wrong port
//! reach the right one through its inbox), strays are counted, TCP super-frames leave as
//! MSS-sized segments, and frames too big for the underlay are counted as such.

use std::io::IoSlice;
use std::net::Ipv4Addr;
use std::time::Duration;

use netdev::tunnel::{TunnelConfig, TunnelProto};
use netdev::{Netdev, RxBatch, TunnelEndpoints, TunnelPort, TxFrame, VnetHdr};
use testbed::{require_root, wait_until, Netns};

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn cfg(local: Ipv4Addr, remote: Ipv4Addr, vni: u32) -> TunnelConfig {
    TunnelConfig { local: Some(local), ..TunnelConfig::new(TunnelProto::Vxlan, remote, vni) }
}

fn ns() -> Netns {
    let ns = Netns::new("tun").unwrap();
    ns.exec(&["ip", "link", "set", "lo", "mtu", "1500"]).unwrap();
    for a in [A, B] {
        ns.exec(&["ip", "addr", "add", &format!("{a}/32"), "dev", "lo"]).unwrap();
    }
    ns
}

fn open(ns: &Netns, name: &str, c: TunnelConfig, eps: &TunnelEndpoints) -> TunnelPort {
    let eps = eps.clone();
    ns.run_in(move || TunnelPort::open(name, c, &eps)).unwrap().unwrap()
}

/// A frame with EtherType 0x88b5 and `marker` as payload, `len` bytes in all.
fn frame(marker: u8, len: usize) -> Vec<u8> {
    let mut f = vec![marker; len];
    f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

fn send(p: &mut TunnelPort, f: &[u8]) -> usize {
    let parts = [IoSlice::new(f)];
    p.transmit(&[TxFrame { vnet: VnetHdr::default(), parts: &parts }]).unwrap()
}

/// Frames `p` receives within a few seconds (stops at the first empty poll after some arrived).
fn receive(p: &mut TunnelPort, want: usize) -> Vec<Vec<u8>> {
    let mut batch = RxBatch::new(64);
    let mut got = Vec::new();
    wait_until(Duration::from_secs(3), || {
        let n = p.recv_batch(&mut batch).unwrap();
        got.extend((0..n).map(|i| batch.frame(i).to_vec()));
        got.len() >= want
    });
    got
}

#[test]
fn one_socket_demultiplexes_by_vni() {
    if !require_root("one_socket_demultiplexes_by_vni") {
        return;
    }
    let ns = ns();
    let eps = TunnelEndpoints::default();
    let (mut a10, mut a20) = (open(&ns, "a10", cfg(A, B, 10), &eps), open(&ns, "a20", cfg(A, B, 20), &eps));
    let (mut b10, mut b20) = (open(&ns, "b10", cfg(B, A, 10), &eps), open(&ns, "b20", cfg(B, A, 20), &eps));
    assert_eq!(eps.len(), 2, "one socket per local address, shared by its ports");
    assert!(TunnelPort::open("dup", cfg(A, B, 10), &eps).is_err(), "remote and key taken");

    assert_eq!(send(&mut b20, &frame(0x20, 60)), 1);
    assert_eq!(send(&mut b10, &frame(0x10, 60)), 1);
    // a10 reads the socket first: it keeps VNI 10's frame and hands VNI 20's to a20.
    let got10 = receive(&mut a10, 1);
    assert_eq!(got10, vec![frame(0x10, 60)]);
    assert_eq!(receive(&mut a20, 1), vec![frame(0x20, 60)], "handed over through a20's inbox");
    // A VNI nobody on A has: dropped (not delivered to either port).
    let mut b30 = open(&ns, "b30", cfg(B, A, 30), &eps);
    send(&mut b30, &frame(0x30, 60));
    std::thread::sleep(Duration::from_millis(200));
    assert!(receive(&mut a10, 1).is_empty() && receive(&mut a20, 1).is_empty());
    drop((a10, a20, b10, b20, b30));
    assert!(eps.is_empty(), "sockets close with their last port");
}

#[test]
fn super_frames_are_segmented_and_too_big_frames_counted() {
    if !require_root("super_frames_are_segmented_and_too_big_frames_counted") {
        return;
    }
    let ns = ns();
    let eps = TunnelEndpoints::default();
    let (mut a, mut b) = (open(&ns, "a", cfg(A, B, 7), &eps), open(&ns, "b", cfg(B, A, 7), &eps));
    assert_eq!(a.underlay_mtu(), 1500);
    assert!(a.underlay_problem().is_some_and(|e| e.contains("1450")));
    // 1464 bytes is the most a 1500-byte underlay carries (1500 - 20 - 8 - 8).
    assert_eq!(send(&mut b, &frame(1, 1464)), 1);
    assert_eq!(send(&mut b, &frame(2, 1465)), 0);
    assert_eq!(b.take_oversize_drops(), 1);
    assert_eq!(receive(&mut a, 1), vec![frame(1, 1464)]);

    // A TCP super-frame with 3000 payload bytes and gso_size 1000: three segments arrive.
    let mut tcp = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    tcp.extend_from_slice(&[0x45, 0, 0x0b, 0xe0, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 1, 1, 198, 18, 1, 2]);
    tcp.extend_from_slice(&[
        0x03, 0xe8, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    tcp.extend(std::iter::repeat_n(0xab, 3000));
    let vnet = VnetHdr { gso_type: 1, gso_size: 1000, hdr_len: 54, ..VnetHdr::default() };
    let parts = [IoSlice::new(&tcp[..40]), IoSlice::new(&tcp[40..])];
    assert_eq!(b.transmit(&[TxFrame { vnet, parts: &parts }]).unwrap(), 1);
    let segs = receive(&mut a, 3);
    assert_eq!(segs.iter().map(Vec::len).collect::<Vec<_>>(), vec![1054, 1054, 1054]);
    let seqs: Vec<u32> = segs.iter().map(|s| u32::from_be_bytes([s[38], s[39], s[40], s[41]])).collect();
    assert_eq!(seqs, vec![1, 1001, 2001]);
}
