//! The Internet checksum (RFC 1071): a ones' complement sum over 16-bit words, folded.

/// Adds `bytes` (as big-endian 16-bit words, an odd last byte padded with zero) to `sum`.
/// Callers summing several pieces must give every piece but the last an even length.
pub(crate) fn add(sum: u32, bytes: &[u8]) -> u32 {
    let mut s = u64::from(sum);
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        s += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        s += u64::from(u16::from_be_bytes([*last, 0]));
    }
    while s > 0xffff_ffff {
        s = (s & 0xffff_ffff) + (s >> 32);
    }
    s as u32
}

/// Folds a 32-bit sum to 16 bits and complements it: the value that goes on the wire.
pub(crate) fn finish(sum: u32) -> u16 {
    let mut s = sum;
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// The checksum of one contiguous header.
pub(crate) fn of(bytes: &[u8]) -> u16 {
    finish(add(0, bytes))
}

/// The sum of the IPv4 pseudo-header (RFC 768 / RFC 793) for protocol `proto`.
pub(crate) fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> u32 {
    let s = add(add(0, &src), &dst);
    add(s, &[0, proto]) + (len as u32 & 0xffff) + ((len as u32) >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 (before the complement).
        assert_eq!(of(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2);
        assert_eq!(of(&[0xff]), !0xff00, "odd byte padded");
    }
}
