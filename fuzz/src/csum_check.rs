//! Checksum oracles for the `l3` target, from RFC 1071's definition (a header or segment that
//! holds a correct checksum sums to zero) rather than from the incremental updates under test.

use packet::checksum::{finish, internet, pseudo_v4, pseudo_v6, sum};
use packet::{ipv4, ipv6};

/// An IPv4 packet's parts: header length, total length, protocol, and whether it is a fragment.
pub struct V4 {
    pub ihl: usize,
    pub total: usize,
    pub proto: u8,
    pub fragment: bool,
}

/// Reads the header fields the oracles need; `None` if the packet is not whole IPv4.
pub fn v4(pkt: &[u8]) -> Option<V4> {
    let ip = ipv4::Frame::new_checked(pkt).ok()?;
    let total = usize::from(ip.total_len());
    (total <= pkt.len() && total >= ip.header_len()).then(|| V4 {
        ihl: ip.header_len(),
        total,
        proto: ip.protocol(),
        fragment: ip.is_fragment(),
    })
}

/// Whether every checksum of the packet verifies: the IPv4 header's, and (unfragmented) the
/// TCP, UDP (unless 0: none) or ICMP one; for IPv6, TCP's, UDP's or ICMPv6's. `None`: nothing to verify.
pub fn valid(pkt: &[u8]) -> Option<bool> {
    match pkt.first()? >> 4 {
        4 => valid_v4(pkt),
        6 => valid_v6(pkt),
        _ => None,
    }
}

fn valid_v4(pkt: &[u8]) -> Option<bool> {
    let h = v4(pkt)?;
    let ip = ipv4::Frame::new_checked(pkt).ok()?;
    let header_ok = internet(&pkt[..h.ihl]) == 0;
    let l4 = &pkt[h.ihl..h.total];
    let l4_ok = match h.proto {
        _ if h.fragment => true,
        ipv4::PROTO_UDP if l4.len() >= 8 && l4[6..8] == [0, 0] => true,
        ipv4::PROTO_TCP | ipv4::PROTO_UDP => {
            finish(pseudo_v4(ip.src(), ip.dst(), h.proto, l4.len()) + sum(l4)) == 0
        }
        ipv4::PROTO_ICMP => internet(l4) == 0,
        _ => true,
    };
    Some(header_ok && l4_ok)
}

fn valid_v6(pkt: &[u8]) -> Option<bool> {
    let ip = ipv6::Frame::new_checked(pkt).ok()?;
    let (next, at) = ip.transport().ok()??;
    let end = ipv6::HEADER_LEN + usize::from(u16::from_be_bytes([pkt[4], pkt[5]]));
    let l4 = pkt.get(at..end)?;
    // TCP, UDP, ICMPv6: all three put the checksum over the same pseudo-header.
    [6, 17, 58].contains(&next).then(|| finish(pseudo_v6(ip.src(), ip.dst(), next, l4.len()) + sum(l4)) == 0)
}

/// Asserts that a rewrite kept correct checksums correct (`before` was computed on the input).
pub fn kept(what: &str, before: Option<bool>, pkt: &[u8]) {
    if before == Some(true) {
        assert_eq!(valid(pkt), Some(true), "{what} broke a correct checksum: {pkt:02x?}");
    }
}
