//! ARP over Ethernet for IPv4 (RFC 826): the fields port security checks.

use std::net::Ipv4Addr;

use crate::view::{be16, ipv4, mac, need, view};
use crate::{MacAddr, PacketError, ETHERTYPE_IPV4};

mod field {
    use std::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// Bytes of an Ethernet/IPv4 ARP packet.
pub const LEN: usize = field::TPA.end;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

view!("an Ethernet/IPv4 ARP packet");

/// Only Ethernet/IPv4 ARP is a valid packet here; other hardware or protocol types are refused
/// so that no accessor reads addresses of another size.
fn check(b: &[u8]) -> Result<(), PacketError> {
    need(b, LEN)?;
    let ok = be16(b, field::HTYPE) == 1
        && be16(b, field::PTYPE) == ETHERTYPE_IPV4
        && b[field::HLEN] == 6
        && b[field::PLEN] == 4;
    if !ok {
        return Err(PacketError::Malformed("ARP is not Ethernet/IPv4"));
    }
    Ok(())
}

impl<T: AsRef<[u8]>> Frame<T> {
    pub fn operation(&self) -> u16 {
        be16(self.as_bytes(), field::OPER)
    }

    pub fn sender_mac(&self) -> MacAddr {
        mac(self.as_bytes(), field::SHA)
    }

    pub fn sender_ip(&self) -> Ipv4Addr {
        ipv4(self.as_bytes(), field::SPA)
    }

    pub fn target_mac(&self) -> MacAddr {
        mac(self.as_bytes(), field::THA)
    }

    pub fn target_ip(&self) -> Ipv4Addr {
        ipv4(self.as_bytes(), field::TPA)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply "198.18.0.3 is at 52:54:00:00:00:03" to 52:54:00:00:00:01 (198.18.0.1).
    const REPLY: [u8; 28] = [
        0, 1, 0x08, 0, 6, 4, 0, 2, 0x52, 0x54, 0, 0, 0, 3, 198, 18, 0, 3, 0x52, 0x54, 0, 0, 0, 1, 198, 18, 0,
        1,
    ];

    #[test]
    fn reads_fields() {
        let a = Frame::new_checked(&REPLY[..]).unwrap();
        assert_eq!(a.operation(), OP_REPLY);
        assert_eq!(a.sender_mac().to_string(), "52:54:00:00:00:03");
        assert_eq!(a.sender_ip(), Ipv4Addr::new(198, 18, 0, 3));
        assert_eq!(a.target_mac().to_string(), "52:54:00:00:00:01");
        assert_eq!(a.target_ip(), Ipv4Addr::new(198, 18, 0, 1));
    }

    #[test]
    fn refuses_short_and_foreign() {
        assert!(matches!(Frame::new_checked(&REPLY[..27]), Err(PacketError::Truncated { .. })));
        let mut other = REPLY;
        other[4] = 8; // 8-byte hardware addresses
        assert!(matches!(Frame::new_checked(&other[..]), Err(PacketError::Malformed(_))));
    }
}
