//! Completing a checksum the sender left partial (virtio-net `NEEDS_CSUM`: the stack filled in
//! the pseudo-header sum and expects the device to add the rest). A frame that leaves through a
//! tunnel or a VPN gets encapsulated or encrypted, so no NIC will finish it later: it must be
//! finished before.

use crate::{checksum, PacketError};

/// Finishes the partial checksum of `frame`: sums from `start` to the end (the field at
/// `start + offset` holds the pseudo-header sum) and stores the result there.
pub fn complete_partial(frame: &mut [u8], start: usize, offset: usize) -> Result<(), PacketError> {
    let at = start.checked_add(offset).filter(|&a| a.checked_add(2).is_some_and(|e| e <= frame.len()));
    let Some(at) = at.filter(|_| start <= frame.len()) else {
        return Err(PacketError::Malformed("checksum offsets outside the frame"));
    };
    let c = checksum::internet(&frame[start..]);
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Folds a sum to the 16 bits a sender stores in the field (not complemented).
    fn folded(sum: u32) -> u16 {
        !checksum::finish(sum)
    }

    #[test]
    fn completes_a_udp_checksum() {
        // UDP 198.18.0.2:1 → 198.18.9.10:2, payload "hi": pseudo-header sum in the field, as
        // Linux leaves it for the device.
        let (s, d) = (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 9, 10));
        let pseudo = checksum::pseudo_v4(s, d, 17, 10);
        let mut f = vec![0, 1, 0, 2, 0, 10, 0, 0, b'h', b'i'];
        f[6..8].copy_from_slice(&folded(pseudo).to_be_bytes());
        complete_partial(&mut f, 0, 6).unwrap();
        assert_eq!(checksum::finish(pseudo + checksum::sum(&f)), 0, "pseudo-header plus segment verify");
    }

    #[test]
    fn offsets_outside_the_frame_are_refused() {
        let mut f = [0u8; 8];
        assert!(complete_partial(&mut f, 0, 7).is_err());
        assert!(complete_partial(&mut f, 9, 0).is_err());
        assert!(complete_partial(&mut f, usize::MAX, 2).is_err());
        assert!(complete_partial(&mut f, 2, usize::MAX).is_err());
        assert!(complete_partial(&mut f, 2, 4).is_ok());
    }
}
