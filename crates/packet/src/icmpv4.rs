//! ICMP for IPv4 (RFC 792): echo identifiers (NAT translates them) and the error messages
//! that quote an IP header (NAT translates the quote; the gateway builds fragmentation-needed).

use crate::view::{be16, need, view};
use crate::PacketError;

/// Byte ranges of the message (public for in-place rewriting, as in [`crate::ipv4::field`]).
pub mod field {
    use std::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    /// Echo request/reply: the identifier.
    pub const IDENT: Range<usize> = 4..6;
    pub const SEQ: Range<usize> = 6..8;
    /// Destination unreachable, code 4: the next-hop MTU (RFC 1191).
    pub const NEXT_HOP_MTU: Range<usize> = 6..8;
    /// Error messages: where the quoted datagram starts.
    pub const QUOTE: usize = 8;
}

pub const HEADER_LEN: usize = 8;
pub const ECHO_REPLY: u8 = 0;
pub const DEST_UNREACHABLE: u8 = 3;
pub const ECHO_REQUEST: u8 = 8;
pub const TIME_EXCEEDED: u8 = 11;
pub const PARAMETER_PROBLEM: u8 = 12;
/// Destination unreachable code: fragmentation needed and DF set.
pub const CODE_FRAG_NEEDED: u8 = 4;

view!("an ICMPv4 message");

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

    pub fn ident(&self) -> u16 {
        be16(self.as_bytes(), field::IDENT)
    }

    pub fn is_echo(&self) -> bool {
        matches!(self.msg_type(), ECHO_REQUEST | ECHO_REPLY)
    }

    /// An error that quotes the datagram it is about.
    pub fn is_error(&self) -> bool {
        matches!(self.msg_type(), DEST_UNREACHABLE | TIME_EXCEEDED | PARAMETER_PROBLEM)
    }

    /// The quoted datagram of an error message (what follows the 8-byte header).
    pub fn quote(&self) -> &[u8] {
        &self.as_bytes()[field::QUOTE..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields() {
        let echo = [ECHO_REQUEST, 0, 0xe5, 0xca, 0x12, 0x34, 0, 1];
        let m = Frame::new_checked(&echo[..]).unwrap();
        assert_eq!((m.msg_type(), m.code(), m.ident()), (ECHO_REQUEST, 0, 0x1234));
        assert!(m.is_echo() && !m.is_error());
        assert_eq!(crate::checksum::internet(&echo), 0);
        let err = [DEST_UNREACHABLE, CODE_FRAG_NEEDED, 0, 0, 0, 0, 5, 0xdc, 0x45];
        let e = Frame::new_checked(&err[..]).unwrap();
        assert!(e.is_error() && !e.is_echo());
        assert_eq!(e.quote(), &[0x45]);
        assert!(Frame::new_checked(&echo[..7]).is_err());
    }
}
