//! Forwarding's one header rewrite: a router takes one from IPv4's TTL (fixing the header
//! checksum incrementally, RFC 1624) or IPv6's hop limit, and drops what would reach zero.

/// Offset of IPv4's TTL; the checksum follows TTL and protocol.
const V4_TTL: usize = 8;
const V4_CSUM: usize = 10;
/// Offset of IPv6's hop limit.
const V6_HOP_LIMIT: usize = 7;

/// What a decrement found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// Decremented; the packet may be forwarded.
    Forward,
    /// The TTL/hop limit was 0 or 1: the packet must not be forwarded.
    Expired,
    /// Too short to hold the field, or not IPv4/IPv6.
    Malformed,
}

/// Decrements the TTL (IPv4) or hop limit (IPv6) of the IP packet `ip` in place.
pub fn decrement(ip: &mut [u8]) -> Hop {
    match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 => {
            if ip[V4_TTL] <= 1 {
                return Hop::Expired;
            }
            let old = u16::from_be_bytes([ip[V4_TTL], ip[V4_TTL + 1]]);
            ip[V4_TTL] -= 1;
            let new = u16::from_be_bytes([ip[V4_TTL], ip[V4_TTL + 1]]);
            let hc = u16::from_be_bytes([ip[V4_CSUM], ip[V4_CSUM + 1]]);
            // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
            let mut sum = u32::from(!hc) + u32::from(!old) + u32::from(new);
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            ip[V4_CSUM..V4_CSUM + 2].copy_from_slice(&(!(sum as u16)).to_be_bytes());
            Hop::Forward
        }
        Some(6) if ip.len() >= 40 => {
            if ip[V6_HOP_LIMIT] <= 1 {
                return Hop::Expired;
            }
            ip[V6_HOP_LIMIT] -= 1;
            Hop::Forward
        }
        _ => Hop::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Full one's-complement checksum of a header (0 when valid).
    fn fold(h: &[u8]) -> u16 {
        let mut s: u32 = h.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn v4_checksum_stays_valid() {
        // ICMP 198.18.0.2 → 198.18.9.10, TTL 64, checksum computed by Linux.
        let mut h = [0x45, 0, 0, 0x54, 0x1c, 0x46, 0x40, 0, 0x40, 0x01, 0, 0, 198, 18, 0, 2, 198, 18, 9, 10];
        let c = fold(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(fold(&h), 0);
        for ttl in (2..=64).rev() {
            assert_eq!(h[8], ttl);
            assert_eq!(decrement(&mut h), Hop::Forward);
            assert_eq!(fold(&h), 0, "checksum valid at ttl {}", h[8]);
        }
        assert_eq!(decrement(&mut h), Hop::Expired);
        assert_eq!(h[8], 1, "an expired packet is left alone");
    }

    #[test]
    fn v6_and_bad_input() {
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[7] = 2;
        assert_eq!(decrement(&mut v6), Hop::Forward);
        assert_eq!(v6[7], 1);
        assert_eq!(decrement(&mut v6), Hop::Expired);
        assert_eq!(decrement(&mut v6[..39]), Hop::Malformed);
        assert_eq!(decrement(&mut []), Hop::Malformed);
        assert_eq!(decrement(&mut [0x45; 19]), Hop::Malformed);
    }
}
