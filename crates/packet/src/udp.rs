//! The UDP header (RFC 768): ports and payload.

use crate::view::{be16, need, view};
use crate::PacketError;

/// Byte ranges of the header (public for in-place rewriting, as in [`crate::ipv4::field`]).
pub mod field {
    use std::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

pub const HEADER_LEN: usize = 8;
pub const PORT_DHCP_SERVER: u16 = 67;
pub const PORT_DHCP_CLIENT: u16 = 68;
pub const PORT_DHCPV6_CLIENT: u16 = 546;
pub const PORT_DHCPV6_SERVER: u16 = 547;

view!("a UDP datagram");

#[inline]
fn check(b: &[u8]) -> Result<(), PacketError> {
    need(b, HEADER_LEN)?;
    if usize::from(be16(b, field::LENGTH)) < HEADER_LEN {
        return Err(PacketError::Malformed("UDP length below 8"));
    }
    Ok(())
}

impl<T: AsRef<[u8]>> Frame<T> {
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.as_bytes(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.as_bytes(), field::DST_PORT)
    }

    /// The data: up to the length field, or to the end of a truncated buffer.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.as_bytes()[self.payload_range()]
    }

    fn payload_range(&self) -> std::ops::Range<usize> {
        let b = self.as_bytes();
        HEADER_LEN..usize::from(be16(b, field::LENGTH)).min(b.len())
    }
}

impl<'a> Frame<&'a [u8]> {
    /// [`Frame::payload`] with the buffer's lifetime, so a parser can return it.
    pub fn into_payload(self) -> &'a [u8] {
        let r = self.payload_range();
        &self.into_inner()[r]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DHCP_REPLY: [u8; 11] = [0, 67, 0, 68, 0, 11, 0, 0, 2, 1, 6];

    #[test]
    fn reads_fields() {
        let u = Frame::new_checked(&DHCP_REPLY[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port()), (PORT_DHCP_SERVER, PORT_DHCP_CLIENT));
        assert_eq!(u.payload(), &[2, 1, 6]);
        assert_eq!(Frame::new_checked(&DHCP_REPLY[..9]).unwrap().payload(), &[2], "truncated");
    }

    #[test]
    fn refuses_bad_headers() {
        assert!(Frame::new_checked(&DHCP_REPLY[..7]).is_err());
        let mut bad = DHCP_REPLY;
        bad[5] = 7;
        assert!(matches!(Frame::new_checked(&bad[..]), Err(PacketError::Malformed(_))));
    }
}
