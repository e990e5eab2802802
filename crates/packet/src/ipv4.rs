//! The IPv4 header (RFC 791): addresses, protocol, fragment offset, and where the payload is.

use std::net::Ipv4Addr;

use crate::view::{be16, ipv4, need, view};
use crate::PacketError;

/// Byte ranges of the header; public so that code rewriting headers in place (NAT, MSS
/// clamping) takes its offsets from here rather than spelling them again.
pub mod field {
    use std::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// Bytes of a header without options.
pub const MIN_HEADER_LEN: usize = field::DST.end;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
/// The Don't Fragment bit of the flags/fragment-offset word.
pub const FLAG_DF: u16 = 0x4000;
/// The More Fragments bit of the flags/fragment-offset word.
pub const FLAG_MF: u16 = 0x2000;

view!("an IPv4 header and its payload");

/// Version 4, a header length of at least 20 bytes that the buffer holds, and a total length
/// that covers the header (Ethernet padding may follow the datagram; it is not payload).
#[inline]
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
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.as_bytes()[field::VER_IHL] & 0x0f) * 4
    }

    /// The DSCP and ECN bits.
    pub fn tos(&self) -> u8 {
        self.as_bytes()[field::TOS]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.as_bytes()[field::PROTOCOL]
    }

    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        ipv4(self.as_bytes(), field::SRC)
    }

    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        ipv4(self.as_bytes(), field::DST)
    }

    /// A fragment other than the first: it carries no transport header.
    #[inline]
    pub fn is_later_fragment(&self) -> bool {
        be16(self.as_bytes(), field::FLAGS_FRAG) & 0x1fff != 0
    }

    /// Any fragment, the first included (More Fragments set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        be16(self.as_bytes(), field::FLAGS_FRAG) & (FLAG_MF | 0x1fff) != 0
    }

    pub fn dont_fragment(&self) -> bool {
        be16(self.as_bytes(), field::FLAGS_FRAG) & FLAG_DF != 0
    }

    pub fn total_len(&self) -> u16 {
        be16(self.as_bytes(), field::TOTAL_LEN)
    }

    pub fn ttl(&self) -> u8 {
        self.as_bytes()[field::TTL]
    }

    /// The datagram's payload: up to the total length, or to the end of a truncated buffer.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.as_bytes()[self.payload_range()]
    }

    fn payload_range(&self) -> std::ops::Range<usize> {
        let b = self.as_bytes();
        self.header_len()..usize::from(be16(b, field::TOTAL_LEN)).min(b.len())
    }
}

impl<'a> Frame<&'a [u8]> {
    /// [`Frame::payload`] with the buffer's lifetime, so a parser can return it.
    pub fn into_payload(self) -> &'a [u8] {
        let r = self.payload_range();
        &self.into_inner()[r]
    }
}

/// What [`write_header`] puts into a header without options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub ident: u16,
    pub dont_fragment: bool,
    /// Bytes after the header.
    pub payload_len: usize,
}

/// Writes a 20-byte header with a valid checksum into `out[..20]`.
pub fn write_header(out: &mut [u8], h: &Header) -> Result<(), PacketError> {
    let total = u16::try_from(MIN_HEADER_LEN + h.payload_len)
        .map_err(|_| PacketError::Malformed("IPv4 datagram over 65535 bytes"))?;
    let have = out.len();
    let out =
        out.get_mut(..MIN_HEADER_LEN).ok_or(PacketError::BufferTooSmall { have, need: MIN_HEADER_LEN })?;
    out.fill(0);
    out[field::VER_IHL] = 0x45;
    out[field::TOTAL_LEN].copy_from_slice(&total.to_be_bytes());
    out[field::IDENT].copy_from_slice(&h.ident.to_be_bytes());
    let flags = if h.dont_fragment { FLAG_DF } else { 0 };
    out[field::FLAGS_FRAG].copy_from_slice(&flags.to_be_bytes());
    out[field::TTL] = h.ttl;
    out[field::PROTOCOL] = h.protocol;
    out[field::SRC].copy_from_slice(&h.src.octets());
    out[field::DST].copy_from_slice(&h.dst.octets());
    let csum = crate::checksum::internet(out);
    out[field::CHECKSUM].copy_from_slice(&csum.to_be_bytes());
    Ok(())
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

    #[test]
    fn writes_a_header_that_reads_back() {
        let mut b = [0u8; 24];
        let h = Header {
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 0, 2),
            protocol: PROTO_UDP,
            ttl: 64,
            ident: 7,
            dont_fragment: true,
            payload_len: 4,
        };
        write_header(&mut b, &h).unwrap();
        let ip = Frame::new_checked(&b[..]).unwrap();
        assert_eq!((ip.src(), ip.dst(), ip.protocol(), ip.ttl()), (h.src, h.dst, PROTO_UDP, 64));
        assert_eq!((ip.total_len(), ip.dont_fragment(), ip.is_fragment()), (24, true, false));
        assert_eq!(crate::checksum::internet(&b[..20]), 0, "checksum verifies");
        assert!(write_header(&mut b[..19], &h).is_err());
        assert!(write_header(&mut b, &Header { payload_len: 65_516, ..h }).is_err());
    }
}
