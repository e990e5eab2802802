//! DHCPv6 client/server messages (RFC 8415 §8, §21): the message type, and the options DHCPv6
//! snooping reads — the client's DUID and the addresses an IA_NA leases, with their valid
//! lifetimes. Relay messages (RELAY-FORW/RELAY-REPL) have another header and are not read here.
//!
//! Port security's DHCPv6 snooping reads server REPLYs and client RELEASE/DECLINEs with it.

use std::net::Ipv6Addr;

use crate::view::{be16, be32, ipv6, need, view};
use crate::PacketError;

/// Byte ranges of the fixed part (RFC 8415 §8).
pub mod field {
    use std::ops::Range;
    pub const MSG_TYPE: usize = 0;
    pub const TRANSACTION_ID: Range<usize> = 1..4;
    pub const OPTIONS: usize = 4;
}

/// Byte ranges inside one option (RFC 8415 §21.1): code, length, then `length` bytes.
pub mod option {
    use std::ops::Range;
    pub const CODE: Range<usize> = 0..2;
    pub const LEN: Range<usize> = 2..4;
    pub const BODY: usize = 4;
}

/// Byte ranges inside an IA_NA body (§21.4): IAID, T1, T2, then sub-options.
pub mod ia_na {
    use std::ops::Range;
    pub const IAID: Range<usize> = 0..4;
    pub const T1: Range<usize> = 4..8;
    pub const T2: Range<usize> = 8..12;
    pub const OPTIONS: usize = 12;
}

/// Byte ranges inside an IA Address body (§21.6).
pub mod ia_addr {
    use std::ops::Range;
    pub const ADDRESS: Range<usize> = 0..16;
    pub const PREFERRED_LIFETIME: Range<usize> = 16..20;
    pub const VALID_LIFETIME: Range<usize> = 20..24;
}

pub const SOLICIT: u8 = 1;
pub const ADVERTISE: u8 = 2;
pub const REQUEST: u8 = 3;
pub const RENEW: u8 = 5;
pub const REBIND: u8 = 6;
pub const REPLY: u8 = 7;
pub const RELEASE: u8 = 8;
pub const DECLINE: u8 = 9;
pub const RELAY_FORW: u8 = 12;
pub const RELAY_REPL: u8 = 13;

pub const OPT_CLIENTID: u16 = 1;
pub const OPT_SERVERID: u16 = 2;
pub const OPT_IA_NA: u16 = 3;
pub const OPT_IAADDR: u16 = 5;
pub const OPT_STATUS_CODE: u16 = 13;

view!("a DHCPv6 client/server message");

/// The message type and transaction id; options are checked one by one as they are read.
#[inline]
fn check(b: &[u8]) -> Result<(), PacketError> {
    need(b, field::OPTIONS)
}

impl<T: AsRef<[u8]>> Frame<T> {
    pub fn msg_type(&self) -> u8 {
        self.as_bytes()[field::MSG_TYPE]
    }

    pub fn transaction_id(&self) -> u32 {
        let b = self.as_bytes();
        u32::from_be_bytes([0, b[1], b[2], b[3]])
    }

    /// The top-level options in order; an option running past the end ends the walk with an
    /// error (the message is malformed from there on).
    pub fn options(&self) -> Options<'_> {
        Options { rest: &self.as_bytes()[field::OPTIONS..] }
    }

    /// The body of the first Client Identifier option: the client's DUID.
    pub fn client_id(&self) -> Option<&[u8]> {
        self.options().map_while(Result::ok).find(|(code, _)| *code == OPT_CLIENTID).map(|(_, b)| b)
    }

    /// Every address of every IA_NA, with its valid lifetime in seconds (`u32::MAX`:
    /// infinite). Malformed IA_NA or IA Address options are skipped.
    pub fn ia_na_addresses(&self) -> impl Iterator<Item = (Ipv6Addr, u32)> + '_ {
        self.options()
            .map_while(Result::ok)
            .filter(|(code, body)| *code == OPT_IA_NA && body.len() >= ia_na::OPTIONS)
            .flat_map(|(_, body)| Options { rest: &body[ia_na::OPTIONS..] }.map_while(Result::ok))
            .filter(|(code, body)| *code == OPT_IAADDR && body.len() >= ia_addr::VALID_LIFETIME.end)
            .map(|(_, body)| (ipv6(body, ia_addr::ADDRESS), be32(body, ia_addr::VALID_LIFETIME)))
    }
}

/// An iterator over (code, body) of a run of DHCPv6 options.
#[derive(Clone, Debug)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u16, &'a [u8]), PacketError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest;
        let item = need(b, option::BODY).and_then(|()| {
            let end = option::BODY + usize::from(be16(b, option::LEN));
            need(b, end)?;
            Ok((be16(b, option::CODE), &b[option::BODY..end], end))
        });
        match item {
            Ok((code, body, end)) => {
                self.rest = &b[end..];
                Some(Ok((code, body)))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A REPLY (xid 0x123456): Client ID (DUID-LL of 52:54:00:00:00:01), then an IA_NA (IAID 1,
    /// T1 1800, T2 2880) holding 2001:db8::10 with preferred 3600 s and valid 7200 s.
    const REPLY_MSG: [u8; 66] = [
        7, 0x12, 0x34, 0x56, // REPLY, transaction id
        0, 1, 0, 10, 0, 3, 0, 1, 0x52, 0x54, 0, 0, 0, 1, // Client ID: DUID-LL, Ethernet, MAC
        0, 3, 0, 40, 0, 0, 0, 1, 0, 0, 0x07, 0x08, 0, 0, 0x0b, 0x40, // IA_NA, IAID, T1, T2
        0, 5, 0, 24, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, // IA Address
        0, 0, 0x0e, 0x10, 0, 0, 0x1c, 0x20, // preferred 3600, valid 7200
        0, 13, 0, 0, // an empty Status Code
    ];

    #[test]
    fn reads_a_reply() {
        let m = Frame::new_checked(&REPLY_MSG[..]).unwrap();
        assert_eq!((m.msg_type(), m.transaction_id()), (REPLY, 0x12_3456));
        assert_eq!(m.client_id(), Some(&[0, 3, 0, 1, 0x52, 0x54, 0, 0, 0, 1][..]));
        let addrs: Vec<_> = m.ia_na_addresses().collect();
        assert_eq!(addrs, vec![("2001:db8::10".parse().unwrap(), 7200)]);
        let codes: Vec<u16> = m.options().map(|o| o.unwrap().0).collect();
        assert_eq!(codes, vec![OPT_CLIENTID, OPT_IA_NA, OPT_STATUS_CODE]);
    }

    #[test]
    fn stops_at_a_truncated_option() {
        assert!(Frame::new_checked(&REPLY_MSG[..3]).is_err());
        // Cut inside the IA Address: the Client ID still reads, the address does not.
        let cut = Frame::new_checked(&REPLY_MSG[..50]).unwrap();
        assert!(cut.client_id().is_some());
        assert_eq!(cut.ia_na_addresses().count(), 0);
        let last = cut.options().last().unwrap();
        assert!(matches!(last, Err(PacketError::Truncated { .. })));
        // An IA Address shorter than its fixed fields is skipped, not read past.
        let mut short = REPLY_MSG;
        short[37] = 20; // IA Address length 24 → 20 (the IA_NA still spans its bytes)
        short[21] = 36;
        let m = Frame::new_checked(&short[..62]).unwrap();
        assert_eq!(m.ia_na_addresses().count(), 0);
    }

    #[test]
    fn a_message_without_options() {
        let m = Frame::new_checked(&[SOLICIT, 0, 0, 1][..]).unwrap();
        assert_eq!((m.options().count(), m.client_id(), m.ia_na_addresses().count()), (0, None, 0));
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic a reader, and the option walk always ends.
        #[test]
        fn never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            if let Ok(m) = Frame::new_checked(&b[..]) {
                let _ = (m.msg_type(), m.transaction_id(), m.client_id());
                proptest::prop_assert!(m.options().count() <= b.len() / 4 + 1);
                let _ = m.ia_na_addresses().count();
            }
        }
    }
}
