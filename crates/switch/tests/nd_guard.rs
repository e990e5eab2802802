//! ND guard on literal bytes: an NS/NA must announce the frame's own source MAC in its
//! link-layer address options, and once a port has an IPv6 binding its NAs may only be for
//! its own addresses. VM A (52:54:00:00:00:01) and a trunk on VLAN 10.

use packet::MacAddr;
use switch::{
    parse_allowed_ips, Bridge, BridgeSettings, DropReason, PortSecurity, PortSpec, PortVlan, Verdict,
    VlanMode,
};

const A: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
const C: [u8; 6] = [0x52, 0x54, 0, 0, 0, 3];
/// fe80::5054:ff:fe00:1, A's EUI-64 link-local.
const A_LL: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x54, 0, 0xff, 0xfe, 0, 0, 1];
/// 2001:db8::1 and 2001:db8::9.
const GUA_1: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const GUA_9: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
/// ff02::1, all nodes.
const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const NS: u8 = 135;
const NA: u8 = 136;

/// Ethernet (to 33:33:00:00:00:01) + IPv6 (hop limit 255) + an NS/NA for `target`, then `opts`.
fn nd(kind: u8, src_mac: [u8; 6], src_ip: [u8; 16], target: [u8; 16], opts: &[u8]) -> Vec<u8> {
    let icmp_len = 24 + opts.len();
    let mut f = vec![0x33, 0x33, 0, 0, 0, 1];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp_len as u16).to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&src_ip);
    f.extend_from_slice(&ALL_NODES);
    f.extend_from_slice(&[kind, 0, 0, 0, 0x20, 0, 0, 0]);
    f.extend_from_slice(&target);
    f.extend_from_slice(opts);
    f
}

/// A link-layer address option: type 1 (source) or 2 (target), length 1 (8 bytes).
fn lla(kind: u8, mac: [u8; 6]) -> Vec<u8> {
    let mut o = vec![kind, 1];
    o.extend_from_slice(&mac);
    o
}

fn bridge(ips: &str) -> Bridge {
    let mut a = PortSecurity::vm(MacAddr(A));
    a.ips = parse_allowed_ips(ips).unwrap();
    let trunk = PortVlan::new(Some(VlanMode::Trunk), None, &[10]).unwrap();
    let ports =
        vec![PortSpec { security: a, ..PortSpec::new("a", PortVlan::access(10)) }, PortSpec::new("t", trunk)];
    Bridge::new(BridgeSettings::default(), ports)
}

fn from_a(br: &mut Bridge, f: &[u8]) -> Result<(), DropReason> {
    match br.process(0, f, 1, &mut Vec::new()) {
        Verdict::Drop(r) | Verdict::Mirrored { reason: r, .. } => Err(r),
        Verdict::Forward { .. } => Ok(()),
    }
}

#[test]
fn link_layer_options_must_be_the_source_mac() {
    let mut br = bridge("");
    assert_eq!(from_a(&mut br, &nd(NA, A, A_LL, A_LL, &lla(2, A))), Ok(()));
    assert_eq!(from_a(&mut br, &nd(NA, A, A_LL, A_LL, &[])), Ok(()), "options are optional");
    assert_eq!(from_a(&mut br, &nd(NA, A, A_LL, A_LL, &lla(2, C))), Err(DropReason::SpoofedNd));
    assert_eq!(from_a(&mut br, &nd(NS, A, A_LL, GUA_9, &lla(1, A))), Ok(()));
    assert_eq!(from_a(&mut br, &nd(NS, A, A_LL, GUA_9, &lla(1, C))), Err(DropReason::SpoofedNd));
    let mut two = lla(1, A);
    two.extend_from_slice(&lla(1, C));
    assert_eq!(
        from_a(&mut br, &nd(NS, A, A_LL, GUA_9, &two)),
        Err(DropReason::SpoofedNd),
        "every option counts"
    );
    let zero_len = [1, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        from_a(&mut br, &nd(NS, A, A_LL, GUA_9, &zero_len)),
        Err(DropReason::SpoofedNd),
        "RFC 4861: discard"
    );
    // Options after other types are not ND link-layer options: a router solicitation is not
    // checked here (its source rules are the IPv6 ones).
    assert_eq!(from_a(&mut br, &nd(133, A, A_LL, GUA_9, &lla(1, C))), Ok(()));
}

#[test]
fn na_target_is_the_ports_own_once_bound() {
    let mut unbound = bridge("");
    assert_eq!(from_a(&mut unbound, &nd(NA, A, A_LL, GUA_9, &lla(2, A))), Ok(()), "no binding yet");
    let mut bound = bridge("2001:db8::1");
    assert_eq!(from_a(&mut bound, &nd(NA, A, A_LL, GUA_1, &lla(2, A))), Ok(()));
    assert_eq!(from_a(&mut bound, &nd(NA, A, A_LL, A_LL, &lla(2, A))), Ok(()), "its link-local");
    assert_eq!(from_a(&mut bound, &nd(NA, A, A_LL, GUA_9, &lla(2, A))), Err(DropReason::SpoofedNd));
    // A truncated NA (no room for a target) claims nothing the port owns.
    let mut short = nd(NA, A, A_LL, GUA_1, &[]);
    short.truncate(short.len() - 16);
    short[19] = 8; // IPv6 payload length: the 8-byte ICMPv6 header alone
    assert_eq!(from_a(&mut bound, &short), Err(DropReason::SpoofedNd));
}
