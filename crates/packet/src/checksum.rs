//! The Internet checksum (RFC 1071) and the pseudo-headers TCP, UDP and ICMPv6 add to it
//! (RFC 793/768 for IPv4, RFC 8200 §8.1 for IPv6). Incremental updates of a checksum after a
//! field changes (RFC 1624) live with the code that rewrites headers (the `l3` crate).

use std::net::{Ipv4Addr, Ipv6Addr};

/// The one's-complement sum of `bytes` as 16-bit big-endian words (an odd last byte is padded
/// with zero), not yet folded. Add sums of several pieces, then [`finish`].
pub fn sum(bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    // u64 so that no realistic length can overflow before the fold (65535 words of 0xffff fit
    // in a u32, but a caller may add several pieces).
    let mut acc: u64 = chunks.by_ref().map(|c| u64::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold64(acc)
}

fn fold64(mut acc: u64) -> u32 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

/// Folds a sum (or a sum of sums) to 16 bits and complements it: the value to store.
pub fn finish(sum: u32) -> u16 {
    !(fold64(u64::from(sum)) as u16)
}

/// The checksum of `bytes` alone (the IPv4 header, ICMPv4). Over bytes that hold a correct
/// checksum it is 0.
pub fn internet(bytes: &[u8]) -> u16 {
    finish(sum(bytes))
}

/// The IPv4 pseudo-header sum for `protocol` with an upper-layer length of `len`.
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> u32 {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    sum(&src.octets()) + sum(&dst.octets()) + u32::from(protocol) + (len >> 16) + (len & 0xffff)
}

/// The IPv6 pseudo-header sum for `next_header` with an upper-layer length of `len`.
pub fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: usize) -> u32 {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    sum(&src.octets()) + sum(&dst.octets()) + u32::from(next_header) + (len >> 16) + (len & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_and_odd_length() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 (folded).
        assert_eq!(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
        assert_eq!(internet(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2);
        assert_eq!(sum(&[0x12]), 0x1200, "odd byte is the high half of a word");
    }

    #[test]
    fn pseudo_headers() {
        let (s, d) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        // c612 + 0001 + c612 + 0002 + 0011 + 0010
        assert_eq!(pseudo_v4(s, d, 17, 16), 0xc612 * 2 + 1 + 2 + 17 + 16);
        let one: Ipv6Addr = "::1".parse().unwrap();
        assert_eq!(pseudo_v6(one, one, 58, 0x1_0002), 2 + 58 + 1 + 2);
    }
}
