//! Incremental checksum update (RFC 1624): when a header field changes, the stored Internet
//! checksum is adjusted by the difference instead of summing the whole packet again, so a NAT
//! touches only the bytes it rewrites (and a checksum that was wrong stays wrong, rather than
//! being "repaired" into one that hides corruption).

use std::ops::Range;

/// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')` for a 16-bit word changing from `old` to `new`.
/// Eqn. 3 (not eqn. 2 of RFC 1141) so that the result is never the 0x0000/-0 form when the
/// true sum is 0xffff.
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!csum) + u32::from(!old) + u32::from(new);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// [`update16`] over every 16-bit word of two equally long byte strings (an address).
pub fn update_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    old.chunks(2).zip(new.chunks(2)).fold(csum, |c, (o, n)| update16(c, word(o), word(n)))
}

fn word(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b.get(1).copied().unwrap_or(0)])
}

/// Reads the big-endian word at `r` (which the caller has bounds-checked).
pub(crate) fn get16(b: &[u8], r: Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

pub(crate) fn put16(b: &mut [u8], r: Range<usize>, v: u16) {
    b[r].copy_from_slice(&v.to_be_bytes());
}

/// Adjusts the checksum stored at `at` in `b` for a field changing from `old` to `new`.
pub(crate) fn adjust(b: &mut [u8], at: Range<usize>, old: &[u8], new: &[u8]) {
    let c = get16(b, at.clone());
    put16(b, at, update_bytes(c, old, new));
}

#[cfg(test)]
mod tests {
    use super::*;
    use packet::checksum::internet;

    #[test]
    fn rfc1624_example() {
        // RFC 1624 §4: HC = 0xdd2f, m = 0x5555 → m' = 0x3285 gives HC' = 0x0000.
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    proptest::proptest! {
        #[test]
        fn matches_a_full_recompute(mut words in proptest::collection::vec(proptest::num::u16::ANY, 2..32),
                                    i in 0usize..32, new in proptest::num::u16::ANY) {
            let i = i % words.len();
            let bytes = |w: &[u16]| w.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
            words[0] = 0;
            let c = internet(&bytes(&words));
            let old = words[i.max(1)];
            words[i.max(1)] = new;
            words[0] = update16(c, old, new);
            proptest::prop_assert_eq!(internet(&bytes(&words)), 0, "the updated checksum verifies");
        }
    }
}
