//! The IPv4 header (RFC 791): addresses, protocol, fragment offset, and where the payload is.

use std::net::Ipv4Addr;

use crate::view::{be16, ipv4, need, view};
use crate::PacketError;

mod field {
    use std::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// Bytes of a header without options.
pub const MIN_HEADER_LEN: usize = field::DST.end;
pub const PROTO_UDP: u8 = 17;

view!("an IPv4 header and its payload");

/// Version 4, a header length of at least 20 bytes that the buffer holds, and a total length
/// that covers the header (Ethernet padding may follow the datagram; it is not payload).
fn check(b: &[u8]) -> Result<(), PacketError> {
    need(b, MIN_HEADER_LEN)?;
    if b[field::VER_IHL] >> 4 != 4 {
        return Err(PacketError::Malformed("IPv4 version is not 4"));
    }
    let hl = usize::from(b[field::VER_IHL] & 0x0f) * 4;
    if hl < MIN_HEADER_LEN {
        return Err(PacketError::Malformed("IPv4 header length below 20"));
    }
    need(b, hl)?;
    if usize::from(be16(b, field::TOTAL_LEN)) < hl {
        return Err(PacketError::Malformed("IPv4 total length below its header length"));
    }
    Ok(())
}

impl<T: AsRef<[u8]>> Frame<T> {
    pub fn header_len(&self) -> usize {
        usize::from(self.as_bytes()[field::VER_IHL] & 0x0f) * 4
    }

    /// The DSCP and ECN bits.
    pub fn tos(&self) -> u8 {
        self.as_bytes()[field::TOS]
    }

    pub fn ttl(&self) -> u8 {
        self.as_bytes()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.as_bytes()[field::PROTOCOL]
    }

    pub fn src(&self) -> Ipv4Addr {
        ipv4(self.as_bytes(), field::SRC)
    }

    pub fn dst(&self) -> Ipv4Addr {
        ipv4(self.as_bytes(), field::DST)
    }

    /// A fragment other than the first: it carries no transport header.
    pub fn is_later_fragment(&self) -> bool {
        be16(self.as_bytes(), field::FLAGS_FRAG) & 0x1fff != 0
    }

    /// The datagram's payload: up to the total length, or to the end of a truncated buffer.
    pub fn payload(&self) -> &[u8] {
        let b = self.as_bytes();
        let end = usize::from(be16(b, field::TOTAL_LEN)).min(b.len());
        &b[self.header_len()..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// UDP 198.18.0.1 → 198.18.0.2, 4 payload bytes, then 2 bytes of Ethernet padding.
    const UDP: [u8; 26] = [
        0x45, 0, 0, 24, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 0xde, 0xad, 0xbe, 0xef, 0xee,
        0xee,
    ];

    #[test]
    fn reads_fields() {
        let ip = Frame::new_checked(&UDP[..]).unwrap();
        assert_eq!(ip.header_len(), 20);
        assert_eq!(ip.protocol(), PROTO_UDP);
        assert_eq!(ip.src(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(ip.dst(), Ipv4Addr::new(198, 18, 0, 2));
        assert!(!ip.is_later_fragment());
        assert_eq!(ip.payload(), &[0xde, 0xad, 0xbe, 0xef], "padding is not payload");
    }

    #[test]
    fn refuses_bad_headers() {
        assert!(Frame::new_checked(&UDP[..19]).is_err());
        let mut v6 = UDP;
        v6[0] = 0x65;
        assert!(Frame::new_checked(&v6[..]).is_err());
        let mut short_ihl = UDP;
        short_ihl[0] = 0x44;
        assert!(Frame::new_checked(&short_ihl[..]).is_err());
        let mut long_ihl = UDP;
        long_ihl[0] = 0x4f; // 60-byte header in a 26-byte buffer
        assert!(matches!(Frame::new_checked(&long_ihl[..]), Err(PacketError::Truncated { .. })));
        let mut frag = UDP;
        frag[7] = 1;
        assert!(Frame::new_checked(&frag[..]).unwrap().is_later_fragment());
    }
}
