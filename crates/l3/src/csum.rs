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

/// Completes a partial transport checksum (virtio-net `NEEDS_CSUM`: the field at
/// `start + offset` holds only the pseudo-header sum, the sender left the rest to the NIC).
/// The gateway calls this before NAT, MSS clamping or encryption, all of which need the full
/// checksum, which the far end of a tunnel cannot fill in. `start`/`offset` are relative to
/// `pkt` (the IP packet, no link header). `false` when they point outside it.
pub fn complete_partial(pkt: &mut [u8], start: usize, offset: usize) -> bool {
    let at = start.saturating_add(offset);
    if start > pkt.len() || at.saturating_add(2) > pkt.len() {
        return false;
    }
    // The seed stays in the field and is summed with the rest, as the NIC would do.
    let sum = packet::checksum::internet(&pkt[start..]);
    put16(pkt, at..at + 2, sum);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use packet::checksum::internet;

    #[test]
    fn completes_a_partial_checksum() {
        let mut p = crate::testpkt::udp(
            (crate::testpkt::addr("198.18.0.10"), 9),
            (crate::testpkt::addr("198.19.0.1"), 9),
            b"abc",
        );
        let full = get16(&p, 26..28);
        // What a guest with checksum offload sends: the pseudo-header sum, not complemented.
        let ip = packet::ipv4::Frame::new_checked(&p[..]).unwrap();
        let seed = packet::checksum::pseudo_v4(ip.src(), ip.dst(), 17, 11);
        put16(&mut p, 26..28, !packet::checksum::finish(seed));
        assert!(complete_partial(&mut p, 20, 6));
        assert_eq!(get16(&p, 26..28), full);
        assert!(!complete_partial(&mut p, 20, 100));
        assert!(!complete_partial(&mut p, usize::MAX, 6));
    }

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
