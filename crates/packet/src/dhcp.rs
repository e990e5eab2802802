//! DHCPv4 (RFC 2131/2132): the fixed fields and options that DHCP snooping and the
//! 0.0.0.0-source rule read.

use std::net::Ipv4Addr;

use crate::view::{be32, ipv4, mac, need, view};
use crate::{MacAddr, PacketError};

/// Byte ranges of the fixed part (RFC 2131 §2, figure 1); public so a server that writes
/// replies takes its offsets from here.
pub mod field {
    use std::ops::Range;
    pub const OP: usize = 0;
    pub const HTYPE: usize = 1;
    pub const HLEN: usize = 2;
    pub const HOPS: usize = 3;
    pub const XID: Range<usize> = 4..8;
    pub const SECS: Range<usize> = 8..10;
    pub const FLAGS: Range<usize> = 10..12;
    pub const CIADDR: Range<usize> = 12..16;
    pub const YIADDR: Range<usize> = 16..20;
    pub const SIADDR: Range<usize> = 20..24;
    pub const GIADDR: Range<usize> = 24..28;
    /// The Ethernet address: the first six bytes of the 16-byte `chaddr`.
    pub const CHADDR: Range<usize> = 28..34;
    pub const CHADDR_FULL: Range<usize> = 28..44;
    pub const MAGIC: Range<usize> = 236..240;
    pub const OPTIONS: usize = 240;
}

pub const OP_REQUEST: u8 = 1;
pub const OP_REPLY: u8 = 2;
/// `htype` for Ethernet, whose `hlen` is 6.
pub const HTYPE_ETHERNET: u8 = 1;
/// The `flags` bit asking for a broadcast reply (RFC 2131 §4.1).
pub const FLAG_BROADCAST: u16 = 0x8000;
pub const MAGIC_COOKIE: u32 = 0x6382_5363;
pub const OPT_PAD: u8 = 0;
pub const OPT_SUBNET_MASK: u8 = 1;
pub const OPT_ROUTER: u8 = 3;
pub const OPT_DNS: u8 = 6;
pub const OPT_MTU: u8 = 26;
pub const OPT_REQUESTED_IP: u8 = 50;
pub const OPT_LEASE_TIME: u8 = 51;
pub const OPT_MESSAGE_TYPE: u8 = 53;
pub const OPT_SERVER_ID: u8 = 54;
pub const OPT_MESSAGE: u8 = 56;
pub const OPT_RENEWAL_TIME: u8 = 58;
pub const OPT_REBINDING_TIME: u8 = 59;
pub const OPT_END: u8 = 255;

/// DHCP message types (option 53).
pub const DISCOVER: u8 = 1;
pub const OFFER: u8 = 2;
pub const REQUEST: u8 = 3;
pub const DECLINE: u8 = 4;
pub const ACK: u8 = 5;
pub const NAK: u8 = 6;
pub const RELEASE: u8 = 7;
pub const INFORM: u8 = 8;

view!("a DHCPv4 message (the UDP payload)");

fn check(b: &[u8]) -> Result<(), PacketError> {
    need(b, field::OPTIONS)?;
    if be32(b, field::MAGIC) != MAGIC_COOKIE {
        return Err(PacketError::Malformed("DHCP magic cookie missing"));
    }
    Ok(())
}

impl<T: AsRef<[u8]>> Frame<T> {
    pub fn op(&self) -> u8 {
        self.as_bytes()[field::OP]
    }

    pub fn xid(&self) -> u32 {
        be32(self.as_bytes(), field::XID)
    }

    pub fn flags(&self) -> u16 {
        crate::view::be16(self.as_bytes(), field::FLAGS)
    }

    /// Ethernet hardware type with a 6-byte address: the only kind `client_mac` can read.
    pub fn is_ethernet(&self) -> bool {
        let b = self.as_bytes();
        b[field::HTYPE] == HTYPE_ETHERNET && b[field::HLEN] == 6
    }

    /// The client's own address (set when it renews or asks INFORM).
    pub fn ciaddr(&self) -> Ipv4Addr {
        ipv4(self.as_bytes(), field::CIADDR)
    }

    /// The relay agent's address; 0.0.0.0 when the client is on the server's link.
    pub fn giaddr(&self) -> Ipv4Addr {
        ipv4(self.as_bytes(), field::GIADDR)
    }

    /// An IPv4 address option (requested address, server identifier); `None` unless 4 bytes.
    pub fn option_addr(&self, code: u8) -> Option<Ipv4Addr> {
        let v: [u8; 4] = self.option(code)?.try_into().ok()?;
        Some(Ipv4Addr::from(v))
    }

    /// "Your" address: the one a server leases.
    pub fn yiaddr(&self) -> Ipv4Addr {
        ipv4(self.as_bytes(), field::YIADDR)
    }

    /// The client's hardware address (Ethernet: the first six bytes of `chaddr`).
    pub fn client_mac(&self) -> MacAddr {
        mac(self.as_bytes(), field::CHADDR)
    }

    /// The value of option `code`; `None` when absent or when the options are cut short.
    pub fn option(&self, code: u8) -> Option<&[u8]> {
        let mut rest = &self.as_bytes()[field::OPTIONS..];
        // Each round consumes at least one byte, so this ends.
        while let Some((&c, tail)) = rest.split_first() {
            match c {
                OPT_END => return None,
                OPT_PAD => rest = tail,
                _ => {
                    let (&len, tail) = tail.split_first()?;
                    let value = tail.get(..usize::from(len))?;
                    if c == code {
                        return Some(value);
                    }
                    rest = &tail[usize::from(len)..];
                }
            }
        }
        None
    }

    pub fn message_type(&self) -> Option<u8> {
        self.option(OPT_MESSAGE_TYPE).and_then(|v| v.first().copied())
    }

    /// The lease time in seconds (`u32::MAX` = infinite).
    pub fn lease_secs(&self) -> Option<u32> {
        let v = self.option(OPT_LEASE_TIME)?;
        Some(u32::from_be_bytes(v.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DHCPACK leasing 198.18.0.10 to 52:54:00:00:00:01 for 3600 s.
    fn ack() -> Vec<u8> {
        let mut b = vec![0u8; 240];
        b[0] = OP_REPLY;
        b[1] = 1;
        b[2] = 6;
        b[16..20].copy_from_slice(&[198, 18, 0, 10]);
        b[28..34].copy_from_slice(&[0x52, 0x54, 0, 0, 0, 1]);
        b[236..240].copy_from_slice(&[0x63, 0x82, 0x53, 0x63]);
        b.extend_from_slice(&[53, 1, ACK, 0, 51, 4, 0, 0, 0x0e, 0x10, 255]);
        b
    }

    #[test]
    fn reads_fields_and_options() {
        let bytes = ack();
        let d = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(d.op(), OP_REPLY);
        assert_eq!(d.yiaddr(), Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(d.client_mac().to_string(), "52:54:00:00:00:01");
        assert_eq!(d.message_type(), Some(ACK));
        assert_eq!(d.lease_secs(), Some(3600));
        assert_eq!(d.option(1), None, "absent");
        assert!(d.is_ethernet());
        assert_eq!(
            (d.xid(), d.flags(), d.ciaddr(), d.giaddr()),
            (0, 0, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED)
        );
        assert_eq!(d.option_addr(OPT_LEASE_TIME), Some(Ipv4Addr::new(0, 0, 0x0e, 0x10)));
        assert_eq!(d.option_addr(OPT_MESSAGE_TYPE), None, "1 byte is no address");
    }

    #[test]
    fn cut_options_and_missing_cookie() {
        let mut bytes = ack();
        bytes.truncate(240 + 7); // lease time option cut
        let d = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(d.message_type(), Some(ACK));
        assert_eq!(d.lease_secs(), None);
        let mut no_cookie = ack();
        no_cookie[236] = 0;
        assert!(Frame::new_checked(&no_cookie[..]).is_err());
        assert!(Frame::new_checked(&ack()[..239]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn options_never_panic(opts in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut bytes = ack();
            bytes.truncate(240);
            bytes.extend(opts);
            let d = Frame::new_checked(&bytes[..]).unwrap();
            let _ = (d.message_type(), d.lease_secs());
        }
    }
}
