//! The VXLAN header (RFC 7348 §5): 8 bytes between the outer UDP header and the inner Ethernet
//! frame, carrying the 24-bit VXLAN Network Identifier.

use crate::view::{be32, need, view};
use crate::PacketError;

mod field {
    use std::ops::Range;
    pub const FLAGS: usize = 0;
    pub const VNI: Range<usize> = 4..8;
}

pub const HEADER_LEN: usize = 8;
/// IANA's port for VXLAN (RFC 7348 §5).
pub const DEFAULT_PORT: u16 = 4789;
/// The I flag: the VNI is valid. RFC 7348 requires it set; the other seven flag bits are
/// reserved and ignored on receipt.
const FLAG_I: u8 = 0x08;

view!("a VXLAN header and the inner frame");

/// At least the header, and the I flag set (a header without a valid VNI is dropped).
fn check(b: &[u8]) -> Result<(), PacketError> {
    need(b, HEADER_LEN)?;
    if b[field::FLAGS] & FLAG_I == 0 {
        return Err(PacketError::Malformed("VXLAN I flag clear"));
    }
    Ok(())
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// The 24-bit VNI (the low byte of the word is reserved).
    pub fn vni(&self) -> u32 {
        be32(self.as_bytes(), field::VNI) >> 8
    }

    /// The inner Ethernet frame.
    pub fn payload(&self) -> &[u8] {
        &self.as_bytes()[HEADER_LEN..]
    }
}

/// Writes the 8-byte header for `vni` (only its low 24 bits count).
pub fn emit(buf: &mut [u8; HEADER_LEN], vni: u32) {
    *buf = [FLAG_I, 0, 0, 0, 0, 0, 0, 0];
    buf[4..8].copy_from_slice(&(vni << 8).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7348 header with VNI 100 (0x000064), then the first inner bytes.
    const VNI_100: [u8; 10] = [0x08, 0, 0, 0, 0x00, 0x00, 0x64, 0x00, 0xff, 0xff];

    #[test]
    fn reads_fields() {
        let v = Frame::new_checked(&VNI_100[..]).unwrap();
        assert_eq!(v.vni(), 100);
        assert_eq!(v.payload(), &[0xff, 0xff]);
        let mut big = VNI_100;
        big[4..7].copy_from_slice(&[0xab, 0xcd, 0xef]);
        big[7] = 0x55; // reserved byte: not part of the VNI
        assert_eq!(Frame::new_checked(&big[..]).unwrap().vni(), 0xabcdef);
    }

    #[test]
    fn refuses_bad_headers() {
        assert!(matches!(Frame::new_checked(&VNI_100[..7]), Err(PacketError::Truncated { .. })));
        let mut no_i = VNI_100;
        no_i[0] = 0;
        assert!(matches!(Frame::new_checked(&no_i[..]), Err(PacketError::Malformed(_))));
    }

    #[test]
    fn emits_what_it_reads() {
        let mut h = [0u8; HEADER_LEN];
        emit(&mut h, 100);
        assert_eq!(h, VNI_100[..8]);
        emit(&mut h, 0x1ff_ffff);
        assert_eq!(Frame::new_checked(&h[..]).unwrap().vni(), 0xff_ffff, "only 24 bits");
    }
}
