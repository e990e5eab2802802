//! ICMPv6 (RFC 4443) with the Neighbor Discovery messages port security reads (RFC 4861).

use std::net::Ipv6Addr;

use crate::view::{ipv6, mac, need, view};
use crate::{MacAddr, PacketError};

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
    /// Where a Neighbor Solicitation's or Advertisement's options start.
    pub const ND_OPTIONS: usize = TARGET.end;
    /// Inside an option: type, length in units of 8 bytes, then the body.
    pub const OPT_TYPE: usize = 0;
    pub const OPT_LEN: usize = 1;
    /// The address in a link-layer address option for Ethernet (RFC 4861 4.6.1).
    pub const OPT_LINK_ADDR: Range<usize> = 2..8;
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
/// ND option types: the sender's (in NS) and the target's (in NA) link-layer address.
pub const OPT_SOURCE_LINK_ADDR: u8 = 1;
pub const OPT_TARGET_LINK_ADDR: u8 = 2;

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

impl<T: AsRef<[u8]>> Frame<T> {
    /// The link-layer addresses an NS or NA announces (source/target link-layer address
    /// options), in order; empty for other types. An option of length 0 or one that runs past
    /// the message yields an error and ends the walk (RFC 4861 says discard such a packet).
    pub fn nd_link_addrs(&self) -> NdLinkAddrs<'_> {
        let nd = matches!(self.msg_type(), NEIGHBOR_SOLICIT | NEIGHBOR_ADVERT);
        let rest = if nd { self.as_bytes().get(field::ND_OPTIONS..).unwrap_or_default() } else { &[] };
        NdLinkAddrs { rest }
    }
}

/// Iterator of [`Frame::nd_link_addrs`].
pub struct NdLinkAddrs<'a> {
    rest: &'a [u8],
}

impl Iterator for NdLinkAddrs<'_> {
    type Item = Result<MacAddr, PacketError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let bad = |m| Some(Err(PacketError::Malformed(m)));
            let Some(&units) = self.rest.get(field::OPT_LEN) else {
                self.rest = &[];
                return bad("ND option shorter than its header");
            };
            let len = usize::from(units) * 8;
            if len == 0 || len > self.rest.len() {
                self.rest = &[];
                return bad("ND option length 0 or past the message");
            }
            let (opt, rest) = self.rest.split_at(len);
            self.rest = rest;
            if matches!(opt[field::OPT_TYPE], OPT_SOURCE_LINK_ADDR | OPT_TARGET_LINK_ADDR) {
                return Some(Ok(mac(opt, field::OPT_LINK_ADDR)));
            }
        }
        None
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

    /// The NA above plus a nonce-like option (type 14, skipped) and a target link-layer
    /// address option for 52:54:00:00:00:03.
    fn na_with_options(tlla_len: u8) -> Vec<u8> {
        let mut m = NA.to_vec();
        m.extend_from_slice(&[14, 1, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&[OPT_TARGET_LINK_ADDR, tlla_len, 0x52, 0x54, 0, 0, 0, 3]);
        m
    }

    #[test]
    fn link_addr_options() {
        let m = na_with_options(1);
        let addrs: Vec<_> = Frame::new_checked(&m[..]).unwrap().nd_link_addrs().collect();
        assert_eq!(addrs, vec![Ok(MacAddr([0x52, 0x54, 0, 0, 0, 3]))]);
        assert_eq!(Frame::new_checked(&NA[..]).unwrap().nd_link_addrs().count(), 0, "no options");
        for bad in [0, 2] {
            let m = na_with_options(bad);
            let addrs: Vec<_> = Frame::new_checked(&m[..]).unwrap().nd_link_addrs().collect();
            assert!(matches!(addrs[..], [Err(PacketError::Malformed(_))]), "length {bad}: {addrs:?}");
        }
        let ra = [ROUTER_ADVERT, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(Frame::new_checked(&ra[..]).unwrap().nd_link_addrs().count(), 0, "only NS/NA");
    }
}
