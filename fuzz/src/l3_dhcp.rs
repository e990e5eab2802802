//! The `l3` target's DHCP operations: `DhcpServer::handle` on an arbitrary IPv4 packet (sent
//! twice, as a client retransmits) and `DhcpServer::restore` on an arbitrary lease file.
//!
//! Oracle: every reply is an IPv4/UDP packet with correct checksums; the bindings are usable
//! addresses of the subnet (or the VM's static one), no address is bound to two MACs and no
//! MAC holds two addresses; and saving then restoring into a fresh server gives the same
//! bindings back.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use l3::dhcp::{DhcpConfig, DhcpServer, UnixSecs};
use packet::MacAddr;

use crate::csum_check;

/// Some time in 2023, plus the input's step.
const EPOCH: UnixSecs = 1_700_000_000;

fn server() -> DhcpServer {
    let ip = |d| Ipv4Addr::new(198, 18, 0, d);
    DhcpServer::new(DhcpConfig {
        server: ip(1),
        prefix_len: 24,
        // Small, so the fuzzer can exhaust it.
        range: (ip(100), ip(103)),
        dns: vec![ip(1)],
        mtu: Some(1420),
        lease_secs: 600,
        statics: vec![(MacAddr([0x52, 0x54, 0, 0, 0, 9]), ip(9))],
    })
    .expect("the fuzz DHCP configuration is valid")
}

/// `handle`, twice.
pub fn handle(pkt: &[u8], step: u64) {
    let mut s = server();
    for now in [EPOCH, EPOCH + step] {
        if let Ok(o) = s.handle(pkt, now) {
            if let Some(r) = o.reply {
                assert_eq!(
                    csum_check::valid(&r.packet),
                    Some(true),
                    "DHCP reply checksums: {:02x?}",
                    r.packet
                );
            }
        }
        check(&s, now);
    }
}

/// `restore` of arbitrary text (read lossily).
pub fn restore(text: &[u8], step: u64) {
    let mut s = server();
    let now = EPOCH + step * 60;
    if let Ok(r) = s.restore(&String::from_utf8_lossy(text), now) {
        let mut got = s.bindings(now);
        got.sort();
        let mut restored = r.bindings.clone();
        restored.sort();
        assert_eq!(got, restored, "restore reports other bindings than it holds");
    }
    check(&s, now);
}

/// The bindings' invariants, and the save/restore round trip.
fn check(s: &DhcpServer, now: UnixSecs) {
    let cfg = s.config();
    let mut bindings = s.bindings(now);
    let (mut ips, mut macs) = (HashSet::new(), HashSet::new());
    for b in &bindings {
        assert!(cfg.usable(b.ip) || cfg.static_for(b.mac) == Some(b.ip), "bound an unusable {}", b.ip);
        assert!(ips.insert(b.ip), "{} bound twice: {bindings:?}", b.ip);
        assert!(macs.insert(b.mac), "{} holds two addresses: {bindings:?}", b.mac);
    }
    let mut again = server();
    again.restore(&s.save(now), now).expect("our own lease file reads back");
    let mut back = again.bindings(now);
    back.sort();
    bindings.sort();
    assert_eq!(back, bindings, "save then restore lost or changed leases");
}
