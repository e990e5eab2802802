//! ICMPv6 (RFC 4443) with the Neighbor Discovery messages port security reads (RFC 4861).

use std::net::Ipv6Addr;

use crate::view::{ipv6, need, view};
use crate::PacketError;

/// Byte ranges of the message (public for builders elsewhere, as in [`crate::ipv4::field`]).
pub mod field {
    use std::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    /// Packet Too Big: the MTU of the next hop.
    pub const MTU: Range<usize> = 4..8;
    /// Neighbor Solicitation/Advertisement target address.
    pub const TARGET: Range<usize> = 8..24;
}

pub const HEADER_LEN: usize = 4;
/// Bytes before the quoted packet in an error message (type, code, checksum, 4-byte field).
pub const ERROR_HEADER_LEN: usize = 8;
pub const DEST_UNREACHABLE: u8 = 1;
pub const PACKET_TOO_BIG: u8 = 2;
pub const TIME_EXCEEDED: u8 = 3;
pub const PARAMETER_PROBLEM: u8 = 4;
pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;
pub const ROUTER_SOLICIT: u8 = 133;
pub const ROUTER_ADVERT: u8 = 134;
pub const NEIGHBOR_SOLICIT: u8 = 135;
pub const NEIGHBOR_ADVERT: u8 = 136;
pub const MLDV2_REPORT: u8 = 143;

view!("an ICMPv6 message");

fn check(b: &[u8]) -> Result<(), PacketError> {
    need(b, HEADER_LEN)
}

impl<T: AsRef<[u8]>> Frame<T> {
    pub fn msg_type(&self) -> u8 {
        self.as_bytes()[field::TYPE]
    }

    pub fn code(&self) -> u8 {
        self.as_bytes()[field::CODE]
    }

    /// The target of a Neighbor Solicitation or Advertisement; `None` for other types or when
    /// the message is too short to hold one.
    pub fn nd_target(&self) -> Option<Ipv6Addr> {
        let nd = matches!(self.msg_type(), NEIGHBOR_SOLICIT | NEIGHBOR_ADVERT);
        (nd && self.as_bytes().len() >= field::TARGET.end).then(|| ipv6(self.as_bytes(), field::TARGET))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NA for 198.18.0.3's IPv6 twin 2001:db8::3 (solicited + override flags).
    const NA: [u8; 24] =
        [136, 0, 0, 0, 0x60, 0, 0, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];

    #[test]
    fn reads_fields() {
        let m = Frame::new_checked(&NA[..]).unwrap();
        assert_eq!((m.msg_type(), m.code()), (NEIGHBOR_ADVERT, 0));
        assert_eq!(m.nd_target(), Some("2001:db8::3".parse().unwrap()));
        assert_eq!(Frame::new_checked(&NA[..20]).unwrap().nd_target(), None, "too short");
        let ra = [ROUTER_ADVERT, 0, 0, 0];
        assert_eq!(Frame::new_checked(&ra[..]).unwrap().nd_target(), None);
        assert!(Frame::new_checked(&NA[..3]).is_err());
    }
}
