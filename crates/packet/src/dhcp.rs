//! DHCPv4 (RFC 2131/2132): the fixed fields and options that DHCP snooping and the
//! 0.0.0.0-source rule read.

use std::net::Ipv4Addr;

use crate::view::{be32, ipv4, mac, need, view};
use crate::{MacAddr, PacketError};

mod field {
    use std::ops::Range;
    pub const OP: usize = 0;
    pub const YIADDR: Range<usize> = 16..20;
    pub const CHADDR: Range<usize> = 28..34;
    pub const MAGIC: Range<usize> = 236..240;
    pub const OPTIONS: usize = 240;
}

pub const OP_REQUEST: u8 = 1;
pub const OP_REPLY: u8 = 2;
const MAGIC_COOKIE: u32 = 0x6382_5363;
const OPT_PAD: u8 = 0;
const OPT_END: u8 = 255;
const OPT_LEASE_TIME: u8 = 51;
const OPT_MESSAGE_TYPE: u8 = 53;

/// DHCP message types (option 53).
pub const DISCOVER: u8 = 1;
pub const OFFER: u8 = 2;
pub const REQUEST: u8 = 3;
pub const ACK: u8 = 5;
pub const NAK: u8 = 6;
pub const RELEASE: u8 = 7;

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
