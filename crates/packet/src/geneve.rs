//! The Geneve header (RFC 8926 §3.4): 8 fixed bytes, then `opt_len` 4-byte words of options,
//! then the payload. rvswitch understands no option, so options are skipped by their length and
//! a packet with the C (critical options) bit is refused, as §3.4 requires of such a receiver.

use crate::view::{be16, be32, need, view};
use crate::PacketError;

mod field {
    use std::ops::Range;
    pub const VER_OPTLEN: usize = 0;
    pub const FLAGS: usize = 1;
    pub const PROTOCOL: Range<usize> = 2..4;
    pub const VNI: Range<usize> = 4..8;
}

/// The fixed part of the header.
pub const HEADER_LEN: usize = 8;
/// IANA's port for Geneve (RFC 8926 §3.3).
pub const DEFAULT_PORT: u16 = 6081;
/// Protocol Type of an Ethernet payload ("Transparent Ethernet Bridging").
pub const PROTO_ETHERNET: u16 = 0x6558;
const FLAG_OAM: u8 = 0x80;
const FLAG_CRITICAL: u8 = 0x40;

view!("a Geneve header, its options and the payload");

/// Version 0, the whole option area present, no critical options (we understand none).
fn check(b: &[u8]) -> Result<(), PacketError> {
    need(b, HEADER_LEN)?;
    if b[field::VER_OPTLEN] >> 6 != 0 {
        return Err(PacketError::Malformed("Geneve version is not 0"));
    }
    need(b, header_len(b))?;
    if b[field::FLAGS] & FLAG_CRITICAL != 0 {
        return Err(PacketError::Malformed("Geneve critical options not understood"));
    }
    Ok(())
}

fn header_len(b: &[u8]) -> usize {
    HEADER_LEN + usize::from(b[field::VER_OPTLEN] & 0x3f) * 4
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Fixed header plus options.
    pub fn header_len(&self) -> usize {
        header_len(self.as_bytes())
    }

    /// A control message (O bit): not data to forward.
    pub fn is_oam(&self) -> bool {
        self.as_bytes()[field::FLAGS] & FLAG_OAM != 0
    }

    /// The EtherType-like type of the payload ([`PROTO_ETHERNET`] for a bridged frame).
    pub fn protocol(&self) -> u16 {
        be16(self.as_bytes(), field::PROTOCOL)
    }

    pub fn vni(&self) -> u32 {
        be32(self.as_bytes(), field::VNI) >> 8
    }

    /// What follows the options.
    pub fn payload(&self) -> &[u8] {
        &self.as_bytes()[self.header_len()..]
    }
}

/// Writes the fixed header (no options) for an Ethernet payload on `vni`.
pub fn emit(buf: &mut [u8; HEADER_LEN], vni: u32) {
    *buf = [0; HEADER_LEN];
    buf[field::PROTOCOL].copy_from_slice(&PROTO_ETHERNET.to_be_bytes());
    buf[field::VNI].copy_from_slice(&(vni << 8).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// VNI 100, one 4-byte option (class 0x0102, type 3, length 0), then two payload bytes.
    const WITH_OPTION: [u8; 14] = [0x01, 0x00, 0x65, 0x58, 0, 0, 0x64, 0, 0x01, 0x02, 0x03, 0x00, 0xaa, 0xbb];

    #[test]
    fn skips_options_by_length() {
        let g = Frame::new_checked(&WITH_OPTION[..]).unwrap();
        assert_eq!((g.header_len(), g.vni(), g.protocol()), (12, 100, PROTO_ETHERNET));
        assert!(!g.is_oam());
        assert_eq!(g.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn refuses_bad_headers() {
        assert!(Frame::new_checked(&WITH_OPTION[..11]).is_err(), "options cut short");
        let mut v1 = WITH_OPTION;
        v1[0] |= 0x40;
        assert!(matches!(Frame::new_checked(&v1[..]), Err(PacketError::Malformed(_))));
        let mut critical = WITH_OPTION;
        critical[1] = FLAG_CRITICAL;
        assert!(Frame::new_checked(&critical[..]).is_err());
        let mut oam = WITH_OPTION;
        oam[1] = FLAG_OAM;
        assert!(Frame::new_checked(&oam[..]).unwrap().is_oam());
    }

    #[test]
    fn emits_what_it_reads() {
        let mut h = [0u8; HEADER_LEN];
        emit(&mut h, 100);
        assert_eq!(h, [0, 0, 0x65, 0x58, 0, 0, 0x64, 0]);
    }
}
