//! Completing a checksum the sender left partial (virtio-net `NEEDS_CSUM`: the stack filled in
//! the pseudo-header sum and expects the device to add the rest). A frame that leaves through a
//! tunnel gets encrypted, so no NIC will finish it later: it must be finished before.

/// Folds the one's-complement sum of `data` (odd length padded with zero) into `sum`; the
/// result fits 16 bits (0xffff over a header with a valid checksum).
pub fn fold(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// Finishes the partial checksum of `frame`: sums from `start` to the end (the field at
/// `start + offset` holds the pseudo-header sum) and stores the result there. False if the
/// offsets do not fit the frame.
pub fn complete_partial(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let Some(at) = start.checked_add(offset) else { return false };
    if at + 2 > frame.len() || start > frame.len() {
        return false;
    }
    let sum = !(fold(0, &frame[start..]) as u16);
    frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_a_udp_checksum() {
        // UDP 198.18.0.2:1 → 198.18.9.10:2, payload "hi": pseudo-header sum in the field, as
        // Linux leaves it for the device.
        let pseudo = fold(0, &[198, 18, 0, 2, 198, 18, 9, 10, 0, 17, 0, 10]) as u16;
        let mut f = vec![0, 1, 0, 2, 0, 10, 0, 0, b'h', b'i'];
        f[6..8].copy_from_slice(&pseudo.to_be_bytes());
        assert!(complete_partial(&mut f, 0, 6));
        // Valid: pseudo-header plus segment sums to 0xffff.
        let total = fold(fold(0, &[198, 18, 0, 2, 198, 18, 9, 10, 0, 17, 0, 10]), &f);
        assert_eq!(total, 0xffff);
    }

    #[test]
    fn offsets_outside_the_frame_are_refused() {
        let mut f = [0u8; 8];
        assert!(!complete_partial(&mut f, 0, 7));
        assert!(!complete_partial(&mut f, 9, 0));
        assert!(!complete_partial(&mut f, usize::MAX, 2));
        assert!(complete_partial(&mut f, 2, 4));
    }
}
