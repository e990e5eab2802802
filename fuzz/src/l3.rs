//! The zone gateway's IP services (`l3`), packet's TCP/IPv4 segmentation, and the gateway core
//! (`gateway::Gateway`), on arbitrary packets.
//!
//! Input: one control byte, then the packet (IPv4 or IPv6 without a link header; an Ethernet
//! frame for the gateway operations). Bits 0-2 of the control byte pick the operation, bits 3-7
//! (`k`) are its parameter (an MTU, an MSS, a time step). Oracles, per operation:
//! - NAT: after `outbound` succeeds, correct checksums stay correct, and `inbound` of the
//!   reply-shaped packet (addresses and ports swapped, echo request turned into a reply) never
//!   panics and, if it translates, hands the packet back to the VM that sent the original;
//! - MSS clamp: the MSS only goes down, to at most what the MTU allows; checksums stay correct;
//! - ICMP errors: an error sent back carries correct checksums;
//! - fragmentation: every fragment fits the MTU with a correct header checksum (a datagram
//!   that fits is passed on as it came), and the
//!   fragments' payloads add up to the original's;
//! - GSO: every segment fits the MSS with correct checksums, and the segments'
//!   payloads add up to the super-frame's;
//! - DHCP and the gateway core: see [`crate::l3_dhcp`] and [`crate::l3_gateway`].

use std::net::{Ipv4Addr, Ipv6Addr};

use l3::icmp_error::{IcmpErrors, Oversize};
use l3::mss::{self, Clamp};
use l3::nat::{Nat, NatConfig};
use packet::{gso, ipv4};

use crate::csum_check::{self, kept};
use crate::{l3_dhcp, l3_gateway};

/// The NAT's public (tunnel) address.
const PUBLIC: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
/// The gateway's own addresses, the source of its ICMP errors.
const GW4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const GW6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);

/// The fuzz target.
pub fn run(data: &[u8]) {
    let Some((&ctl, rest)) = data.split_first() else { return };
    let k = ctl >> 3;
    match ctl & 7 {
        0 => nat(rest, u64::from(k) * 1000),
        1 => clamp(rest, 576 + u16::from(k) * 32),
        2 => icmp(rest, 68 + u16::from(k) * 48),
        3 => fragment(rest, 60 + u16::from(k) * 48),
        4 => segment(rest, 1 + usize::from(k) * 48),
        5 => l3_dhcp::handle(rest, u64::from(k)),
        6 => l3_dhcp::restore(rest, u64::from(k)),
        _ => l3_gateway::run(rest, k),
    }
}

fn nat(pkt: &[u8], later: u64) {
    let mut nat = Nat::new(NatConfig::new(PUBLIC));
    let mut out = pkt.to_vec();
    let before = csum_check::valid(pkt);
    if nat.outbound(&mut out, 0).is_err() {
        // The refused packet goes back as a reply too: inbound must cope with anything.
        let _ = nat.inbound(&mut out, later);
        return;
    }
    kept("nat outbound", before, &out);
    let Some(mut reply) = reply_shaped(&out) else { return };
    let before = csum_check::valid(&reply);
    if let Ok(inside) = nat.inbound(&mut reply, later) {
        let src = ipv4::Frame::new_checked(pkt).map(|p| p.src()).expect("translated packets parse");
        assert_eq!(inside, src, "the reply went to another VM");
        kept("nat inbound", before, &reply);
    }
    assert!(nat.len() <= nat.config().capacity);
}

/// The answer a server would send to `pkt`: addresses (and TCP/UDP ports) swapped, an echo
/// request turned into an echo reply with its checksum updated. `None` unless IPv4.
pub(crate) fn reply_shaped(pkt: &[u8]) -> Option<Vec<u8>> {
    let h = csum_check::v4(pkt)?;
    let mut r = pkt.to_vec();
    let (src, dst) = (r[12..16].to_vec(), r[16..20].to_vec());
    r[12..16].copy_from_slice(&dst);
    r[16..20].copy_from_slice(&src);
    let l4 = &mut r[h.ihl..h.total];
    match h.proto {
        ipv4::PROTO_TCP | ipv4::PROTO_UDP if l4.len() >= 4 => {
            let (sp, dp) = ([l4[0], l4[1]], [l4[2], l4[3]]);
            l4[..2].copy_from_slice(&dp);
            l4[2..4].copy_from_slice(&sp);
        }
        ipv4::PROTO_ICMP if l4.len() >= 4 && l4[0] == 8 => {
            let old = u16::from_be_bytes([l4[0], l4[1]]);
            l4[0] = 0;
            let c = l3::csum::update16(u16::from_be_bytes([l4[2], l4[3]]), old, u16::from(l4[1]));
            l4[2..4].copy_from_slice(&c.to_be_bytes());
        }
        _ => {}
    }
    Some(r)
}

fn clamp(pkt: &[u8], mtu: u16) {
    let mut out = pkt.to_vec();
    let before = csum_check::valid(pkt);
    match mss::clamp(&mut out, mtu) {
        Clamp::NotSyn | Clamp::Fits => assert_eq!(out, pkt, "clamp changed a packet it did not clamp"),
        Clamp::Lowered { from, to } => {
            let v6 = pkt[0] >> 4 == 6;
            assert!(to < from && to <= mss::mss_for(mtu, v6).max(1), "MSS {from} -> {to} for MTU {mtu}");
            kept("mss clamp", before, &out);
        }
    }
}

fn icmp(pkt: &[u8], mtu: u16) {
    let mut e = IcmpErrors::new(GW4, GW6, 0);
    if let Oversize::Reply(err) = e.check(pkt, mtu, 0) {
        assert_eq!(csum_check::valid(&err), Some(true), "ICMP error with a bad checksum: {err:02x?}");
    }
}

fn fragment(pkt: &[u8], mtu: u16) {
    let Ok(frags) = l3::frag::fragment_v4(pkt, mtu) else { return };
    let h = csum_check::v4(pkt).expect("fragmented packets parse");
    // A datagram that fits comes back as it was, bad header checksum and all.
    let header_ok = packet::checksum::internet(&pkt[..h.ihl]) == 0 || frags.len() > 1;
    let mut payload = 0;
    for f in &frags {
        let fh = csum_check::v4(f).expect("a fragment that does not parse");
        assert!(
            f.len() <= usize::from(mtu).max(h.total) && fh.total == f.len(),
            "fragment of {} bytes",
            f.len()
        );
        if frags.len() > 1 {
            assert!(f.len() <= usize::from(mtu), "{}-byte fragment for MTU {mtu}", f.len());
        }
        assert!(!header_ok || packet::checksum::internet(&f[..fh.ihl]) == 0, "fragment header checksum");
        payload += fh.total - fh.ihl;
    }
    assert_eq!(payload, h.total - h.ihl, "fragments carry another payload than the datagram");
}

fn segment(ip: &[u8], mss: usize) {
    // segment_tcp cuts Ethernet frames; IPv4 only here (the checks below read an IPv4 header).
    if ip.first().is_none_or(|b| b >> 4 != 4) {
        return;
    }
    let mut frame = vec![0u8; packet::ETHERNET_HEADER_LEN];
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    frame.extend_from_slice(ip);
    let l2 = packet::ETHERNET_HEADER_LEN;
    let mut scratch = vec![0u8; frame.len()];
    let (mut payload, mut hdrs) = (0, 0);
    let r = gso::segment_tcp(&frame, mss, &mut scratch, |seg| {
        let seg = &seg[l2..];
        let ihl = usize::from(seg[0] & 0x0f) * 4;
        hdrs = ihl + usize::from(seg[ihl + 12] >> 4) * 4;
        assert!(seg.len() - hdrs <= mss, "segment of {} payload bytes for MSS {mss}", seg.len() - hdrs);
        assert_eq!(csum_check::valid(seg), Some(true), "segment checksums: {seg:02x?}");
        payload += seg.len() - hdrs;
    });
    if r.is_ok() {
        assert_eq!(payload, ip.len() - hdrs, "segments carry another payload than the super-frame");
    }
}
